"""Materials per mesh, per vertex and per texel (ambient, specular, shininess) in every render mode."""
import math

import numpy as np
import pytest
import torch

import taichirast as tr
from taichirast import meshes

D = torch.float64


def _scene(size=(12, 11)):
    v, f = meshes.icosphere(1)
    verts = torch.from_numpy(v).double() * 0.9
    faces = torch.from_numpy(f)
    uvs = torch.stack([0.5 + torch.atan2(verts[:, 0], verts[:, 2]) / (2 * math.pi),
                       0.5 + torch.asin(verts[:, 1] / verts.norm(dim=1)) / math.pi], 1)
    cam = tr.PerspectiveCamera.look_at(torch.tensor([0.4, 0.5, 3.0], dtype=D), fov_y=45.0, image_size=size,
                                       near=0.1, far=10.0)
    lights = tr.Lights(ambient=torch.tensor([0.3, 0.2, 0.25], dtype=D),
                       directions=torch.tensor([[-0.3, -0.4, -1.0]], dtype=D),
                       colors=torch.tensor([[0.9, 0.8, 0.7]], dtype=D))
    return verts, faces, uvs, cam, lights


def test_layouts_and_validation():
    m = tr.Material()
    assert [m.layout(n) for n in ("ambient", "specular", "shininess")] == ["mesh"] * 3
    m = tr.Material(specular=torch.rand(7, 3), shininess=torch.rand(4, 5), ambient=torch.rand(4, 5, 3))
    assert (m.layout("specular"), m.layout("shininess"), m.layout("ambient")) == ("vertex", "texel", "texel")
    assert len(m.parameters()) == 3
    with pytest.raises(ValueError, match="specular"):
        tr.Material(specular=torch.rand(7, 2))
    with pytest.raises(ValueError, match="shininess"):
        tr.Material(shininess=torch.rand(2, 3, 4))
    with pytest.raises(ValueError, match="NaN"):
        tr.Material(ambient=torch.tensor([1.0, float("nan"), 1.0]))
    with pytest.raises(ValueError, match="shininess must be >= 0"):
        tr.Material(shininess=torch.tensor([1.0, -2.0]))


@pytest.mark.parametrize("mode", ["hard", "dibr", "soft"])
def test_constant_per_vertex_and_per_texel_materials_equal_per_mesh(mode):
    verts, faces, uvs, cam, lights = _scene()
    V = verts.shape[0]
    spec, shin, amb = torch.tensor([0.4, 0.3, 0.2], dtype=D), torch.tensor(9.0, dtype=D), \
        torch.tensor([0.5, 0.7, 0.9], dtype=D)
    kw = dict(mode=mode, lights=lights, uvs=uvs, sigma=1e-3)
    ref = tr.render(verts, faces, cam, material=tr.Material(specular=spec, shininess=shin, ambient=amb), **kw)
    per_vertex = tr.Material(specular=spec.expand(V, 3), shininess=shin.expand(V), ambient=amb.expand(V, 3))
    per_texel = tr.Material(specular=spec.expand(4, 6, 3), shininess=shin.expand(4, 6),
                            ambient=amb.expand(4, 6, 3))
    torch.testing.assert_close(tr.render(verts, faces, cam, material=per_vertex, **kw), ref, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(tr.render(verts, faces, cam, material=per_texel, **kw), ref, rtol=1e-9, atol=1e-9)
    # and the material matters: a zero ambient reflectance darkens the image
    dark = tr.render(verts, faces, cam, material=tr.Material(specular=spec, shininess=shin, ambient=amb * 0), **kw)
    assert float((ref - dark)[..., :3].sum()) > 0.1


def test_per_vertex_specular_is_interpolated_in_hard_mode():
    verts, faces, uvs, cam, lights = _scene(size=(16, 15))
    V = verts.shape[0]
    spec_v = torch.rand(V, 3, generator=torch.Generator().manual_seed(0), dtype=D)
    rgba, frags = tr.render(verts, faces, cam, mode="hard", lights=lights, return_fragments=True,
                            material=tr.Material(specular=spec_v, shininess=torch.tensor(4.0, dtype=D)))
    # reference: the same scene shaded by the primitive with the specular colour interpolated by hand
    from taichirast.geometry.mesh import vertex_normals

    spec_img = tr.interpolate(spec_v, faces, frags)
    ref = tr.shade_fragments(frags, verts, faces, vertex_normals(verts, faces), faces,
                             torch.ones_like(spec_img), cam.center().to(D), lights.ambient, lights.directions,
                             lights.colors, specular=spec_img, shininess=torch.tensor(4.0, dtype=D))
    torch.testing.assert_close(rgba[..., :3], ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("mode", ["hard", "soft"])
def test_render_gradcheck_per_vertex_and_per_texel_material(mode):
    verts, faces, uvs, cam, lights = _scene(size=(9, 8))
    V = verts.shape[0]
    g = torch.Generator().manual_seed(2)
    spec_v = 0.5 * torch.rand(V, 3, generator=g, dtype=D)
    shin_t = 2 + 6 * torch.rand(3, 4, generator=g, dtype=D)
    amb_t = torch.rand(3, 4, 3, generator=g, dtype=D)
    kw = {"sigma": 2e-2, "gamma": 1e-1} if mode == "soft" else {}

    def f(sp, sh, am):
        return tr.render(verts, faces, cam, mode=mode, lights=lights, uvs=uvs, texture_wrap="clamp",
                         material=tr.Material(specular=sp, shininess=sh, ambient=am), **kw)

    args = [x.clone().requires_grad_() for x in (spec_v, shin_t, amb_t)]
    out = f(*args)
    out[..., :3].sum().backward()
    assert all(float(a.grad.abs().max()) > 0 for a in args)
    args = [a.detach().requires_grad_() for a in args]
    assert torch.autograd.gradcheck(f, args, atol=1e-6, rtol=1e-4)


def test_shade_material_ambient_scales_the_ambient_term_and_has_gradients():
    g = torch.Generator().manual_seed(0)
    N = 6
    n = torch.randn(N, 3, generator=g, dtype=D)
    x = torch.randn(N, 3, generator=g, dtype=D)
    alb = torch.rand(N, 3, generator=g, dtype=D)
    ka = torch.rand(N, 3, generator=g, dtype=D)
    amb = torch.tensor([0.3, 0.4, 0.5], dtype=D)
    zero = torch.zeros(N, 3, dtype=D)
    out = tr.shade(n, x, alb, zero, torch.ones(N, dtype=D), torch.tensor([0.0, 0.0, 5.0], dtype=D), amb,
                   material_ambient=ka)
    torch.testing.assert_close(out, alb * ka * amb)

    def f(alb, ka, amb, n, ld, lc):
        return tr.shade(n, x, alb, 0.3 * torch.ones(N, 3, dtype=D), 3 * torch.ones(N, dtype=D),
                        torch.tensor([0.0, 0.0, 5.0], dtype=D), amb, ld, lc, material_ambient=ka)

    args = [alb, ka, amb, n, torch.tensor([[0.2, -1.0, -0.3]], dtype=D), torch.tensor([[0.7, 0.8, 0.9]], dtype=D)]
    assert torch.autograd.gradcheck(f, [a.clone().requires_grad_() for a in args])
    # the NumPy bridge takes it too
    np.testing.assert_allclose(
        tr.np.shade(n.numpy(), x.numpy(), alb.numpy(), zero.numpy(), np.ones(N), np.array([0.0, 0.0, 5.0]),
                    amb.numpy(), material_ambient=ka.numpy()), (alb * ka * amb).numpy(), rtol=1e-12)


def test_render_checks_materials_and_finite_inputs_on_entry():
    verts, faces, uvs, cam, lights = _scene()
    with pytest.raises(ValueError, match="per-vertex values"):
        tr.render(verts, faces, cam, mode="hard", lights=lights, material=tr.Material(specular=torch.rand(5, 3)))
    with pytest.raises(ValueError, match="texel map"):
        tr.render(verts, faces, cam, mode="hard", lights=lights, material=tr.Material(shininess=torch.rand(4, 4)))
    bad = tr.Lights(ambient=torch.tensor([0.1, 0.1, 0.1], dtype=D))
    bad.ambient = torch.tensor([float("nan"), 0.1, 0.1], dtype=D)  # e.g. an optimiser step that diverged
    with pytest.raises(ValueError, match="lights"):
        tr.render(verts, faces, cam, mode="hard", lights=bad)
    with pytest.raises(ValueError, match="colors"):
        tr.render(verts, faces, cam, mode="hard", colors=torch.full(verts.shape, float("nan"), dtype=D))
    with pytest.raises(ValueError, match="verts"):
        tr.render(verts * float("nan"), faces, cam, mode="soft")
    with pytest.raises(ValueError, match="faces"):
        tr.render(verts, faces + 1000, cam, mode="hard")
    with pytest.raises(ValueError, match="RGB"):
        tr.render(verts, faces, cam, mode="hard", lights=lights, colors=torch.ones(verts.shape[0], 2, dtype=D))
    # trusted mode does not leak out of render
    from taichirast import _validate

    assert not _validate.is_trusted()


def test_texel_material_follows_the_uv_mapping():
    """A non-constant specular map: the material path (render with material=...) must see the same
    per-pixel values as the unlit texture path samples from the same map at the same UVs."""
    verts, faces, uvs, cam, lights = _scene(size=(16, 15))
    g = torch.Generator().manual_seed(5)
    spec_map = torch.rand(6, 7, 3, generator=g, dtype=D)
    rgba, frags = tr.render(verts, faces, cam, mode="hard", lights=lights, uvs=uvs, return_fragments=True,
                            material=tr.Material(specular=spec_map, shininess=torch.tensor(6.0, dtype=D)))
    sampled = tr.render(verts, faces, cam, mode="hard", texture=spec_map, uvs=uvs)[..., :3]   # unlit: the map
    from taichirast.geometry.mesh import vertex_normals

    ref = tr.shade_fragments(frags, verts, faces, vertex_normals(verts, faces), faces, torch.ones_like(sampled),
                             cam.center().to(D), lights.ambient, lights.directions, lights.colors,
                             specular=sampled * frags.mask[..., None], shininess=torch.tensor(6.0, dtype=D))
    assert float(sampled[frags.mask].std()) > 0.1
    torch.testing.assert_close(rgba[..., :3], ref, rtol=1e-10, atol=1e-10)


def test_soft_trilinear_texel_material_is_per_view():
    """Several cameras in soft mode with a trilinear texel map: each view uses its own level of
    detail, so a view rendered in a batch equals the same view rendered alone."""
    verts, faces, uvs, cam, lights = _scene(size=(12, 11))
    spec_map = torch.rand(64, 64, 3, generator=torch.Generator().manual_seed(6), dtype=D)
    cams = [tr.PerspectiveCamera.look_at(torch.tensor([0.0, 0.4, d], dtype=D), fov_y=45.0, image_size=(12, 11),
                                         near=0.1, far=20.0) for d in (2.0, 9.0)]
    both = tr.PerspectiveCamera.look_at(torch.tensor([[0.0, 0.4, 2.0], [0.0, 0.4, 9.0]], dtype=D), fov_y=45.0,
                                        image_size=(12, 11), near=0.1, far=20.0)
    kw = dict(mode="soft", lights=lights, uvs=uvs, texture_filter="trilinear", sigma=1e-3,
              material=tr.Material(specular=spec_map, shininess=torch.tensor(4.0, dtype=D)))
    batch = tr.render(verts, faces, both, **kw)
    for i, c in enumerate(cams):
        torch.testing.assert_close(batch[i], tr.render(verts, faces, c, **kw)[0], rtol=1e-9, atol=1e-9)


def test_render_checks_numpy_inputs_for_nan_and_shade_requires_its_arrays():
    verts, faces, uvs, cam, lights = _scene()
    cols = np.ones((verts.shape[0], 3))
    cols[0] = np.nan
    for mode in ("soft", "hard"):
        with pytest.raises(ValueError, match="colors"):
            tr.render(verts, faces, cam, mode=mode, colors=cols)
    tex = np.full((4, 4, 3), np.nan)
    with pytest.raises(ValueError, match="texture"):
        tr.render(verts, faces, cam, mode="hard", texture=tex, uvs=uvs)
    with pytest.raises(ValueError, match="background"):
        tr.render(verts, faces, cam, mode="hard", background=[np.nan, 0.0, 0.0])
    ok = tr.render(verts, faces, cam, mode="hard", colors=np.ones((verts.shape[0], 3)), background=[0.1, 0.2, 0.3])
    assert ok.dtype == D and torch.isfinite(ok).all()
    n = torch.randn(4, 3, dtype=D)
    with pytest.raises(TypeError, match="positions"):
        tr.shade(n, None, n.abs(), n.abs(), torch.ones(4, dtype=D), torch.zeros(3, dtype=D))
    with pytest.raises(TypeError, match="specular"):
        tr.shade(n, n, n.abs(), None, torch.ones(4, dtype=D), torch.zeros(3, dtype=D))
