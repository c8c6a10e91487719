"""Every primitive on a packed batch of different meshes, in one call (kernel level: per-image face
ranges, per-vertex cameras), against the same primitive called mesh by mesh.

Forwards are bitwise equal on the CPU (the kernels do the same arithmetic on the same numbers; only
face ids move by the mesh's face offset); gradients equal to float rounding (atomic adds in a
different order). Each form of input is tried: a ``Meshes``, lists of per-mesh arrays, packed
arrays with ``faces`` a ``Meshes``, and ``FaceRanges`` (nvdiffrast's range mode)."""
import numpy as np
import pytest
import torch
from gpu_scenes import assert_equal_up_to_sum_order as same
from test_packed import _scene as _scene_with_colours

import taichirast as tr
from taichirast._prims import raster as raster_prim

FaceRanges = tr.FaceRanges
H, W = 24, 20  # tests/test_packed.py's scene


def _scene(dtype=torch.float32):
    vs, fs, cams, _ = _scene_with_colours(dtype)
    return vs, fs, cams


def _weights(shape, seed=0, dtype=torch.float32):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _global_ids(fid, offset):
    return torch.where(fid >= 0, fid + offset, fid)


@pytest.fixture(params=["face", "pixel"])
def schedule(request, monkeypatch):
    monkeypatch.setattr(raster_prim, "SCHEDULE", request.param)
    return request.param


def test_project_a_batch_uses_camera_i_for_mesh_i_and_its_gradients_reach_every_camera():
    vs, fs, cams = _scene()
    leaves = [v.clone().requires_grad_() for v in vs]
    R, t = cams.R.clone().requires_grad_(), cams.t.clone().requires_grad_()
    cam = tr.PerspectiveCamera(R, t, cams.fx, cams.fy, cams.cx, cams.cy, image_size=(H, W), near=0.1, far=10.0)
    sm = tr.project(tr.Meshes(leaves, fs), cam)
    assert isinstance(sm, tr.Meshes) and sm.verts_packed.shape == (122, 3)
    assert sm.faces_offsets == (0, 80, 92, 236) and sm.verts_offsets == (0, 42, 50, 122)
    w = _weights(sm.verts_packed.shape)
    (sm.verts_packed * w).sum().backward()
    for i in range(3):
        v = vs[i].clone().requires_grad_()
        Ri, ti = cams.R[i:i + 1].clone().requires_grad_(), cams.t[i:i + 1].clone().requires_grad_()
        ci = tr.PerspectiveCamera(Ri, ti, cams.fx, cams.fy, cams.cx, cams.cy, image_size=(H, W), near=0.1, far=10.0)
        single = tr.project(v, ci)
        a, b = sm.verts_offsets[i], sm.verts_offsets[i + 1]
        same(sm.verts_packed[a:b], single[0].detach())
        (single[0] * w[a:b]).sum().backward()
        torch.testing.assert_close(leaves[i].grad, v.grad, rtol=0, atol=0)
        torch.testing.assert_close(R.grad[i], Ri.grad[0], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(t.grad[i], ti.grad[0], rtol=1e-5, atol=1e-5)


def _screen(dtype=torch.float32):
    vs, fs, cams = _scene(dtype)
    svs = [tr.project(v, cams[i])[0].detach() for i, v in enumerate(vs)]
    return svs, fs


@pytest.mark.parametrize("form", ["meshes", "lists", "packed", "ranges"])
def test_rasterize_a_batch_equals_each_mesh_rasterized_alone(schedule, form):
    svs, fs = _screen()
    leaves = [s.clone().requires_grad_() for s in svs]
    m = tr.Meshes(leaves, fs)
    if form == "meshes":
        args = (m, None)
    elif form == "lists":
        args = (leaves, fs)
    elif form == "packed":
        args = (m.verts_packed, m)
    else:
        args = (m.verts_packed, FaceRanges(m.faces_global, m.ranges))
    fr = tr.rasterize(*args, (H, W))
    assert fr.face_id.shape == (3, H, W) and fr.bary.shape == (3, H, W, 3)
    wb, wd = _weights(fr.bary.shape), _weights(fr.depth.shape, 1)
    (fr.bary * wb).sum().add((torch.where(fr.face_id >= 0, fr.depth, 0) * wd).sum()).backward()
    for i in range(3):
        s = svs[i].clone().requires_grad_()
        one = tr.rasterize(s, fs[i], (H, W))
        assert (one.face_id >= 0).any()
        assert torch.equal(fr.face_id[i], _global_ids(one.face_id[0], m.faces_offsets[i]))
        same(fr.bary[i], one.bary[0].detach())
        same(fr.depth[i], one.depth[0].detach())
        (one.bary * wb[i]).sum().add((torch.where(one.face_id >= 0, one.depth, 0) * wd[i]).sum()).backward()
        torch.testing.assert_close(leaves[i].grad, s.grad, rtol=1e-5, atol=1e-6 * float(s.grad.abs().max()))


def test_rasterize_layers_a_batch_equals_each_mesh_alone(schedule):
    svs, fs = _screen()
    leaves = [s.clone().requires_grad_() for s in svs]
    fr = tr.rasterize_layers(tr.Meshes(leaves, fs), None, (H, W), num_layers=2)
    assert fr.face_id.shape == (3, 2, H, W)
    w = _weights(fr.bary.shape)
    (fr.bary * w).sum().backward()
    offsets = (0, 80, 92)
    for i in range(3):
        s = svs[i].clone().requires_grad_()
        one = tr.rasterize_layers(s, fs[i], (H, W), num_layers=2)
        assert (one.face_id[:, 1] >= 0).any()
        assert torch.equal(fr.face_id[i], _global_ids(one.face_id[0], offsets[i]))
        same(fr.bary[i], one.bary[0].detach())
        (one.bary * w[i]).sum().backward()
        torch.testing.assert_close(leaves[i].grad, s.grad, rtol=1e-5, atol=1e-6 * float(s.grad.abs().max()))


@pytest.mark.parametrize("per_face", [False, True])
def test_interpolate_and_soft_rasterize_a_batch_equal_each_mesh_alone(per_face):
    svs, fs = _screen()
    n_rows = [f.shape[0] for f in fs] if per_face else [s.shape[0] for s in svs]
    cols = [_weights((n, 2), 10 + i) for i, n in enumerate(n_rows)]
    leaves = [s.clone().requires_grad_() for s in svs]
    cleaves = [c.clone().requires_grad_() for c in cols]
    m = tr.Meshes(leaves, fs)
    soft = tr.soft_rasterize(m, None, cleaves, (H, W), per_face=per_face, sigma=1e-3, gamma=1e-2)
    fr = tr.rasterize(m, None, (H, W))
    interp = tr.interpolate(torch.cat(cleaves), m, fr) if not per_face else None
    w = _weights(soft.shape)
    loss = (soft * w).sum() + (0 if interp is None else (interp * w[..., :2]).sum())
    loss.backward()
    for i in range(3):
        s, c = svs[i].clone().requires_grad_(), cols[i].clone().requires_grad_()
        one = tr.soft_rasterize(s, fs[i], c, (H, W), per_face=per_face, sigma=1e-3, gamma=1e-2)
        one_loss = (one * w[i]).sum()
        if interp is not None:
            oi = tr.interpolate(c, fs[i], tr.rasterize(s, fs[i], (H, W)))
            same(interp[i], oi[0].detach())
            one_loss = one_loss + (oi * w[i, ..., :2]).sum()
        same(soft[i], one[0].detach())
        one_loss.backward()
        torch.testing.assert_close(leaves[i].grad, s.grad, rtol=1e-5, atol=1e-6 * float(s.grad.abs().max()))
        torch.testing.assert_close(cleaves[i].grad, c.grad, rtol=1e-5, atol=1e-6)


def test_dibr_and_antialias_of_a_batch_equal_each_mesh_alone():
    svs, fs = _screen()
    leaves = [s.clone().requires_grad_() for s in svs]
    m = tr.Meshes(leaves, fs)
    fr = tr.rasterize(m, None, (H, W))
    alpha = tr.dibr_silhouette(m, None, fr, (H, W), sigmainv=300.0)
    cover = (fr.face_id >= 0).float()[..., None]
    aa = tr.antialias(cover, fr, m, None)
    w = _weights(alpha.shape)
    ((alpha * w).sum() + (aa[..., 0] * w).sum()).backward()
    for i in range(3):
        s = svs[i].clone().requires_grad_()
        one = tr.rasterize(s, fs[i], (H, W))
        a1 = tr.dibr_silhouette(s, fs[i], one, (H, W), sigmainv=300.0)
        aa1 = tr.antialias((one.face_id >= 0).float()[..., None], one, s, fs[i])
        assert ((aa1 > 0) & (aa1 < 1)).any() and ((a1 > 0) & (a1 < 1)).any()
        same(alpha[i], a1[0].detach())
        same(aa[i], aa1[0].detach())
        ((a1 * w[i]).sum() + (aa1[..., 0] * w[i]).sum()).backward()
        torch.testing.assert_close(leaves[i].grad, s.grad, rtol=1e-5, atol=1e-6 * float(s.grad.abs().max()))


def test_shade_fragments_of_a_batch_equals_each_mesh_alone():
    vs, fs, cams = _scene()
    from taichirast.geometry.mesh import vertex_normals

    leaves = [v.clone().requires_grad_() for v in vs]
    m = tr.Meshes(leaves, fs)
    fr = tr.rasterize(tr.project(m, cams), None, (H, W))
    normals = [vertex_normals(v[None], f)[0].detach() for v, f in zip(vs, fs)]
    alb = _weights((3, H, W, 3), 3)
    eye = cams.center()
    light = (torch.tensor([[0.3, -0.5, -1.0]]), torch.tensor([[0.9, 0.8, 0.7]]))
    rgb = tr.shade_fragments(fr, m.verts_packed, m, normals, fs, alb, eye, torch.tensor([0.1, 0.1, 0.1]), *light,
                             specular=torch.tensor([0.3, 0.3, 0.3]), shininess=torch.tensor(8.0))
    w = _weights(rgb.shape, 4)
    (rgb * w).sum().backward()
    for i in range(3):
        v = vs[i].clone().requires_grad_()
        one_fr = tr.rasterize(tr.project(v, cams[i]), fs[i], (H, W))
        one = tr.shade_fragments(one_fr, v, fs[i], normals[i], fs[i], alb[i:i + 1], eye[i:i + 1],
                                 torch.tensor([0.1, 0.1, 0.1]), *light, specular=torch.tensor([0.3, 0.3, 0.3]),
                                 shininess=torch.tensor(8.0))
        same(rgb[i], one[0].detach())
        (one * w[i]).sum().backward()
        torch.testing.assert_close(leaves[i].grad, v.grad, rtol=1e-5, atol=1e-6 * float(v.grad.abs().max()))


def test_numpy_bridge_takes_lists_and_its_vjp_gives_per_mesh_gradients():
    svs, fs = _screen(torch.float64)
    sv_np, f_np = [s.numpy() for s in svs], [f.numpy() for f in fs]
    fr, pull = tr.np.vjp(tr.np.rasterize, sv_np, f_np, (H, W))
    g_bary = np.random.default_rng(0).random(fr.bary.shape)
    (g_sv,) = pull((None, g_bary, None))
    assert isinstance(g_sv, list) and [g.shape for g in g_sv] == [s.shape for s in sv_np]
    off = np.cumsum([0] + [f.shape[0] for f in f_np])
    for i in range(3):
        one, pull1 = tr.np.vjp(tr.np.rasterize, sv_np[i], f_np[i], (H, W))
        assert np.array_equal(fr.face_id[i], np.where(one.face_id[0] >= 0, one.face_id[0] + off[i], -1))
        assert np.array_equal(fr.bary[i], one.bary[0])
        (g1,) = pull1((None, g_bary[i:i + 1], None))
        np.testing.assert_allclose(g_sv[i], g1, rtol=1e-12, atol=1e-12 * np.abs(g1).max())
    m = tr.Meshes(sv_np, f_np)  # NumPy arrays work in a Meshes too
    assert np.array_equal(tr.np.rasterize(m, None, (H, W)).face_id, fr.face_id)


def test_float64_gradcheck_of_each_face_looping_primitive_on_a_packed_batch():
    g = torch.Generator().manual_seed(5)
    # no pixel centre within 1e-6 of an edge (hard coverage is piecewise constant)
    sv0 = torch.tensor([[1.23, 1.12, 2.0], [5.61, 1.93, 2.5], [2.14, 5.31, 3.0], [5.52, 5.04, 2.2]],
                       dtype=torch.float64)
    sv1 = torch.tensor([[0.71, 4.63, 1.5], [4.92, 0.83, 2.0], [5.81, 5.74, 1.8]], dtype=torch.float64)
    f0, f1 = torch.tensor([[0, 1, 2], [1, 3, 2]]), torch.tensor([[0, 1, 2]])
    c0, c1 = (torch.rand(n, 2, dtype=torch.float64, generator=g) for n in (4, 3))
    size = (6, 7)

    def soft(a, b, ca, cb):
        return tr.soft_rasterize([a, b], [f0, f1], [ca, cb], size, sigma=3e-2, gamma=5e-2, near=0.5, far=10.0,
                                 exact=True)

    def hard(a, b, ca, cb):
        fr = tr.rasterize([a, b], [f0, f1], size)
        return tr.interpolate([ca, cb], [f0, f1], fr), fr.depth.nan_to_num(posinf=0.0)

    def dibr(a, b, ca, cb):
        fr = tr.rasterize([a, b], [f0, f1], size)
        return tr.dibr_silhouette([a, b], [f0, f1], fr, size, sigmainv=40.0)

    args = [t.clone().requires_grad_() for t in (sv0, sv1, c0, c1)]
    for fn in (soft, hard):
        assert torch.autograd.gradcheck(fn, args, eps=1e-6, atol=1e-5, rtol=1e-4)
    assert torch.autograd.gradcheck(dibr, args[:2] + [c0, c1], eps=1e-6, atol=1e-6, rtol=1e-4)


def test_face_ranges_draw_parts_of_one_shared_vertex_array_per_image():
    """nvdiffrast's range mode: image i draws faces[first_i : first_i + count_i] of one mesh; ranges
    may overlap (image 2 is the whole mesh) and face ids are indices into the faces passed."""
    svs, fs = _screen()
    s, f = svs[0], fs[0]
    ranges = torch.tensor([[0, 40], [40, 40], [0, 80]])
    fr = tr.rasterize(s, FaceRanges(f, ranges), (H, W))
    full = tr.rasterize(s, f, (H, W))
    assert torch.equal(fr.face_id[2], full.face_id[0])
    for i, (a, n) in enumerate(ranges.tolist()[:2]):
        part = tr.rasterize(s, f[a:a + n], (H, W))
        assert torch.equal(fr.face_id[i], _global_ids(part.face_id[0], a))
    assert ((fr.face_id[0] >= 0) & (fr.face_id[0] < 40) | (fr.face_id[0] == -1)).all()


def test_bad_packed_input_is_a_clear_error_in_every_primitive():
    svs, fs = _screen()
    m = tr.Meshes(svs, fs)
    with pytest.raises(ValueError, match=r"rasterize: screen_verts is a Meshes batch, so faces must be None"):
        tr.rasterize(m, fs[0], (H, W))
    with pytest.raises(TypeError, match=r"rasterize: screen_verts is a list of per-mesh arrays, so faces must be"):
        tr.rasterize(svs, fs[0], (H, W))
    with pytest.raises(ValueError, match=r"rasterize: need one faces array per screen_verts array"):
        tr.rasterize(svs, fs[:2], (H, W))
    with pytest.raises(ValueError, match=r"rasterize: mesh 1 has 8 vertices but its faces use indices 40..47; face indices are local"):
        tr.rasterize(svs, [fs[0], fs[1] + 40, fs[2]], (H, W))
    with pytest.raises(ValueError, match=r"soft_rasterize: packed per-vertex colors must have 122 rows"):
        tr.soft_rasterize(m, None, torch.ones(120, 3), (H, W))
    with pytest.raises(ValueError, match=r"soft_rasterize: per-vertex colors must be N = 3 arrays with \[42, 8, 72\]"):
        tr.soft_rasterize(m, None, [torch.ones(42, 3), torch.ones(8, 3)], (H, W))
    fr = tr.rasterize(m, None, (H, W))
    two = type(fr)(fr.face_id[:2], fr.bary[:2], fr.depth[:2])
    with pytest.raises(ValueError, match=r"interpolate: fragments has a batch of 2 images but the packed batch has 3"):
        tr.interpolate(torch.ones(122, 2), m, two)
    with pytest.raises(ValueError, match=r"dibr_silhouette: fragments has a batch of 2 images but the packed batch"):
        tr.dibr_silhouette(m, None, two, (H, W))
    with pytest.raises(ValueError, match=r"with a packed batch of 3 meshes, screen_verts must have a batch of 1"):
        tr.rasterize(torch.stack([m.verts_packed] * 2), m, (H, W))
    with pytest.raises(ValueError, match=r"FaceRanges: every range \(first, count\) must lie within the 80 faces"):
        FaceRanges(fs[0], torch.tensor([[0, 40], [60, 30]]))
    with pytest.raises(ValueError, match=r"project: a Meshes batch of 3 needs 3 cameras"):
        vs, fs3, cams = _scene()
        tr.project(tr.Meshes(vs, fs3), tr.PerspectiveCamera.look_at(torch.ones(2, 3), image_size=(8, 8)))


def test_per_face_buffers_of_a_batch_follow_its_total_face_count():
    """Memory is O(faces): a big mesh with small ones gives the kernels sum F_i face entries (not
    N times the largest), and a shared topology B * F."""
    from taichirast._prims import soft as soft_prim

    big, small = tr.meshes.icosphere(3), tr.meshes.cube()
    vs = [torch.from_numpy(big[0]) * 0.5 + torch.tensor([0.0, 0.0, 3.0])] + \
         [torch.from_numpy(small[0]) * 0.3 + torch.tensor([0.0, 0.0, 3.0])] * 3
    fs = [torch.from_numpy(big[1])] + [torch.from_numpy(small[1])] * 3
    sv = [torch.cat([v[:, :2] * 10 + 12, v[:, 2:]], 1) for v in vs]
    m = tr.Meshes(sv, fs)
    prep = soft_prim.PRIM.prepare(m, None, [torch.ones(v.shape[0], 1) for v in vs], (H, W))
    assert prep.params["E"] == 1280 + 3 * 12 and prep.params["counts"] == (1280, 12, 12, 12)
    (out,), saved = soft_prim.PRIM.forward(prep.inputs, prep.params)
    eperm, fs_buffer = saved[5], saved[6]
    assert out.shape[0] == 4 and fs_buffer.shape[0] == 1280 + 36
    # the entry slots' order (spatial_order) permutes each image's entries among themselves
    starts = np.cumsum([0, 1280, 12, 12, 12])
    for b in range(4):
        part = eperm[starts[b]:starts[b + 1]].numpy()
        assert sorted(part.tolist()) == list(range(starts[b], starts[b + 1]))
    shared = soft_prim.PRIM.prepare(torch.stack([sv[1]] * 3), fs[1], torch.ones(8, 1), (H, W))
    assert shared.params["E"] == 3 * 12 and shared.params["counts"] == (12, 12, 12)
