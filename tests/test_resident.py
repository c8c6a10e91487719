"""Device residency (taichirast._resident): render's intermediates in Taichi ndarrays.

On the CPU backend (the default lane) residency is forced with ``scope(force=True)``: Taichi
ndarrays work there too, so the mechanism is checked against the ordinary path bitwise. CI's Vulkan
lane runs this file (and every render of the suite, with TAICHIRAST_RESIDENT_MIN_BYTES=0) on
lavapipe, where residency is the default."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import taichirast as tr
from taichirast import _resident as R

sys.path.insert(0, os.path.dirname(__file__))
from gpu_scenes import ALL_PRIMITIVES  # noqa: E402

F32 = torch.float32


@pytest.fixture
def every_array(monkeypatch):
    """Residency for arrays of any size, counters from zero."""
    monkeypatch.setattr(R, "MIN_BYTES", 0)
    R.COUNTS.update(dict.fromkeys(R.COUNTS, 0))


def _all_primitives():
    ns = {}
    exec(textwrap.dedent(ALL_PRIMITIVES), ns)
    return ns["all_primitives"](F32)


class _Launches:
    """Counts the Taichi ndarrays and the external (torch / NumPy) arrays that kernels receive
    (every launch through Taichi's own: repeat launches by plan, kernels/_launch.py, are off)."""

    def __enter__(self):
        import taichi as ti
        from taichi.lang import kernel_impl

        from taichirast.kernels import _launch

        self.ndarrays = self.external = self.external_bytes = 0
        self._orig = kernel_impl.Kernel.launch_kernel
        self._plans, _launch.ENABLED = _launch.ENABLED, False

        def launch(kernel, t_kernel, *args):
            for a in args:
                if isinstance(a, ti.lang._ndarray.Ndarray):
                    self.ndarrays += 1
                elif isinstance(a, (torch.Tensor, np.ndarray)):
                    self.external += 1
                    self.external_bytes += a.nbytes if isinstance(a, np.ndarray) else a.element_size() * a.numel()
            return self._orig(kernel, t_kernel, *args)

        kernel_impl.Kernel.launch_kernel = launch
        return self

    def __exit__(self, *exc):
        from taichi.lang import kernel_impl

        from taichirast.kernels import _launch

        kernel_impl.Kernel.launch_kernel = self._orig
        _launch.ENABLED = self._plans


def test_every_render_path_with_residency_equals_the_ordinary_path(every_array, monkeypatch):
    """Lit hard, textures (bilinear, trilinear), soft, lit soft, DIB-R, antialias, splat: images and
    gradients (to vertices, colours, textures) through resident intermediates equal the ordinary
    path's (to the order of atomic sums), and the kernels really got device arrays, with fewer
    bytes of external arrays."""
    monkeypatch.setattr(R, "ENABLED", False)
    with _Launches() as ordinary:
        ref = _all_primitives()
    monkeypatch.setattr(R, "ENABLED", True)
    with R.scope(force=True), _Launches() as resident:
        got = _all_primitives()
    assert got.keys() == ref.keys()
    for name in ref:
        # the same arithmetic: only sums of atomic adds (vertex normals, scattered gradients) may
        # add in another order, on the CPU too
        g, r = torch.from_numpy(got[name]), torch.from_numpy(ref[name])
        torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-5 * float(r.abs().max()), msg=name)
    assert ordinary.ndarrays == 0 and resident.ndarrays > 100
    assert resident.external_bytes < 0.5 * ordinary.external_bytes
    assert R.COUNTS["uploads"] > 0 and R.COUNTS["allocations"] > 0


def test_gradients_and_outputs_given_back_are_ordinary_tensors(every_array):
    from taichirast import meshes

    v, f = (torch.from_numpy(a) for a in meshes.icosphere(2))
    v = v.float().requires_grad_()
    cam = tr.PerspectiveCamera.look_at([0.4, 0.3, 2.5], image_size=(24, 20))
    with R.scope(force=True):
        img, frags = tr.render(v, f, cam, mode="hard", return_fragments=True)
    assert type(img) is torch.Tensor and all(type(x) is torch.Tensor for x in frags)
    img.sum().backward()
    assert type(v.grad) is torch.Tensor and float(v.grad.abs().sum()) > 0


def _ndarray_fill(x, value):
    import taichi as ti

    from taichirast.kernels import relayout

    relayout.filler(ti.f32)(x, value)


def test_resident_tensor_views_escapes_and_writes(every_array):
    tr.ensure_init()
    x = R.empty((4, 3), F32, fill=0.0)
    assert isinstance(x, R.Resident) and x.shape == (4, 3) and x.dtype == F32
    _ndarray_fill(x.__taichi_ndarray__(), 2.0)
    # whole-array views share the device buffer; the first read from torch downloads it once
    y = x.reshape(12)
    z = x.unsqueeze(0)
    assert isinstance(y, R.Resident) and y._buf is x._buf and z.shape == (1, 4, 3) and z._buf is x._buf
    assert R.COUNTS["escapes"] == 0
    assert torch.equal(x * 1, torch.full((4, 3), 2.0))
    assert R.COUNTS["escapes"] == 1
    # not frozen: after the escape the host copy is the data, and kernels get it (Taichi copies it)
    assert not x._buf.on_device()
    _ndarray_fill(y.__taichi_ndarray__(), 5.0)
    assert torch.equal(x * 1, torch.full((4, 3), 5.0))
    # a slice is an ordinary view of the host copy: writes through it are seen by everything
    x[0] = -1.0
    assert float(y[0]) == -1.0 and float(z[0, 0, 2]) == -1.0
    assert "Resident" in repr(x)


def test_a_frozen_buffer_keeps_its_device_copy_until_the_host_one_is_modified(every_array):
    tr.ensure_init()
    x = R.empty((6,), F32)
    _ndarray_fill(x.__taichi_ndarray__(), 3.0)
    R.freeze(x)
    assert float(x.sum()) == 18.0  # escape: one download
    assert x._buf.on_device()  # kernels still read the device array
    first = x.__taichi_ndarray__()
    assert first is x.reshape(2, 3)._buf.ndarray((6,))
    # another layout is a device copy, made once and kept
    grid = x.reshape(2, 3).__taichi_ndarray__()
    assert tuple(grid.shape) == (2, 3) and np.all(grid.to_numpy() == 3.0) and R.COUNTS["reshapes"] == 1
    assert x.reshape(2, 3).__taichi_ndarray__() is grid and R.COUNTS["reshapes"] == 1
    x.add_(1.0)  # an in-place write on the host: the device copies are stale now
    assert not x._buf.on_device() and not x._buf.layouts
    assert torch.equal(x.__taichi_ndarray__(), torch.full((6,), 4.0))
    # a view of the host copy handed out: it is the data from then on
    w = R.empty((6,), F32)
    _ndarray_fill(w.__taichi_ndarray__(), 1.0)
    R.freeze(w)
    head = w[:2]
    assert not w._buf.on_device()
    head.fill_(9.0)
    assert torch.equal(w.__taichi_ndarray__()[:3], torch.tensor([9.0, 9.0, 1.0]))


def test_the_autograd_engine_sums_resident_gradients_on_the_device(every_array):
    tr.ensure_init()
    a, b = R.empty((5, 2), F32), R.empty((5, 2), F32)
    _ndarray_fill(a.__taichi_ndarray__(), 1.5)
    _ndarray_fill(b.reshape(10).__taichi_ndarray__(), 2.0)  # another layout than a's
    total = torch.ops.aten.add.Tensor(a, b)
    assert isinstance(total, R.Resident) and total._buf.on_device() and R.COUNTS["escapes"] == 0
    assert torch.equal(total * 1, torch.full((5, 2), 3.5))


def test_user_tensors_are_uploaded_once_per_render_and_again_when_modified(every_array):
    tr.ensure_init()
    t = torch.arange(12, dtype=F32).reshape(4, 3)
    assert R.upload(t) is t  # outside a scope: nothing happens
    with R.scope(force=True):
        a, b = R.upload(t), R.upload(t.reshape(12))
        assert a._buf is b._buf and R.COUNTS["uploads"] == 1 and b.shape == (12,)
        t.mul_(2)
        c = R.upload(t)
        assert c._buf is not a._buf and R.COUNTS["uploads"] == 2
        assert torch.equal(c * 1, t) and torch.equal(a * 1, t / 2)
    with R.scope(force=True):
        R.upload(t)
    assert R.COUNTS["uploads"] == 3  # a new render uploads again


def test_released_device_arrays_are_reused_and_evicted_ones_wait_for_a_synchronisation(every_array, monkeypatch):
    """Device arrays are reused, not freed (Taichi 1.7 never frees an ndarray collected while a
    queued kernel uses it); past POOL_BYTES the evicted ones are freed at the next synchronisation."""
    tr.ensure_init()
    x = R.empty((8,), F32)
    _ndarray_fill(x.__taichi_ndarray__(), 5.0)
    nd = x._buf.layouts[(8,)]
    del x
    made = R.COUNTS["allocations"]
    y = R.empty((8,), F32, fill=0.0)
    assert y.__taichi_ndarray__() is nd and R.COUNTS["allocations"] == made
    assert torch.equal(y * 1, torch.zeros(8))  # a reused array asked for zeros is zeroed
    monkeypatch.setattr(R, "POOL_BYTES", 0)
    z = R.empty((16,), F32)
    _ndarray_fill(z.__taichi_ndarray__(), 1.0)
    nz = z._buf.layouts[(16,)]
    del z
    assert any(p is nz for p in R._pending) and not any(p is nz for free in R._pool.values() for p in free)
    w = R.empty((3,), F32)
    _ndarray_fill(w.__taichi_ndarray__(), 7.0)
    assert float(w.sum()) == 21.0 and not any(p is nz for p in R._pending)  # the download synchronised


def test_small_arrays_and_other_devices_stay_ordinary(monkeypatch):
    monkeypatch.setattr(R, "MIN_BYTES", 1 << 18)
    like = torch.zeros(2)
    with R.scope(force=True):
        assert R.wants(like, (1024, 1024), F32) and not R.wants(like, (4, 3), F32)
        assert not R.wants(like, (1024, 1024), torch.uint8) and not R.wants(like, (), F32)
    assert not R.wants(like, (1024, 1024), F32)  # outside a render
    monkeypatch.setattr(R, "ENABLED", False)
    with R.scope(force=True):
        assert not R.active()


def test_residency_can_be_turned_off_from_the_environment():
    code = "from taichirast import _resident as R; print(R.ENABLED, R.MIN_BYTES)"
    env = dict(os.environ, TAICHIRAST_RESIDENT="0", TAICHIRAST_RESIDENT_MIN_BYTES="1024")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["False", "1024"], out.stderr
