"""render with lights, materials and textures: analytic images and float64 gradchecks in every mode."""
import math

import pytest
import torch

import taichirast as tr
from taichirast import meshes


def _plane_scene(size=8):
    v, f = meshes.plane(2.0, segments=1)
    verts, faces = torch.from_numpy(v).double(), torch.from_numpy(f)
    cam = tr.OrthographicCamera.look_at(torch.tensor([0.0, 0.0, 3.0], dtype=torch.float64), height=2.0,
                                        image_size=(size, size))
    return verts, faces, cam


@pytest.mark.parametrize("shading", ["smooth", "flat"])
def test_lambert_plane_matches_cosine_law(shading):
    verts, faces, cam = _plane_scene()
    albedo = torch.tensor([0.8, 0.5, 0.3], dtype=torch.float64).expand(4, 3)
    theta = math.radians(35)
    lights = tr.Lights(ambient=torch.tensor([0.1, 0.1, 0.1], dtype=torch.float64),
                       directions=torch.tensor([[math.sin(theta), 0.0, -math.cos(theta)]], dtype=torch.float64),
                       colors=torch.tensor([[1.0, 0.9, 0.8]], dtype=torch.float64))
    img = tr.render(verts, faces, cam, colors=albedo, mode="hard", lights=lights,
                    material=tr.Material(model="lambert"), shading=shading)
    expected = albedo[0] * (torch.tensor([1.0, 0.9, 0.8], dtype=torch.float64) * math.cos(theta) + 0.1)
    assert torch.allclose(img[0, ..., :3], expected.expand(8, 8, 3), atol=1e-12)
    assert (img[..., 3] == 1).all()
    # soft mode shades the same colour at the vertices (flat plane, directional light: Gouraud is exact)
    pcam = tr.PerspectiveCamera.look_at(torch.tensor([0.0, 0.0, 3.0], dtype=torch.float64), fov_y=60.0,
                                        image_size=(8, 8), near=0.1, far=10.0)
    with pytest.raises(ValueError, match="PerspectiveCamera"):
        tr.render(verts, faces, cam, colors=albedo, mode="soft")
    soft = tr.render(verts, faces, pcam, colors=albedo, mode="soft", lights=lights,
                     material=tr.Material(model="lambert"), shading=shading, sigma=1e-6, gamma=1e-4)
    assert torch.allclose(soft[0, 2:6, 2:6, :3], expected.expand(4, 4, 3), atol=1e-6)


def test_textured_quad_reproduces_its_texture():
    verts, faces, cam = _plane_scene(size=6)
    uvs = (verts[:, :2] + 1) / 2  # u right, v up (world +y is image up)
    tex = torch.rand(6, 6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    img = tr.render(verts, faces, cam, mode="hard", texture=tex, uvs=uvs, texture_wrap="clamp")
    assert torch.allclose(img[0, ..., :3], tex, atol=1e-12)


def _sphere_scene():
    v, f = meshes.icosphere(0)
    verts = torch.from_numpy(v).double() * 0.9
    faces = torch.from_numpy(f)
    uvs = torch.stack([0.5 + torch.atan2(verts[:, 0], verts[:, 2]) / (2 * math.pi),
                       0.5 + torch.asin(verts[:, 1] / verts.norm(dim=1)) / math.pi], 1)
    cam = tr.PerspectiveCamera.look_at(torch.tensor([0.4, 0.5, 3.0], dtype=torch.float64), fov_y=45.0,
                                       image_size=(10, 9), near=0.1, far=10.0)
    return verts, faces, uvs, cam


@pytest.mark.parametrize("mode", ["hard", "dibr", "soft"])
def test_full_render_gradcheck_with_lights_material_texture(mode):
    verts, faces, uvs, cam = _sphere_scene()
    g = torch.Generator().manual_seed(1)
    tex = torch.rand(4, 4, 3, dtype=torch.float64, generator=g)
    params = dict(ambient=torch.tensor([0.2, 0.1, 0.15], dtype=torch.float64),
                  ldir=torch.tensor([[-0.3, -0.4, -1.0]], dtype=torch.float64),
                  lcol=torch.tensor([[0.9, 0.8, 0.7]], dtype=torch.float64),
                  spec=torch.tensor([0.3, 0.3, 0.3], dtype=torch.float64),
                  shin=torch.tensor(5.0, dtype=torch.float64))
    kw = {"sigma": 2e-2, "gamma": 1e-1} if mode == "soft" else {"sigmainv": 50.0, "box_len": 0.5}

    def f(v, t, amb, ld, lc, sp, sh):
        lights = tr.Lights(ambient=amb, directions=ld, colors=lc)
        mat = tr.Material(specular=sp, shininess=sh, model="blinn_phong")
        return tr.render(v, faces, cam, mode=mode, lights=lights, material=mat, texture=t, uvs=uvs,
                         texture_wrap="clamp", **kw)

    args = [verts.clone().requires_grad_(), tex.clone().requires_grad_()] + \
           [p.clone().requires_grad_() for p in params.values()]
    # hard face ids must not flip under the finite-difference step
    base = tr.render(verts, faces, cam, mode="hard", return_fragments=True)[1].face_id
    for k in range(verts.numel()):
        d = torch.zeros(verts.numel(), dtype=torch.float64)
        d[k] = 1e-6
        assert torch.equal(tr.render(verts + d.view_as(verts), faces, cam, mode="hard",
                                     return_fragments=True)[1].face_id, base)
    out = f(*args)
    assert out.shape == (1, 10, 9, 4) and torch.isfinite(out).all()
    assert torch.autograd.gradcheck(f, args, atol=1e-6, rtol=1e-4)


def test_lights_and_material_validation():
    with pytest.raises(ValueError, match="directions and colors"):
        tr.Lights(directions=[[0.0, -1.0, 0.0]])
    with pytest.raises(ValueError, match="sh"):
        tr.Lights(sh=torch.zeros(4, 3))
    with pytest.raises(ValueError, match="model"):
        tr.Material(model="cook_torrance")
    with pytest.raises(ValueError, match="shininess"):
        tr.Material(shininess=-1.0)
    verts, faces, cam = _plane_scene()
    with pytest.raises(ValueError, match="uvs"):
        tr.render(verts, faces, cam, mode="hard", texture=torch.zeros(2, 2, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="uv_faces"):
        tr.render(verts, faces, cam, mode="hard", texture=torch.zeros(2, 2, 3, dtype=torch.float64),
                  uvs=torch.zeros(4, 2, dtype=torch.float64), uv_faces=faces + 3)
    with pytest.raises(ValueError, match="uvs"):
        tr.render(verts, faces, cam, mode="hard", texture=torch.zeros(2, 2, 3, dtype=torch.float64),
                  uvs=torch.zeros(4, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="needs lights"):
        tr.render(verts, faces, cam, mode="hard", material=tr.Material())
    with pytest.raises(ValueError, match="shading"):
        tr.render(verts, faces, cam, mode="hard", lights=tr.Lights(ambient=[1.0, 1, 1]), shading="phong")
    lights = tr.Lights(ambient=[0.1, 0.2, 0.3], directions=[0.0, 0.0, -1.0], colors=[1.0, 1.0, 1.0])
    assert len(lights.parameters()) == 3 and lights.to(dtype=torch.float64).ambient.dtype == torch.float64
