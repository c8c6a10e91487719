"""Host <-> device traffic of a render on Vulkan / Metal, with device residency off and on.

    TAICHIRAST_ARCH=vulkan python -m benchmarks.vulkan_copies            # bunny (or icosphere 4) at 512²
    TAICHIRAST_ARCH=vulkan python -m benchmarks.vulkan_copies --size 256 --repeat 3

On Vulkan and Metal, Taichi copies every NumPy array or torch tensor passed to a kernel to the
device before the launch and back after it (external arrays; Taichi ndarrays stay on the device).
This counts, for one ``render`` forward + backward with residency off (``taichirast._resident``
disabled) and on, the kernel launches, the external-array arguments among them and the bytes they
carry (each crosses twice: up and back; by wrapping Taichi's ``Kernel.launch_kernel``), plus
residency's own uploads and downloads; and times both, interleaved (median of ``--repeat`` after
a compiling warm-up). Cases: lit hard render (Lambert, one directional light) and soft render
(sigma 1e-4), gradients to the vertices. On the CPU and CUDA backends residency is off and the
same arguments are read in place: there both rows are the ordinary path.
"""
from __future__ import annotations

import argparse
import functools
import os
import statistics
import time

import torch

import taichirast as tr
from benchmarks.run import SHARED
from taichirast import io as trio
from taichirast import _resident as R
from taichirast import meshes


class Traffic:
    """Counts Taichi kernel launches and the external arrays (NumPy / torch) passed to them (every
    launch through Taichi's own: repeat launches by plan, kernels/_launch.py, are off meanwhile)."""

    def __init__(self):
        self.launches = self.arrays = self.bytes = 0

    def __enter__(self):
        from taichi.lang import kernel_impl

        from taichirast.kernels import _launch

        self._mod, self._orig = kernel_impl.Kernel, kernel_impl.Kernel.launch_kernel
        self._plans, _launch.ENABLED = _launch.ENABLED, False
        traffic = self

        def launch_kernel(kernel, t_kernel, *args):
            traffic.launches += 1
            for a in args:
                if isinstance(a, torch.Tensor) or type(a).__module__ == "numpy":
                    traffic.arrays += 1
                    traffic.bytes += int(a.nbytes) if hasattr(a, "nbytes") else a.element_size() * a.numel()
            return traffic._orig(kernel, t_kernel, *args)

        self._mod.launch_kernel = launch_kernel
        return self

    def __exit__(self, *exc):
        from taichirast.kernels import _launch

        self._mod.launch_kernel = self._orig
        _launch.ENABLED = self._plans


def _mesh():
    path = os.path.join(SHARED, "bunny.obj")
    if os.path.exists(path):
        v, f = trio.load_mesh(path)
        return "bunny", trio.normalize_mesh(v), f
    v, f = meshes.icosphere(4)
    return "icosphere4", v, f


def _step(verts, faces, cam, cols, resident, kw):
    R.ENABLED = resident
    try:
        vv = verts.clone().requires_grad_()
        tr.render(vv, faces, cam, colors=cols, **kw).sum().backward()
    finally:
        R.ENABLED = True


def _traffic(step):
    """One step's launches, external arrays, their bytes and the resident buffers' escapes."""
    R.COUNTS.update(dict.fromkeys(R.COUNTS, 0))
    with Traffic() as t:
        step()
    c = R.COUNTS
    return dict(launches=t.launches, arrays=t.arrays, copies=2 * t.arrays + c["uploads"] + c["escapes"],
                mb=(2 * t.bytes + c["uploaded_bytes"] + c["escaped_bytes"]) / 2**20, reshapes=c["reshapes"])


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.vulkan_copies", description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--repeat", type=int, default=5)
    a = p.parse_args(argv)
    name, v, f = _mesh()
    verts, faces = torch.from_numpy(v), torch.from_numpy(f)
    cam = tr.PerspectiveCamera.look_at([1.6, 0.6, 2.0], fov_y=40.0, image_size=(a.size, a.size), near=0.1, far=10.0)
    lights = tr.Lights(ambient=[0.3] * 3, directions=[[-0.5, -0.7, -0.5]], colors=[[0.9] * 3])
    cols = (verts - verts.min(0).values) / (verts.max(0).values - verts.min(0).values)
    cases = {"hard, lit": dict(mode="hard", lights=lights, material=tr.Material(model="lambert")),
             "soft": dict(mode="soft", sigma=1e-4)}
    print(f"arch {tr.ensure_init()} | {name}, {f.shape[0]} faces, {a.size}² | render fwd+bwd, gradients to the vertices")
    print("| case | residency | kernel launches | external-array arguments | host↔device copies | MB moved | ms |")
    print("|---|---|---:|---:|---:|---:|---:|")
    rows = []
    for label, kw in cases.items():
        steps = {r: functools.partial(_step, verts, faces, cam, cols, r, kw) for r in (False, True)}
        times = {r: [] for r in steps}
        counts = {}
        for r, step in steps.items():
            step()  # compile
            counts[r] = _traffic(step)
        for _ in range(a.repeat):  # interleaved: the machine's noise hits both alike
            for r, step in steps.items():
                t0 = time.perf_counter()
                step()
                times[r].append((time.perf_counter() - t0) * 1000.0)
        for r in steps:
            row = dict(case=label, resident=r, ms=statistics.median(times[r]), **counts[r])
            rows.append(row)
            print(f"| {label} | {'on' if r else 'off'} | {row['launches']} | {row['arrays']} | {row['copies']} | "
                  f"{row['mb']:.0f} | {row['ms']:.0f} |", flush=True)
    return rows


if __name__ == "__main__":
    main()
