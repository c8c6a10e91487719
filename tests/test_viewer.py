"""The viewer: ViewerState (camera, handlers, frame, gradient view) without a window, and the GGUI
window rendered offscreen (needs Vulkan, e.g. Mesa's lavapipe: skipped with a reason otherwise).

The scene is the built-in torus (asymmetric enough under orbiting once tilted) at 48 x 64 pixels.
"""
import numpy as np
import pytest
import torch

import taichirast as tr
from taichirast.live import vulkan_available
from taichirast.viewer import Viewer, ViewerState, load_view_mesh, view

SIZE = (48, 64)


@pytest.fixture(scope="module")
def mesh():
    v, f = load_view_mesh("builtin:torus")
    # tilt it so that azimuth changes are visible
    c, s = np.cos(0.6), np.sin(0.6)
    v = v @ np.array([[1, 0, 0], [0, c, -s], [0, s, c]], np.float32).T
    colors = 0.3 + 0.7 * (v - v.min(0)) / (v.max(0) - v.min(0))
    return v.astype(np.float32), f, colors.astype(np.float32)



@pytest.fixture(autouse=True)
def _in_tmp_dir(tmp_path, monkeypatch):
    """GGUI's ImGui writes imgui.ini into the working directory: keep it out of the checkout."""
    monkeypatch.chdir(tmp_path)


def _state(mesh, **kw):
    v, f, col = mesh
    return ViewerState(v, f, colors=col, size=SIZE, **kw)


def _direct(state):
    """tr.render of the state's camera, light and settings, without the viewer."""
    with torch.no_grad():
        rgba = tr.render(torch.from_numpy(np.asarray(state.verts)), state.faces, state.camera(), lights=state.lights(),
                         **state.render_kwargs())
    return rgba[0, ..., :3].numpy()


def _coverage(state):
    with torch.no_grad():
        _, frags = tr.render(state.verts, state.faces, state.camera(), mode="hard", return_fragments=True)
    return frags.face_id[0].numpy() >= 0


def _ggui_or_skip():
    if not vulkan_available():
        pytest.skip("GGUI needs Vulkan: no Vulkan loader/driver found (apt-get install mesa-vulkan-drivers libvulkan1)")


def test_load_view_mesh_builtin_and_errors(tmp_path):
    v, f = load_view_mesh("builtin:icosphere")
    assert v.dtype == np.float32 and f.dtype == np.int32 and np.linalg.norm(v, axis=1).max() == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="unknown built-in mesh"):
        load_view_mesh("builtin:nope")
    with pytest.raises(FileNotFoundError):
        load_view_mesh(tmp_path / "missing.obj")


@pytest.mark.parametrize("mode", ["hard", "soft", "dibr", "splat"])
def test_frame_is_tr_render_of_the_same_camera(mesh, mode):
    st = _state(mesh, mode=mode)
    img = st.frame()
    assert img.shape == SIZE + (3,) and img.dtype == np.float32
    np.testing.assert_allclose(img, _direct(st), atol=1e-6)
    cov = _coverage(st)
    assert 0.1 < cov.mean() < 0.9
    np.testing.assert_allclose(img[~cov].mean(0), st.background, atol=0.02)  # background where the mesh is absent


def test_orbit_keys_and_drag_change_the_camera_as_expected(mesh):
    st = _state(mesh, azimuth=0.0, elevation=10.0)
    before = st.frame()
    st.on_key("right")
    assert st.azimuth == pytest.approx(10.0)
    after = st.frame()
    assert np.abs(after - before).max() > 0.2
    ref = _state(mesh, azimuth=10.0, elevation=10.0).frame()
    np.testing.assert_allclose(after, ref, atol=1e-6)
    # left-drag by half the window width = 90 degrees of azimuth the other way; down raises the camera
    st.on_drag(0.5, 0.1, "left")
    assert st.azimuth == pytest.approx(-80.0) and st.elevation == pytest.approx(28.0)
    np.testing.assert_allclose(st.frame(), _state(mesh, azimuth=-80.0, elevation=28.0).frame(), atol=1e-6)
    st.on_key("up")
    assert st.elevation == pytest.approx(38.0)
    st.on_key("r")
    assert (st.azimuth, st.elevation) == (0.0, 10.0)
    np.testing.assert_allclose(st.frame(), before, atol=1e-6)


def test_zoom_and_pan(mesh):
    st = _state(mesh)
    cov0 = _coverage(st).mean()
    st.on_scroll(3)
    assert st.distance == pytest.approx(3.0 * 0.9 ** 3)
    assert _coverage(st).mean() > cov0 * 1.2  # closer: the mesh covers more pixels
    st.on_drag(0.0, 0.5, "right")
    assert st.distance > 3.0 * 0.9 ** 3
    st = _state(mesh)
    cols0 = np.nonzero(_coverage(st).any(0))[0]
    st.on_drag(0.2, 0.0, "middle")  # drag right: the mesh moves right in the image
    cols1 = np.nonzero(_coverage(st).any(0))[0]
    assert cols1.mean() > cols0.mean() + 5
    st.on_key("a")  # and back a little
    assert np.nonzero(_coverage(st).any(0))[0].mean() < cols1.mean()
    with pytest.raises(ValueError, match="button"):
        st.on_drag(0.1, 0.1, "fourth")


def test_mode_switching_and_sliders(mesh):
    st = _state(mesh)
    st.on_key("m")
    assert st.mode == "soft"
    st.on_key("3")
    assert st.mode == "dibr"
    st.on_key("4")
    assert st.mode == "splat"
    st.set_mode("hard")
    plain = st.frame()
    st.antialias = True  # blends silhouette pixels only
    aa = st.frame()
    changed = np.abs(aa - plain).max(-1) > 0
    assert 0 < changed.mean() < 0.2
    with pytest.raises(ValueError, match="mode"):
        st.set_mode("wire")
    st.set_mode("hard")
    dim = st.frame()
    st.light_color = np.array([1.0, 1.0, 1.0]) * 0.2
    assert st.frame().mean() < dim.mean()
    st.on_key("g")
    assert st.show_gradient and st.image().shape == SIZE + (3,)
    st.on_key("p")
    assert st.grad_param == "light_color"
    st.on_key("?")  # unknown keys are ignored
    with pytest.raises(ValueError, match="verts"):
        ViewerState(np.zeros((3, 2)), np.zeros((1, 3), np.int32))


def test_gradient_view_zero_off_the_mesh_nonzero_on_the_lit_mesh(mesh):
    st = _state(mesh, mode="hard", ambient=(0.2, 0.2, 0.2))
    cov = _coverage(st)
    g = st.gradient_view("light_direction")
    assert g.shape == SIZE
    assert np.all(g[~cov] == 0.0)
    # lit pixels: brighter than ambient alone
    unlit = _state(mesh, mode="hard", ambient=(0.2, 0.2, 0.2), light_color=(0.0, 0.0, 0.0)).frame()
    lit = cov & (st.frame().sum(-1) > unlit.sum(-1) + 0.05)
    assert lit.mean() > 0.05
    assert np.all(g[lit] > 0)
    # finite differences are linear in the light colour: d image / d colour is the shading term
    gc = st.gradient_view("light_color")
    assert np.all(gc[~cov] == 0.0) and np.all(gc[lit] > 0)
    # against a target: zero when the image equals the target, non-zero after changing the light
    st.set_target()
    assert np.abs(st.gradient_view()).max() < 1e-6
    st.light_direction = np.array([0.5, -0.6, -0.7])
    g2 = st.gradient_view()
    assert np.all(g2[~cov] == 0.0) and g2.max() > 0
    signed = st.gradient_view(component=0)
    assert signed.min() < 0 or signed.max() > 0
    with pytest.raises(ValueError, match="param"):
        st.gradient_view("fov")


def test_vertex_gradient_splatted_on_the_mesh(mesh):
    st = _state(mesh, mode="soft")
    g = st.gradient_view("vertices")
    cov = _coverage(st)
    assert np.all(g[~cov] == 0.0) and (g[cov] > 0).mean() > 0.9
    assert st.vertex_gradient().shape == (st.verts.shape[0], 3)
    img = st.gradient_image("vertices")
    assert img.shape == SIZE + (3,) and img.max() <= 1.0


def test_viewer_offscreen_pixels_match_tr_render(mesh):
    _ggui_or_skip()
    st = _state(mesh, mode="hard")
    viewer = Viewer(st, show_window=False, backend="ggui")
    try:
        viewer.draw()
        shown = viewer.read()
        assert shown.shape == SIZE + (3,)
        np.testing.assert_allclose(shown, np.clip(_direct(st), 0, 1), atol=1.5 / 255)  # 8-bit window buffer
        # simulated input: orbit by key, redraw, the window shows the new camera's render
        st.on_key("left")
        viewer.draw()
        np.testing.assert_allclose(viewer.read(), np.clip(_state(mesh, azimuth=20.0).frame(), 0, 1), atol=1.5 / 255)
        viewer.handle_input()  # offscreen: no events, no error
        viewer.run(max_frames=2)  # offscreen: returns at once
    finally:
        viewer.close()


def test_viewer_fallback_backends_and_screenshot(mesh, tmp_path):
    st = _state(mesh)
    for backend in ("gui", "image"):
        viewer = Viewer(st, show_window=False, backend=backend)
        viewer.draw()
        np.testing.assert_allclose(viewer.read(), np.clip(_direct(st), 0, 1), atol=1e-6)
        p = viewer.screenshot(tmp_path / f"{backend}.png")
        assert (tmp_path / f"{backend}.png").stat().st_size > 0 and str(p).endswith(".png")
        viewer.close()


def test_view_offscreen_writes_frame_and_gradient(tmp_path):
    paths = view("builtin:cube", size=(32, 40), show_window=False, out=str(tmp_path / "v.png"), azimuth=35.0)
    assert [p.split("/")[-1] for p in paths] == ["v.png", "v_gradient.png"]
    for p in paths:
        assert (tmp_path / p.split("/")[-1]).stat().st_size > 0


def _textured_quad(tmp_path, colour=(1.0, 0.0, 0.0)):
    """A one-quad OBJ + MTL whose map_Kd is a solid-colour PNG."""
    import imageio.v2 as imageio

    tex = np.zeros((4, 4, 3), np.uint8)
    tex[...] = (np.asarray(colour) * 255).astype(np.uint8)
    imageio.imwrite(tmp_path / "tex.png", tex)
    (tmp_path / "quad.mtl").write_text("newmtl m\nKd 1 1 1\nmap_Kd tex.png\n")
    (tmp_path / "quad.obj").write_text(
        "mtllib quad.mtl\nv -1 -1 0\nv 1 -1 0\nv 1 1 0\nv -1 1 0\n"
        "vt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\nusemtl m\nf 1/1 2/2 3/3\nf 1/1 3/3 4/4\n")
    return str(tmp_path / "quad.obj")


def test_textured_obj_is_drawn_with_its_texture(tmp_path):
    from taichirast.viewer import ViewerState, load_view_mesh, load_view_texture

    path = _textured_quad(tmp_path)
    v, f = load_view_mesh(path)
    tex = load_view_texture(path)
    assert tex is not None and tex["texture"].shape == (4, 4, 3) and tex["uv_faces"].shape == (2, 3)
    assert load_view_texture("builtin:cube") is None
    kw = dict(size=(24, 24), azimuth=0.0, elevation=0.0, ambient=(1.0, 1.0, 1.0), light_color=(0.0, 0.0, 0.0))
    textured = ViewerState(v, f, texture=tex, **kw).frame()
    plain = ViewerState(v, f, **kw).frame()
    centre = textured[12, 12]
    assert centre[0] > 0.9 and centre[1] < 0.05 and centre[2] < 0.05      # red texture, full ambient
    assert np.allclose(plain[12, 12], 0.8, atol=1e-3)                     # default grey albedo
    # the gradient splat's explicit colours replace the texture
    st = ViewerState(v, f, texture=tex, grad_param="vertices", **kw)
    assert st.vertex_gradient().shape == (4, 3)
    view = st.gradient_view()
    assert view.shape == (24, 24) and np.isfinite(view).all()


def test_textured_obj_edge_cases(tmp_path):
    """Grey + alpha textures become RGB, stray vertices do not shrink the mesh, a missing texture
    file warns and draws the mesh untextured, and the Python API draws the texture too."""
    import imageio.v2 as imageio

    from taichirast.viewer import ViewerState, load_view_scene, view

    la = np.zeros((4, 4, 2), np.uint8)
    la[..., 0], la[..., 1] = 200, 255
    imageio.imwrite(tmp_path / "la.png", la)
    (tmp_path / "q.mtl").write_text("newmtl m\nmap_Kd la.png\n")
    (tmp_path / "q.obj").write_text(
        "mtllib q.mtl\nv -1 -1 0\nv 1 -1 0\nv 1 1 0\nv -1 1 0\nv 50 0 0\n"
        "vt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\nusemtl m\nf 1/1 2/2 3/3\nf 1/1 3/3 4/4\n")
    v, f, tex = load_view_scene(str(tmp_path / "q.obj"))
    assert tex["texture"].shape == (4, 4, 3) and np.allclose(tex["texture"], 200 / 255, atol=1e-3)
    assert np.allclose(np.abs(v[:4]).max(), 1 / np.sqrt(2), atol=1e-5)      # the quad fills the unit sphere
    frame = ViewerState(v, f, texture=tex, size=(16, 16), azimuth=0.0, elevation=0.0, ambient=(1.0, 1.0, 1.0),
                        light_color=(0.0, 0.0, 0.0)).frame()
    assert np.allclose(frame[8, 8], 200 / 255, atol=2e-2)
    v2, f2, tex2 = load_view_scene(str(tmp_path / "q.obj"), texture=False)
    assert tex2 is None and f2.shape == (2, 3)
    (tmp_path / "q.mtl").write_text("newmtl m\nmap_Kd missing.png\n")
    with pytest.warns(UserWarning, match="missing.png"):
        v3, f3, tex3 = load_view_scene(str(tmp_path / "q.obj"))
    assert tex3 is None and f3.shape == (2, 3)
    with pytest.raises(ValueError, match="missing"):
        ViewerState(v, f, texture={"texture": tex["texture"]})
    (tmp_path / "q.mtl").write_text("newmtl m\nmap_Kd la.png\n")
    paths = view(str(tmp_path / "q.obj"), size=(16, 16), show_window=False, out=str(tmp_path / "v.png"),
                  azimuth=0.0, elevation=0.0, ambient=(1.0, 1.0, 1.0), light_color=(0.0, 0.0, 0.0))
    img = imageio.imread(paths[0])
    assert abs(int(img[8, 8, 0]) - 200) < 8


def test_viewer_window_fits_image_and_panel_side_by_side(mesh):
    # the window is the image plus a panel column beside it, at least 768 px wide
    assert Viewer.layout((512, 512)) == (512, 512 + Viewer.PANEL_WIDTH)
    H, W = Viewer.layout(SIZE)
    assert W >= 768 and W >= SIZE[1] + Viewer.PANEL_WIDTH and H >= SIZE[0]
    assert Viewer.layout(SIZE, show_window=False) == SIZE  # offscreen: just the image
    st = _state(mesh)
    viewer = Viewer(st, show_window=True, backend="image")  # NumPy backend: no real window needed
    try:
        assert viewer.display.size == (H, W)
        viewer.draw()
        full = viewer.display.read()
        assert full.shape == (H, W, 3)
        np.testing.assert_allclose(viewer.read(), np.clip(_direct(st), 0, 1), atol=1e-6)  # image, uncovered
        assert np.allclose(full[:, SIZE[1]:], 0.12)  # the panel column
    finally:
        viewer.close()
