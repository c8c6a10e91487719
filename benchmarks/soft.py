"""Soft rasterization against our own hard path, interleaved: the ratio the soft-raster issue tracks.

    python -m benchmarks.soft                       # bunny 512², 10 rounds
    python -m benchmarks.soft --sphere              # + a 1.31M-face icosphere at 1024² (a minute)

``python -m benchmarks`` runs it with ``--sphere`` after its other tables (not with ``--quick``).

Each round times, back to back, hard raster + interpolate fwd+bwd, ``soft_rasterize`` fwd+bwd with
the depth-ordered cut-off (the default) and with ``exact=True``; medians over the rounds, so the
ratios come from the same machine conditions. sigma = gamma = 1e-4, float32, gradients to the
screen vertices and colours of a random-weighted sum of the output. Also prints the largest
differences of the cut-off's output and gradients from the exact sum.
"""
from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see benchmarks/run.py (must precede torch's import)

import torch  # noqa: E402

import taichirast as tr  # noqa: E402
from benchmarks.run import default_device  # noqa: E402
from benchmarks.visibility import interleaved  # noqa: E402
from taichirast import io as trio  # noqa: E402
from taichirast import meshes  # noqa: E402

SHARED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "meshes")


def _scene(name, size, device):
    if name == "bunny":
        v, f = trio.load_mesh(os.path.join(SHARED, "bunny.obj"))
        v = trio.normalize_mesh(v)
    else:
        v, f = meshes.icosphere(int(name[len("icosphere"):]))
    v, f = torch.from_numpy(v).to(device), torch.from_numpy(f).to(device)
    cam = tr.PerspectiveCamera.look_at([0.4, 0.3, 2.6], fov_y=45.0, image_size=(size, size), near=0.1, far=10.0,
                                       device=device)
    with torch.no_grad():
        sv = tr.project(v, cam)
    cols = (v - v.min(0).values) / (v.max(0).values - v.min(0).values)
    return sv, f, cols


def _cases(sv, f, cols, size, with_exact=True):
    g = torch.Generator().manual_seed(0)
    w = torch.rand(1, size, size, 4, generator=g).to(sv.device)
    kw = dict(sigma=1e-4, gamma=1e-4, near=0.1, far=10.0)

    def hard():
        s, c = sv.clone().requires_grad_(), cols.clone().requires_grad_()
        fr = tr.rasterize(s, f, (size, size))
        (tr.interpolate(c, f, fr) * w[..., :3]).sum().backward()

    def soft(exact):
        def run():
            s, c = sv.clone().requires_grad_(), cols.clone().requires_grad_()
            out = tr.soft_rasterize(s, f, c, (size, size), exact=exact, **kw)
            (out * w).sum().backward()
            return out.detach(), s.grad, c.grad
        return run

    cases = {"hard raster+interp": hard, "soft (cut-off)": soft(False)}
    if with_exact:
        cases["soft exact=True"] = soft(True)
    return cases


def measure(name, size, rounds, with_exact=True):
    sv, f, cols = _scene(name, size, default_device())
    cases = _cases(sv, f, cols, size, with_exact)
    times = interleaved(cases, rounds)
    err = None
    if with_exact:
        (oa, gsa, gca), (oe, gse, gce) = cases["soft (cut-off)"](), cases["soft exact=True"]()
        err = dict(out=float((oa - oe).abs().max()), g_sv=float((gsa - gse).norm() / gse.norm()),
                   g_col=float((gca - gce).norm() / gce.norm()))
    return f.shape[0], times, err


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.soft", description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--sphere", action="store_true",
                   help="also the 1.31M-face icosphere(8) at 1024² (3 rounds, without exact=True, which takes minutes there)")
    a = p.parse_args(argv)
    runs = []
    if os.path.isfile(os.path.join(SHARED, "bunny.obj")):
        runs.append(("bunny", 512, a.rounds))
    else:
        print("(bunny not found: ../shared/meshes; using icosphere(6))")
        runs.append(("icosphere6", 512, a.rounds))
    if a.sphere:
        runs.append(("icosphere8", 1024, 3))
    print("| scene | faces | size | case | fwd+bwd ms | × hard |")
    print("|---|---:|---:|---|---:|---:|")
    for name, size, rounds in runs:
        F, t, err = measure(name, size, rounds, with_exact=name != "icosphere8")
        for k, ms in t.items():
            print(f"| {name} | {F} | {size}² | {k} | {ms:.1f} | {ms / t['hard raster+interp']:.2f} |", flush=True)
        if err is not None:
            print(f"  cut-off vs exact: max |Δoutput| {err['out']:.2e}, gradient relative error "
                  f"screen verts {err['g_sv']:.2e}, colours {err['g_col']:.2e}", flush=True)


if __name__ == "__main__":
    main()
