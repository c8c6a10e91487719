"""Benchmark: hard raster + interpolate and soft_rasterize, forward and forward+backward, peak memory.

    python -m benchmarks                  # icosphere level 4 and the bunny, 256^2 and 512^2
    python -m benchmarks --quick          # fewer repeats, icosphere only
    python -m benchmarks --device cuda    # + nvdiffrast / PyTorch3D on the same scene (benchmarks.peers)

Prints a markdown table and writes JSON (``--out``, default bench_out/results.json). Times are
medians over ``--repeat`` runs after a warm-up (which compiles the kernels). Memory: peak
resident set size of the process during the case (``peak RSS``) and its rise over the RSS just
before the case (``+RSS``), sampled every millisecond; on CUDA, peak allocated GPU memory.
The same run times a dense pure-PyTorch SoftRas (benchmarks/reference.py) against
taichirast.soft_rasterize on a small scene and reports the ratio, and (without ``--quick``) the
silhouette-gradient tables of :mod:`benchmarks.visibility` (hard + antialias, splat, DIB-R, soft),
:mod:`benchmarks.soft`'s soft / hard ratios for the bunny and a 1.31M-face sphere at 1024², and
:mod:`benchmarks.packed`'s batch of different meshes against rendering them one by one.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time

# torch's idle OpenMP threads spin and starve Taichi's threads on a small machine (measured:
# raster fwd+bwd 31 ms -> 200+ ms median); let them sleep.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import taichirast as tr  # noqa: E402
from taichirast import io as trio  # noqa: E402
from taichirast import meshes  # noqa: E402

SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "meshes")


class PeakRSS:
    """Samples this process's RSS every millisecond in a thread; ``peak`` in bytes."""

    def __init__(self):
        import psutil

        self.proc = psutil.Process()
        self.base = self.proc.memory_info().rss
        self.peak = self.base
        self._stop = threading.Event()

    def __enter__(self):
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.001)

    def __exit__(self, *a):
        self._stop.set()
        self.t.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


def default_device():
    """``"cuda"`` when Taichi is asked for its CUDA backend (``TAICHIRAST_ARCH=cuda``), else ``"cpu"``:
    the device whose tensors Taichi reads in place."""
    return "cuda" if tr.runtime.requested_arch() == "cuda" else "cpu"


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def timeit(fn, device, repeat, warmup=2):
    for _ in range(warmup):
        fn()
    sync(device)
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync(device)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1000.0


def scene(name, size, device):
    if name == "icosphere4":
        v, f = meshes.icosphere(4)
    else:
        v, f = trio.load_mesh(os.path.join(SHARED, "bunny.obj"))
        v = trio.normalize_mesh(v)
    v = torch.from_numpy(v).to(device)
    f = torch.from_numpy(f).to(device)
    cam = tr.PerspectiveCamera.look_at(torch.tensor([0.4, 0.3, 2.6]), fov_y=45.0, image_size=(size, size),
                                       near=0.1, far=10.0, device=device)
    with torch.no_grad():
        sv = tr.project(v, cam)
    cols = (v - v.min(0).values) / (v.max(0).values - v.min(0).values)
    return sv.contiguous(), f, cols.contiguous(), cam


def bench_case(name, size, device, repeat, sigma):
    sv, f, cols, cam = scene(name, size, device)
    F = f.shape[0]
    g = torch.Generator(device="cpu").manual_seed(0)
    w_hard = torch.rand(1, size, size, 3, generator=g).to(device)
    w_soft = torch.rand(1, size, size, 4, generator=g).to(device)
    rows = []

    def hard_fwd():
        with torch.no_grad():
            fr = tr.rasterize(sv, f, (size, size))
            return tr.interpolate(cols, f, fr)

    def hard_fb():
        s = sv.detach().requires_grad_()
        c = cols.detach().requires_grad_()
        fr = tr.rasterize(s, f, (size, size))
        (tr.interpolate(c, f, fr) * w_hard).sum().backward()

    def soft_fwd():
        with torch.no_grad():
            return tr.soft_rasterize(sv, f, cols, (size, size), sigma=sigma, gamma=1e-4, near=cam.near, far=cam.far)

    def soft_fb():
        s = sv.detach().requires_grad_()
        c = cols.detach().requires_grad_()
        (tr.soft_rasterize(s, f, c, (size, size), sigma=sigma, gamma=1e-4, near=cam.near, far=cam.far)
         * w_soft).sum().backward()

    coverage = float((hard_fwd()[..., 0] != 0).float().mean()) if F else 0.0
    for label, fn in (("hard raster+interp fwd", hard_fwd), ("hard raster+interp fwd+bwd", hard_fb),
                      ("soft_rasterize fwd", soft_fwd), ("soft_rasterize fwd+bwd", soft_fb)):
        fn()  # compile
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        with PeakRSS() as mem:
            ms = timeit(fn, device, repeat)
        row = {"scene": name, "faces": F, "size": size, "case": label, "ms": ms,
               "peak_rss_mb": mem.peak / 2**20, "rss_rise_mb": (mem.peak - mem.base) / 2**20,
               "coverage": coverage}
        if device == "cuda":
            row["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
        rows.append(row)
        print(f"  {name} {size}^2 {label}: {ms:.1f} ms, peak RSS {row['peak_rss_mb']:.0f} MB "
              f"(+{row['rss_rise_mb']:.0f})", flush=True)
    return rows


def bench_reference(device, repeat):
    """Ours vs the dense pure-torch SoftRas on a scene small enough for the dense (B, P, F) tensors."""
    from benchmarks.reference import dense_soft_rasterize

    v, f = meshes.icosphere(2)  # 320 faces
    size = 64
    v = torch.from_numpy(v).to(device)
    f = torch.from_numpy(f).to(device)
    cam = tr.PerspectiveCamera.look_at(torch.tensor([0.4, 0.3, 2.6]), image_size=(size, size), near=0.1, far=10.0,
                                       device=device)
    with torch.no_grad():
        sv = tr.project(v, cam)
    cols = (v + 1) / 2
    bg = torch.zeros(3, device=device)
    sigma = 1e-3
    w = torch.rand(1, size, size, 4, generator=torch.Generator().manual_seed(1)).to(device)

    def ours():
        s = sv.detach().requires_grad_()
        c = cols.detach().requires_grad_()
        (tr.soft_rasterize(s, f, c, (size, size), background=bg, sigma=sigma, near=0.1, far=10.0) * w).sum().backward()

    def dense():
        s = sv.detach().requires_grad_()
        c = cols.detach().requires_grad_()
        (dense_soft_rasterize(s, f, c[None], (size, size), bg, sigma=sigma, near=0.1, far=10.0) * w).sum().backward()

    with torch.no_grad():
        a = tr.soft_rasterize(sv, f, cols, (size, size), background=bg, sigma=sigma, near=0.1, far=10.0)
        b = dense_soft_rasterize(sv, f, cols[None], (size, size), bg, sigma=sigma, near=0.1, far=10.0)
    max_diff = float((a - b).abs().max())
    t_ours = timeit(ours, device, repeat)
    with PeakRSS() as mem:
        t_dense = timeit(dense, device, max(3, repeat // 2), warmup=1)
    return {"scene": "icosphere2", "faces": int(f.shape[0]), "size": size, "sigma": sigma, "ours_ms": t_ours,
            "dense_torch_ms": t_dense, "speedup": t_dense / t_ours, "dense_peak_rss_mb": mem.peak / 2**20,
            "max_abs_diff": max_diff}


def bench_shaded(device, repeat, size=512):
    """Lit (+ textured for Spot) render in each mode vs the same render unlit, fwd and fwd+bwd."""
    rows = []
    scenes = []
    spot = os.path.join(SHARED, "spot", "spot_triangulated.obj")
    if os.path.exists(spot):
        m = trio.load_textured_mesh(spot)
        scenes.append(("spot (textured)", trio.normalize_mesh(m.verts), m.faces,
                       dict(texture=torch.from_numpy(m.texture).to(device), uvs=torch.from_numpy(m.uvs).to(device),
                            uv_faces=torch.from_numpy(m.uv_faces).to(device))))
    if os.path.exists(os.path.join(SHARED, "bunny.obj")):
        v, f = trio.load_mesh(os.path.join(SHARED, "bunny.obj"))
        scenes.append(("bunny", trio.normalize_mesh(v), f, {}))
    cam = tr.PerspectiveCamera.look_at(torch.tensor([1.6, 0.6, 2.0]), fov_y=40.0, image_size=(size, size),
                                       near=0.1, far=10.0, device=device)
    lights = tr.Lights(ambient=torch.tensor([0.3] * 3), directions=torch.tensor([[-0.5, -0.7, -0.5]]),
                       colors=torch.tensor([[0.9, 0.9, 0.9]])).to(device=device)
    mat = tr.Material(specular=torch.tensor([0.2] * 3, device=device), shininess=torch.tensor(20.0, device=device))
    for name, v, f, tex in scenes:
        verts = torch.from_numpy(v).to(device)
        faces = torch.from_numpy(f).to(device)
        cols = (verts - verts.min(0).values) / (verts.max(0).values - verts.min(0).values)
        for mode in ("hard", "dibr", "soft"):
            for lit in (False, True):
                kw = dict(mode=mode, sigma=1e-4)
                if lit:
                    kw.update(lights=lights, material=mat, **tex)

                def fwd():
                    with torch.no_grad():
                        tr.render(verts, faces, cam, colors=cols, **kw)

                def fb():
                    v_ = verts.detach().requires_grad_()
                    tr.render(v_, faces, cam, colors=cols, **kw).sum().backward()

                fwd()
                fb()
                r = {"scene": name, "size": size, "mode": mode, "lit": lit,
                     "fwd_ms": timeit(fwd, device, repeat), "fwd_bwd_ms": timeit(fb, device, repeat)}
                rows.append(r)
                print(f"  {name} {mode} {'lit' if lit else 'unlit'}: fwd {r['fwd_ms']:.1f} ms, "
                      f"fwd+bwd {r['fwd_bwd_ms']:.1f} ms", flush=True)
    return rows


def bench_shading_reference(device, repeat, size=512):
    """shade_fragments against the same per-pixel Blinn-Phong in plain torch ops (benchmarks/reference.py),
    fwd and fwd+bwd w.r.t. the vertices (positions, normals and barycentrics), on the bunny (or an icosphere)."""
    from taichirast.geometry.mesh import vertex_normals

    from .reference import torch_deferred_shading

    path = os.path.join(SHARED, "bunny.obj")
    if os.path.exists(path):
        name, (v, f) = "bunny", trio.load_mesh(path)
        v = trio.normalize_mesh(v)
    else:
        name, (v, f) = "icosphere5", tr.meshes.icosphere(5)
    verts = torch.from_numpy(v).to(device)[None]
    faces = torch.from_numpy(f).to(device)
    cam = tr.PerspectiveCamera.look_at(torch.tensor([1.6, 0.6, 2.0]), fov_y=40.0, image_size=(size, size),
                                       near=0.1, far=10.0, device=device)
    with torch.no_grad():
        frags = tr.rasterize(tr.project(verts, cam), faces, (size, size), near=0.1)
    g = torch.Generator().manual_seed(0)
    albedo = torch.rand(1, size, size, 3, generator=g).to(device)
    eye = cam.center()[0]
    amb, ld, lc = (torch.tensor(x, device=device) for x in ([0.3] * 3, [-0.5, -0.7, -0.5], [0.9] * 3))
    spc, shin, bg = torch.tensor([0.2] * 3, device=device), torch.tensor(20.0, device=device), torch.zeros(3, device=device)
    rows = []
    for impl in ("taichirast shade_fragments", "pure-PyTorch deferred shading"):
        def run(backward):
            vv = verts.detach().requires_grad_(backward)
            bary = frags.bary.detach().requires_grad_(backward)
            with torch.set_grad_enabled(backward):
                n = vertex_normals(vv, faces)
                if impl.startswith("taichirast"):
                    out = tr.shade_fragments(tr.Fragments(frags.face_id, bary, frags.depth), vv, faces, n, faces,
                                             albedo, eye, amb, ld[None], lc[None], specular=spc, shininess=shin,
                                             background=bg)
                else:
                    out = torch_deferred_shading(frags.face_id, bary, vv, faces, n, albedo, eye, amb, ld, lc, spc,
                                                 shin, bg)
                if backward:
                    out.sum().backward()
            return out

        ref = run(False)
        rows.append({"scene": name, "size": size, "impl": impl, "fwd_ms": timeit(lambda: run(False), device, repeat),
                     "fwd_bwd_ms": timeit(lambda: run(True), device, repeat), "out": ref.detach()})
        print(f"  {name} {size}^2 {impl}: fwd {rows[-1]['fwd_ms']:.1f} ms, fwd+bwd {rows[-1]['fwd_bwd_ms']:.1f} ms",
              flush=True)
    diff = float((rows[0].pop("out") - rows[1].pop("out")).abs().max())
    return rows, diff


MEMORY_SCRIPT = r"""
import json, os, resource, sys, time
def peak_rss_mb():
    # VmHWM belongs to this process image: ru_maxrss survives execve on Linux, so a child forked
    # from a big parent (this benchmark, after the dense reference) would report the parent's peak.
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
import numpy as np
import taichirast as tr
from taichirast import io as trio, np as trnp
v, f = trio.load_mesh(sys.argv[1]) if sys.argv[1] != "icosphere4" else tr.meshes.icosphere(4)
v = trio.normalize_mesh(v)
size, sigma = int(sys.argv[2]), float(sys.argv[3])
R, t = trnp.look_at([0.4, 0.3, 2.6])
K = trnp.fov_intrinsics(45.0, (size, size))
sv = trnp.project(v, R.astype(np.float32), t.astype(np.float32), K.astype(np.float32))
cols = ((v - v.min(0)) / (v.max(0) - v.min(0))).astype(np.float32)
g = np.random.default_rng(0).random((1, size, size, 4)).astype(np.float32)
def fb():
    out, pb = trnp.vjp(trnp.soft_rasterize, sv, f, cols, (size, size), sigma=sigma, near=0.1, far=10.0)
    return pb(g)
small = trnp.soft_rasterize(sv[:, :0], f[:0], cols[:0], (8, 8))  # start Taichi, compile nothing big
base = peak_rss_mb()
fb()
t0 = time.perf_counter(); fb(); ms = (time.perf_counter() - t0) * 1000
peak = peak_rss_mb()
print(json.dumps({"baseline_mb": base, "peak_mb": peak, "ms": ms, "torch_imported": "torch" in sys.modules}))
"""


def bench_memory_numpy(name, size, sigma):
    """soft_rasterize fwd+bwd peak RSS in a fresh process using the NumPy bridge (torch never imported)."""
    import subprocess

    mesh = "icosphere4" if name == "icosphere4" else os.path.join(SHARED, "bunny.obj")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                         env.get("PYTHONPATH", "")])
    r = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, mesh, str(size), str(sigma)], capture_output=True,
                       text=True, env=env, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"memory case failed: {r.stderr[-2000:]}")
    out = json.loads(r.stdout.strip().splitlines()[-1])
    out.update({"scene": name, "size": size, "sigma": sigma})
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description="taichirast benchmark")
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    p.add_argument("--repeat", type=int, default=10)
    p.add_argument("--sigma", type=float, default=1e-4)
    p.add_argument("--device", default=default_device())
    p.add_argument("--quick", action="store_true", help="icosphere only, 3 repeats")
    p.add_argument("--shading", action="store_true", help="only the lit / textured render rows (Spot, bunny)")
    p.add_argument("--out", default=os.path.join("bench_out", "results.json"))
    args = p.parse_args(argv)
    if args.device == "cuda" and tr.runtime.requested_arch() != "cuda":
        if tr.runtime.arch() is not None or "TAICHIRAST_ARCH" in os.environ:
            raise SystemExit(f"--device cuda needs Taichi's CUDA backend; TAICHIRAST_ARCH is "
                             f"{os.environ.get('TAICHIRAST_ARCH')!r}: set it to cuda")
        os.environ["TAICHIRAST_ARCH"] = "cuda"
    if args.quick:
        args.repeat = 3
    if args.shading:
        ref_rows, ref_diff = bench_shading_reference(args.device, max(3, args.repeat // 2), size=max(args.sizes))
        rows = bench_shaded(args.device, max(3, args.repeat // 2), size=max(args.sizes))
        print()
        print("| scene | size | mode | unlit fwd ms | lit fwd ms | unlit fwd+bwd ms | lit fwd+bwd ms |")
        print("|---|---:|---|---:|---:|---:|---:|")
        for i in range(0, len(rows), 2):
            u, l = rows[i], rows[i + 1]
            print(f"| {u['scene']} | {u['size']}² | {u['mode']} | {u['fwd_ms']:.1f} | {l['fwd_ms']:.1f} | "
                  f"{u['fwd_bwd_ms']:.1f} | {l['fwd_bwd_ms']:.1f} |")
        print()
        print("| per-pixel Blinn-Phong, one light, gradients to the vertices | scene | size | fwd ms | fwd+bwd ms |")
        print("|---|---|---:|---:|---:|")
        for r in ref_rows:
            print(f"| {r['impl']} | {r['scene']} | {r['size']}² | {r['fwd_ms']:.1f} | {r['fwd_bwd_ms']:.1f} |")
        print(f"(outputs agree to {ref_diff:.1e})")
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out.replace(".json", "_shading.json"), "w") as fh:
            json.dump({"rows": rows, "reference": ref_rows, "reference_max_abs_diff": ref_diff}, fh, indent=2)
        return rows, None
    torch.set_num_threads(os.cpu_count() or 1)
    info = tr.info()
    print(f"taichirast {info['taichirast']} | taichi {info['taichi']} | torch {info.get('torch')} | arch {info['arch']} "
          f"| {info['cpu_count']} CPU cores | {', '.join(info.get('cuda_devices', [])) or 'no GPU'}", flush=True)
    scenes = ["icosphere4"]
    if not args.quick:
        if os.path.exists(os.path.join(SHARED, "bunny.obj")):
            scenes.append("bunny")
        else:
            print("  (../shared/meshes/bunny.obj absent: bunny rows skipped)")
    rows = []
    for name in scenes:
        for size in args.sizes:
            rows += bench_case(name, size, args.device, args.repeat, args.sigma)
    ref = bench_reference(args.device, args.repeat)
    mem_rows = []
    if args.device == "cpu":
        for name in scenes:
            mem_rows.append(bench_memory_numpy(name, max(args.sizes), args.sigma))
            print(f"  {name} {max(args.sizes)}^2 soft fwd+bwd (NumPy bridge, fresh process): peak RSS "
                  f"{mem_rows[-1]['peak_mb']:.0f} MB", flush=True)

    print()
    mem_col = "GPU peak MB" if args.device == "cuda" else "peak RSS MB (+rise)"
    print(f"| scene | faces | size | case | ms | {mem_col} |")
    print("|---|---:|---:|---|---:|---:|")
    for r in rows:
        mem = f"{r['gpu_peak_mb']:.0f}" if "gpu_peak_mb" in r else f"{r['peak_rss_mb']:.0f} (+{r['rss_rise_mb']:.0f})"
        print(f"| {r['scene']} | {r['faces']} | {r['size']}² | {r['case']} | {r['ms']:.1f} | {mem} |")
    print()
    print("| soft_rasterize fwd+bwd, 320 faces, 64², sigma 1e-3 | ms |")
    print("|---|---:|")
    print(f"| taichirast | {ref['ours_ms']:.1f} |")
    print(f"| dense pure-PyTorch SoftRas | {ref['dense_torch_ms']:.1f} |")
    print(f"| ratio (dense / ours) | {ref['speedup']:.1f}x |")
    print(f"(forward max |difference| {ref['max_abs_diff']:.2e}; dense peak RSS {ref['dense_peak_rss_mb']:.0f} MB)")
    if mem_rows:
        print()
        print("| soft_rasterize fwd+bwd, NumPy bridge, fresh process (no torch) | size | ms | baseline RSS MB | peak RSS MB |")
        print("|---|---:|---:|---:|---:|")
        for m in mem_rows:
            print(f"| {m['scene']} | {m['size']}² | {m['ms']:.0f} | {m['baseline_mb']:.0f} | {m['peak_mb']:.0f} |")
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump({"info": info, "device": args.device, "rows": rows, "reference": ref, "memory_numpy": mem_rows},
                  fh, indent=2)
    print(f"wrote {args.out}")
    if not args.quick:
        from benchmarks import visibility

        print()
        print("Silhouette gradients (python -m benchmarks.visibility):", flush=True)
        visibility.main(["--size", str(max(args.sizes)), "--repeat", str(args.repeat)])
        from benchmarks import soft

        print()
        print("Soft against hard rasterization (python -m benchmarks.soft --sphere):", flush=True)
        soft.main(["--rounds", str(args.repeat), "--sphere"])
        from benchmarks import packed

        print()
        print("A batch of different meshes in one call (python -m benchmarks.packed):", flush=True)
        packed.main(["--rounds", str(args.repeat), "--device", args.device])
    if args.device == "cuda":
        from benchmarks import peers

        print()
        print("GPU peers on the same scene (python -m benchmarks.peers):", flush=True)
        peers.main(["--size", str(max(args.sizes)), "--rounds", str(2 * args.repeat)])
    return rows, ref


if __name__ == "__main__":
    main()
