"""``texture``: per-pixel texture lookup at a UV image. Kernels (and derivation) in kernels/texture.py.

Inputs:

* ``tex (Ht, Wt, C)`` or ``(B, Ht, Wt, C)`` float32/float64, channels-last, texel row 0 at the top
  (DESIGN §2). A batch of 1 is shared by every image; otherwise it must equal uv's batch.
* ``uv (H, W, 2)`` or ``(B, H, W, 2)``, same dtype as ``tex``, finite. UV convention (OBJ / OpenGL):
  ``u`` in [0, 1] runs left to right, ``v`` in [0, 1] bottom to top. In texel-centre units the
  sample point is column ``x = u * Wt - 0.5``, row ``y = (1 - v) * Ht - 0.5``, so texel ``(i, j)``
  (row, column) sits at ``u = (j + 0.5) / Wt``, ``v = 1 - (i + 0.5) / Ht``.
* ``filter``: ``"bilinear"`` (blend of the 4 nearest texel centres) or ``"nearest"`` (texel
  ``(floor((1 - v) Ht), floor(u Wt))``; on a texel boundary the larger index wins).
* ``wrap``: ``"repeat"`` (u, v taken modulo 1; the texture tiles, bilinear blends across the
  seam) or ``"clamp"`` (clamp-to-edge: beyond the outer texel centres the edge texels extend).
* ``face_id (B, H, W)`` int, optional: pixels with ``face_id < 0`` (background) output 0 and get
  no gradient.

Output ``(B, H, W, C)`` in tex's dtype. Differentiable in ``tex`` (atomic scatter of the bilinear
weights / of ``g`` for nearest; its gradient has tex's shape) and ``uv`` (derivative of the
bilinear blend; exactly 0 for ``nearest``). The bilinear blend is only piecewise smooth: on a
texel-centre line (``u * Wt - 0.5`` or ``(1 - v) * Ht - 0.5`` an integer) the uv gradient is the
one-sided derivative towards larger ``u`` / smaller ``v``; with ``clamp``, beyond the outer texel
centres the gradient along that axis is exactly 0 (the output is constant there).
"""
from __future__ import annotations

from .. import _array as A
from .. import _validate as V
from .._primitive import Prepared, Primitive
from ..runtime import ensure_init

FN = "texture"
FILTERS = ("nearest", "bilinear")
WRAPS = ("repeat", "clamp")


def _choice(name, value, allowed):
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{FN}: {name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value


def texture(tex, uv, filter="bilinear", wrap="repeat", face_id=None):
    """Sample a texture at per-pixel UVs (nearest or bilinear), differentiable in texture and UVs.

    This is the primitive (torch and NumPy). :func:`taichirast.texture` adds mip-mapped
    ``filter="trilinear"`` sampling (torch only) on top of it.

    Args:
        tex: ``(Ht, Wt, C)`` or ``(B, Ht, Wt, C)`` float texture, texel row 0 at the top (a batch
            of 1 is shared by every image).
        uv: ``(H, W, 2)`` or ``(B, H, W, 2)``; OBJ/OpenGL convention: u left to right, v bottom
            to top, texel (i, j) centred at ``u = (j + .5) / Wt``, ``v = 1 - (i + .5) / Ht``.
        filter: ``"nearest"`` or ``"bilinear"``.
        wrap: ``"repeat"`` (bilinear blends across the seam) or ``"clamp"`` (clamp to edge).
        face_id: optional ``(B, H, W)`` int: pixels with ``face_id < 0`` get 0 and no gradient.

    Returns:
        ``(B, H, W, C)``. Gradients to ``tex`` (scatter of the bilinear weights) and ``uv``
        (bilinear: the blend's slope, one-sided exactly on texel-centre lines, 0 beyond a
        clamped edge; nearest: 0).
    """
    if filter == "trilinear":
        raise ValueError(f"{FN}: filter='trilinear' (mip-mapping) is a composite above this primitive and "
                         f"torch-only: use taichirast.texture(..., filter='trilinear', lod=...)")
    filter = _choice("filter", filter, FILTERS)
    wrap = _choice("wrap", wrap, WRAPS)
    kind = V.kind_of(tex, uv, face_id)
    tex = V.float_array(FN, "tex", tex, kind, ndims=(3, 4))
    tex = tex[None] if tex.ndim == 3 else tex
    if tex.shape[1] == 0 or tex.shape[2] == 0:
        raise ValueError(f"{FN}: tex must have at least one texel (Ht, Wt >= 1), got shape {tuple(tex.shape)}")
    uv = V.float_array(FN, "uv", uv, kind, tex, ndims=(3, 4), last=2)
    uv = uv[None] if uv.ndim == 3 else uv
    V.same_float(FN, tex=tex, uv=uv)
    B = uv.shape[0]
    if tex.shape[0] not in (1, B):
        raise ValueError(f"{FN}: tex has batch {tex.shape[0]} but uv has batch {B} "
                         f"(tex's batch must be 1 or equal)")
    if face_id is None:
        mask = A.zeros(uv, (1,), "int32")
    else:
        mask = V.array(FN, "face_id", face_id, kind, tex)
        dt = A.dtype_name(mask)
        if not (dt.startswith("int") or dt.startswith("uint")):
            raise TypeError(f"{FN}: face_id must be an integer array (int32), got {dt}")
        if tuple(mask.shape) != tuple(uv.shape[:3]):
            raise ValueError(f"{FN}: face_id must have shape uv.shape[:3] = {tuple(uv.shape[:3])}, "
                             f"got {tuple(mask.shape)}")
        if A.is_torch(mask) and A.is_torch(tex) and mask.device != tex.device:
            raise ValueError(f"{FN}: face_id is on {mask.device} but tex is on {tex.device}")
        # Only the sign matters: -1 background, 0 foreground (int32 whatever the input's int type).
        mask = -A.astype(mask < 0, "int32")
    params = {"filter": filter, "wrap": wrap, "has_mask": face_id is not None}
    return Prepared(inputs=[tex, uv, mask], sources=["tex", "uv", None], params=params)


def _flat(tex, uv):
    """Flat views for the kernels (kernels/texture.py) and their static sizes."""
    Bt, Ht, Wt, C = tex.shape
    B, H, W, _ = uv.shape
    N = B * H * W
    return (tex.reshape(Bt * Ht * Wt, C), uv.reshape(N, 2)), (N, H * W, Ht, Wt, C, int(Bt == 1))


def _flags(params):
    return int(params["filter"] == "bilinear"), int(params["wrap"] == "repeat"), int(params["has_mask"])


def forward(inputs, params):
    from taichirast.kernels import real_type, texture

    ensure_init()
    tex, uv, mask = inputs
    fwd, _ = texture.build(real_type(A.dtype_name(tex)))
    B, H, W, _ = uv.shape
    out = A.empty(tex, (B, H, W, tex.shape[3]))
    (tf, uf), (N, HW, Ht, Wt, C, shared) = _flat(tex, uv)
    if C > 0 and N > 0:
        mf = mask.reshape(-1)
        fwd(tf, uf, mf, out.reshape(N, C), HW, Ht, Wt, shared, *_flags(params))
    return (out,), (tex, uv, mask)


def backward(saved, params, grads, needs):
    from taichirast.kernels import real_type, texture

    tex, uv, mask = saved
    (g,) = grads
    need_tex, need_uv = bool(needs[0]), bool(needs[1])
    if g is None or not (need_tex or need_uv):
        return [None, None, None]
    _, bwd = texture.build(real_type(A.dtype_name(tex)))
    (tf, uf), (N, HW, Ht, Wt, C, shared) = _flat(tex, uv)
    g_tex = A.zeros(tex, tex.shape) if need_tex else A.zeros(tex, (1, 1))
    run = C > 0 and N > 0
    g_uv = (A.empty if run else A.zeros)(tex, uv.shape) if need_uv else A.zeros(tex, (1, 2))
    if run:
        gt = g_tex.reshape(tex.shape[0] * Ht * Wt, C) if need_tex else g_tex
        bwd(tf, uf, mask.reshape(-1), g.reshape(N, C), gt, g_uv.reshape(N, 2) if need_uv else g_uv,
            HW, Ht, Wt, shared, *_flags(params), int(need_tex), int(need_uv))
    return [g_tex if need_tex else None, g_uv if need_uv else None, None]


PRIM = Primitive(FN, texture, forward, backward, differentiable=("tex", "uv"))
