"""The live optimisation dashboard / recorder (taichirast.live) and the demos' --gui / --live path.

Headless here: GGUI offscreen when Vulkan is present (skipped otherwise), ti.GUI offscreen, and
the NumPy-only backend. Key handling is exercised by calling ``on_key`` directly.
"""
import importlib.util
import os

import numpy as np
import pytest
import torch

import taichirast as tr
from taichirast import live as L
from taichirast.live import Display, LiveOptimization, compose_dashboard

from demo_support import load_demo




@pytest.fixture(autouse=True)
def _in_tmp_dir(tmp_path, monkeypatch):
    """GGUI's ImGui writes imgui.ini into the working directory: keep it out of the checkout."""
    monkeypatch.chdir(tmp_path)


def _scene(size=24):
    v, f = tr.meshes.icosphere(1)
    cam = tr.PerspectiveCamera.look_at([[0.0, 0.0, 3.0], [0.0, 2.0, 2.5]], fov_y=40.0, image_size=(size, size))
    return torch.from_numpy(v), torch.from_numpy(f), cam


def test_environment_probes():
    assert isinstance(L.has_display(), bool) and isinstance(L.vulkan_available(), bool)
    assert L.gui_backend("image") == "image" and L.gui_backend("gui") == "gui"
    assert L.gui_backend() in ("ggui", "gui")
    with pytest.raises(ValueError, match="backend"):
        L.gui_backend("opengl")


def test_image_helpers():
    views = L.to_rgb_views(np.ones((3, 8, 10, 4), np.float32) * [0.5, 0, 0, 0.5], n=2)
    assert len(views) == 2 and views[0].shape == (8, 10, 3)
    np.testing.assert_allclose(views[0][0, 0], [0.75, 0.25, 0.25])  # premultiplied RGBA over grey 0.5
    assert L.to_rgb_views(np.zeros((8, 10)))[0].shape == (8, 10, 3)
    assert len(L.to_rgb_views(np.zeros((5, 8, 10)), n=9)) == 5  # (B, H, W) grey batch
    with pytest.raises(ValueError):
        L.to_rgb_views(np.zeros(5))
    s = L.signed_colormap(np.array([[-2.0, 0.0, 1.0]]))
    assert s[0, 0, 2] == 1.0 and s[0, 0, 0] == 0 and np.all(s[0, 1] == 0) and s[0, 2, 0] > 0
    h = L.heat_colormap(np.array([[0.0, 1.0]]))
    assert np.all(h[0, 0] == 0) and np.all(h[0, 1] == 1)
    img = np.zeros((12, 40, 3), np.float32)
    L.draw_text(img, "LOSS 1.5E-03", 1, 1)
    assert img.max() == 1.0
    c = L.loss_curve_image([1.0, 0.5, 0.1, 0.05], (60, 120), resets=[2])
    assert c.shape == (60, 120, 3) and (c[..., 0] > 0.9).sum() > 20  # the yellow curve


def test_compose_dashboard_layout_and_gradient_zero_where_equal():
    target = np.zeros((2, 16, 16, 4), np.float32)
    target[:, 4:12, 4:12] = 1.0
    current = target.copy()
    current[:, 4:12, 10:14] = 1.0
    grad = current - target
    img = compose_dashboard(target, current, grad, losses=[0.3, 0.2], views=2, cell=32)
    # 4 panels of 32 px + 5 gaps of 4 px; 16 px header, 2 rows of 36 px, the loss curve below
    assert img.shape[1] == 4 * 32 + 5 * 4 and img.shape[0] > 16 + 2 * 36
    gpanel = img[16:48, 4 + 3 * 36:4 + 3 * 36 + 32]
    dpanel = img[16:48, 4 + 2 * 36:4 + 2 * 36 + 32]
    changed = np.zeros((32, 32), bool)
    changed[8:24, 24:28] = True  # columns 12-13 of the 16 px view, upscaled x2
    assert np.all(gpanel[~changed] == 0) and np.all(gpanel[changed].max(-1) > 0)
    assert np.all(dpanel[~changed] == 0) and np.all(dpanel[changed].max(-1) > 0)
    with pytest.raises(ValueError, match="target views"):
        compose_dashboard(np.zeros((8, 8, 3)), np.zeros((9, 9, 3)))


def test_disabled_live_is_a_no_op(tmp_path):
    live = LiveOptimization("x", gui=False, out_dir=None)
    assert not live.enabled
    assert live.update(0, np.zeros((4, 4)), np.zeros((4, 4)), 1.0) is True
    assert live.close() == {"frames": []} and live.losses == []
    with pytest.raises(ValueError, match="fmt"):
        LiveOptimization(fmt="avi")


@pytest.mark.parametrize("backend", ["ggui", "gui", "image"])
def test_headless_recording_writes_frames_gif_and_loss_plot(tmp_path, backend):
    if backend == "ggui" and not L.vulkan_available():
        pytest.skip("GGUI needs Vulkan: no Vulkan loader/driver found (apt-get install mesa-vulkan-drivers libvulkan1)")
    verts, faces, cam = _scene()
    with torch.no_grad():
        target = tr.render(verts * 0.8, faces, cam, mode="hard")
    offset = torch.zeros_like(verts, requires_grad=True)
    opt = torch.optim.Adam([offset], lr=0.02)
    calls = []
    live = LiveOptimization("t", out_dir=str(tmp_path / "live"), every=2, backend=backend,
                            reset=lambda: calls.append(1), verbose=False)
    for step in range(5):
        img = tr.render(verts + offset, faces, cam, mode="soft")
        loss = ((img - target) ** 2).mean()
        assert live.update(step, target, img, loss)
        opt.zero_grad()
        loss.backward()  # the live gradient (autograd.grad with retain_graph) leaves backward intact
        opt.step()
    assert offset.grad is not None and offset.abs().sum() > 0
    out = live.close()
    names = sorted(os.path.basename(p) for p in out["frames"])
    assert names == ["frame_00000.png", "frame_00002.png", "frame_00004.png"]
    assert out["animation"].endswith("live.gif") and os.path.getsize(out["animation"]) > 0
    assert len(open(out["loss_csv"]).read().splitlines()) == 6
    if importlib.util.find_spec("matplotlib"):
        assert os.path.getsize(out["loss_plot"]) > 0
    # the written frame is what the backend displayed: the composed dashboard (8-bit for GGUI)
    shown = live.last_image
    assert shown.shape[2] == 3 and shown.max() <= 1.0
    live.on_key("r")
    assert calls == [1] and live.resets == [5]


def test_keys_pause_step_reset_and_pending_last_frame(tmp_path):
    resets = []
    live = LiveOptimization("k", out_dir=str(tmp_path), every=10, backend="image", reset=lambda: resets.append(1),
                            fmt="mp4", verbose=False)
    live.on_key(" ")
    assert live.paused
    live.on_key("s")
    assert live._step_once
    live.on_key("space")
    assert not live.paused
    live.on_key("r")
    assert resets == [1]
    img = np.random.RandomState(0).rand(6, 6, 3).astype(np.float32)
    for step in range(3):  # only step 0 is a multiple of every=10; step 2 is drawn at close()
        live.update(step, img, img * 0.5, 0.1 / (step + 1), grad=img - 0.5)
    with pytest.warns(UserWarning) if not importlib.util.find_spec("imageio_ffmpeg") else _nullcontext():
        out = live.close()
    assert [os.path.basename(p) for p in out["frames"]] == ["frame_00000.png", "frame_00002.png"]
    assert out["animation"].endswith((".mp4", ".gif"))


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def test_gui_without_display_falls_back_to_files(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(L, "has_display", lambda: False)
    live = LiveOptimization("fb", gui=True, out_dir=str(tmp_path / "o"), backend="image")
    assert not live.window and live.enabled
    assert "no display found" in capsys.readouterr().out
    live.update(0, np.zeros((4, 4)), np.ones((4, 4)), 1.0)
    assert live.close()["frames"]


def test_display_roundtrip_offscreen():
    img = np.zeros((10, 14, 3), np.float32)
    img[0, :, 0] = 1.0  # top row red
    img[:, 0, 1] = 1.0  # left column green
    for backend in ["gui", "image"] + (["ggui"] if L.vulkan_available() else []):
        d = Display("t", (10, 14), show_window=False, backend=backend)
        d.show(img)
        np.testing.assert_allclose(d.read(), img, atol=1.5 / 255)
        assert d.running and d.poll() == []
        with pytest.raises(ValueError, match="image must be"):
            d.show(np.zeros((3, 3, 3)))
        d.close()


def test_demo_live_flag_records_the_dashboard(tmp_path, capsys):
    demo = load_demo("fit_material")
    demo.main(["--mesh", "none", "--steps", "3", "--size", "24", "--views", "2", "--out", str(tmp_path), "--quiet",
               "--live", "--live-every", "2"])
    live_dir = tmp_path / "live"
    assert sorted(p.name for p in live_dir.glob("frame_*.png")) == ["frame_00000.png", "frame_00002.png"]
    assert (live_dir / "live.gif").stat().st_size > 0
    out = capsys.readouterr().out
    assert "final albedo error" in out and "live output in" in out


class _FakeWindow:
    """Stands in for a shown window: scripted key presses, records what was shown."""

    def __init__(self, size, keys):
        self.size, self.keys, self.shown, self.running, self.closed = size, list(keys), [], True, False

    def show(self, img):
        self.shown.append(img)

    def read(self):
        return self.shown[-1]

    def poll(self):
        return [self.keys.pop(0)] if self.keys else []

    def close(self):
        self.closed = True


def test_window_pause_blocks_until_step_key(monkeypatch):
    monkeypatch.setattr(L, "has_display", lambda: True)
    img = np.zeros((8, 8, 3), np.float32)
    live = LiveOptimization("w", gui=True, backend="image", verbose=False)
    assert live.window and live.out_dir is None
    size = compose_dashboard(img, img, None, [1.0], views=2, cell=128, step=0).shape[:2]
    fake = _FakeWindow(size, ["space", "n"])  # pause, then (while paused) step once
    live.display = fake
    assert live.update(0, img, img, 1.0)
    assert live.paused and len(fake.shown) >= 2  # the normal frame plus the PAUSED redraws
    fake.keys = ["space"]
    live.update(1, img, img, 0.5)
    assert not live.paused
    fake.running = False  # the user closed the window: update says so and the run goes on headless
    assert live.update(2, img, img, 0.25) is False and not live.window and fake.closed


def test_ggui_display_leaves_no_imgui_ini(tmp_path):
    """GGUI's ImGui writes imgui.ini into the working directory: Display removes the one it caused."""
    if not L.vulkan_available():
        pytest.skip("GGUI needs Vulkan")
    d = Display("t", (16, 16), show_window=False, backend="ggui")
    (tmp_path / "imgui.ini").write_text("[Window][Debug##Default]\n")  # what ImGui saves at shutdown
    d.close()
    assert not (tmp_path / "imgui.ini").exists()
    # a file that was there before the window opened is the user's: kept
    (tmp_path / "imgui.ini").write_text("mine\n")
    d = Display("t", (16, 16), show_window=False, backend="ggui")
    d.close()
    assert (tmp_path / "imgui.ini").read_text() == "mine\n"
    (tmp_path / "imgui.ini").unlink()
    L._remove_imgui_ini()  # the atexit hook: harmless when nothing is left


def test_gradient_panel_is_normalised_per_frame_and_robust_to_outliers():
    """The gradient column stays readable as the loss shrinks: no all-black panel at late steps."""
    h = w = 16
    t = np.zeros((1, h, w, 3), np.float32)
    c = np.zeros((1, h, w, 3), np.float32)
    rng = np.random.default_rng(0)
    g = rng.uniform(0.5, 1.0, (1, h, w)).astype(np.float32) * 1e-3
    g[0, 0, 0] = 1.0  # one outlier pixel (e.g. a silhouette edge) 1000x the rest
    img = compose_dashboard(t, c, g, [1.0, 0.5], views=1, cell=16)
    top, pad = 16, 4
    x0 = pad + 3 * (w + pad)
    panel = img[top:top + h, x0:x0 + w]
    assert panel[1:, 1:, 0].mean() > 0.5, panel[..., 0].mean()  # the bulk is visible, not crushed by the outlier
    # a frame whose gradient is 10^4 smaller looks the same (normalised per frame)
    img2 = compose_dashboard(t, c, g * 1e-4, [1.0, 0.5], views=1, cell=16)
    np.testing.assert_allclose(img2[top:top + h, x0:x0 + w], panel, atol=1e-5)
    assert L.gradient_scale([np.zeros((4, 4))]) == 0.0
