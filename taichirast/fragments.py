"""``Fragments``: the hard rasterizer's per-pixel output (PyTorch3D-style named tuple)."""
from typing import Any, NamedTuple


class Fragments(NamedTuple):
    """Per-pixel buffers of a hard rasterization, NumPy arrays or torch tensors.

    * ``face_id``: ``(B, H, W)`` int32, index of the visible face, ``-1`` for background. Not
      differentiable.
    * ``bary``: ``(B, H, W, 3)`` float, perspective-correct barycentrics of the visible point
      (0 on background). Differentiable w.r.t. the screen vertices.
    * ``depth``: ``(B, H, W)`` float, camera depth of the visible point (``+inf`` on background).
      Differentiable w.r.t. the screen vertices.
    """

    face_id: Any
    bary: Any
    depth: Any

    @property
    def mask(self):
        """``(B, H, W)`` bool: pixels covered by a face."""
        return self.face_id >= 0
