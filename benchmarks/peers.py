"""The GPU peers, nvdiffrast and PyTorch3D, timed against taichirast on the same scenes.

    TAICHIRAST_ARCH=cuda python -m benchmarks.peers            # bunny (or icosphere 4) at 512², 20 rounds
    python -m benchmarks --device cuda                         # runs this after its own tables

Same work for every renderer, interleaved round by round (benchmarks.visibility.interleaved, which
synchronises CUDA around each case): rasterize the mesh, interpolate per-vertex RGBA colours
(alpha = 1) at every pixel, and backpropagate a random-weighted sum of the image to the screen
vertices and the colours. Cases:

* ``raster+interp fwd``, ``raster+interp fwd+bwd``: ours (``rasterize`` + ``interpolate``),
  nvdiffrast (``rasterize`` on a ``RasterizeCudaContext`` + ``interpolate``), PyTorch3D
  (``rasterize_meshes``, one face per pixel + ``interpolate_face_attributes``);
* ``+ antialias fwd+bwd``: the same followed by ours / nvdiffrast's ``antialias`` (silhouette
  gradients); PyTorch3D has none.

The peers get our screen vertices turned into their conventions inside the timed, differentiated
step (clip space for nvdiffrast, PyTorch3D's NDC with view depth as z), so every gradient ends at the
same tensor. A peer that is not importable is reported as such, never guessed. The coverage of each
peer's image is compared with ours (fraction of pixels where both agree that a face is hit), to
show that the scenes are the same.
"""
from __future__ import annotations

import argparse
import os

import torch

import taichirast as tr
from benchmarks.run import SHARED, scene
from benchmarks.visibility import interleaved

NEAR, FAR = 0.1, 10.0


def to_clip(sv, size, near=NEAR, far=FAR):
    """Our screen vertices ``(B, V, 3)`` (pixels, camera depth) as OpenGL clip coordinates ``(B, V, 4)``
    for nvdiffrast, whose pixel row r and column c sit at NDC ``2 (r + 0.5) / H - 1`` (y) and
    ``2 (c + 0.5) / W - 1`` (x): the same pixel grid as ours."""
    H, W = size
    x, y, z = sv.unbind(-1)
    zc = (far + near) / (far - near) * z - 2 * far * near / (far - near)
    return torch.stack([(2 * x / W - 1) * z, (2 * y / H - 1) * z, zc, z], -1)


def to_pytorch3d_ndc(sv, size):
    """Our screen vertices as PyTorch3D NDC (+x left, +y up, the shorter side spanning [-1, 1]) with the
    camera depth as z, which is what its rasterizer takes after ``MeshRasterizer``'s projection."""
    from taichirast.geometry.camera_models import pixel_to_pytorch3d_ndc

    return torch.cat([pixel_to_pytorch3d_ndc(sv[..., :2], size), sv[..., 2:]], -1)


def _cases(render, sv, rgba, w, antialias=True):
    """The timed steps for one renderer: ``render(s, c, aa)`` -> image ``(1, H, W, 4)`` from screen
    vertices ``s`` and colours ``c`` (differentiated in the fwd+bwd steps)."""
    def make(backward, aa=False):
        def step():
            with torch.set_grad_enabled(backward):
                s, c = sv.detach().requires_grad_(backward), rgba.detach().requires_grad_(backward)
                img = render(s, c, aa)
                if backward:
                    (img * w).sum().backward()
            return img
        return step

    cases = {"raster+interp fwd": make(False), "raster+interp fwd+bwd": make(True)}
    if antialias:
        cases["+ antialias fwd+bwd"] = make(True, True)
    return cases


def ours_cases(sv, f, rgba, w, size):
    topo = tr.edge_topology(f)

    def render(s, c, aa):
        fr = tr.rasterize(s, f, size, near=NEAR)
        img = tr.interpolate(c, f, fr)
        return tr.antialias(img, fr, s, f, topo) if aa else img

    return _cases(render, sv, rgba, w)


def nvdiffrast_cases(sv, f, rgba, w, size):
    import nvdiffrast.torch as dr

    ctx = dr.RasterizeCudaContext(device=sv.device)
    tri = f.to(torch.int32).contiguous()

    def render(s, c, aa):
        pos = to_clip(s, size).contiguous()
        rast, _ = dr.rasterize(ctx, pos, tri, resolution=list(size))
        img, _ = dr.interpolate(c[None].contiguous(), rast, tri)
        return dr.antialias(img, rast, pos, tri) if aa else img

    return _cases(render, sv, rgba, w)


def pytorch3d_cases(sv, f, rgba, w, size):
    from pytorch3d.ops import interpolate_face_attributes
    from pytorch3d.renderer.mesh.rasterize_meshes import rasterize_meshes
    from pytorch3d.structures import Meshes

    faces = f.to(torch.int64)

    def render(s, c, aa):
        mesh = Meshes(verts=[to_pytorch3d_ndc(s, size)[0]], faces=[faces])
        p2f, _, bary, _ = rasterize_meshes(mesh, image_size=size, blur_radius=0.0, faces_per_pixel=1,
                                           perspective_correct=True)
        img = interpolate_face_attributes(p2f, bary, c[faces])[:, :, :, 0]
        return img.flip(1, 2)  # PyTorch3D's image is flipped in x and y against ours (+x left, +y up)

    return _cases(render, sv, rgba, w, antialias=False)


PEERS = {"nvdiffrast": nvdiffrast_cases, "PyTorch3D": pytorch3d_cases}


def coverage_agreement(ours_img, peer_img):
    a = ours_img[..., 3] > 0.5
    b = peer_img.reshape(a.shape + (-1,))[..., 3] > 0.5
    return float((a == b).float().mean())


def _peer(make, ours, *scene_args):
    """``(cases or None, note)``: a peer that is not importable, or fails on this machine, is reported."""
    try:
        cases = make(*scene_args)
        agree = coverage_agreement(ours["raster+interp fwd"](), cases["raster+interp fwd"]())
    except ImportError as e:
        return None, f"not importable ({e.name or e}): not timed"
    except Exception as e:  # reported in the table's notes, not hidden
        return None, f"failed: {type(e).__name__}: {str(e)[:300]}"
    return cases, f"coverage agrees with ours at {100 * agree:.2f} % of pixels"


def measure(name, size, rounds, device="cuda"):
    """``(faces, {case: {renderer: ms}}, {peer: note})`` for scene ``name`` at ``size``²."""
    sv, f, cols, _ = scene(name, size, device)
    rgba = torch.cat([cols, torch.ones_like(cols[:, :1])], -1).contiguous()
    w = torch.rand(1, size, size, 4, generator=torch.Generator().manual_seed(0)).to(device)
    hw = (size, size)
    renderers = {"taichirast": ours_cases(sv, f, rgba, w, hw)}
    notes = {}
    for peer, make in PEERS.items():
        cases, notes[peer] = _peer(make, renderers["taichirast"], sv, f, rgba, w, hw)
        if cases:
            renderers[peer] = cases
    cases = {(r, k): fn for r, cs in renderers.items() for k, fn in cs.items()}
    times = interleaved(cases, rounds)
    table = {}
    for (r, k), ms in times.items():
        table.setdefault(k, {})[r] = ms
    return int(f.shape[0]), table, notes


def print_table(name, faces, size, table, notes):
    peers = [p for p in PEERS if any(p in row for row in table.values())]
    head = " | ".join(["taichirast ms"] + [f"{p} ms | {p} / ours" for p in peers])
    print(f"| {name} ({faces} faces) {size}² | {head} |")
    print("|---|" + "---:|" * (1 + 2 * len(peers)))
    for case, row in table.items():
        cells = [f"{row['taichirast']:.2f}"]
        for p in peers:
            cells += [f"{row[p]:.2f}", f"{row[p] / row['taichirast']:.2f}"] if p in row else ["–", "–"]
        print(f"| {case} | " + " | ".join(cells) + " |")
    for p, note in notes.items():
        print(f"  {p}: {note}")


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.peers", description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, nargs="+", default=[512])
    p.add_argument("--rounds", type=int, default=20)
    a = p.parse_args(argv)
    if tr.ensure_init() != "cuda":
        raise SystemExit("benchmarks.peers needs Taichi's CUDA backend (TAICHIRAST_ARCH=cuda) and a CUDA GPU: "
                         f"Taichi runs on {tr.runtime.arch()!r} here")
    name = "bunny" if os.path.exists(os.path.join(SHARED, "bunny.obj")) else "icosphere4"
    print(f"GPU: {torch.cuda.get_device_name(0)}", flush=True)
    out = []
    for size in a.size:
        faces, table, notes = measure(name, size, a.rounds)
        print_table(name, faces, size, table, notes)
        out.append({"scene": name, "faces": faces, "size": size, "ms": table, "notes": notes})
    return out


if __name__ == "__main__":
    main()
