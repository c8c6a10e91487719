"""Mip-mapped (trilinear) texturing: pyramid, trilinear blend, analytic UV derivatives / LOD, render, gradients."""
import math

import pytest
import torch

import taichirast as tr
from taichirast import meshes, mipmap

D = torch.float64


def test_pyramid_sizes_and_box_means():
    tex = torch.arange(5 * 4 * 2, dtype=D).reshape(5, 4, 2)
    lv = mipmap.mipmaps(tex)
    assert [tuple(x.shape[1:3]) for x in lv] == [(5, 4), (3, 2), (2, 1), (1, 1)]
    torch.testing.assert_close(lv[1][0, 0, 0], tex[:2, :2].mean((0, 1)))
    torch.testing.assert_close(lv[1][0, 2, 1], tex[4:, 2:].mean((0, 1)))  # odd edge: a 1x2 block
    torch.testing.assert_close(lv[-1][0, 0, 0], lv[-2][0, :, 0].mean(0))
    assert len(mipmap.mipmaps(tex, max_levels=2)) == 2
    assert torch.autograd.gradcheck(lambda t: mipmap.mipmaps(t)[2], [torch.rand(5, 4, 2, dtype=D, requires_grad=True)])
    with pytest.raises(ValueError, match="tex"):
        mipmap.mipmaps(torch.zeros(0, 3, 3, dtype=D))


def test_trilinear_blends_the_two_nearest_levels():
    g = torch.Generator().manual_seed(0)
    tex = torch.rand(8, 8, 3, generator=g, dtype=D)
    lv = mipmap.mipmaps(tex)
    uv = torch.rand(1, 4, 5, 2, generator=g, dtype=D)
    bil = [tr.texture(x[0], uv) for x in lv]
    for lod_value, ref in ((0.0, bil[0]), (1.0, bil[1]), (0.25, 0.75 * bil[0] + 0.25 * bil[1]),
                           (2.5, 0.5 * bil[2] + 0.5 * bil[3]), (9.0, bil[3]), (-3.0, bil[0])):
        out = tr.texture(tex, uv, filter="trilinear", lod=torch.full((1, 4, 5), lod_value, dtype=D))
        torch.testing.assert_close(out, ref)
    const = torch.full((8, 8, 3), 0.3, dtype=D)
    out = tr.texture(const, uv, filter="trilinear", lod=4 * torch.rand(1, 4, 5, generator=g, dtype=D))
    torch.testing.assert_close(out, torch.full_like(out, 0.3))
    fid = torch.zeros(1, 4, 5, dtype=torch.int32)
    fid[0, 0] = -1
    out = tr.texture(tex, uv, filter="trilinear", lod=torch.ones(1, 4, 5, dtype=D), face_id=fid)
    assert float(out[0, 0].abs().max()) == 0 and float(out[0, 1:].abs().min()) > 0


def test_trilinear_gradcheck_texture_uv_lod():
    g = torch.Generator().manual_seed(1)
    tex = torch.rand(2, 5, 4, 2, generator=g, dtype=D)     # batched texture
    uv = 0.1 + 0.8 * torch.rand(2, 3, 2, 2, generator=g, dtype=D)
    lod = 0.1 + 0.8 * torch.rand(2, 3, 2, generator=g, dtype=D) + torch.tensor([0.0, 1.0], dtype=D)[:, None, None]

    def f(t, u, l):
        return tr.texture(t, u, filter="trilinear", wrap="repeat", lod=l)

    assert torch.autograd.gradcheck(f, [x.clone().requires_grad_() for x in (tex, uv, lod)], atol=1e-6)


def _quad(size, eye, fov=None, height=None, ortho=False, tex_hw=(64, 64)):
    v, f = meshes.plane(2.0, segments=1)
    verts, faces = torch.from_numpy(v).double(), torch.from_numpy(f)
    uvs = (verts[:, :2] + 1) / 2   # x, y in [-1, 1] -> u, v in [0, 1]
    if ortho:
        cam = tr.OrthographicCamera.look_at(torch.tensor(eye, dtype=D), height=height, image_size=(size, size))
    else:
        cam = tr.PerspectiveCamera.look_at(torch.tensor(eye, dtype=D), fov_y=fov, image_size=(size, size),
                                           near=0.1, far=20.0)
    return verts, faces, uvs, cam


def test_uv_jacobian_orthographic_is_exact():
    S = 16
    verts, faces, uvs, cam = _quad(S, [0.0, 0.0, 3.0], height=2.0, ortho=True)
    sv = tr.project(verts, cam)
    frags = tr.rasterize(sv, faces, (S, S))
    J = mipmap.pixel_uv_jacobian(sv, faces, uvs, faces, frags, perspective=False)
    m = frags.mask
    assert bool(m.all())
    torch.testing.assert_close(J[m][:, 0, 0], torch.full((S * S,), 1.0 / S, dtype=D))   # du/dx
    torch.testing.assert_close(J[m][:, 1, 1], torch.full((S * S,), -1.0 / S, dtype=D))  # dv/dy (y down)
    torch.testing.assert_close(J[m][:, 0, 1], torch.zeros(S * S, dtype=D), atol=1e-12, rtol=0)
    lod = mipmap.lod_from_jacobian(J, (64, 64))
    torch.testing.assert_close(lod[m], torch.full((S * S,), 2.0, dtype=D))              # 4 texels per pixel


def test_uv_jacobian_perspective_matches_finite_differences():
    S = 48
    verts, faces, uvs, cam = _quad(S, [0.9, 0.6, 2.2], fov=50.0)
    sv = tr.project(verts, cam)
    frags = tr.rasterize(sv, faces, (S, S), near=0.1)
    J = mipmap.pixel_uv_jacobian(sv, faces, uvs, faces, frags)
    uv = tr.interpolate(uvs, faces, frags)[0]
    fid = frags.face_id[0]
    # central differences where the pixel and both neighbours lie on the same face
    same = (fid[1:-1, 1:-1] >= 0) & (fid[1:-1, :-2] == fid[1:-1, 1:-1]) & (fid[1:-1, 2:] == fid[1:-1, 1:-1]) & \
        (fid[:-2, 1:-1] == fid[1:-1, 1:-1]) & (fid[2:, 1:-1] == fid[1:-1, 1:-1])
    dx = (uv[1:-1, 2:] - uv[1:-1, :-2]) / 2
    dy = (uv[2:, 1:-1] - uv[:-2, 1:-1]) / 2
    Ji = J[0, 1:-1, 1:-1]
    assert int(same.sum()) > 200
    scale = float(Ji.abs().max())
    torch.testing.assert_close(Ji[..., 0][same], dx[same], atol=2e-3 * scale, rtol=0)
    torch.testing.assert_close(Ji[..., 1][same], dy[same], atol=2e-3 * scale, rtol=0)
    # the derivative is a differentiable function of vertices and UVs
    v = verts.clone().requires_grad_()
    u = uvs.clone().requires_grad_()
    svv = tr.project(v, cam)
    fr = tr.rasterize(svv, faces, (S, S), near=0.1)
    mipmap.lod_from_jacobian(mipmap.pixel_uv_jacobian(svv, faces, u, faces, fr), (64, 64))[fr.mask].sum().backward()
    assert float(v.grad.abs().max()) > 0 and float(u.grad.abs().max()) > 0


def test_trilinear_render_removes_checkerboard_aliasing():
    S = 16
    tex = ((torch.arange(64)[:, None] + torch.arange(64)[None, :]) % 2).to(D)[..., None].expand(64, 64, 3).contiguous()
    verts, faces, uvs, cam = _quad(S, [0.0, 0.0, 3.0], height=2.0, ortho=True)
    kw = dict(mode="hard", texture=tex, uvs=uvs, texture_wrap="clamp")
    tri = tr.render(verts, faces, cam, texture_filter="trilinear", **kw)[..., :3]
    near = tr.render(verts, faces, cam, texture_filter="nearest", **kw)[..., :3]
    torch.testing.assert_close(tri, torch.full_like(tri, 0.5), atol=1e-9, rtol=0)   # level 2 of a checker = grey
    assert abs(float(near.mean()) - 0.5) > 0.4          # point sampling aliases (every pixel hits one parity)
    # soft mode uses the per-face LOD: the same quad at the same scale is grey too
    pc = tr.PerspectiveCamera.look_at(torch.tensor([0.0, 0.0, 3.0], dtype=D), fov_y=2 * math.degrees(math.atan(1 / 3)),
                                      image_size=(S, S), near=0.1, far=20.0)
    soft = tr.render(verts, faces, pc, texture_filter="trilinear", sigma=1e-6, gamma=1e-4, **{**kw, "mode": "soft"})
    torch.testing.assert_close(soft[..., :3][soft[..., 3] > 0.99], torch.full_like(soft[..., :3][soft[..., 3] > 0.99], 0.5),
                               atol=1e-3, rtol=0)


@pytest.mark.parametrize("mode", ["hard", "soft"])
def test_render_trilinear_gradcheck(mode):
    v, f = meshes.icosphere(0)
    verts = torch.from_numpy(v).double() * 0.9
    faces = torch.from_numpy(f)
    uvs = torch.stack([0.5 + torch.atan2(verts[:, 0], verts[:, 2]) / (2 * math.pi),
                       0.5 + torch.asin(verts[:, 1] / verts.norm(dim=1)) / math.pi], 1)
    # keep corner UVs (sampled directly in soft mode) off texel-centre lines, where bilinear
    # filtering has a kink and only a one-sided derivative (u = 0.5 is a centre of the 5- and 3-wide levels)
    uvs = 0.03 + 0.91 * uvs
    cam = tr.PerspectiveCamera.look_at(torch.tensor([0.4, 0.5, 3.0], dtype=D), fov_y=45.0, image_size=(9, 8),
                                       near=0.1, far=10.0)
    g = torch.Generator().manual_seed(0)
    base = torch.rand(16, 12, 3, generator=g, dtype=D)          # levels 16x12 8x6 4x3 2x2 1x1
    coarse = torch.rand(4, 3, 3, generator=g, dtype=D)           # the learnable part, 4x4 texel blocks
    lights = tr.Lights(ambient=torch.tensor([0.4, 0.4, 0.4], dtype=D),
                       directions=torch.tensor([[-0.3, -0.4, -1.0]], dtype=D), colors=torch.tensor([[0.6] * 3], dtype=D))
    kw = {"sigma": 2e-2, "gamma": 1e-1} if mode == "soft" else {}
    # the scene minifies: levels of detail between 0 and 3 (so the blend between levels is exercised)
    sv = tr.project(verts, cam)
    if mode == "hard":
        lod = mipmap.lod_from_jacobian(mipmap.pixel_uv_jacobian(sv, faces, uvs, faces, tr.rasterize(sv, faces, (9, 8))),
                                       (16, 12))
    else:
        lod = mipmap.face_lod(sv, faces, uvs, faces, (16, 12))
    assert int(((lod > 0.1) & (lod < 0.9)).sum()) >= 2 and int(((lod > 1.1) & (lod < 2.9)).sum()) >= 2

    def fn(vv, uu, cc):
        tex = base + cc.repeat_interleave(4, 0).repeat_interleave(4, 1)
        return tr.render(vv, faces, cam, mode=mode, lights=lights, texture=tex, uvs=uu, texture_filter="trilinear",
                         texture_wrap="clamp", **kw)

    args = [x.clone().requires_grad_() for x in (verts, uvs, coarse)]
    assert torch.autograd.gradcheck(fn, args, atol=1e-6, rtol=1e-4)


def test_bad_filter_arguments():
    tex = torch.rand(4, 4, 3, dtype=D)
    uv = torch.rand(1, 2, 2, 2, dtype=D)
    with pytest.raises(ValueError, match="lod"):
        tr.texture(tex, uv, filter="trilinear")
    with pytest.raises(TypeError, match="float torch tensors"):
        tr.texture(tex.numpy(), uv, filter="trilinear", lod=torch.zeros(1, 2, 2, dtype=D))
    with pytest.raises(ValueError, match="uv must have shape"):
        tr.texture(tex, uv[..., :1], filter="trilinear", lod=torch.zeros(1, 2, 2, dtype=D))
    with pytest.raises(ValueError, match="lod must have shape"):
        tr.texture(tex, uv, filter="trilinear", lod=torch.zeros(1, 2, 3, dtype=D))
    with pytest.raises(ValueError, match="tex must have shape"):
        tr.texture(torch.rand(3, 4, 4, 3, dtype=D), torch.rand(2, 2, 2, 2, dtype=D), filter="trilinear",
                   lod=torch.zeros(2, 2, 2, dtype=D))
    with pytest.raises(ValueError, match="face_id must be an integer tensor"):
        tr.texture(tex, uv, filter="trilinear", lod=torch.zeros(1, 2, 2, dtype=D), face_id=torch.zeros(1, 2, 2))
    with pytest.raises(ValueError, match="filter must be one of"):
        tr.texture(tex, uv, filter="cubic")
    with pytest.raises(ValueError, match="torch-only"):
        tr.np.texture(tex.numpy(), uv.numpy(), filter="trilinear")
    with pytest.raises(ValueError, match="lod is only used"):
        tr.texture(tex, uv, lod=torch.zeros(1, 2, 2, dtype=D))
    with pytest.raises(ValueError, match="lod must have shape"):
        mipmap.sample_trilinear(mipmap.mipmaps(tex), uv, torch.zeros(2, 2, dtype=D))
    verts, faces, uvs, cam = _quad(8, [0.0, 0.0, 3.0], height=2.0, ortho=True)
    with pytest.raises(ValueError, match="texture_filter"):
        tr.render(verts, faces, cam, mode="hard", texture=tex, uvs=uvs, texture_filter="anisotropic")
