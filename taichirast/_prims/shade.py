"""``shade``: per-point Lambert / Phong / Blinn-Phong shading with ambient, directional, point and
spherical-harmonics lights. Kernels and the full derivation in kernels/shade.py.

``prepare(normals, positions, albedo, specular, shininess, camera_center, ambient=None,
light_dirs=None, light_colors=None, point_positions=None, point_colors=None, sh_coeffs=None, *,
model="blinn_phong", attenuation_k=0.0, material_ambient=None)``

Shading points are flat: ``normals, positions, albedo, specular (N, 3)``, ``shininess (N,)``
(per point: broadcast per-mesh values before calling; images are reshaped to ``(B*H*W, 3)`` by the
caller). ``camera_center (3,)`` is the eye position (world space, same space as ``positions``).

* ``normals`` need not be unit length: they are normalised inside (the gradient goes through the
  normalisation). A zero normal (e.g. a background pixel) shades as ambient + SH at n = 0 and gets
  zero gradient.
* ``ambient (3,)``: adds ``albedo * material_ambient * ambient`` (None = no ambient);
  ``material_ambient (N, 3)`` is the material's ambient reflectance per point (default 1).
* directional lights: ``light_dirs (L, 3)`` is the direction the light *travels* (from the light
  towards the scene; normalised inside), ``light_colors (L, 3)``. Both or neither.
* point lights: ``point_positions (P, 3)``, ``point_colors (P, 3)``, attenuated by
  ``1 / (1 + attenuation_k * d^2)`` with ``d`` the point-to-light distance (``attenuation_k >= 0``,
  default 0 = no falloff). Both or neither.
* per light with ``n.l > 0``: ``albedo * color * (n.l)`` plus ``specular * color * s`` with
  ``s = max(n.h, 0)^shininess``, ``h = normalize(l + v)`` (``model="blinn_phong"``),
  ``s = max(r.v, 0)^shininess``, ``r = reflect(-l, n) = 2 (n.l) n - l`` (``"phong"``), or no
  specular (``"lambert"``); ``v = normalize(camera_center - position)``. No 1/pi factors, as in
  TF Graphics' reflectance conventions (``color`` is the light's intensity).
* ``sh_coeffs (9, 3)``: RGB radiance of the environment in real SH bands 0-2 (order L00, L1-1, L10,
  L11, L2-2, L2-1, L20, L21, L22; no Condon-Shortley phase, Ramamoorthi & Hanrahan 2001); adds
  ``albedo * E(n) / pi`` with ``E`` the irradiance (a constant environment of radiance ``c`` has
  ``E = pi c``, so a white surface returns ``c``).

Output ``(N, 3)`` RGB, not clamped. Differentiable in every float input (``shininess`` included;
the ``max(., 0)`` kinks and the ``n.l > 0`` switch get gradient 0). Light, camera and SH gradients
are summed in registers over chunks of ``CHUNK`` points in the kernel and over chunks here.
"""
from __future__ import annotations

from .. import _array as A
from .. import _validate as V
from .._primitive import Prepared, Primitive
from ..runtime import ensure_init

FN = "shade"

_NAMES = ("normals", "positions", "albedo", "material_ambient", "specular", "shininess", "camera_center",
          "ambient", "light_dirs", "light_colors", "point_positions", "point_colors", "sh_coeffs")


# Absent lights become small zero arrays (source None: no gradient is reported for them).
LIGHT_DUMMIES = {"ambient": (3,), "light_dirs": (1, 3), "light_colors": (1, 3), "point_positions": (1, 3),
                 "point_colors": (1, 3), "sh_coeffs": (9, 3)}


def vec3(fn, name, x, kind, like):
    return V.float_array(fn, name, x, kind, like, ndims=(1,), last=3)


def _pair(fn, dname, cname, d, c, kind, like):
    if (d is None) != (c is None):
        missing = cname if c is None else dname
        raise ValueError(f"{fn}: {dname} and {cname} must be given together ({missing} is None)")
    if d is None:
        return None, None
    d = V.float_array(fn, dname, d, kind, like, ndims=(2,), last=3)
    c = V.float_array(fn, cname, c, kind, like, ndims=(2,), last=3)
    if d.shape[0] != c.shape[0]:
        raise ValueError(f"{fn}: {dname} has {d.shape[0]} lights but {cname} has {c.shape[0]}")
    return d, c


def check_lights(fn, kind, like, ambient, light_dirs, light_colors, point_positions, point_colors, sh_coeffs):
    """Validated light arrays ``{name: array or None}`` and the numbers of directional / point lights."""
    arrs = {"ambient": None if ambient is None else vec3(fn, "ambient", ambient, kind, like)}
    arrs["light_dirs"], arrs["light_colors"] = _pair(fn, "light_dirs", "light_colors", light_dirs, light_colors,
                                                     kind, like)
    arrs["point_positions"], arrs["point_colors"] = _pair(fn, "point_positions", "point_colors", point_positions,
                                                          point_colors, kind, like)
    if sh_coeffs is not None:
        sh_coeffs = V.float_array(fn, "sh_coeffs", sh_coeffs, kind, like, ndims=(2,), last=3)
        if sh_coeffs.shape[0] != 9:
            raise ValueError(f"{fn}: sh_coeffs must have shape (9, 3) (SH bands 0-2), got {tuple(sh_coeffs.shape)}")
    arrs["sh_coeffs"] = sh_coeffs
    L = 0 if arrs["light_dirs"] is None else arrs["light_dirs"].shape[0]
    P = 0 if arrs["point_positions"] is None else arrs["point_positions"].shape[0]
    for name, n in (("light_dirs", L), ("light_colors", L), ("point_positions", P), ("point_colors", P)):
        if n == 0:
            arrs[name] = None
    return arrs, L, P


def shade(normals, positions, albedo, specular, shininess, camera_center, ambient=None,
            light_dirs=None, light_colors=None, point_positions=None, point_colors=None,
            sh_coeffs=None, *, model="blinn_phong", attenuation_k=0.0, material_ambient=None):
    """Shade points with Lambert / Phong / Blinn-Phong reflectance and ambient, directional, point and SH lights.

    Args:
        normals, positions, albedo, specular: ``(N, 3)`` (normals are normalised inside; a zero
            normal gets ambient only and zero gradient). Flatten images with ``.reshape(-1, 3)``.
        shininess: ``(N,)`` exponents >= 0.
        camera_center: ``(3,)`` world position of the eye (view vector ``v = normalize(eye - x)``).
        ambient: ``(3,)`` ambient light colour (adds ``albedo * material_ambient * ambient``).
        light_dirs, light_colors: ``(L, 3)`` directional lights; a direction is where the light
            travels (``l = -normalize(d)``).
        point_positions, point_colors: ``(P, 3)`` point lights, attenuated by ``1 / (1 + k d^2)``
            with ``k = attenuation_k``.
        sh_coeffs: ``(9, 3)`` spherical-harmonics environment (bands 0-2, Ramamoorthi & Hanrahan
            irradiance; adds ``albedo * E(n) / pi``).
        model: ``"lambert"``, ``"phong"`` or ``"blinn_phong"`` (TF Graphics' conventions: diffuse
            ``albedo c (n.l)``, specular ``specular c max(n.h, 0)^shininess`` where ``n.l > 0``).
        material_ambient: ``(N, 3)`` ambient reflectance of the material per point (default 1).

    Returns:
        ``(N, 3)`` RGB (not clamped), differentiable w.r.t. every float input.
    """
    from taichirast.kernels.shade import MODELS

    kind = V.kind_of(normals, positions, albedo, specular, shininess, camera_center, ambient, light_dirs,
                     light_colors, point_positions, point_colors, sh_coeffs, material_ambient)
    if not isinstance(model, str) or model not in MODELS:
        raise ValueError(f"{FN}: model must be one of {sorted(MODELS)}, got {model!r}")
    k = V.number(FN, "attenuation_k", attenuation_k, lo=0.0)
    normals = V.float_array(FN, "normals", normals, kind, ndims=(2,), last=3)
    like = normals
    N = normals.shape[0]
    arrs = {"normals": normals}
    for name, x in (("positions", positions), ("albedo", albedo), ("material_ambient", material_ambient),
                    ("specular", specular)):
        if x is None and name == "material_ambient":  # default 1 (not differentiable)
            arrs[name] = A.full(like, (N, 3), 1.0, A.dtype_name(like))
            continue
        x = V.float_array(FN, name, x, kind, like, ndims=(2,), last=3)
        if x.shape[0] != N:
            raise ValueError(f"{FN}: {name} must have shape ({N}, 3) like normals, got {tuple(x.shape)}")
        arrs[name] = x
    shininess = V.float_array(FN, "shininess", shininess, kind, like, ndims=(1,))
    if shininess.shape[0] != N:
        raise ValueError(f"{FN}: shininess must have shape ({N},) like normals, got {tuple(shininess.shape)}")
    if N and float(A.detach(shininess).min()) < 0:
        raise ValueError(f"{FN}: shininess must be >= 0")
    arrs["shininess"] = shininess
    arrs["camera_center"] = vec3(FN, "camera_center", camera_center, kind, like)
    lights, L, P = check_lights(FN, kind, like, ambient, light_dirs, light_colors, point_positions, point_colors,
                                sh_coeffs)
    arrs.update(lights)
    V.same_float(FN, **arrs)
    inputs, sources = [], []
    for name in _NAMES:
        x = arrs[name]
        if name == "material_ambient" and material_ambient is None:
            inputs.append(x)
            sources.append(None)
        elif x is None:
            inputs.append(A.zeros(like, LIGHT_DUMMIES[name]))
            sources.append(None)
        else:
            inputs.append(x)
            sources.append(name)
    params = {"L": L, "P": P, "k": k, "model": MODELS[model], "use_sh": int(sh_coeffs is not None)}
    return Prepared(inputs=inputs, sources=sources, params=params)


def _kernels(x):
    from taichirast.kernels import real_type, shade

    ensure_init()
    return shade.build(real_type(A.dtype_name(x)))


def forward(inputs, params):
    fwd = _kernels(inputs[0])[0]
    N = inputs[0].shape[0]
    out = A.empty(inputs[0], (N, 3))
    if N > 0:
        fwd(*inputs, out, params["L"], params["P"], params["k"], params["model"], params["use_sh"])
    return (out,), tuple(inputs)


def backward(saved, params, grads, needs):
    from taichirast.kernels.shade import CHUNK

    (g,) = grads
    if g is None or not any(needs):
        return [None] * len(saved)
    bwd = _kernels(saved[0])[1]
    normals = saved[0]
    N = normals.shape[0]
    L, P = params["L"], params["P"]
    like = normals
    R = max(1, -(-N // CHUNK))
    gn, gx, ga, gka, gs = (A.empty(like, (N, 3)) for _ in range(5))
    gsh = A.empty(like, (N,))
    gcam, gamb = A.zeros(like, (R, 3)), A.zeros(like, (R, 3))
    gld, glc = A.zeros(like, (R, max(L, 1), 3)), A.zeros(like, (R, max(L, 1), 3))
    gpp, gpc = A.zeros(like, (R, max(P, 1), 3)), A.zeros(like, (R, max(P, 1), 3))
    gsc = A.zeros(like, (R, 9, 3))
    if N > 0:
        bwd(*saved, g, gn, gx, ga, gka, gs, gsh, gcam, gamb, gld, glc, gpp, gpc, gsc, L, P, params["k"],
            params["model"], params["use_sh"])
    out = [gn, gx, ga, gka, gs, gsh] + [A.sum_axes(b, (0,)) for b in (gcam, gamb, gld, glc, gpp, gpc, gsc)]
    return [o if n else None for o, n in zip(out, needs)]


PRIM = Primitive(FN, shade, forward, backward, differentiable=_NAMES)
