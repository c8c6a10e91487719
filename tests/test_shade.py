"""shade: reflectance laws, attenuation, linearity, SH irradiance, gradients, bridges, bad input."""
import math

import numpy as np
import pytest
import torch

from taichirast._prims.shade import PRIM as SHADE

Y00 = 0.5 * math.sqrt(1 / math.pi)


def _unit(a):
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def _sh_basis(n):
    """Real SH Y_lm(n), bands 0-2, order (00, 1-1, 10, 11, 2-2, 2-1, 20, 21, 22), no Condon-Shortley."""
    x, y, z = n[..., 0], n[..., 1], n[..., 2]
    k1, k2 = math.sqrt(3 / (4 * math.pi)), 0.5 * math.sqrt(15 / math.pi)
    return np.stack([np.full_like(x, Y00), k1 * y, k1 * z, k1 * x, k2 * x * y, k2 * y * z,
                     0.25 * math.sqrt(5 / math.pi) * (3 * z * z - 1), k2 * x * z,
                     0.25 * math.sqrt(15 / math.pi) * (x * x - y * y)], -1)


def _ref(normals, positions, albedo, specular, shin, cam, ambient=None, ldir=None, lcol=None, ppos=None,
         pcol=None, sh=None, model="blinn_phong", k=0.0):
    """Straightforward NumPy version of the documented model (float64)."""
    n = _unit(normals)
    v = _unit(cam - positions)
    out = np.zeros_like(albedo) if ambient is None else albedo * ambient
    lights = []
    if ldir is not None:
        lights += [(np.broadcast_to(-_unit(d), n.shape), c) for d, c in zip(ldir, lcol)]
    if ppos is not None:
        for p, c in zip(ppos, pcol):
            w = p - positions
            d2 = (w * w).sum(-1, keepdims=True)
            lights.append((w / np.sqrt(d2), c / (1 + k * d2)))
    for l, c in lights:
        ndl = (n * l).sum(-1, keepdims=True)
        lit = ndl > 0
        out = out + np.where(lit, albedo * c * ndl, 0)
        if model != "lambert":
            t = (n * _unit(l + v)).sum(-1, keepdims=True) if model == "blinn_phong" else \
                ((2 * ndl * n - l) * v).sum(-1, keepdims=True)
            s = np.where(t > 0, np.maximum(t, 0) ** shin[:, None], 0)
            out = out + np.where(lit, specular * c * s, 0)
    if sh is not None:
        A = np.array([math.pi] + [2 * math.pi / 3] * 3 + [math.pi / 4] * 5)
        E = (_sh_basis(n) * A) @ sh
        out = out + albedo * E / math.pi
    return out


def _scene(N=5, L=2, P=2, seed=0):
    """Normals around +z, everything (lights, camera) above: far from every max(., 0) kink."""
    rng = np.random.default_rng(seed)
    normals = np.c_[rng.uniform(-0.3, 0.3, (N, 2)), rng.uniform(0.8, 1.5, N)]
    positions = np.c_[rng.uniform(-0.5, 0.5, (N, 2)), rng.uniform(-0.1, 0.1, N)]
    ldir = np.c_[rng.uniform(-0.3, 0.3, (L, 2)), -rng.uniform(0.8, 1.2, L)]
    ppos = np.c_[rng.uniform(-0.5, 0.5, (P, 2)), rng.uniform(2.0, 3.0, P)]
    return dict(normals=normals, positions=positions, albedo=rng.uniform(0.2, 0.9, (N, 3)),
                specular=rng.uniform(0.2, 0.9, (N, 3)), shininess=rng.uniform(2.0, 6.0, N),
                camera_center=np.array([0.2, -0.1, 3.0]), ambient=rng.uniform(0.05, 0.2, 3),
                light_dirs=ldir, light_colors=rng.uniform(0.3, 1.0, (L, 3)), point_positions=ppos,
                point_colors=rng.uniform(0.3, 1.0, (P, 3)), sh_coeffs=rng.normal(size=(9, 3)) * 0.3)


def _call_ref(s, model, k):
    return _ref(s["normals"], s["positions"], s["albedo"], s["specular"], s["shininess"], s["camera_center"],
                s.get("ambient"), s.get("light_dirs"), s.get("light_colors"), s.get("point_positions"),
                s.get("point_colors"), s.get("sh_coeffs"), model=model, k=k)


def _base(N):
    return dict(normals=np.tile([0.0, 0.0, 2.0], (N, 1)), positions=np.zeros((N, 3)),
                albedo=np.tile([0.5, 0.25, 1.0], (N, 1)), specular=np.tile([0.3, 0.6, 0.9], (N, 1)),
                shininess=np.full(N, 20.0), camera_center=np.array([0.0, 0.0, 4.0]))


def test_lambert_cosine_law():
    th = np.linspace(0, math.pi, 13)
    N = len(th)
    s = _base(1)
    col = np.array([[1.0, 2.0, 0.5]])
    out = np.stack([SHADE.numpy_call(s["normals"], s["positions"], s["albedo"], s["specular"], s["shininess"],
                                     s["camera_center"], None, -np.array([[math.sin(t), 0.0, math.cos(t)]]) * 3,
                                     col, model="lambert")[0] for t in th])
    expect = s["albedo"] * col * np.maximum(np.cos(th), 0)[:, None]
    np.testing.assert_allclose(out, expect, atol=1e-12)
    assert (out[th > math.pi / 2] == 0).all() and N == 13


@pytest.mark.parametrize("model", ["blinn_phong", "phong"])
def test_specular_peak(model):
    """Blinn-Phong peaks where n = h = normalize(l + v); Phong where v = reflect(-l, n)."""
    a = np.linspace(-0.6, 0.6, 121)
    N = len(a)
    s = _base(N)
    l = _unit(np.array([0.6, 0.0, 1.0]))
    lcol = np.array([[1.0, 1.0, 1.0]])
    if model == "blinn_phong":
        v = np.array([0.0, 0.0, 1.0])
        half = 0.5 * math.atan2(l[0], l[2])  # h = normalize(l + v) bisects l and v = +z
        s["normals"] = np.c_[np.sin(half + a), np.zeros(N), np.cos(half + a)]  # swept in the xz plane around h
        s["camera_center"] = v * 5.0
        peak = _unit(l + v)
    else:
        ang = math.atan2(l[0], l[2])  # mirror direction of l about n = +z is at angle -ang
        vs = np.c_[np.sin(-ang + a), np.zeros(N), np.cos(-ang + a)]  # views swept around the mirror direction
        s["positions"] = -vs * 5.0  # camera at the origin
        s["camera_center"] = np.zeros(3)
        peak = 2 * l[2] * np.array([0, 0, 1.0]) - l
    out = SHADE.numpy_call(**s, light_dirs=-l[None], light_colors=lcol, model=model)
    diffuse = SHADE.numpy_call(**s, light_dirs=-l[None], light_colors=lcol, model="lambert")
    spec = (out - diffuse) / s["specular"]
    i = int(np.argmax(spec[:, 0]))
    assert i == N // 2 and abs(a[i]) < 1e-12
    np.testing.assert_allclose(spec[i], 1.0, rtol=1e-12)  # max(.)^shininess = 1 at the peak
    if model == "blinn_phong":
        np.testing.assert_allclose(s["normals"][i], peak, atol=1e-12)
    else:
        np.testing.assert_allclose(vs[i], peak, atol=1e-12)
    assert (np.diff(spec[: i + 1, 0]) > 0).all() and (np.diff(spec[i:, 0]) < 0).all()
    np.testing.assert_allclose(out, _call_ref(dict(s, light_dirs=-l[None], light_colors=lcol), model, 0.0),
                               rtol=1e-12, atol=1e-12)


def test_point_light_attenuation():
    d = np.array([0.5, 1.0, 2.0, 4.0])
    N = len(d)
    s = _base(N)
    s["positions"] = np.c_[np.zeros((N, 2)), -d]  # light at the origin, straight above each point
    col = np.array([[2.0, 1.0, 0.5]])
    for k in (0.0, 0.25, 1.0):
        out = SHADE.numpy_call(**s, point_positions=np.zeros((1, 3)), point_colors=col, model="lambert",
                               attenuation_k=k)
        np.testing.assert_allclose(out, s["albedo"] * col / (1 + k * d[:, None] ** 2), rtol=1e-12)


def test_lights_add_linearly_and_ambient_only():
    s = _scene(N=6, L=3, P=2, seed=4)
    lights = {k: s.pop(k) for k in ("ambient", "light_dirs", "light_colors", "point_positions", "point_colors",
                                    "sh_coeffs")}
    for model in ("lambert", "phong", "blinn_phong"):
        kw = dict(model=model, attenuation_k=0.3)
        total = SHADE.numpy_call(**s, **lights, **kw)
        parts = SHADE.numpy_call(**s, ambient=lights["ambient"], **kw)
        np.testing.assert_allclose(parts, s["albedo"] * lights["ambient"], rtol=1e-12)  # ambient only
        for j in range(3):
            parts = parts + SHADE.numpy_call(**s, light_dirs=lights["light_dirs"][j:j + 1],
                                             light_colors=lights["light_colors"][j:j + 1], **kw)
        for j in range(2):
            parts = parts + SHADE.numpy_call(**s, point_positions=lights["point_positions"][j:j + 1],
                                             point_colors=lights["point_colors"][j:j + 1], **kw)
        parts = parts + SHADE.numpy_call(**s, sh_coeffs=lights["sh_coeffs"], **kw)
        np.testing.assert_allclose(total, parts, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(total, _call_ref(dict(s, **lights), model, 0.3), rtol=1e-12, atol=1e-12)
    assert (SHADE.numpy_call(**s) == 0).all()  # no light at all


def test_sh_constant_environment():
    """Only L00: radiance L00 Y00 everywhere, irradiance E = pi L00 Y00, colour albedo E / pi."""
    rng = np.random.default_rng(2)
    N = 8
    s = _base(N)
    s["normals"] = rng.normal(size=(N, 3))
    sh = np.zeros((9, 3))
    sh[0] = [1.0, 2.0, 3.0]
    out = SHADE.numpy_call(**s, sh_coeffs=sh)
    E = math.pi * sh[0] * Y00
    np.testing.assert_allclose(out, s["albedo"] * E / math.pi, rtol=1e-12)
    np.testing.assert_allclose(math.pi * Y00, 0.886227, atol=1e-6)  # Ramamoorthi & Hanrahan's c4


def test_sh_matches_hemisphere_integral():
    """E(n) = int L(w) max(n.w, 0) dw by exact quadrature (Gauss-Legendre in cos, uniform in phi)."""
    rng = np.random.default_rng(3)
    N = 6
    s = _base(N)
    s["normals"] = _unit(rng.normal(size=(N, 3)))
    s["albedo"] = np.ones((N, 3))
    sh = rng.normal(size=(9, 3))
    out = SHADE.numpy_call(**s, sh_coeffs=sh)
    mu, wmu = np.polynomial.legendre.leggauss(16)
    mu, wmu = 0.5 * (mu + 1), 0.5 * wmu  # [0, 1]
    phi = np.arange(32) * 2 * math.pi / 32
    for i, n in enumerate(s["normals"]):
        t1 = _unit(np.cross(n, [0.3, 0.5, 0.8]))
        t2 = np.cross(n, t1)
        st = np.sqrt(1 - mu ** 2)
        w = (mu[:, None, None] * n + st[:, None, None] * (np.cos(phi)[None, :, None] * t1
                                                          + np.sin(phi)[None, :, None] * t2))
        radiance = _sh_basis(w) @ sh  # (16, 32, 3)
        E = np.einsum("ijc,i->c", radiance * mu[:, None, None], wmu) * (2 * math.pi / 32)
        np.testing.assert_allclose(out[i] * math.pi, E, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("model", ["lambert", "phong", "blinn_phong"])
def test_gradcheck_all_inputs(model):
    s = _scene(N=4, L=2, P=2, seed=1)
    ref = _call_ref(s, model, 0.2)
    # away from the kinks: every light lights every point, specular lobes strictly positive
    n, v = _unit(s["normals"]), _unit(s["camera_center"] - s["positions"])
    for l in list(-_unit(s["light_dirs"])) + [_unit(p - s["positions"]) for p in s["point_positions"]]:
        assert ((n * l).sum(-1) > 0.3).all()
        t = (n * _unit(l + v)).sum(-1) if model != "phong" else ((2 * (n * l).sum(-1, keepdims=True) * n - l) * v).sum(-1)
        assert (t > 0.3).all()
    names = list(s)
    ts = [torch.tensor(s[k], requires_grad=True) for k in names]

    def f(*xs):
        return SHADE.torch_call(*xs, model=model, attenuation_k=0.2)

    np.testing.assert_allclose(f(*ts).detach().numpy(), ref, rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(f, tuple(ts), eps=1e-6, atol=1e-7, rtol=1e-5)


def test_numpy_bridge_matches_torch_and_float32():
    s = _scene(N=7, L=1, P=2, seed=5)
    rng = np.random.default_rng(6)
    g = rng.normal(size=(7, 3))
    out, pullback = SHADE.numpy_vjp(*s.values(), model="phong", attenuation_k=0.5)
    grads = pullback(g)
    assert len(grads) == 13 and grads[12] is None  # material_ambient not given
    ts = [torch.tensor(v, requires_grad=True) for v in s.values()]
    to = SHADE.torch_call(*ts, model="phong", attenuation_k=0.5)
    np.testing.assert_array_equal(to.detach().numpy(), out)
    to.backward(torch.from_numpy(g))
    for gn, t in zip(grads, ts):
        assert gn.shape == tuple(t.shape)
        np.testing.assert_allclose(gn, t.grad.numpy(), rtol=1e-12, atol=1e-12)
    # float32 smoke: same numbers to float32 precision, float32 gradients
    s32 = {k: v.astype(np.float32) for k, v in s.items()}
    out32, pb32 = SHADE.numpy_vjp(*s32.values(), model="phong", attenuation_k=0.5)
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, out, rtol=1e-4, atol=1e-5)
    g32 = pb32(g.astype(np.float32))
    for a, b in zip(g32[:12], grads[:12]):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
    # zero normal (background): finite output, zero normal gradient
    s["normals"][0] = 0
    out, pullback = SHADE.numpy_vjp(*s.values())
    assert np.isfinite(out).all() and (pullback(g)[0][0] == 0).all()


@pytest.mark.parametrize("kw, exc, msg", [
    ({"normals": np.zeros((5, 2))}, ValueError, "normals"),
    ({"positions": np.zeros((4, 3))}, ValueError, "positions"),
    ({"albedo": np.zeros((5, 3), np.int64)}, TypeError, "albedo"),
    ({"specular": np.full((5, 3), np.nan)}, ValueError, "specular"),
    ({"shininess": np.zeros((5, 1))}, ValueError, "shininess"),
    ({"shininess": np.full(5, -1.0)}, ValueError, "shininess"),
    ({"camera_center": np.zeros(2)}, ValueError, "camera_center"),
    ({"ambient": np.zeros((1, 3))}, ValueError, "ambient"),
    ({"light_colors": None}, ValueError, "light_colors"),
    ({"light_colors": np.ones((3, 3))}, ValueError, "light_colors"),
    ({"point_positions": np.ones((2, 4))}, ValueError, "point_positions"),
    ({"sh_coeffs": np.ones((4, 3))}, ValueError, "sh_coeffs"),
    ({"sh_coeffs": np.ones((9, 3), np.float32)}, TypeError, "dtype"),
    ({"model": "cook_torrance"}, ValueError, "model"),
    ({"attenuation_k": -1.0}, ValueError, "attenuation_k"),
    ({"attenuation_k": "x"}, TypeError, "attenuation_k"),
])
def test_bad_input(kw, exc, msg):
    args = _scene(N=5, L=2, P=2)
    args.update(kw)
    with pytest.raises(exc, match=msg):
        SHADE.numpy_call(**args)
    with pytest.raises(exc, match=msg):
        SHADE.torch_call(**{k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in args.items()})
