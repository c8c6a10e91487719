"""render / Renderer: composition equals the primitives, gradients in each mode, bad input."""
import pytest
import torch

import taichirast as tr
from taichirast import meshes


def _scene(dtype=torch.float64, size=(14, 12), level=1):
    v, f = meshes.icosphere(level)
    g = torch.Generator().manual_seed(3)
    verts = (torch.from_numpy(v).to(dtype) * 0.9 + 0.05 * torch.randn(v.shape, generator=g, dtype=dtype))
    faces = torch.from_numpy(f)
    cols = torch.rand(v.shape[0], 3, generator=g, dtype=dtype)
    cam = tr.PerspectiveCamera.look_at(torch.tensor([0.3, 0.4, 3.0], dtype=dtype), fov_y=50.0, image_size=size,
                                       near=0.1, far=10.0)
    return verts, faces, cols, cam


def test_hard_mode_is_rasterize_plus_interpolate():
    verts, faces, cols, cam = _scene()
    bg = torch.tensor([0.2, 0.3, 0.4], dtype=torch.float64)
    rgba, frags = tr.render(verts, faces, cam, colors=cols, mode="hard", background=bg, return_fragments=True)
    sv = tr.project(verts, cam)
    ref = tr.rasterize(sv, faces, cam.image_size)
    assert torch.equal(frags.face_id, ref.face_id)
    img = tr.interpolate(cols, faces, ref)
    m = ref.mask[..., None]
    assert torch.allclose(rgba[..., :3], torch.where(m, img, bg))
    assert torch.equal(rgba[..., 3], ref.mask.double())
    assert 0.2 < ref.mask.double().mean() < 0.9  # the sphere is in view, not filling it


def test_soft_and_dibr_modes_match_primitives():
    verts, faces, cols, cam = _scene()
    sv = tr.project(verts, cam)
    soft = tr.render(verts, faces, cam, colors=cols, mode="soft", sigma=1e-3, gamma=1e-3)
    ref = tr.soft_rasterize(sv, faces, cols, cam.image_size, sigma=1e-3, gamma=1e-3, near=cam.near, far=cam.far)
    assert torch.allclose(soft, ref)
    dibr = tr.render(verts, faces, cam, colors=cols, mode="dibr")
    frags = tr.rasterize(sv, faces, cam.image_size)
    assert torch.allclose(dibr[..., 3], tr.dibr_silhouette(sv, faces, frags, cam.image_size))
    # DIB-R alpha is soft around the silhouette: strictly between 0 and 1 somewhere off the mesh
    off = ~frags.mask
    assert ((dibr[..., 3][off] > 1e-3) & (dibr[..., 3][off] < 1 - 1e-3)).any()


@pytest.mark.parametrize("mode", ["soft", "dibr", "hard"])
def test_render_gradcheck(mode):
    verts, faces, cols, cam = _scene(size=(10, 9), level=0)
    v = verts.clone().requires_grad_()
    c = cols.clone().requires_grad_()
    kw = {"sigma": 2e-2, "gamma": 1e-1} if mode == "soft" else {"sigmainv": 50.0, "box_len": 0.5}
    # the hard face ids must not flip under the finite-difference step: check it, then gradcheck
    base = tr.render(verts, faces, cam, colors=cols, mode="hard", return_fragments=True)[1].face_id
    for k in range(v.numel()):
        d = torch.zeros_like(verts).view(-1)
        d[k] = 1e-6
        assert torch.equal(tr.render(verts + d.view_as(verts), faces, cam, mode="hard",
                                     return_fragments=True)[1].face_id, base)
    assert torch.autograd.gradcheck(lambda a, b: tr.render(a, faces, cam, colors=b, mode=mode, **kw), (v, c),
                                    atol=1e-6, rtol=1e-4)


def test_renderer_module_and_camera_gradients():
    verts, faces, cols, cam = _scene(dtype=torch.float32)
    cam.requires_grad_()
    r = tr.Renderer(cam, mode="soft", sigma=1e-3)
    out = r(verts, faces, cols)
    assert out.shape == (1, 14, 12, 4) and out.dtype == torch.float32
    assert torch.allclose(out, tr.render(verts, faces, cam, colors=cols, mode="soft", sigma=1e-3))
    out[..., 3].sum().backward()
    # moving the camera changes the silhouette: translation gradients are finite and not all equal to 0
    assert torch.isfinite(cam.t.grad).all() and cam.t.grad.abs().sum() > 0
    assert "soft" in repr(r)


def test_orthographic_render_and_far_clip():
    v, f = meshes.cube(1.0)
    verts, faces = torch.from_numpy(v).double(), torch.from_numpy(f)
    cam = tr.OrthographicCamera.look_at(torch.tensor([0.0, 0.0, 3.0], dtype=torch.float64), height=2.0,
                                        image_size=(20, 20))
    a = tr.render(verts, faces, cam, mode="hard")[0, ..., 3]
    # a unit cube seen head-on orthographically covers exactly the central 10x10 pixels
    assert a.sum().item() == 100 and a[5:15, 5:15].all()
    cam_far = tr.OrthographicCamera.look_at(torch.tensor([0.0, 0.0, 3.0], dtype=torch.float64), height=2.0,
                                            image_size=(20, 20), far=2.0)
    assert tr.render(verts, faces, cam_far, mode="hard")[..., 3].sum().item() == 0  # cube lies beyond far


def test_empty_mesh_renders_background_with_zero_gradients():
    verts = torch.zeros(0, 3, dtype=torch.float64, requires_grad=True)
    faces = torch.zeros(0, 3, dtype=torch.int64)
    cam = tr.PerspectiveCamera.look_at(torch.tensor([0.0, 0.0, 3.0], dtype=torch.float64), image_size=(6, 5))
    for mode in ("hard", "soft", "dibr"):
        bg = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64, requires_grad=True)
        out = tr.render(verts, faces, cam, colors=torch.zeros(0, 3, dtype=torch.float64), mode=mode, background=bg)
        assert out.shape == (1, 6, 5, 4)
        assert torch.allclose(out[..., :3], bg.detach().expand(1, 6, 5, 3)) and (out[..., 3] == 0).all()
        out.sum().backward()
        assert verts.grad is None or (verts.grad == 0).all()


def test_bad_render_input():
    verts, faces, cols, cam = _scene()
    with pytest.raises(ValueError, match="mode"):
        tr.render(verts, faces, cam, mode="phong")
    with pytest.raises(ValueError, match="background"):
        tr.render(verts, faces, cam, colors=cols, mode="hard", background=[0.0, 1.0])
    with pytest.raises(ValueError, match="faces"):
        tr.render(verts, faces + 1000, cam, mode="soft")
    with pytest.raises(ValueError, match="mode"):
        tr.Renderer(cam, mode="wire")


def test_demo_fit_silhouette_smoke(tmp_path, capsys):
    from demo_support import assert_outputs_written, load_demo

    demo = load_demo("fit_silhouette")
    iou = demo.main(["--steps", "30", "--size", "48", "--views", "4", "--heldout", "4", "--level", "2",
                     "--lr", "0.02", "--out", str(tmp_path), "--quiet"])  # default: hard + antialias
    assert_outputs_written(tmp_path, names=("target.png", "before.png", "after.png", "heldout.png", "optimization.gif"))
    assert iou > 0.9  # from ~0.78 for the initial sphere
    assert demo.main.heldout_iou > 0.85  # views it never trained on
    out = capsys.readouterr().out
    assert "held-out silhouette IoU" in out and "mode hard + antialias" in out and "red = target only" in out
    import imageio.v2 as imageio

    assert imageio.imread(tmp_path / "target.png").shape[:2] == (48, 4 * 48)  # every training view
    assert imageio.imread(tmp_path / "after.png").shape[:2] == (48 + 14, 4 * 48)  # + the colour legend strip
    import torch

    assert demo.grid(torch.zeros(8, 5, 6)).shape == (10, 24)  # the default 8 views: 2 rows of 4

