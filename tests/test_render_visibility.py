"""render(..., antialias=True) and render(mode="splat"): silhouette gradients from hard fragments."""
import pytest
import torch

import taichirast as tr
from taichirast import meshes
from taichirast.stages import blenders

D = torch.float64


def _scene(size=64, level=2):
    v, f = meshes.icosphere(level)
    verts = torch.from_numpy(v).to(D)
    faces = torch.from_numpy(f)
    cam = tr.PerspectiveCamera.look_at(torch.tensor([0.3, 0.4, 3.0], dtype=D), fov_y=40.0, image_size=(size, size),
                                       near=0.1, far=10.0)
    g = torch.Generator().manual_seed(0)
    return verts, faces, cam, torch.rand(v.shape[0], 3, generator=g, dtype=D)


LIGHTS = dict(ambient=[0.3] * 3, directions=[[0.3, -1.0, -0.5]], colors=[[0.8] * 3])


def _options(verts, faces):
    g = torch.Generator().manual_seed(1)
    F, V = faces.shape[0], verts.shape[0]
    uvs = torch.rand(V, 2, generator=g, dtype=D)
    tex = torch.rand(16, 16, 3, generator=g, dtype=D)
    return {
        "unlit": {},
        "per-face": dict(colors=torch.rand(F, 3, generator=g, dtype=D), per_face=True),
        "lit smooth": dict(lights=tr.Lights(**LIGHTS)),
        "lit flat": dict(lights=tr.Lights(**LIGHTS), shading="flat",
                         material=tr.Material(specular=[0.3] * 3, shininess=10.0)),
        "textured": dict(texture=tex, uvs=uvs),
        "textured trilinear lit": dict(texture=tex, uvs=uvs, texture_filter="trilinear", lights=tr.Lights(**LIGHTS)),
        "texel material": dict(uvs=uvs, lights=tr.Lights(**LIGHTS),
                               material=tr.Material(specular=torch.rand(8, 8, 3, generator=g, dtype=D))),
    }


def _translation_grad(fn, h=0.01):
    d = torch.zeros(3, dtype=D, requires_grad=True)
    fn(d).backward()
    with torch.no_grad():
        fd = torch.stack([(fn(h * e) - fn(-h * e)) / (2 * h) for e in torch.eye(3, dtype=D)])
    return d.grad, fd


@pytest.mark.parametrize("name", ["unlit", "per-face", "lit smooth", "lit flat", "textured",
                                  "textured trilinear lit", "texel material"])
def test_antialias_works_with_every_shading_option(name):
    verts, faces, cam, cols = _scene(size=40, level=1)
    kw = _options(verts, faces)[name]
    kw.setdefault("colors", cols)
    hard, frags = tr.render(verts, faces, cam, mode="hard", return_fragments=True, **kw)
    aa = tr.render(verts, faces, cam, mode="hard", antialias=True, **kw)
    # the antialias stage is the primitive applied to the hard image, every channel included
    ref = tr.antialias(hard, frags, tr.project(verts, cam), faces, tr.edge_topology(faces))
    assert torch.equal(aa, ref)
    changed = (aa != hard).any(-1)
    assert 0 < int(changed.sum()) < 0.5 * changed.numel()  # silhouette pixels only
    # a pixel whose four neighbours all show its own face is never touched
    fid = torch.nn.functional.pad(frags.face_id, (1, 1, 1, 1), value=-2)
    c = fid[:, 1:-1, 1:-1]
    same = (c >= 0) & (fid[:, :-2, 1:-1] == c) & (fid[:, 2:, 1:-1] == c) & (fid[:, 1:-1, :-2] == c) & (fid[:, 1:-1, 2:] == c)
    assert int(same.sum()) > 0 and not bool(changed[same].any())
    # silhouette gradient w.r.t. a global translation: finite differences of the same forward (a
    # coarse image: 5% of the largest component; the 96² test below holds it to 2%)
    g, fd = _translation_grad(lambda d: tr.render(verts + d, faces, cam, mode="hard", antialias=True,
                                                  **kw)[..., 3].mean(), h=0.02)
    assert torch.allclose(g, fd, rtol=0.05, atol=0.05 * float(fd.abs().max())), (g, fd)


def test_hard_alone_has_no_silhouette_gradient_antialias_matches_finite_differences():
    verts, faces, cam, cols = _scene(size=96)

    def alpha_mean(d, antialias):
        return tr.render(verts + d, faces, cam, colors=cols, mode="hard", antialias=antialias)[..., 3].mean()

    d = torch.zeros(3, dtype=D, requires_grad=True)
    alpha_mean(d, False).backward()
    assert torch.equal(d.grad, torch.zeros(3, dtype=D))  # what antialias is for
    g, fd = _translation_grad(lambda d: alpha_mean(d, True), h=0.01)
    assert fd.abs().max() > 0.05
    assert torch.allclose(g, fd, rtol=0.02, atol=0.02 * float(fd.abs().max())), (g, fd)
    # and the shaded colours' mean (interior shading changes plus silhouettes). Smooth colours: as in
    # nvdiffrast, a pixel flipping to the front face jumps from the blend to its own interpolated
    # colour, a jump the gradient ignores, so random per-vertex colours would add noise here.
    lights = tr.Lights(**LIGHTS)
    g, fd = _translation_grad(lambda d: tr.render(verts + d, faces, cam, colors=verts * 0.4 + 0.5, mode="hard",
                                                  antialias=True, lights=lights)[..., :3].mean(), h=0.01)
    assert torch.allclose(g, fd, rtol=0.03, atol=0.03 * float(fd.abs().max())), (g, fd)


def test_antialias_gradients_reach_the_camera():
    verts, faces, cam, cols = _scene(size=64)
    cam.t.requires_grad_(True)
    out = tr.render(verts, faces, cam, colors=cols, mode="hard", antialias=True)[..., 3].mean()
    (gt,) = torch.autograd.grad(out, cam.t)
    t0 = cam.t.detach().clone()
    fd = []
    for e in torch.eye(3, dtype=D):
        vals = []
        for s in (1, -1):
            c = tr.PerspectiveCamera(cam.R, t0 + s * 0.01 * e, cam.fx, cam.fy, cam.cx, cam.cy, image_size=(64, 64),
                                     near=0.1, far=10.0)
            vals.append(tr.render(verts, faces, c, colors=cols, mode="hard", antialias=True)[..., 3].mean())
        fd.append((vals[0] - vals[1]) / 0.02)
    fd = torch.stack(fd)
    assert torch.allclose(gt[0], fd, rtol=0.05, atol=0.05 * float(fd.abs().max())), (gt, fd)


def test_topology_argument_and_cache():
    verts, faces, cam, cols = _scene(size=32, level=1)
    topo = tr.edge_topology(faces)
    a = tr.render(verts, faces, cam, colors=cols, mode="hard", antialias=True)
    b = tr.render(verts, faces, cam, colors=cols, mode="hard", antialias=True, topology=topo)
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="topology was built from different faces"):
        tr.render(verts, faces.flip(0), cam, colors=cols, mode="hard", antialias=True, topology=topo)
    # the cache is keyed by contents: editing the faces in place never returns the old topology
    f2 = faces.clone().int()
    t1 = blenders.cached_topology(f2)
    assert blenders.cached_topology(f2) is t1
    f2[0] = f2[0].flip(0)
    assert blenders.cached_topology(f2) is not t1


def test_renderer_module_antialias_and_bad_combinations():
    verts, faces, cam, cols = _scene(size=32, level=1)
    r = tr.Renderer(cam, mode="hard", antialias=True)
    assert r.shader.antialias
    assert torch.equal(r(verts, faces, cols), tr.render(verts, faces, cam, colors=cols, mode="hard", antialias=True))
    with pytest.raises(ValueError, match="antialias=True needs one layer of hard fragments"):
        tr.render(verts, faces, cam, mode="soft", antialias=True)
    with pytest.raises(ValueError, match="antialias=True"):
        tr.Renderer(cam, mode="splat", antialias=True)


@pytest.mark.parametrize("name", ["unlit", "lit smooth", "textured"])
def test_splat_mode(name):
    verts, faces, cam, cols = _scene(size=48)
    kw = _options(verts, faces)[name]
    kw.setdefault("colors", cols)
    bg = torch.tensor([0.1, 0.2, 0.3], dtype=D)
    out, frags = tr.render(verts, faces, cam, mode="splat", background=bg, return_fragments=True, **kw)
    hard = tr.render(verts, faces, cam, mode="hard", background=bg, cull_backfaces=True, **kw)
    assert frags.face_id.shape == (1, 2, 48, 48)
    assert torch.equal(frags.face_id[:, 0], tr.render(verts, faces, cam, mode="hard", cull_backfaces=True,
                                                      return_fragments=True)[1].face_id)
    # far from the mesh: exactly the background and alpha 0
    far = (frags.face_id[:, 0] < 0)
    far = far & torch.nn.functional.max_pool2d(far[:, None].double() * -1.0, 3, 1, 1)[:, 0].eq(-1.0)
    assert torch.equal(out[..., :3][far], bg.expand(int(far.sum()), 3)) and float(out[..., 3][far].abs().max()) == 0
    # inside, splatting a covered neighbourhood is a small blur of the hard image
    inside = ~torch.nn.functional.max_pool2d((frags.face_id[:, 0] < 0)[:, None].double(), 5, 1, 2)[:, 0].bool()
    assert float((out[..., :3] - hard[..., :3])[inside].abs().mean()) < 0.05
    assert torch.allclose(out[..., 3][inside], torch.ones_like(out[..., 3][inside]))
    # silhouette gradient: the rasterize-then-splat estimate points along the finite differences
    # of the re-rasterized forward, somewhat smaller (about 0.9 for an edge moving across the
    # image, 0.66 for this sphere growing as it nears the camera; see taichirast.splat)
    g, fd = _translation_grad(lambda d: tr.render(verts + d, faces, cam, mode="splat", **kw)[..., 3].mean(), h=0.02)
    cos = float(g @ fd / (g.norm() * fd.norm()))
    assert cos > 0.99 and 0.6 < float(g.norm() / fd.norm()) < 1.1, (g, fd)


@pytest.mark.parametrize("mode", [["--mode", "hard", "--antialias"], ["--mode", "splat"], ["--mode", "soft"]])
def test_fit_silhouette_demo_in_hard_fragment_modes(tmp_path, mode):
    from demo_support import assert_outputs_written, load_demo

    demo = load_demo("fit_silhouette")
    iou = demo.main(["--steps", "30", "--size", "48", "--views", "4", "--heldout", "2", "--level", "2", "--lr", "0.02",
                     "--out", str(tmp_path), "--quiet", *mode] + (["--sigma", "3e-4"] if "soft" in mode else []))
    assert_outputs_written(tmp_path)
    assert iou > (0.85 if "soft" in mode else 0.9)  # from 0.78 for the initial sphere
    with pytest.raises(SystemExit):
        demo.main(["--mode", "hard", "--no-antialias", "--out", str(tmp_path), "--quiet"])  # no silhouette gradients
    with pytest.raises(SystemExit):
        demo.main(["--mode", "soft", "--antialias", "--out", str(tmp_path), "--quiet"])  # antialias: hard / dibr only


def test_pose_demo_from_shaded_images_with_antialias(tmp_path):
    from demo_support import load_demo

    demo = load_demo("pose_estimation")
    res = demo.main(["--steps", "60", "--size", "48", "--views", "2", "--mode", "hard", "--antialias", "--lit",
                     "--init-angle", "25", "--out", str(tmp_path), "--quiet"])
    assert res["initial_rotation_error_deg"] == pytest.approx(25.0, abs=1e-3)
    assert res["rotation_error_deg"] < 2.0
