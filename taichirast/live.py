"""Live optimisation window and headless recorder, shared by the demos (``--gui`` / ``--live``).

A :class:`LiveOptimization` is called once per optimisation step with the target image, the
current render and the loss. It composes a dashboard — **target | current | |difference| |
gradient** (one row per view) above a loss curve — and either

* shows it in a Taichi GGUI window (``ti.ui.Window``; ``ti.GUI`` when Vulkan is missing), with
  keys ``space`` = pause / resume, ``s`` or ``n`` = one step while paused, ``r`` = reset (calls
  the demo's reset callback), ``esc`` = close the window and go on without it; or
* headless (no display, or ``record`` requested), renders the same dashboard offscreen (GGUI with
  ``show_window=False`` when Vulkan is present, else ``ti.GUI(show_gui=False)``) and writes PNG
  frames every ``every`` steps, an animated GIF (or MP4 with ``imageio-ffmpeg``), ``loss.csv`` and
  a ``loss.png`` plot (matplotlib; skipped with a warning when it is missing).

The gradient panel is the per-pixel gradient of the loss with respect to the current image,
``dL/dI`` summed over channels (red positive, blue negative, black zero), normalised per frame by
the 90th percentile of its non-zero magnitudes (:func:`gradient_scale`; larger values saturate) so
that it stays readable as the loss shrinks, i.e. exactly what backpropagation feeds into the rasterizer's backward pass at each
pixel. It is taken with ``torch.autograd.grad(loss, current, retain_graph=True)``, which only
differentiates the loss expression, not the renderer, so call :meth:`LiveOptimization.update`
*before* ``loss.backward()``. Pass ``grad=`` to show something else (any ``(H, W)`` /
``(B, H, W[, C])`` array).

Images follow the package convention: channels-last ``(B, H, W, C)`` / ``(H, W, C)`` /
``(H, W)``, row 0 at the top; RGBA is composited over grey, as in the demos' strips.

Backend choice: ``TAICHIRAST_GUI=ggui|gui|image`` forces one (``image`` = compose in NumPy only);
by default GGUI when a Vulkan loader and driver are found, else ``ti.GUI``.
"""
from __future__ import annotations

import ctypes
import glob
import os
import sys
import time
import warnings

import numpy as np

__all__ = ["LiveOptimization", "Display", "has_display", "vulkan_available", "gui_backend", "compose_dashboard",
           "draw_text", "gradient_scale", "loss_curve_image", "signed_colormap", "heat_colormap", "to_rgb_views"]

# --------------------------------------------------------------------------------------------
# environment


def has_display() -> bool:
    """Whether a window can be opened: ``DISPLAY`` / ``WAYLAND_DISPLAY`` set (always true on macOS / Windows)."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


_VULKAN = {}


def vulkan_available() -> bool:
    """Whether a Vulkan loader (``libvulkan``) and at least one installable client driver are present.

    That is what Taichi's GGUI needs, also offscreen. On Debian / Ubuntu without a GPU:
    ``apt-get install mesa-vulkan-drivers libvulkan1`` (Mesa's lavapipe software driver).
    """
    if "ok" in _VULKAN:
        return _VULKAN["ok"]
    ok = True
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libvulkan.so.1")
        except OSError:
            ok = False
        if ok:
            env = os.environ.get("VK_ICD_FILENAMES") or os.environ.get("VK_DRIVER_FILES")
            if env:
                ok = any(os.path.exists(p) for p in env.split(os.pathsep))
            else:
                dirs = ["/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d", "/usr/local/share/vulkan/icd.d",
                        os.path.expanduser("~/.local/share/vulkan/icd.d")]
                ok = any(glob.glob(os.path.join(d, "*.json")) for d in dirs)
    _VULKAN["ok"] = ok
    return ok


def gui_backend(requested: str | None = None) -> str:
    """The display backend to use: ``'ggui'`` (``ti.ui``), ``'gui'`` (``ti.GUI``) or ``'image'`` (NumPy only).

    ``requested`` (or the environment variable ``TAICHIRAST_GUI``) forces one; ``'ggui'`` is refused
    with a ``RuntimeError`` when no Vulkan driver is found. Default: GGUI if Vulkan is available,
    else ``ti.GUI``.
    """
    name = (requested or os.environ.get("TAICHIRAST_GUI", "") or "auto").strip().lower()
    if name not in ("auto", "ggui", "gui", "image"):
        raise ValueError(f"gui backend must be one of auto, ggui, gui, image; got {name!r}")
    if name == "ggui" and not vulkan_available():
        raise RuntimeError("GGUI needs Vulkan: no Vulkan loader/driver found (on Debian/Ubuntu: "
                           "apt-get install mesa-vulkan-drivers libvulkan1)")
    if name == "auto":
        name = "ggui" if vulkan_available() else "gui"
    return name


# --------------------------------------------------------------------------------------------
# a window or an offscreen canvas


def _key_name(key) -> str:
    k = str(key)
    return {" ": "space", "Escape": "escape", "Left": "left", "Right": "right", "Up": "up", "Down": "down",
            "Return": "return", "Shift": "shift", "Control": "control", "Alt": "alt", "Tab": "tab"}.get(k, k.lower())


class Display:
    """One image on screen or offscreen: GGUI (``ti.ui.Window``), ``ti.GUI`` or a plain NumPy buffer.

    ``size`` is ``(H, W)``. :meth:`show` takes an ``(H, W, 3)`` float image (row 0 at the top) and
    hands it to the backend (Taichi's canvases are x-major with y up; the flip is done here);
    :meth:`read` returns what the backend holds, converted back to ``(H, W, 3)`` float in [0, 1]
    (GGUI's buffer is 8-bit, so it matches :meth:`show`'s input to 1/255). :meth:`poll` returns the
    key presses since the last call (names such as ``'space'``, ``'r'``, ``'escape'``, ``'left'``)
    and is empty offscreen.
    """

    def __init__(self, title: str, size, show_window: bool = False, backend: str | None = None):
        from .runtime import ensure_init

        ensure_init(prefer="cpu")  # a window alone needs no GPU backend; TAICHIRAST_ARCH=cuda still wins
        import taichi as ti

        self.ti = ti
        self.size = (int(size[0]), int(size[1]))
        self.show_window = bool(show_window)
        self.backend = gui_backend(backend)
        H, W = self.size
        self._last = np.zeros((H, W, 3), np.float32)
        self.window = self.canvas = self.gui = None
        self._imgui_ini = None
        if self.backend == "ggui":
            # GGUI's Dear ImGui saves its layout to ./imgui.ini when the window goes away; remove
            # that file again at close() / exit unless it was there before (see _remove_imgui_ini)
            ini = os.path.abspath(IMGUI_INI)
            if not os.path.exists(ini):
                self._imgui_ini = ini
                _IMGUI_INIS.add(ini)
            self.window = ti.ui.Window(title, (W, H), vsync=False, show_window=self.show_window)
            self.canvas = self.window.get_canvas()
        elif self.backend == "gui":
            self.gui = ti.GUI(title, res=(W, H), show_gui=self.show_window)

    @property
    def running(self) -> bool:
        """False once the user closed the window (always True offscreen)."""
        if self.window is not None and self.show_window:
            return bool(self.window.running)
        if self.gui is not None and self.show_window:
            return bool(self.gui.running)
        return True

    def show(self, image) -> None:
        """Display ``image (H, W, 3)`` float in [0, 1] (row 0 at the top)."""
        img = np.ascontiguousarray(np.clip(np.asarray(image, np.float32)[..., :3], 0.0, 1.0))
        if img.shape[:2] != self.size:
            raise ValueError(f"Display.show: image must be {self.size} (H, W), got {img.shape[:2]}")
        self._last = img
        xy = np.ascontiguousarray(img[::-1].transpose(1, 0, 2))  # (W, H, 3), y up
        if self.window is not None:
            self.canvas.set_image(xy)
            if self.show_window:
                self.window.show()
        elif self.gui is not None:
            self.gui.set_image(xy)
            if self.show_window:
                self.gui.show()

    def read(self) -> np.ndarray:
        """The displayed image as ``(H, W, 3)`` float32, row 0 at the top (read back from the backend)."""
        if self.window is not None:
            buf = self.window.get_image_buffer_as_numpy()  # (W, H, 4), y up
        elif self.gui is not None:
            buf = self.gui.get_image()
        else:
            return self._last.copy()
        return np.ascontiguousarray(np.asarray(buf)[..., :3].transpose(1, 0, 2)[::-1]).astype(np.float32)

    def poll(self) -> list:
        """Key presses since the last call (lower-case names); empty offscreen."""
        keys = []
        if not self.show_window:
            return keys
        if self.window is not None:
            while self.window.get_event(self.ti.ui.PRESS):
                keys.append(_key_name(self.window.event.key))
        elif self.gui is not None:
            while self.gui.get_event(self.ti.GUI.PRESS):
                keys.append(_key_name(self.gui.event.key))
        return keys

    def close(self) -> None:
        """Destroy the window / canvas."""
        try:
            if self.window is not None:
                self.window.destroy()
            elif self.gui is not None:
                self.gui.close()
        except Exception:  # closing twice, or a window the user already closed
            pass
        self.window = self.gui = self.canvas = None
        if self._imgui_ini is not None:
            _remove_imgui_ini(self._imgui_ini)
            self._imgui_ini = None


IMGUI_INI = "imgui.ini"
_IMGUI_INIS = set()  # imgui.ini paths our GGUI windows may create (absent when the window opened)


def _remove_imgui_ini(path=None) -> None:
    """Delete the ``imgui.ini`` GGUI wrote into the working directory (only one that did not exist
    when our window opened), so that running the viewer or a ``--gui`` demo leaves no stray file."""
    for p in [path] if path is not None else list(_IMGUI_INIS):
        try:
            if os.path.isfile(p):
                os.remove(p)
        except OSError:
            pass
        _IMGUI_INIS.discard(p)


import atexit  # noqa: E402

atexit.register(_remove_imgui_ini)  # also when a window is never closed explicitly


# --------------------------------------------------------------------------------------------
# image composition (NumPy)

_FONT = {  # 3x5 bitmap glyphs, rows top to bottom
    "A": "010101111101101", "B": "110101110101110", "C": "011100100100011", "D": "110101101101110",
    "E": "111100110100111", "F": "111100110100100", "G": "011100101101011", "H": "101101111101101",
    "I": "111010010010111", "K": "101101110101101", "L": "100100100100111", "M": "101111111101101",
    "N": "110101101101101", "O": "010101101101010", "P": "110101110100100", "R": "110101110101101",
    "S": "011100010001110", "T": "111010010010010", "U": "101101101101111", "V": "101101101101010",
    "W": "101101111111101", "X": "101101010101101", "Y": "101101010010010", "Z": "111001010100111",
    "0": "111101101101111", "1": "010110010010111", "2": "110001010100111", "3": "110001010001110",
    "4": "101101111001001", "5": "111100110001110", "6": "011100111101111", "7": "111001010010010",
    "8": "111101111101111", "9": "111101111001110", ".": "000000000000010", "-": "000000111000000",
    ":": "000010000010000", "=": "000111000111000", "|": "010010010010010", "/": "001001010100100",
    "+": "000010111010000", "(": "010100100100010", ")": "010001001001010", " ": "000000000000000",
}


def draw_text(image, text: str, x: int, y: int, color=(1.0, 1.0, 1.0), scale: int = 2) -> np.ndarray:
    """Draw ``text`` (upper-cased; letters, digits, ``.-:=|/+()``) into ``image (H, W, 3)`` in place, top-left at ``(x, y)``."""
    col = np.asarray(color, np.float32)
    H, W = image.shape[:2]
    for i, ch in enumerate(str(text).upper()):
        glyph = _FONT.get(ch, _FONT[" "])
        for r in range(5):
            for c in range(3):
                if glyph[r * 3 + c] == "1":
                    y0, x0 = y + r * scale, x + (i * 4 + c) * scale
                    if 0 <= y0 and y0 + scale <= H and 0 <= x0 and x0 + scale <= W:
                        image[y0:y0 + scale, x0:x0 + scale] = col
    return image


def _numpy(x):
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float32)


def to_rgb_views(x, n: int = 2, background: float = 0.5) -> list:
    """``(H, W)``, ``(H, W, C)``, ``(B, H, W)`` or ``(B, H, W, C)`` (NumPy or torch) -> list of up to ``n`` ``(H, W, 3)`` RGB views.

    A 3-D array is taken as one ``(H, W, C)`` image when its last axis is 1-4 long, else as a batch
    of grey images. C = 1 is grey, C = 2 is padded, C = 4 (premultiplied RGBA, as the renderer
    returns it) is composited over ``background``.
    """
    a = _numpy(x)
    if a.ndim == 2:
        a = a[None, ..., None]
    elif a.ndim == 3:
        a = a[None] if a.shape[-1] <= 4 else a[..., None]
    if a.ndim != 4:
        raise ValueError(f"to_rgb_views: expected (H, W), (H, W, C), (B, H, W) or (B, H, W, C), got {a.shape}")
    a = a[:n]
    C = a.shape[-1]
    if C == 1:
        a = np.repeat(a, 3, -1)
    elif C == 2:
        a = np.concatenate([a, np.zeros_like(a[..., :1])], -1)
    elif C == 4:
        a = a[..., :3] + (1.0 - a[..., 3:]) * background
    elif C != 3:
        a = a[..., :3]
    return [np.nan_to_num(v) for v in a]


def signed_colormap(v, scale: float | None = None) -> np.ndarray:
    """``(H, W)`` signed values -> RGB: red positive, blue negative, black zero, normalised by ``scale`` (default max |v|)."""
    v = _numpy(v)
    s = float(np.abs(v).max()) if scale is None else float(scale)
    u = v / s if s > 0 else np.zeros_like(v)
    u = np.clip(u, -1, 1)
    mag = np.sqrt(np.abs(u))  # gamma so small gradients stay visible
    return np.stack([mag * (u > 0), 0.35 * mag, mag * (u < 0)], -1).astype(np.float32) * np.array([1.0, 1.0, 1.0], np.float32)


def heat_colormap(v, scale: float | None = None) -> np.ndarray:
    """``(H, W)`` non-negative values -> RGB heat map (black, red, yellow, white), normalised by ``scale`` (default max)."""
    v = _numpy(v)
    s = float(v.max()) if scale is None else float(scale)
    u = np.clip(v / s, 0, 1) if s > 0 else np.zeros_like(v)
    return np.stack([np.clip(3 * u, 0, 1), np.clip(3 * u - 1, 0, 1), np.clip(3 * u - 2, 0, 1)], -1).astype(np.float32)


def gradient_scale(grads, q: float = 90.0) -> float:
    """The per-frame scale of the gradient panel: the ``q``-th percentile of ``|g|`` over the pixels
    where the gradient is not zero, over all shown views (0 when it is zero everywhere).

    Each frame is normalised on its own, so the panel stays readable while the loss (and with it the
    gradient) shrinks by orders of magnitude, and a percentile rather than the maximum keeps a few
    outlier pixels from turning the rest black; magnitudes above the scale saturate.
    """
    a = np.abs(np.concatenate([np.asarray(x, np.float64).reshape(-1) for x in grads])) if len(grads) else np.zeros(0)
    a = a[np.isfinite(a) & (a > 0)]
    return float(np.percentile(a, q)) if a.size else 0.0


def _upscale(img, factor):
    return img if factor == 1 else np.repeat(np.repeat(img, factor, 0), factor, 1)


def _line(img, x0, y0, x1, y1, color):
    n = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
    xs = np.round(np.linspace(x0, x1, n)).astype(int)
    ys = np.round(np.linspace(y0, y1, n)).astype(int)
    ok = (xs >= 0) & (xs < img.shape[1]) & (ys >= 0) & (ys < img.shape[0])
    img[ys[ok], xs[ok]] = color
    img[np.clip(ys[ok] + 1, 0, img.shape[0] - 1), xs[ok]] = color  # 2 px thick


def loss_curve_image(losses, size, resets=(), title="LOSS") -> np.ndarray:
    """A loss curve ``(H, W, 3)`` drawn in NumPy (log scale when every loss is positive), with the last value as text."""
    H, W = size
    img = np.full((H, W, 3), 0.12, np.float32)
    vals = np.asarray([v for v in losses], np.float64)
    last = vals[-1] if len(vals) else float("nan")
    draw_text(img, f"{title} {last:.4E}" if len(vals) else title, 6, 5, (0.9, 0.9, 0.9))
    x0, x1, y0, y1 = 8, W - 8, 20, H - 6
    img[y1, x0:x1] = 0.4
    img[y0:y1, x0] = 0.4
    finite = vals[np.isfinite(vals)]
    if len(finite) >= 2:
        log = bool((finite > 0).all())
        yv = np.log10(np.where(np.isfinite(vals), vals, np.nan)) if log else vals
        lo, hi = np.nanmin(yv), np.nanmax(yv)
        hi = hi if hi > lo else lo + 1.0
        n = len(vals)
        px = x0 + (x1 - x0) * np.arange(n) / max(n - 1, 1)
        py = y1 - (y1 - y0) * (yv - lo) / (hi - lo)
        for i in range(n - 1):
            if np.isfinite(py[i]) and np.isfinite(py[i + 1]):
                _line(img, px[i], py[i], px[i + 1], py[i + 1], (1.0, 0.8, 0.2))
        for r in resets:
            if 0 <= r < n:
                img[y0:y1, int(px[r])] = (0.3, 0.6, 1.0)
    return img


def compose_dashboard(target, current, grad=None, losses=(), views: int = 2, cell: int = 128, step=None,
                      status: str = "", resets=()) -> np.ndarray:
    """The live dashboard ``(H, W, 3)``: columns target | current | |difference| | gradient, one row per view, loss curve below.

    ``grad`` (same batch layout as the images; summed over channels) is shown with
    :func:`signed_colormap`, normalised per frame by :func:`gradient_scale` (90th percentile of the
    non-zero magnitudes over the shown views), the absolute difference (mean over RGB) with
    :func:`heat_colormap`, scaled by its maximum over the shown views. Each view is upscaled by an integer factor
    so that its height reaches ``cell`` pixels.
    """
    tv = to_rgb_views(target, views)
    cv = to_rgb_views(current, views)
    n = min(len(tv), len(cv))
    h, w = cv[0].shape[:2]
    if tv[0].shape[:2] != (h, w):
        raise ValueError(f"compose_dashboard: target views are {tv[0].shape[:2]}, current views {(h, w)}")
    diffs = [np.abs(cv[i] - tv[i]).mean(-1) for i in range(n)]
    dmax = max(float(d.max()) for d in diffs)
    if grad is not None:
        g = _numpy(grad)
        if g.ndim == 2:
            g = g[None]
        elif g.ndim == 4 or (g.ndim == 3 and g.shape[-1] <= 4 and g.shape[:2] == (h, w)):
            g = g.sum(-1) if g.ndim == 4 else g[None].sum(-1)
        gs = [np.nan_to_num(g[i]) for i in range(min(n, g.shape[0]))]
        gscale = gradient_scale(gs)
        gimgs = [signed_colormap(x, gscale) for x in gs] + [np.zeros((h, w, 3), np.float32)] * (n - len(gs))
    else:
        gimgs = [np.zeros((h, w, 3), np.float32)] * n
    f = max(1, int(np.ceil(cell / h)))
    ch, cw = h * f, w * f
    pad, top = 4, 16
    cols = 4
    Wd = cols * cw + (cols + 1) * pad
    curve_h = max(90, ch // 2 + 30)
    Hd = top + n * (ch + pad) + curve_h + pad
    out = np.full((Hd, Wd, 3), 0.08, np.float32)
    labels = ("TARGET", "CURRENT", "|DIFF|", "GRADIENT DL/DI")
    for c, lab in enumerate(labels):
        draw_text(out, lab, pad + c * (cw + pad) + 2, 3, (0.85, 0.85, 0.85))
    for i in range(n):
        row = (tv[i], cv[i], heat_colormap(diffs[i], dmax), gimgs[i])
        y = top + i * (ch + pad)
        for c, im in enumerate(row):
            x = pad + c * (cw + pad)
            out[y:y + ch, x:x + cw] = _upscale(np.clip(im, 0, 1), f)
    y = top + n * (ch + pad)
    title = "LOSS" if step is None else f"STEP {step}  LOSS"
    out[y:y + curve_h, pad:Wd - pad] = loss_curve_image(losses, (curve_h, Wd - 2 * pad), resets=resets, title=title)
    if status:
        draw_text(out, status, Wd - pad - 8 * (len(status) + 1), y + 5, (1.0, 0.4, 0.4))
    return out


# --------------------------------------------------------------------------------------------
# the live optimisation object


class LiveOptimization:
    """Per-step dashboard for an optimisation: a window (``gui=True`` with a display) or headless files.

    Args:
        name: window title and file prefix.
        gui: open a window. Without a display this falls back to headless recording into
            ``out_dir`` (default ``out/<name>/live``) with a one-line message.
        out_dir: record headless output here (PNG frames, ``live.gif`` / ``live.mp4``, ``loss.png``,
            ``loss.csv``). Also records while a window is shown.
        every: record / redraw every ``every`` steps (the window redraws every step).
        reset: callback for the ``r`` key (restore the initial parameters / optimiser state).
        fmt: ``'gif'`` or ``'mp4'`` (needs ``imageio-ffmpeg``; falls back to GIF with a warning).
        views: how many views (rows) to show. cell: minimum panel height in pixels.
        backend: ``'ggui' | 'gui' | 'image'`` (default: :func:`gui_backend`).
        verbose: print where the output goes.
        tensorboard: a :class:`taichirast.tensorboard.FitLogger` that every :meth:`update` also
            logs to (loss, renders, mesh), and :meth:`close` closes; independent of ``gui`` and
            ``out_dir``.

    When neither ``gui`` nor ``out_dir`` is set the object is disabled and :meth:`update` returns at
    once, so demos keep their default behaviour.
    """

    def __init__(self, name="optimization", gui=False, out_dir=None, every=5, reset=None, fmt="gif", views=2,
                 cell=128, fps=10, backend=None, verbose=True, tensorboard=None):
        if fmt not in ("gif", "mp4"):
            raise ValueError(f"LiveOptimization: fmt must be 'gif' or 'mp4', got {fmt!r}")
        if int(every) < 1:
            raise ValueError(f"LiveOptimization: every must be >= 1, got {every}")
        if int(fps) < 1:
            raise ValueError(f"LiveOptimization: fps must be >= 1, got {fps}")
        self.name, self.every, self.reset_fn, self.fmt = name, int(every), reset, fmt
        self.views, self.cell, self.fps, self.backend, self.verbose = int(views), int(cell), int(fps), backend, verbose
        self.window = bool(gui) and has_display()
        if gui and not self.window:
            out_dir = out_dir or os.path.join("out", name, "live")
            self._say(f"{name}: --gui: no display found, rendering offscreen to {out_dir}/ instead")
        self.out_dir = out_dir
        self.losses, self.resets, self.frames, self.written = [], [], [], []
        self.paused = False
        self._step_once = False
        self.display = None
        self.last_image = None
        self._pending = None
        self.n_updates = 0
        self.tensorboard = tensorboard  # a taichirast.tensorboard.FitLogger, or None

    def _say(self, msg):
        if self.verbose:
            print(msg, flush=True)

    @property
    def enabled(self) -> bool:
        """Whether anything is shown or recorded."""
        return self.window or self.out_dir is not None

    # -- input --
    def on_key(self, key: str) -> None:
        """Handle a key press: ``space`` pause/resume, ``s``/``n`` step once, ``r`` reset, ``escape`` close the window."""
        key = _key_name(key)
        if key == "space":
            self.paused = not self.paused
        elif key in ("s", "n"):
            self._step_once = True
        elif key == "r":
            if self.reset_fn is not None:
                self.reset_fn()
            self.resets.append(len(self.losses))
        elif key == "escape" and self.display is not None and self.window:
            self.display.close()
            self.display = None
            self.window = False

    # -- main entry --
    def update(self, step: int, target, current, loss, grad=None) -> bool:
        """Show / record one step. Call before ``loss.backward()`` (see the module docstring).

        Returns False if the window was closed during this call and nothing is being recorded
        (the optimisation may go on), True otherwise (also when the window closed but frames are
        still being recorded to ``out_dir``).
        While paused (window only) this blocks until ``space``, ``s``/``n`` or the window closes.
        """
        if self.tensorboard is not None:
            self.tensorboard.update(step, target, current, loss)
        if not self.enabled:
            return True
        loss_val = float(loss.detach()) if hasattr(loss, "detach") else float(loss)
        self.losses.append(loss_val)
        draw = self.window or step % self.every == 0
        if not draw:
            self._pending = (step, target, current, loss, grad)  # drawn at close() if it is the last
            return True
        self._pending = None
        self._draw(step, target, current, loss, grad)
        if self.window:
            return self._interact(step, target, current, loss, grad)
        return True

    def _gradient(self, current, loss, grad):
        if grad is not None:
            return grad
        try:
            import torch

            if torch.is_tensor(current) and torch.is_tensor(loss) and current.requires_grad and loss.requires_grad:
                return torch.autograd.grad(loss, current, retain_graph=True, allow_unused=True)[0]
        except (ImportError, RuntimeError):
            pass
        return None

    def _draw(self, step, target, current, loss, grad, status="", force_record=False):
        g = self._gradient(current, loss, grad)
        img = compose_dashboard(target, current, g, self.losses, views=self.views, cell=self.cell, step=step,
                                status=status, resets=self.resets)
        if self.display is not None and self.display.size != img.shape[:2]:
            self.display.close()
            self.display = None
        if self.display is None and (self.window or self.out_dir is not None):
            try:
                self.display = Display(self.name, img.shape[:2], show_window=self.window, backend=self.backend)
            except Exception as e:  # no Vulkan / X: keep going with plain images
                if self.window:
                    self._say(f"{self.name}: could not open a window ({type(e).__name__}: {e}); recording to files")
                    self.window = False
                    self.out_dir = self.out_dir or os.path.join("out", self.name, "live")
                self.display = Display(self.name, img.shape[:2], backend="image")
        self.display.show(img)
        shown = self.display.read() if not self.window else img
        self.last_image = shown
        self.n_updates += 1
        if self.out_dir is not None and not status and (force_record or step % self.every == 0):
            self._record(step, shown)
        return shown

    def _record(self, step, img):
        from .io import save_image, to_uint8

        os.makedirs(self.out_dir, exist_ok=True)
        path = os.path.join(self.out_dir, f"frame_{step:05d}.png")
        save_image(path, img)
        self.written.append(path)
        self.frames.append(to_uint8(img))

    def _interact(self, step, target, current, loss, grad):
        d = self.display
        for k in d.poll() if d is not None else ():
            self.on_key(k)
        while self.window and self.paused and not self._step_once:
            if self.display is None or not self.display.running:
                break
            self._draw(step, target, current, loss, grad, status="PAUSED")
            for k in self.display.poll():
                self.on_key(k)
            time.sleep(0.03)
        self._step_once = False
        if self.display is not None and self.window and not self.display.running:
            self.window = False
            self.display.close()
            self.display = None
            return False
        return self.window or self.out_dir is not None

    # -- output --
    def save_loss_plot(self, path) -> str | None:
        """Write the loss curve with matplotlib (log scale); returns the path, or None (with a warning) if matplotlib is missing."""
        try:
            import matplotlib

            matplotlib.use("Agg", force=False)
            import matplotlib.pyplot as plt
        except ImportError:
            warnings.warn("taichirast.live: matplotlib is not installed, skipping the loss plot "
                          "(pip install 'taichirast[gui]')")
            return None
        fig, ax = plt.subplots(figsize=(5, 3), dpi=100)
        ax.plot(np.arange(len(self.losses)), self.losses, color="tab:orange")
        if self.losses and min(self.losses) > 0:
            ax.set_yscale("log")
        for r in self.resets:
            ax.axvline(r, color="tab:blue", lw=0.8, ls="--")
        ax.set_xlabel("update")
        ax.set_ylabel("loss")
        ax.set_title(self.name)
        fig.tight_layout()
        fig.savefig(path)
        plt.close(fig)
        return path

    def close(self) -> dict:
        """Finish: draw the last step if pending, write the GIF / MP4, ``loss.csv`` and ``loss.png``; close the window.

        Returns a dict of the files written (``frames``, ``animation``, ``loss_csv``, ``loss_plot``).
        """
        out = {"frames": list(self.written)}
        if self.tensorboard is not None:
            self.tensorboard.close()
            out["tensorboard"] = self.tensorboard.logdir
        if not self.enabled:
            return out
        if self._pending is not None and self.out_dir is not None:
            step, target, current, loss, grad = self._pending
            self._pending = None
            self._draw(step, target, current, loss, grad, force_record=True)
            out["frames"] = list(self.written)
        if self.out_dir is not None:
            os.makedirs(self.out_dir, exist_ok=True)
            csv = os.path.join(self.out_dir, "loss.csv")
            with open(csv, "w") as fh:
                fh.write("update,loss\n")
                fh.writelines(f"{i},{v:.8g}\n" for i, v in enumerate(self.losses))
            out["loss_csv"] = csv
            out["loss_plot"] = self.save_loss_plot(os.path.join(self.out_dir, "loss.png"))
            if self.frames:
                out["animation"] = self._save_animation()
            self._say(f"{self.name}: live output in {self.out_dir}/ ({len(self.written)} frames, "
                      f"{os.path.basename(out.get('animation') or '-')}, loss.png)")
        if self.display is not None:
            self.display.close()
            self.display = None
        return out

    def _save_animation(self):
        import imageio.v2 as imageio

        if self.fmt == "mp4":
            try:
                import imageio_ffmpeg  # noqa: F401

                path = os.path.join(self.out_dir, "live.mp4")
                frames = [np.pad(f, ((0, (-f.shape[0]) % 16), (0, (-f.shape[1]) % 16), (0, 0))) for f in self.frames]
                imageio.mimsave(path, frames, fps=self.fps)
                return path
            except ImportError:
                warnings.warn("taichirast.live: imageio-ffmpeg is not installed, writing a GIF instead of MP4")
        path = os.path.join(self.out_dir, "live.gif")
        imageio.mimsave(path, self.frames, duration=1.0 / self.fps, loop=0)
        return path

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
