"""Findings of the fuzzing session (issue 14): threads, extreme parameters, huge coordinates,
image_size types, malformed mesh files, and error messages that name what the user passed."""
import json
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
import torch

import taichirast as tr
from taichirast import io, meshes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------- 1. threads
def _fresh_python(code, tmp_path, timeout=300):
    """Run ``code`` in a new interpreter with an empty Taichi offline cache (so kernels compile); returns
    the JSON object the code printed on its last line (the test asserts on it)."""
    env = dict(os.environ, TAICHIRAST_ARCH="cpu", TI_OFFLINE_CACHE_FILE_PATH=str(tmp_path / "ticache"))
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=timeout)
    lines = r.stdout.strip().splitlines()
    if r.returncode != 0 or not lines:
        pytest.fail(f"child exited with {r.returncode}:\n{r.stdout[-3000:]}{r.stderr[-3000:]}")
    return json.loads(lines[-1])


RACE = """
    import json, threading, numpy as np, torch
    import taichirast as tr
    from taichirast import meshes
    v, f = meshes.icosphere(1)
    verts, faces = torch.from_numpy(v).float(), torch.from_numpy(f)
    cam = tr.PerspectiveCamera.look_at(torch.tensor([0.3, 0.4, 3.0]), fov_y=50.0, image_size=(16, 16))
    sv_np = np.array([[[1.0, 1.0, 1.0], [7.0, 1.0, 1.0], [1.0, 7.0, 1.0]]])

    def job(mode, C):
        if mode == "numpy":  # the NumPy bridge, float64 kernels
            return torch.from_numpy(tr.np.rasterize(sv_np, np.array([[0, 1, 2]]), (8, 8)).bary)
        x = verts.clone().requires_grad_()
        cols = torch.linspace(0, 1, verts.shape[0] * C).reshape(-1, C)
        out = tr.render(x, faces, cam, colors=cols, mode=mode)
        out.sum().backward()
        return torch.cat([out.reshape(-1), x.grad.reshape(-1)])

    jobs = [("hard", 3), ("soft", 3), ("dibr", 3), ("soft", 5), ("soft", 7), ("numpy", 0), ("hard", 3)]
    res, errs = {}, []
    barrier = threading.Barrier(len(jobs))

    def worker(i):
        try:
            barrier.wait()
            res[i] = job(*jobs[i])
        except BaseException as e:
            errs.append(f"{jobs[i]}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(jobs))]
    [t.start() for t in threads]
    [t.join() for t in threads]
    report = {"errors": errs, "jobs": []}
    for i, j in enumerate(jobs):  # each racing result against the same job run alone afterwards
        ref = job(*j)
        got = res.get(i)
        report["jobs"].append({"job": f"{j[0]}/{j[1]}", "numel": int(ref.numel()),
                               "ref_norm": float(ref.norm()),
                               "max_diff": None if got is None else float((got - ref).abs().max()),
                               "max_ref": float(ref.abs().max())})
    print(json.dumps(report))
"""


@pytest.mark.parametrize("attempt", range(3))
def test_threads_race_first_calls_and_new_kernel_variants(tmp_path, attempt):
    report = _fresh_python(RACE, tmp_path)
    assert report["errors"] == []  # e.g. "Kernels cannot call other kernels" before the runtime lock
    assert [j["job"] for j in report["jobs"]] == ["hard/3", "soft/3", "dibr/3", "soft/5", "soft/7", "numpy/0",
                                                  "hard/3"]
    for j in report["jobs"]:
        assert j["numel"] > 0 and j["ref_norm"] > 0, j  # a real image and gradient were compared
        # equal to the serial run to float32 round-off: the backward's float atomics add in
        # thread-timing order, so gradients are not bitwise reproducible
        assert j["max_diff"] is not None and j["max_diff"] <= 1e-6 + 1e-5 * j["max_ref"], j


def test_init_on_one_thread_first_launch_on_another(tmp_path):
    covered = _fresh_python("""
        import threading, numpy as np
        import taichirast as tr
        t = threading.Thread(target=tr.ensure_init)
        t.start(); t.join()
        sv = np.array([[[1.0, 1.0, 1.0], [7.0, 1.0, 1.0], [1.0, 7.0, 1.0]]], np.float32)
        print(int((tr.np.rasterize(sv, np.array([[0, 1, 2]]), (8, 8)).face_id >= 0).sum()))
    """, tmp_path)
    assert covered == 21  # the pixels whose centres lie inside the triangle


# ---------------------------------------------------------------- 2. soft / dibr parameters
def _sphere_render(dtype, **kw):
    v, f = meshes.icosphere(2)
    verts = torch.from_numpy(v).to(dtype).requires_grad_()
    g = torch.Generator().manual_seed(0)
    cols = torch.rand(v.shape[0], 3, generator=g, dtype=dtype, requires_grad=True)
    cam = tr.PerspectiveCamera.look_at(torch.tensor([0.3, 0.4, 3.0], dtype=dtype), fov_y=50.0, image_size=24,
                                       near=0.1, far=10.0)
    out = tr.render(verts, torch.from_numpy(f), cam, colors=cols, **kw)
    (out * torch.rand(out.shape, generator=g, dtype=dtype)).sum().backward()
    return out, verts.grad, cols.grad


@pytest.mark.parametrize("dtype,gamma", [(torch.float32, 1e-11), (torch.float32, 1e-30),
                                         (torch.float64, 1e-30), (torch.float64, 1e-45)])
def test_soft_small_gamma_is_finite(dtype, gamma):
    for t in _sphere_render(dtype, mode="soft", sigma=1e-4, gamma=gamma):
        assert torch.isfinite(t).all()


@pytest.mark.parametrize("dtype,name,value", [(torch.float32, "gamma", 1e-45), (torch.float32, "sigma", 1e-45),
                                              (torch.float64, "gamma", 1e-305)])
def test_soft_scale_below_dtype_minimum_is_a_clear_error(dtype, name, value):
    kw = {"sigma": 1e-4, "gamma": 1e-4, name: value}
    want = str(dtype).replace("torch.", "")
    with pytest.raises(ValueError, match=rf"soft_rasterize: {name}={value!r} is out of range for {want} inputs: "
                                         rf"it must be >= "):
        _sphere_render(dtype, mode="soft", **kw)


def test_soft_sigma_tiny_float64_is_finite():
    for t in _sphere_render(torch.float64, mode="soft", sigma=1e-45, gamma=1e-4):
        assert torch.isfinite(t).all()


def test_dibr_sigmainv_huge():
    with pytest.raises(ValueError, match=r"dibr_silhouette: sigmainv=1e\+100 is out of range for float32"):
        _sphere_render(torch.float32, mode="dibr", sigmainv=1e100)
    for t in _sphere_render(torch.float64, mode="dibr", sigmainv=1e300)[:2]:
        assert torch.isfinite(t).all()


# ---------------------------------------------------------------- 3. huge coordinates
def _full_screen(X, dtype):
    return np.array([[-X, -X, 2.0], [3 * X, -X, 2.0], [-X, 3 * X, 2.0]], dtype)


@pytest.mark.parametrize("dtype,ok,bad", [(np.float32, 1e15, 1e19), (np.float64, 1e100, 1e200)])
def test_huge_screen_triangle_covers_or_raises(dtype, ok, bad):
    f = np.array([[0, 1, 2]])
    calls = [lambda sv: (tr.np.rasterize(sv, f, (8, 8)).face_id >= 0),
             lambda sv: tr.np.rasterize(sv, f, (8, 8), perspective_correct=False).face_id >= 0,
             lambda sv: tr.np.soft_rasterize(sv, f, np.ones((3, 1), dtype), (8, 8))[..., 1],
             lambda sv: tr.np.dibr_silhouette(sv, f, -np.ones((8, 8), np.int32), (8, 8))]
    for call in calls[:3]:
        assert np.all(call(_full_screen(ok, dtype)) == 1)
    for call in calls:
        with pytest.raises(ValueError, match=r"screen_verts \(x, y in pixels\) has magnitudes up to .* beyond the limit"):
            call(_full_screen(bad, dtype))
    # only x and y are bounded: a depth beyond the limit (with x, y within it) is drawn
    far = _full_screen(8.0, dtype)
    far[:, 2] = bad
    assert np.all(calls[0](far) == 1)


def test_render_of_world_quad_scaled_1e20_raises():
    v = torch.tensor([[-1.0, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]]) * 1e20
    f = torch.tensor([[0, 1, 2], [0, 2, 3]])
    cam = tr.PerspectiveCamera.look_at(torch.tensor([0.0, 0, 3]), image_size=8)
    for kw in (dict(mode="hard"), dict(mode="soft"), dict(mode="dibr"), dict(mode="splat"),
               dict(mode="hard", antialias=True)):
        with pytest.raises(ValueError, match="screen_verts.*projected verts.*float64"):
            tr.render(v, f, cam, **kw)
    # float64 has the range: the quad covers the image
    assert torch.all(tr.render(v.double(), f, cam.to(dtype=torch.float64), mode="hard")[..., 3] == 1)


# ---------------------------------------------------------------- 4. image_size
@pytest.mark.parametrize("size", ["32", True, np.bool_(True), 3.5, (True, 2), (2, "3"), (2,), (1, 2, 3),
                                  float("nan"), None])
def test_image_size_rejects_non_integers(size):
    sv = np.array([[1.0, 1.0, 1.0], [7.0, 1.0, 1.0], [1.0, 7.0, 1.0]])
    with pytest.raises(TypeError, match="rasterize: image_size must be a positive int or a pair"):
        tr.np.rasterize(sv, np.array([[0, 1, 2]]), size)
    with pytest.raises(TypeError, match="image_size must be a positive int or a pair"):
        tr.PerspectiveCamera.look_at([0.0, 0.0, 3.0], image_size=size)
    with pytest.raises(TypeError, match="image_size"):
        tr.OrthographicCamera.look_at([0.0, 0.0, 3.0], image_size=size)


def test_image_size_accepts_integers():
    for size, want in ((32, (32, 32)), (np.int64(5), (5, 5)), (8.0, (8, 8)), ((3, 4), (3, 4)),
                       (np.array([6, 7]), (6, 7)), (torch.Size([2, 9]), (2, 9))):
        assert tr.PerspectiveCamera.look_at([0.0, 0.0, 3.0], image_size=size).image_size == want


def test_camera_and_raster_size_mismatch_warns():
    """Screen vertices from tr.project remember the camera's size; rasterizing them at another size
    warns (pointing at the caller's line), the matching size does not, and derived tensors are not
    tracked (no false alarms on a tensor someone else made)."""
    import warnings

    cam = tr.PerspectiveCamera.look_at([0.0, 0.0, -3.0], image_size=(64, 64))
    v = torch.tensor([[-1.0, -1.0, 0.0], [1.0, -1.0, 0.0], [0.0, 1.0, 0.0]])
    f = torch.tensor([[0, 1, 2]])
    sv = tr.project(v, cam)
    calls = {
        "rasterize": lambda size: tr.rasterize(sv, f, size),
        "rasterize_layers": lambda size: tr.rasterize_layers(sv, f, size, 2),
        "soft_rasterize": lambda size: tr.soft_rasterize(sv, f, torch.ones(3, 3), size),
        "dibr_silhouette": lambda size: tr.dibr_silhouette(sv, f, tr.rasterize(sv.detach(), f, size), size),
    }
    for name, call in calls.items():
        with pytest.warns(tr.CameraSizeWarning, match=rf"{name}: screen_verts were projected with a camera built "
                          r"for image_size \(64, 64\), but image_size=\(128, 96\)") as rec:
            call((128, 96))
        assert rec[0].filename == __file__, (name, rec[0].filename)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            call((64, 64))
            call(64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tr.rasterize(sv.detach().clone(), f, (128, 96))
        tr.render(v, f, cam)  # render rasterizes at the camera's own size


# ---------------------------------------------------------------- 5. mesh files
TRI = "v 0 0 0\nv 1 0 0\nv 0 1 0\n"
PLY_HEAD = ("ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
            "element face 1\nproperty list uchar int vertex_indices\nend_header\n")


def _write(tmp_path, name, data):
    p = tmp_path / name
    p.write_bytes(data if isinstance(data, bytes) else data.encode())
    return str(p)


@pytest.mark.parametrize("name,text,line,what", [
    ("zero.obj", TRI + "f 0 1 2\n", 4, "OBJ indices start at 1"),
    ("range.obj", TRI + "f 1 2 4\n", 4, "vertex index 4 is out of range"),
    ("word.obj", "v 0 0 0\nv 1 zero 0\nv 0 1 0\nf 1 2 3\n", 2, "'v' takes 3 to 7 numbers"),
    ("corner.obj", TRI + "f 1 2 x/1\n", 4, "integer indices"),
    ("short.ply", PLY_HEAD + "0 0 0\n1 0 0\n0 1\n3 0 1 2\n", 12, "too few values"),
    ("index.ply", PLY_HEAD + "0 0 0\n1 0 0\n0 1 0\n3 0 1 7\n", 13, r"face indices must be integers in \[0, 3\)"),
])
def test_malformed_text_mesh_names_file_and_line(tmp_path, name, text, line, what):
    path = _write(tmp_path, name, text)
    loaders = (io.load_mesh, io.load_textured_mesh) if name.endswith(".obj") else (io.load_mesh,)
    for load in loaders:
        with pytest.raises(io.MeshLoadError, match=rf"{name}: line {line}: .*{what}"):
            load(path)


def test_malformed_mtl_line(tmp_path):
    _write(tmp_path, "m.mtl", "newmtl a\nKd 1 0 red\n")
    path = _write(tmp_path, "t.obj", "mtllib m.mtl\n" + TRI + "usemtl a\nf 1 2 3\n")
    with pytest.raises(io.MeshLoadError, match=r"m.mtl: line 2: 'Kd' takes numbers"):
        io.load_textured_mesh(path)


@pytest.mark.parametrize("data,what", [(b"\x7fELF\x00\x01\x02\x03v 1 2 3\n", "binary data"),
                                       ("v 0 0 0\n# caf\xe9\n".encode("latin-1"), "not UTF-8 text")])
def test_binary_or_non_utf8_obj(tmp_path, data, what):
    path = _write(tmp_path, "b.obj", data)
    for load in (io.load_mesh, io.load_textured_mesh):
        with pytest.raises(io.MeshLoadError, match=rf"b.obj: line \d+: {what}") as e:
            load(path)
        assert "charset" not in str(e.value) and "ModuleNotFoundError" not in str(e.value)


def test_fifo_and_device_are_not_regular_files(tmp_path):
    fifo = str(tmp_path / "pipe.obj")
    os.mkfifo(fifo)
    zero = str(tmp_path / "zero.ply")
    os.symlink("/dev/zero", zero)
    errors = []

    def load(fn, path):
        try:
            fn(path)
        except Exception as e:  # noqa: BLE001 - collected and checked below
            errors.append(str(e))

    def load_all():
        for path in (fifo, zero):
            for fn in (io.load_mesh, io.load_textured_mesh):
                load(fn, path)

    t = threading.Thread(target=load_all, daemon=True)
    t.start()
    t.join(30)
    assert not t.is_alive(), "a loader blocked on a FIFO or device"
    assert len(errors) == 4 and all("not a regular file" in e for e in errors), errors
    assert "FIFO" in errors[0] and "character device" in errors[2]
    with pytest.raises(FileNotFoundError, match="no such file"):
        io.load_mesh(str(tmp_path / "missing.obj"))


# ---------------------------------------------------------------- 6. messages
def test_look_at_distance_overflow_message():
    with pytest.raises(ValueError, match="eye-at distance 1e\\+20 overflows float32.*dtype=torch.float64"):
        tr.PerspectiveCamera.look_at([0.0, 0.0, 1e20])
    assert tr.PerspectiveCamera.look_at([0.0, 0.0, 1e20], dtype=torch.float64).t.isfinite().all()


@pytest.mark.parametrize("mode", ["hard", "soft"])
def test_trilinear_huge_uvs_name_uvs(mode):
    v, f = meshes.icosphere(1)
    cam = tr.PerspectiveCamera.look_at(torch.tensor([0.3, 0.4, 3.0]), image_size=16)
    uvs = torch.rand(v.shape[0], 2) * 1e19
    with pytest.raises(ValueError, match=r"uvs has magnitudes up to .* beyond the limit 1.68e\+07") as e:
        tr.render(torch.from_numpy(v), torch.from_numpy(f), cam, mode=mode, texture=torch.rand(8, 8, 3), uvs=uvs,
                  texture_filter="trilinear")
    assert "lod contains" not in str(e.value)


def test_dtype_mismatch_with_camera_says_what_to_do():
    v, f = meshes.icosphere(0)
    cam = tr.PerspectiveCamera.look_at([0.0, 0.0, 3.0], image_size=8)
    with pytest.raises(TypeError, match=r"verts=float64, R=float32.*dtype=torch.float64.*camera.to\(dtype="):
        tr.render(torch.from_numpy(v).double(), torch.from_numpy(f), cam)
