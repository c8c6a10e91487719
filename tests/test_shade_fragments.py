"""shade_fragments (fused deferred shading) against interpolate + shade + composite, gradients, bridges, bad input."""
import numpy as np
import pytest
import torch

import taichirast as tr
from taichirast import np as trnp
from taichirast.geometry.mesh import face_normals, vertex_normals


def _scene(B=2, H=23, W=19, level=1, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    v, f = tr.meshes.icosphere(level)
    v = torch.as_tensor(v, dtype=dtype)
    faces = torch.as_tensor(f)
    verts = torch.stack([v * (1 + 0.1 * b) + 0.05 * torch.randn(v.shape, generator=g, dtype=dtype)
                         for b in range(B)])
    cam = tr.PerspectiveCamera.look_at(torch.tensor([0.4, 0.5, 3.0], dtype=dtype), fov_y=40.0, image_size=(H, W),
                                       near=0.1, far=10.0)
    frags = tr.rasterize(tr.project(verts, cam), faces, (H, W), near=0.1)
    albedo = torch.rand(B, H, W, 3, generator=g, dtype=dtype)
    lights = dict(ambient=torch.tensor([0.2, 0.25, 0.3], dtype=dtype),
                  light_dirs=torch.tensor([[-0.3, -0.6, -0.7], [0.5, 0.1, -0.4]], dtype=dtype),
                  light_colors=torch.tensor([[0.8, 0.7, 0.6], [0.3, 0.4, 0.5]], dtype=dtype),
                  point_positions=torch.tensor([[1.5, 1.0, 2.0]], dtype=dtype),
                  point_colors=torch.tensor([[0.9, 0.5, 0.2]], dtype=dtype),
                  sh_coeffs=0.2 * torch.rand(9, 3, generator=g, dtype=dtype))
    eye = cam.center().to(dtype)
    return verts, faces, frags, albedo, lights, eye, g


def _reference(frags, verts, faces, normals, nfaces, albedo, eye, lights, ka, spc, shin, bg, model, k):
    """The unfused composition, all through public ops (autograd through it)."""
    B, H, W = frags.face_id.shape
    n_img = tr.interpolate(normals, nfaces, frags).reshape(B, -1, 3)
    x_img = tr.interpolate(verts, faces, frags).reshape(B, -1, 3)
    N = H * W
    out = []
    for b in range(B):
        def per(m, C):
            if m.dim() >= 3:  # per pixel
                return m[b].reshape(N, C) if C == 3 else m[b].reshape(N)
            m = m if m.dim() == (1 if C == 3 else 0) else m[b]
            return m.expand(N, 3) if C == 3 else m.expand(N)
        e = eye if eye.dim() == 1 else eye[min(b, eye.shape[0] - 1)]
        out.append(tr.shade(n_img[b], x_img[b], albedo[b].reshape(N, 3), per(spc, 3), per(shin, 1), e,
                            model=model, attenuation_k=k, material_ambient=per(ka, 3), **lights))
    rgb = torch.stack(out).reshape(B, H, W, 3)
    cover = frags.mask.to(rgb.dtype)[..., None]
    return rgb * cover + bg * (1 - cover)


@pytest.mark.parametrize("model", ["lambert", "phong", "blinn_phong"])
@pytest.mark.parametrize("per_pixel", [False, True])
def test_matches_interpolate_shade_composite(model, per_pixel):
    verts, faces, frags, albedo, lights, eye, g = _scene()
    B, H, W = frags.face_id.shape
    normals = vertex_normals(verts, faces)
    if per_pixel:
        ka = torch.rand(B, H, W, 3, generator=g, dtype=verts.dtype)
        spc = torch.rand(B, H, W, 3, generator=g, dtype=verts.dtype)
        shin = 1 + 30 * torch.rand(B, H, W, generator=g, dtype=verts.dtype)
    else:
        ka = torch.tensor([0.9, 0.8, 1.0], dtype=verts.dtype)
        spc = torch.tensor([[0.3, 0.2, 0.1], [0.1, 0.5, 0.2]], dtype=verts.dtype)  # per batch
        shin = torch.tensor(12.0, dtype=verts.dtype)
    bg = torch.tensor([0.1, 0.2, 0.3], dtype=verts.dtype)
    out = tr.shade_fragments(frags, verts, faces, normals, faces, albedo, eye, **lights, material_ambient=ka,
                             specular=spc, shininess=shin, background=bg, model=model, attenuation_k=0.3)
    ref = _reference(frags, verts, faces, normals, faces, albedo, eye, lights, ka, spc, shin, bg, model, 0.3)
    assert frags.mask.float().mean() > 0.2
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("segment", [None, 4, 1])
def test_gradients_match_the_unfused_composition(segment, monkeypatch):
    """Also with short backward segments (the GPU schedule: several threads per image row)."""
    from taichirast._prims import shade_fragments as SF

    monkeypatch.setattr(SF, "SEGMENT", segment)
    verts, faces, frags, albedo, lights, eye, g = _scene(B=2, H=17, W=15)
    B, H, W = frags.face_id.shape
    dt = verts.dtype
    leaves = {
        "verts": verts.clone(), "albedo": albedo.clone(), "eye": eye.clone(),
        "ka": torch.tensor([0.9, 0.8, 1.0], dtype=dt), "spc": torch.rand(B, H, W, 3, generator=g, dtype=dt),
        "shin": torch.tensor([10.0, 14.0], dtype=dt), "bg": torch.tensor([0.1, 0.2, 0.3], dtype=dt),
        **{k: v.clone() for k, v in lights.items()},
    }
    bary0 = frags.bary.detach()
    grads = []
    for fused in (True, False):
        L = {k: v.detach().clone().requires_grad_() for k, v in leaves.items()}
        bary = bary0.clone().requires_grad_()
        fr = tr.Fragments(frags.face_id, bary, frags.depth)
        normals = vertex_normals(L["verts"], faces)
        lk = {k: L[k] for k in lights}
        args = (fr, L["verts"], faces, normals, faces, L["albedo"], L["eye"])
        if fused:
            out = tr.shade_fragments(*args, **lk, material_ambient=L["ka"], specular=L["spc"],
                                     shininess=L["shin"], background=L["bg"], model="blinn_phong", attenuation_k=0.2)
        else:
            out = _reference(fr, L["verts"], faces, normals, faces, L["albedo"], L["eye"], lk, L["ka"], L["spc"],
                             L["shin"], L["bg"], "blinn_phong", 0.2)
        w = torch.rand(out.shape, generator=torch.Generator().manual_seed(3), dtype=dt)
        (out * w).sum().backward()
        grads.append({**{k: v.grad for k, v in L.items()}, "bary": bary.grad})
    for k in grads[0]:
        torch.testing.assert_close(grads[0][k], grads[1][k], rtol=1e-9, atol=1e-10, msg=lambda m: f"{k}: {m}")
        assert float(grads[0][k].abs().max()) > 0, k


def test_gradcheck_every_input():
    verts, faces, frags, albedo, lights, eye, g = _scene(B=1, H=7, W=6, level=0)
    dt = verts.dtype
    B, H, W = frags.face_id.shape
    assert 0.1 < frags.mask.float().mean() < 1.0
    fnorm = face_normals(verts, faces)[0]
    F = faces.shape[0]
    nfaces = torch.arange(F, dtype=torch.int32)[:, None].expand(F, 3).contiguous()  # flat shading
    names = list(lights)

    def fn(bary, pos, nrm, alb, cam, *rest):
        lk = dict(zip(names, rest[:len(names)]))
        ka, spc, shin, bg = rest[len(names):]
        fr = tr.Fragments(frags.face_id, bary, frags.depth)
        return tr.shade_fragments(fr, pos, faces, nrm, nfaces, alb, cam, **lk, material_ambient=ka, specular=spc,
                                  shininess=shin, background=bg, model="phong", attenuation_k=0.5)

    inputs = [frags.bary.detach(), verts[0], fnorm, albedo, eye] + [lights[k] for k in names] + [
        torch.tensor([0.7, 0.8, 0.9], dtype=dt), torch.rand(B, H, W, 3, generator=g, dtype=dt),
        torch.tensor(5.0, dtype=dt), torch.tensor([0.3, 0.1, 0.2], dtype=dt)]
    inputs = [x.detach().clone().requires_grad_() for x in inputs]
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6)


def test_numpy_bridge_and_vjp_match_torch():
    verts, faces, frags, albedo, lights, eye, g = _scene(B=1, H=9, W=8, level=1)
    normals = vertex_normals(verts, faces)
    spc = torch.tensor([0.3, 0.3, 0.3], dtype=verts.dtype, requires_grad=True)
    out = tr.shade_fragments(frags, verts, faces, normals, faces, albedo, eye, lights["ambient"],
                             lights["light_dirs"], lights["light_colors"], specular=spc, shininess=8.0)
    nf = trnp.rasterize(tr.project(verts, tr.PerspectiveCamera.look_at(
        torch.tensor([0.4, 0.5, 3.0], dtype=verts.dtype), fov_y=40.0, image_size=(9, 8), near=0.1,
        far=10.0)).detach().numpy(), faces.numpy(), (9, 8), near=0.1)
    np_args = (nf, verts.numpy(), faces.numpy(), normals.numpy(), faces.numpy(), albedo.numpy(), eye.numpy(),
               lights["ambient"].numpy(), lights["light_dirs"].numpy(), lights["light_colors"].numpy())
    kw = dict(specular=spc.detach().numpy(), shininess=np.float64(8.0))
    out_np = trnp.shade_fragments(*np_args, **kw)
    np.testing.assert_allclose(out_np, out.detach().numpy(), rtol=1e-12, atol=1e-12)
    w = np.random.default_rng(0).random(out_np.shape)
    res, pb = trnp.vjp(trnp.shade_fragments, *np_args, **kw)
    grads = pb(w)
    (out * torch.from_numpy(w)).sum().backward()
    assert grads[0].bary.shape == nf.bary.shape
    np.testing.assert_allclose(grads[12], spc.grad.numpy(), rtol=1e-10)   # specular (given by keyword)
    assert grads[5] is not None and grads[8] is None                       # ambient given, point lights not
    assert grads[3].shape == albedo.shape


def test_background_and_empty_image():
    verts, faces, frags, albedo, lights, eye, g = _scene(B=1, H=6, W=5, level=0)
    empty = tr.Fragments(torch.full_like(frags.face_id, -1), torch.zeros_like(frags.bary), frags.depth)
    bg = torch.tensor([0.1, 0.2, 0.3], dtype=verts.dtype, requires_grad=True)
    al = albedo.clone().requires_grad_()
    out = tr.shade_fragments(empty, verts, faces, vertex_normals(verts, faces), faces, al, eye,
                             lights["ambient"], background=bg)
    torch.testing.assert_close(out, bg.detach().expand(1, 6, 5, 3))
    out.sum().backward()
    torch.testing.assert_close(bg.grad, torch.full((3,), 30.0, dtype=verts.dtype))
    assert float(al.grad.abs().max()) == 0.0


def test_bad_input_is_named():
    verts, faces, frags, albedo, lights, eye, g = _scene(B=1, H=6, W=5, level=0)
    n = vertex_normals(verts, faces)
    base = (frags, verts, faces, n, faces, albedo, eye)

    def call(*a, **kw):
        return tr.shade_fragments(*a, **kw)

    bad_id = tr.Fragments(frags.face_id + 1000, frags.bary, frags.depth)
    with pytest.raises(ValueError, match="face_id"):
        call(bad_id, *base[1:])
    with pytest.raises(ValueError, match="albedo"):
        call(*base[:5], albedo[:, :3], eye)
    with pytest.raises(ValueError, match="normal_faces"):
        call(*base[:4], faces[:3], albedo, eye)
    with pytest.raises(ValueError, match="specular"):
        call(*base, specular=torch.zeros(2, 2, dtype=verts.dtype))
    with pytest.raises(ValueError, match="shininess"):
        call(*base, shininess=torch.tensor(-1.0, dtype=verts.dtype))
    with pytest.raises(ValueError, match="light_colors"):
        call(*base, light_dirs=lights["light_dirs"])
    with pytest.raises(TypeError, match="float32 or float64"):
        call(*base[:5], albedo.to(torch.int32), eye)
    with pytest.raises(ValueError, match="NaN"):
        call(*base[:5], albedo * float("nan"), eye)


def test_light_only_gradients_skip_the_geometry_scatter_and_match():
    """With no gradient wanted for the geometry, the kernel skips the vertex scatter; the light
    and material gradients are the same as with it."""
    verts, faces, frags, albedo, lights, eye, g = _scene(B=1, H=15, W=13)
    n = vertex_normals(verts, faces).detach()
    res = []
    for geom in (False, True):
        lk = {k: v.clone().requires_grad_() for k, v in lights.items()}
        v = verts.clone().requires_grad_(geom)
        spc = torch.tensor([0.2, 0.3, 0.4], dtype=verts.dtype, requires_grad=True)
        out = tr.shade_fragments(frags, v, faces, n, faces, albedo, eye, **lk, specular=spc, shininess=7.0)
        (out * torch.rand(out.shape, generator=torch.Generator().manual_seed(4), dtype=out.dtype)).sum().backward()
        res.append([lk[k].grad for k in lights] + [spc.grad])
        assert (v.grad is not None) == geom
    for a, b in zip(*res):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
