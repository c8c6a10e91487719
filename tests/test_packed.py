"""tr.Meshes: a batch of different meshes with a camera each, rendered in one call (one pass of the
render stages; the primitives draw per-image face ranges, tests/test_packed_primitives.py), equals
the single renders (bitwise on the CPU), with the same gradients (to float rounding); float64
gradcheck through it; bad packed input is a clear error."""
import pytest
import torch
from gpu_scenes import assert_equal_up_to_sum_order

import taichirast as tr
from taichirast import meshes


def _scene(dtype=torch.float32):
    v0, f0 = meshes.icosphere(1)
    v1, f1 = meshes.cube(size=1.2)
    v2, f2 = meshes.torus(R=0.7, r=0.25, n_major=12, n_minor=6)
    vs = [torch.from_numpy(v).to(dtype) for v in (v0, v1, v2)]
    fs = [torch.from_numpy(f) for f in (f0, f1, f2)]
    eyes = torch.tensor([[0.0, 0.0, 3.0], [1.5, 1.0, 2.5], [0.0, 2.5, 1.5]], dtype=dtype)
    cams = tr.PerspectiveCamera.look_at(eyes, fov_y=45.0, image_size=(24, 20), near=0.1, far=10.0, dtype=dtype)
    cols = [(v + 1) / 2 for v in vs]
    return vs, fs, cams, cols


LIGHTS = dict(lights=tr.Lights(ambient=[0.2, 0.2, 0.2], directions=[[0.3, -0.6, -1.0]], colors=[[0.8, 0.8, 0.8]]),
              material=tr.Material(specular=[0.3, 0.3, 0.3], shininess=16.0))


@pytest.mark.parametrize("mode, exact, extra", [
    ("hard", True, {}), ("soft", False, {}), ("dibr", False, {}), ("hard", True, dict(LIGHTS, antialias=True)),
    ("soft", False, dict(LIGHTS, shading="flat")), ("splat", False, {}), ("hard", True, dict(per_face=True))])
def test_batch_of_different_meshes_equals_single_renders(mode, exact, extra):
    vs, fs, cams, cols = _scene()
    if extra.get("per_face"):
        cols = [torch.rand(f.shape[0], 3, generator=torch.Generator().manual_seed(i)) for i, f in enumerate(fs)]
    leaves = [v.clone().requires_grad_() for v in vs]
    batch = tr.Meshes(leaves, fs)
    assert len(batch) == 3 and batch.verts_offsets == (0, 42, 50, 122)
    out = tr.render(batch, None, cams, colors=torch.cat(cols), mode=mode, **extra)
    assert out.shape == (3, 24, 20, 4)
    w = torch.rand(out.shape, generator=torch.Generator().manual_seed(0))
    (out * w).sum().backward()
    for i in range(3):
        v = vs[i].clone().requires_grad_()
        single = tr.render(v, fs[i], cams[i], colors=cols[i], mode=mode, **extra)
        (single * w[i:i + 1]).sum().backward()
        if exact:
            assert_equal_up_to_sum_order(out[i:i + 1], single.detach())
            # gradients are scattered to the vertices with atomic adds, whose order varies with
            # thread timing on every backend (seen in CI on the CPU): equal to float32 rounding
            torch.testing.assert_close(leaves[i].grad, v.grad, rtol=1e-5, atol=1e-6 * float(v.grad.abs().max()))
        else:
            torch.testing.assert_close(out[i:i + 1], single.detach(), rtol=0, atol=1e-6)
            # on a GPU the float32 atomic sums add in another order: seen 2.1e-6 (H200, DIB-R) and
            # 3.5e-6 of 0.17 (lavapipe, lit flat soft: face normals are atomic sums too)
            on_cpu = v.device.type == "cpu" and tr.runtime.arch() in ("cpu", "x64", "arm64")
            atol = (1e-6 if on_cpu else 1e-5) * max(1.0, float(v.grad.abs().max()))
            torch.testing.assert_close(leaves[i].grad, v.grad, rtol=1e-5, atol=atol)


def test_packed_construction_and_a_shared_camera():
    vs, fs, cams, cols = _scene()
    a = tr.Meshes(vs, fs)
    b = tr.Meshes.from_packed(torch.cat(vs), torch.cat(fs), a.verts_offsets, a.faces_offsets)
    one = tr.PerspectiveCamera.look_at([0.0, 0.0, 3.0], fov_y=45.0, image_size=(16, 16), near=0.1, far=10.0)
    ra = tr.render(a, None, one, colors=cols, mode="hard")      # colours as a list of per-mesh tensors
    rb = tr.render(b, None, one, colors=torch.cat(cols), mode="hard")
    assert torch.equal(ra, rb)
    for i in range(3):
        assert torch.equal(ra[i:i + 1], tr.render(vs[i], fs[i], one, colors=cols[i], mode="hard"))
    v1, f1 = b[1]
    assert torch.equal(v1, vs[1]) and torch.equal(f1, fs[1].long())


def test_float64_gradcheck_through_a_packed_batch():
    vs, fs, cams, cols = _scene(torch.float64)
    vs = [v[:12] for v in vs[:1]] + [vs[1]]  # small: the first 12 vertices of the sphere have no faces left
    fs = [torch.tensor([[0, 1, 2], [0, 2, 3]]), fs[1]]
    cams2 = tr.PerspectiveCamera.look_at(torch.tensor([[0.0, 0.0, 3.0], [1.5, 1.0, 2.5]], dtype=torch.float64),
                                         fov_y=45.0, image_size=(6, 5), near=0.1, far=10.0, dtype=torch.float64)
    cols = [torch.rand(v.shape[0], 2, dtype=torch.float64, generator=torch.Generator().manual_seed(i))
            for i, v in enumerate(vs)]

    def fn(v0, v1, c0, c1):
        return tr.render(tr.Meshes([v0, v1], fs), None, cams2, colors=[c0, c1], mode="soft", sigma=3e-2, gamma=1e-2)

    args = [t.clone().requires_grad_() for t in (*vs, *cols)]
    assert torch.autograd.gradcheck(fn, args, eps=1e-6, atol=1e-6, rtol=1e-4)


def test_bad_packed_input_is_a_clear_error():
    vs, fs, cams, cols = _scene()
    with pytest.raises(ValueError, match=r"verts_offsets must rise from 0 to 122 \(the packed length\), got \[0, 42, 50, 120\]"):
        tr.Meshes.from_packed(torch.cat(vs), torch.cat(fs), (0, 42, 50, 120), (0, 80, 92, 236))
    with pytest.raises(ValueError, match="faces_offsets must rise from 0"):
        tr.Meshes.from_packed(torch.cat(vs), torch.cat(fs), (0, 42, 50, 122), (0, 92, 80, 236))
    bad = [fs[0], fs[1] + 40, fs[2]]  # global instead of local indices
    with pytest.raises(ValueError, match=r"mesh 1 has 8 vertices but its faces use indices 40..47; face indices are local"):
        tr.Meshes(vs, bad)
    with pytest.raises(ValueError, match="need one faces array per verts array"):
        tr.Meshes(vs, fs[:2])
    m = tr.Meshes(vs, fs)
    two = tr.PerspectiveCamera.look_at(torch.tensor([[0.0, 0.0, 3.0], [0.0, 1.0, 3.0]]), image_size=(8, 8))
    with pytest.raises(ValueError, match="a Meshes batch of 3 needs 3 cameras"):
        tr.render(m, None, two)
    with pytest.raises(ValueError, match="render: packed per-vertex colors must have 122 rows"):
        tr.render(m, None, cams, colors=torch.ones(100, 3))
    with pytest.raises(ValueError, match="pass faces=None"):
        tr.render(m, fs[0], cams)
    with pytest.raises(IndexError, match="index 5 out of range for a batch of 3 cameras"):
        cams[5]


@pytest.mark.parametrize("mode, filt", [("hard", "bilinear"), ("soft", "bilinear"), ("hard", "trilinear")])
def test_textured_batch_equals_single_renders(mode, filt):
    """UVs per vertex (packed) and per corner (lists of per-mesh uvs / uv_faces), one texture per mesh."""
    vs, fs, cams, _ = _scene()
    g = torch.Generator().manual_seed(7)
    tex = torch.rand(3, 16, 16, 3, generator=g)
    corner = [torch.rand(3 * f.shape[0], 2, generator=g) for f in fs]       # UV seams everywhere
    corner_faces = [torch.arange(3 * f.shape[0]).reshape(-1, 3) for f in fs]
    per_vertex = [(v[:, :2] + 1) / 2 for v in vs]
    for uvs, uv_faces in ((torch.cat(per_vertex), None), (corner, corner_faces)):
        leaves = [v.clone().requires_grad_() for v in vs]
        t = tex.clone().requires_grad_()
        out = tr.render(tr.Meshes(leaves, fs), None, cams, mode=mode, texture=t, uvs=uvs, uv_faces=uv_faces,
                        texture_filter=filt)
        w = torch.rand(out.shape, generator=g)
        (out * w).sum().backward()
        for i in range(3):
            v, ti = vs[i].clone().requires_grad_(), tex[i].clone().requires_grad_()
            one = tr.render(v, fs[i], cams[i], mode=mode, texture=ti, texture_filter=filt,
                            uvs=per_vertex[i] if uv_faces is None else corner[i],
                            uv_faces=None if uv_faces is None else corner_faces[i])
            assert float(one[..., 3].detach().mean()) > 0.05
            torch.testing.assert_close(out[i:i + 1], one.detach(), rtol=0, atol=1e-6)
            (one * w[i:i + 1]).sum().backward()
            torch.testing.assert_close(leaves[i].grad, v.grad, rtol=1e-4, atol=1e-6 * float(v.grad.abs().max()))
            torch.testing.assert_close(t.grad[i], ti.grad, rtol=1e-4, atol=1e-6)


def test_bad_textured_batch_is_a_clear_error():
    vs, fs, cams, _ = _scene()
    m = tr.Meshes(vs, fs)
    with pytest.raises(TypeError, match="uv_faces must be a list of per-mesh"):
        tr.render(m, None, cams, texture=torch.ones(8, 8, 3), uvs=torch.zeros(10, 2), uv_faces=torch.zeros(5, 3))
    uvs = [torch.zeros(3 * f.shape[0], 2) for f in fs]
    bad = [torch.arange(3 * f.shape[0]).reshape(-1, 3)[:-1] for f in fs]
    with pytest.raises(ValueError, match=r"uv_faces must have one row per face of each mesh, \[80, 12, 144\]"):
        tr.render(m, None, cams, texture=torch.ones(8, 8, 3), uvs=uvs, uv_faces=bad)
    with pytest.raises(ValueError, match="render: packed per-vertex uvs must have 122 rows"):
        tr.render(m, None, cams, texture=torch.ones(8, 8, 3), uvs=torch.zeros(100, 2))


def test_a_batch_through_the_renderer_module_returns_packed_fragments():
    vs, fs, cams, cols = _scene()
    m = tr.Meshes(vs, fs)
    renderer = tr.Renderer(cams, mode="hard")
    rgba, frags = renderer(m, None, colors=cols, return_fragments=True)
    assert rgba.shape == (3, 24, 20, 4) and frags.face_id.shape == (3, 24, 20)
    for i in range(3):
        one = tr.rasterize(tr.project(vs[i], cams[i]), fs[i], (24, 20))
        fid = one.face_id[0]
        assert (fid >= 0).any()
        assert torch.equal(frags.face_id[i], torch.where(fid >= 0, fid + m.faces_offsets[i], fid))


def test_meshes_lists_and_conversion():
    vs, fs, _, _ = _scene()
    m = tr.Meshes(vs, fs)
    assert all(torch.equal(a, b) for a, b in zip(m.verts_list(), vs))
    assert all(torch.equal(a, b.long()) for a, b in zip(m.faces_list(), fs))
    d = m.to(dtype=torch.float64)
    assert d.verts_packed.dtype == torch.float64 and d.faces_offsets == m.faces_offsets
    assert torch.equal(d.faces_global, m.faces_global)
    with pytest.raises(TypeError, match="Meshes.to: the batch holds NumPy arrays"):
        tr.Meshes([v.numpy() for v in vs], [f.numpy() for f in fs]).to("cpu")
