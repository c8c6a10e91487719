"""The entry slots' spatial order (taichirast/_prims/soft.py ``spatial_order``, kernels/soft.py
``spatial_keys``): Morton codes of the centroids' pixel cells, each image's entries permuted among
themselves, and results that do not depend on the mesh's face order (the order is a performance
choice: faces that share pixel blocks are visited one after another)."""
import numpy as np
import pytest
import taichi as ti
import torch

import taichirast as tr
from taichirast._prims import soft as soft_prim
from taichirast.kernels import soft
from taichirast.runtime import ensure_init


def _morton(x, y):
    code = 0
    for k in range(15):
        code |= ((x >> k) & 1) << (2 * k) | ((y >> k) & 1) << (2 * k + 1)
    return code


def _tri(cx, cy, z=2.0):
    """A triangle whose centroid is (cx, cy)."""
    return [[cx - 1.0, cy - 1.0, z], [cx + 2.0, cy - 1.0, z], [cx - 1.0, cy + 2.0, z]]


def test_spatial_keys_are_morton_codes_of_the_centroid_cells():
    ensure_init()
    c = soft.SPATIAL_CELL
    cents = [(0.5, 0.5), (5.0 * c + 1.0, 3.0 * c + 2.0), (77.0 * c, 1000.0 * c + 0.5), (-40.0, 9.0 * c),
             (1e9, 2.0 * c), (1e9, 1e9), (float("nan"), 4.0)]
    sv = torch.tensor([sum((_tri(x, y) for x, y in cents), [])], dtype=torch.float32)
    faces = torch.arange(3 * len(cents), dtype=torch.int32).reshape(-1, 3)
    tab = torch.tensor([[0, len(cents), 0]], dtype=torch.int32)
    key = torch.empty(len(cents), dtype=torch.int32)
    soft.build(ti.f32, 1, 1).spatial_keys(sv, faces, tab, key)
    top = 2**15 - 1  # cell coordinates clamp to [0, 2^15)
    want = [_morton(0, 0), _morton(5, 3), _morton(77, 1000), _morton(0, 9), _morton(top, 2), _morton(top, top)]
    assert key.tolist()[:-1] == want
    assert want[5] == 2**30 - 1
    assert 0 <= key[-1] < 2**30  # a NaN centroid: some key (it only places the face)


def test_spatial_order_permutes_each_images_entries_by_key_ties_in_entry_order():
    """A packed batch of two meshes: image 1's faces are laid out in reverse Morton order, with two
    faces in one cell (a tie); each image's slots hold its own entries, in key order."""
    ensure_init()
    c = soft.SPATIAL_CELL
    m0 = [(3.0 * c, 0.5), (0.5, 0.5), (0.5, 2.0 * c)]
    m1 = [(9.0 * c, 9.0 * c), (c + 1.0, c + 1.0), (c + 2.0, c + 2.0), (0.5, 0.5)]
    sv = [torch.tensor(sum((_tri(x, y) for x, y in m), []), dtype=torch.float64) for m in (m0, m1)]
    faces = [torch.arange(3 * len(m)).reshape(-1, 3) for m in (m0, m1)]
    ones = [torch.ones(3 * len(m), 1, dtype=torch.float64) for m in (m0, m1)]
    prep = soft_prim.PRIM.prepare(tr.Meshes(sv, faces), None, ones, (48, 48))
    sv_packed, faces_packed, _, _, tab = prep.inputs
    K = soft.build(ti.f64, 1, 1)
    eperm = soft_prim.spatial_order(K, sv_packed, faces_packed, tab, prep.params["counts"])
    # image 0: keys (3, 0) -> 5, (0, 0) -> 0, (0, 2) -> 8; image 1 (entries 3..6): (9, 9), (1, 1) twice, (0, 0)
    assert eperm.tolist() == [1, 0, 2, 6, 4, 5, 3]


def _shuffled(faces, seed):
    return faces[torch.from_numpy(np.random.default_rng(seed).permutation(faces.shape[0]))]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_results_do_not_depend_on_the_meshs_face_order(dtype):
    v, f = tr.meshes.icosphere(3)
    v = torch.from_numpy(v).to(dtype)
    sv = torch.cat([v[:, :2] * 18 + 24, v[:, 2:] + 3.0], 1)[None]
    faces = torch.from_numpy(f).long()
    colors = torch.rand(v.shape[0], 3, generator=torch.Generator().manual_seed(0), dtype=dtype)
    w = torch.randn(1, 48, 48, 4, generator=torch.Generator().manual_seed(1), dtype=dtype)
    # float64: rounding only; float32 (the Vulkan lane's type): its rounding of reordered sums
    atol, rel = (1e-12, 1e-11) if dtype == torch.float64 else (2e-6, 2e-5)

    def run(fc):
        s = sv.clone().requires_grad_()
        c = colors.clone().requires_grad_()
        out = tr.soft_rasterize(s, fc, c, (48, 48), sigma=1e-3, gamma=1e-2, near=0.5, exact=True)
        (out * w).sum().backward()
        return out.detach(), s.grad, c.grad

    ref = run(faces)
    got = run(_shuffled(faces, 2))
    # the same pairs; only the order of faces at equal depth may differ (rounding)
    assert torch.allclose(got[0], ref[0], rtol=0, atol=atol)
    for g, r in zip(got[1:], ref[1:]):
        assert (g - r).norm() <= rel * r.norm()

    fr = tr.rasterize(sv, faces, (48, 48))
    fr2 = tr.rasterize(sv, _shuffled(faces, 2), (48, 48))

    def dibr(fc, frag):
        s = sv.clone().requires_grad_()
        a = tr.dibr_silhouette(s, fc, frag, (48, 48), sigmainv=3000.0)
        (a * w[..., 0]).sum().backward()
        return a.detach(), s.grad

    ra, rg = dibr(faces, fr)
    ga, gg = dibr(_shuffled(faces, 2), fr2)
    assert torch.allclose(ga, ra, rtol=0, atol=atol)
    assert (gg - rg).norm() <= rel * rg.norm()
