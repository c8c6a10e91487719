"""Benchmark: Chamfer distance (taichirast ``knn1`` kernel) vs. a dense ``torch.cdist`` version.

    python -m benchmarks.chamfer                  # 10k x 10k and 100k x 100k, float32, CPU
    python -m benchmarks.chamfer --sizes 10000 --repeat 5

Random uniform clouds in the unit cube, batch 1. For each size: median time of the forward
(``torch.no_grad``) and of forward + backward (gradients to both clouds), and the process's peak
resident set size during the case (``peak RSS``, sampled every millisecond by psutil) with its
rise over the RSS just before the case (``+RSS``). The torch reference builds the full
``N x M`` distance matrix (``torch.cdist(x, y) ** 2``, min both ways), so it runs only where that
matrix is below ``--cdist-limit-gb``; taichirast's kernel needs O(N + M) memory.
Prints a markdown table.
"""
from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see benchmarks/run.py

import torch  # noqa: E402

from benchmarks.run import PeakRSS, timeit  # noqa: E402
from taichirast.geometry.distances import chamfer_distance  # noqa: E402


def cdist_chamfer(x, y):
    D = torch.cdist(x, y) ** 2
    return D.min(-1).values.mean(-1) + D.min(-2).values.mean(-1)


def run_case(impl, fn, n, repeat, warmup):
    g = torch.Generator().manual_seed(n)
    x = torch.rand(1, n, 3, generator=g)
    y = torch.rand(1, n, 3, generator=g)

    def fwd():
        with torch.no_grad():
            return fn(x, y)

    def fb():
        a, b = x.clone().requires_grad_(), y.clone().requires_grad_()
        fn(a, b).sum().backward()

    with PeakRSS() as mem:
        t_f = timeit(fwd, "cpu", repeat, warmup=warmup)
        t_fb = timeit(fb, "cpu", repeat, warmup=warmup)
    return {"impl": impl, "n": n, "fwd_ms": t_f, "fb_ms": t_fb, "peak_mb": mem.peak / 2**20,
            "rise_mb": (mem.peak - mem.base) / 2**20, "value": float(fwd().sum())}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cdist-limit-gb", type=float, default=2.0)
    args = ap.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} torch threads, "
          f"TAICHIRAST_ARCH={os.environ.get('TAICHIRAST_ARCH', 'auto')}, float32, batch 1")
    rows = []
    for n in args.sizes:
        big = n >= 50_000
        rows.append(run_case("taichirast knn1", lambda a, b: chamfer_distance(a, b, reduction="none"), n,
                             1 if big else args.repeat, 0 if big else 1))
    for n in args.sizes:  # after taichirast's cases, so their peak RSS is not the dense matrix's
        gb = n * n * 4 / 2**30
        if gb <= args.cdist_limit_gb:
            r = run_case("torch.cdist (dense)", cdist_chamfer, n, args.repeat, 1)
            ours = next(o for o in rows if o["n"] == n)
            r["check"] = abs(r["value"] - ours["value"]) / max(abs(r["value"]), 1e-30)
            rows.append(r)
        else:
            rows.append({"impl": "torch.cdist (dense)", "n": n, "skip": f"N x M matrix = {gb:.0f} GiB"})
    print()
    print("| implementation | N = M | forward (ms) | forward+backward (ms) | peak RSS (MiB) | +RSS (MiB) |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in sorted(rows, key=lambda r: (r["n"], r["impl"] != "taichirast knn1")):
        if "skip" in r:
            print(f"| {r['impl']} | {r['n']:,} | skipped ({r['skip']}) | | | |")
        else:
            print(f"| {r['impl']} | {r['n']:,} | {r['fwd_ms']:.1f} | {r['fb_ms']:.1f} | {r['peak_mb']:.0f} | "
                  f"{r['rise_mb']:.0f} |")
    for r in rows:
        if "check" in r:
            print(f"\nN = {r['n']:,}: relative difference of the Chamfer values, taichirast vs cdist: {r['check']:.2e}")


if __name__ == "__main__":
    main()
