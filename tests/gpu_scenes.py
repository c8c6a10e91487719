"""Scenes shared by the GPU-backend tests (tests/test_vulkan.py, tests/test_cuda.py): source code run
in a subprocess with the backend chosen by ``TAICHIRAST_ARCH`` (Taichi has one arch per process),
whose arrays come back through an ``.npz`` file."""
import os
import subprocess
import sys
import textwrap

import numpy as np

ALL_PRIMITIVES = """
    import math, numpy as np, torch, taichirast as tr
    from taichirast import meshes

    def all_primitives(dtype, device="cpu"):
        \"\"\"Every primitive, through render: lit hard (project, rasterize, shade_fragments),
        bilinear and trilinear textures (texture, mip-maps), soft and lit soft (soft_rasterize,
        shade), DIB-R, hard + antialias, splat (rasterize_layers, splat); gradients to the
        vertices, and to colours or the texture. Tensors on ``device``; results as NumPy arrays.\"\"\"
        v, f = meshes.icosphere(2)
        v = torch.from_numpy(v).to(dtype) * torch.tensor([1.0, 0.8, 0.9], dtype=dtype)
        f = torch.from_numpy(f)
        cols = (v + 1) / 2
        uvs = torch.stack([0.5 + torch.atan2(v[:, 0], v[:, 2]) / (2 * math.pi), 0.5 + v[:, 1] / 2], 1)
        tex = torch.rand(16, 16, 3, generator=torch.Generator().manual_seed(1)).to(dtype)
        v, f, cols, uvs, tex = (x.to(device) for x in (v, f, cols, uvs, tex))
        cam = tr.PerspectiveCamera.look_at([0.5, 0.4, 2.8], fov_y=45.0, image_size=(48, 40), near=0.1,
                                           far=10.0, dtype=dtype, device=device)
        lights = tr.Lights(ambient=torch.tensor([0.2, 0.2, 0.2], dtype=dtype),
                           directions=torch.tensor([[-0.4, -0.6, -0.7]], dtype=dtype),
                           colors=torch.tensor([[0.9, 0.9, 0.9]], dtype=dtype)).to(device=device)
        lit = dict(lights=lights, material=tr.Material(model="blinn_phong"))
        textured = dict(uvs=uvs, uv_faces=f, **lit)
        out = {}
        for name, kw in (("lit hard", dict(mode="hard", **lit)),
                         ("bilinear texture", dict(mode="hard", texture_filter="bilinear", **textured)),
                         ("trilinear texture", dict(mode="hard", texture_filter="trilinear", **textured)),
                         ("soft", dict(mode="soft", sigma=3e-4)),
                         ("lit soft", dict(mode="soft", sigma=3e-4, **lit)),
                         ("dibr", dict(mode="dibr")),
                         ("antialias", dict(mode="hard", antialias=True)),
                         ("splat", dict(mode="splat"))):
            vv = v.clone().requires_grad_()
            cc = cols.clone().requires_grad_()
            tt = tex.clone().requires_grad_()
            extra = dict(texture=tt) if "uvs" in kw else dict(colors=cc)
            img = tr.render(vv, f, cam, **kw, **extra)
            assert img.device == v.device, (name, img.device)
            w = torch.rand(img.shape, generator=torch.Generator().manual_seed(0)).to(dtype).to(device)
            (img * w).sum().backward()
            out[name + " image"] = img.detach().cpu().numpy()
            out[name + " grad verts"] = vv.grad.cpu().numpy()
            attr = tt if "uvs" in kw else cc
            out[name + " grad attr"] = attr.grad.cpu().numpy()
        return out
"""


def assert_equal_up_to_sum_order(a, b):
    """Bitwise equal on the CPU backend (use it for forward passes: gradients scattered with atomic
    adds vary in their last bits there too). On a GPU (CUDA, or Vulkan with CPU tensors), sums made of
    atomic adds (vertex normals) add in an order that varies run to run: equal to float rounding there
    (1e-12 relative in float64, 1e-5 in float32)."""
    import torch

    import taichirast as tr

    if a.device.type == "cpu" and tr.runtime.arch() in (None, "cpu", "x64", "arm64"):
        assert torch.equal(a, b)
    else:
        tol = 1e-12 if a.dtype == torch.float64 else 1e-5
        torch.testing.assert_close(a, b, rtol=tol, atol=tol * float(b.abs().max()))


def run_in(arch, code, timeout=600):
    """Run ``code`` (dedented) in a fresh interpreter with ``TAICHIRAST_ARCH=arch``."""
    env = dict(os.environ, TAICHIRAST_ARCH=arch)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                          timeout=timeout)


def all_primitives_in(arch, dtype, device, path):
    """``all_primitives(dtype, device)`` computed under ``TAICHIRAST_ARCH=arch``: a dict of arrays."""
    res = run_in(arch, ALL_PRIMITIVES + f"""
    assert tr.ensure_init() == {arch!r}, tr.ensure_init()
    np.savez({path!r}, **all_primitives(torch.{dtype}, {device!r}))
""")
    assert res.returncode == 0, res.stderr[-3000:]
    return dict(np.load(path))


def assert_close_to(got, ref, image_atol, grad_rtol):
    """Images within ``image_atol``; gradients within ``grad_rtol`` in relative norm."""
    assert got.keys() == ref.keys()
    for key, want in ref.items():
        g = got[key].astype(np.float64)
        if key.endswith("image"):
            assert np.abs(g - want).max() <= image_atol, (key, np.abs(g - want).max())
        else:
            err = np.linalg.norm(g - want) / max(np.linalg.norm(want), 1e-30)
            assert err <= grad_rtol, (key, err)
