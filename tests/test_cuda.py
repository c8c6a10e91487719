"""Taichi's CUDA backend with CUDA tensors: every render path in float32 and float64 against float64
on the CPU, results and gradients on the GPU, CPU tensors refused with the fix named.

CUDA runs happen in subprocesses with ``TAICHIRAST_ARCH=cuda`` (Taichi has one arch per process);
without a CUDA GPU (torch's and Taichi's) the tests skip. ``scripts/test_cuda.sh`` runs the whole
suite on CUDA besides (tests/conftest.py then makes the suite's tensors on the GPU).
"""
import json

import pytest
from gpu_scenes import all_primitives_in, assert_close_to, run_in

_PROBE = {}


def _need_cuda():
    if not _PROBE:
        res = run_in("cuda", """
            import json, torch, taichirast as tr
            print(json.dumps([torch.cuda.is_available(), tr.ensure_init()]))
        """)
        assert res.returncode == 0, res.stderr[-3000:]
        _PROBE["torch"], _PROBE["arch"] = json.loads(res.stdout.strip().splitlines()[-1])
    if not (_PROBE["torch"] and _PROBE["arch"] == "cuda"):
        pytest.skip("no CUDA GPU here (torch: %s, Taichi arch: %s)" % (_PROBE["torch"], _PROBE["arch"]))


def test_every_render_path_on_cuda_against_float64_on_the_cpu(tmp_path):
    """float32 on CUDA to float32 precision (images 1e-4, gradients 1e-3 relative), float64 on CUDA
    to float64 precision (images 1e-9, gradients 1e-7 relative; only the order of the GPU's atomic
    sums differs)."""
    _need_cuda()
    ref = all_primitives_in("cpu", "float64", "cpu", str(tmp_path / "cpu64.npz"))
    cu32 = all_primitives_in("cuda", "float32", "cuda", str(tmp_path / "cu32.npz"))
    assert_close_to(cu32, ref, image_atol=1e-4, grad_rtol=1e-3)
    cu64 = all_primitives_in("cuda", "float64", "cuda", str(tmp_path / "cu64.npz"))
    assert_close_to(cu64, ref, image_atol=1e-9, grad_rtol=1e-7)


def test_cuda_tensors_in_place_and_cpu_tensors_refused():
    _need_cuda()
    res = run_in("cuda", """
        import numpy as np, torch, taichirast as tr
        from taichirast import meshes
        v, f = (torch.from_numpy(a).cuda() for a in meshes.icosphere(2))
        cam = tr.PerspectiveCamera.look_at([0.5, 0.4, 2.8], image_size=(32, 32), device="cuda")
        sv = tr.project(v, cam)
        fr = tr.rasterize(sv, f, (32, 32))
        assert fr.face_id.is_cuda and fr.bary.is_cuda and fr.depth.is_cuda
        assert tr.interpolate(v, f, fr).is_cuda
        try:
            tr.rasterize(sv.cpu(), f.cpu(), (32, 32))
        except ValueError as e:
            msg = str(e)
        else:
            raise AssertionError("a CPU tensor on arch cuda was accepted")
        assert "device cpu" in msg and "'cuda'" in msg and "TAICHIRAST_ARCH" in msg, msg
        # the NumPy bridge copies to and from the GPU itself
        out = tr.np.rasterize(sv.cpu().numpy(), f.cpu().numpy(), 32)
        assert (out.face_id == fr.face_id.cpu().numpy()).all()
        print("ok")
    """)
    assert res.returncode == 0 and res.stdout.strip().endswith("ok"), res.stderr[-3000:]
