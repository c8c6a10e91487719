"""Benchmark: FeaStNet aggregation, torch reference vs. the fused Taichi kernel (taichirast.nn).

    python -m benchmarks.graphconv            # 100k-vertex grid mesh, C = D = 64, M = 8, float32, CPU
    python -m benchmarks.graphconv --small    # 10k vertices (a quick check)

The mesh is a ``plane`` grid (interior vertices have 6 neighbours, like a typical triangle mesh),
its graph the 1-ring plus self-loops, row-normalised (``mesh_graph`` defaults; E ~ 7 N). Two
cases per backend:

* ``aggregate``: ``feast_aggregate(a, b, c, xw)`` alone (the gather / softmax / scatter).
* ``layer``: a whole ``FeatureSteeredConv(64, 64, num_weights=8)`` (the projections ``x U``,
  ``x W_m`` are torch matmuls in both backends).

Columns: median forward time (``torch.no_grad``), median forward + backward time (gradients to
every input / parameter), and the rise of the process's resident set size over the RSS just
before the case (``+RSS``, sampled every millisecond: the memory the case needs on top of its
inputs). Each (case, backend) runs in a fresh Python process, so memory one case freed (and the
allocator kept) does not hide another case's use. The torch path materialises an ``E x M x D`` tensor that autograd keeps; the fused
kernel keeps ``q (E, M)`` only. Prints a markdown table.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see benchmarks/run.py

import torch  # noqa: E402

from benchmarks.run import PeakRSS, timeit  # noqa: E402
from taichirast import meshes  # noqa: E402
from taichirast.nn import FeatureSteeredConv, feast_aggregate, mesh_graph  # noqa: E402


def grid_graph(n_verts):
    seg = max(1, int(round(n_verts ** 0.5)) - 1)
    v, f = meshes.plane(2.0, seg)
    return torch.from_numpy(v), mesh_graph(torch.from_numpy(f), v.shape[0])


def run_case(case, backend, graph, C, D, M, repeat, warmup):
    g = torch.Generator().manual_seed(0)
    N = graph.num_vertices
    if case == "aggregate":
        # xw as FeatureSteeredConv makes it: (N, D, M) in memory, seen as (N, M, D) (no copy in the kernel)
        ins = [torch.randn(N, M, generator=g), torch.randn(N, M, generator=g), torch.randn(M, generator=g),
               torch.randn(N, D, M, generator=g).permute(0, 2, 1)]

        def fwd():
            with torch.no_grad():
                return feast_aggregate(*ins, graph, backend=backend)

        def fb():
            leaves = [t.clone().requires_grad_() for t in ins]
            feast_aggregate(*leaves, graph, backend=backend).sum().backward()
    else:
        torch.manual_seed(0)
        layer = FeatureSteeredConv(C, D, num_weights=M, backend=backend)
        x = torch.randn(N, C, generator=g)

        def fwd():
            with torch.no_grad():
                return layer(x, graph)

        def fb():
            layer.zero_grad(set_to_none=True)
            xx = x.clone().requires_grad_()
            layer(xx, graph).sum().backward()
    fwd(), fb()  # compile kernels, fill the graph's cached CSR arrays
    gc.collect()
    with PeakRSS() as mem:
        t_f = timeit(fwd, "cpu", repeat, warmup=warmup)
        t_fb = timeit(fb, "cpu", repeat, warmup=warmup)
    return {"case": case, "backend": backend, "fwd_ms": t_f, "fb_ms": t_fb, "rise_mb": (mem.peak - mem.base) / 2**20,
            "value": float(fwd().double().sum())}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--verts", type=int, default=100_000)
    ap.add_argument("--small", action="store_true", help="10k vertices, 1 repeat")
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--weights", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", default=None, help=argparse.SUPPRESS)  # "case:backend", internal
    args = ap.parse_args(argv)
    n = 10_000 if args.small else args.verts
    repeat, warmup = (1, 1) if args.small else (args.repeat, 1)
    v, graph = grid_graph(n)
    C = D = args.channels
    M = args.weights
    if not args.only:
        print(f"torch {torch.__version__}, {torch.get_num_threads()} torch threads, "
              f"TAICHIRAST_ARCH={os.environ.get('TAICHIRAST_ARCH', 'auto')}, float32; "
              f"N={graph.num_vertices} vertices, E={graph.num_edges} directed edges (incl. self), C=D={C}, M={M}")
    if args.only:
        case, backend = args.only.split(":")
        print("RESULT " + json.dumps(run_case(case, backend, graph, C, D, M, repeat, warmup)))
        return None
    rows = []
    passthrough = [a for a in (argv if argv is not None else sys.argv[1:])]
    for case in ("aggregate", "layer"):
        for backend in ("torch", "taichi"):
            out = subprocess.run([sys.executable, "-m", "benchmarks.graphconv", *passthrough, "--only",
                                  f"{case}:{backend}"], capture_output=True, text=True, check=True).stdout
            rows.append(json.loads(out.split("RESULT ", 1)[1]))
    print()
    print("| case | backend | fwd ms | fwd+bwd ms | +RSS MB |")
    print("|---|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['case']} | {r['backend']} | {r['fwd_ms']:.1f} | {r['fb_ms']:.1f} | {r['rise_mb']:.0f} |")
    for case in ("aggregate", "layer"):
        a, b = [r for r in rows if r["case"] == case]
        rel = abs(a["value"] - b["value"]) / max(abs(a["value"]), 1e-12)
        print(f"{case}: fused/torch fwd+bwd time {b['fb_ms'] / a['fb_ms']:.2f}x, memory "
              f"{b['rise_mb'] / max(a['rise_mb'], 1e-9):.2f}x; outputs agree to {rel:.1e} (relative, sum)")
    return rows


if __name__ == "__main__":
    main()
