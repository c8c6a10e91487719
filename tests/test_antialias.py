"""antialias (nvdiffrast-style analytic antialiasing): brute-force reference, gradcheck, finite
differences of silhouette gradients, float32/float64, bridges, edge topology, bad input."""
import doctest

import numpy as np
import pytest
import torch

import taichirast as tr
from taichirast import meshes
from taichirast import topology as topology_module
from taichirast._prims.antialias import PRIM
from taichirast.fragments import Fragments
from taichirast.kernels.antialias import AA_EPS, EDGE_NEAR, MAX_WALK
from taichirast.topology import EdgeTopology, edge_topology

antialias = PRIM.torch_call
antialias_np = PRIM.numpy_call


# ----------------------------------------------------------------------------- reference
def ref_antialias(color, face_id, depth, sv, faces, topo):
    """Plain loops over every pixel pair (NumPy, float64).

    Returns ``(out, margin, active, blended)``: the antialiased image; the smallest distance
    (pixels) of any pair's decision from a point where the output is not differentiable (crossing
    at a pixel centre, at the midpoint or at the tolerance bounds, edge at 45 degrees, exit edge
    through a vertex, silhouette test on the fence); the set of (batch, vertex) of the edges of
    pairs with a position gradient (crossings strictly between the two centres); and the face
    ids ``(f0, f1)`` of every blended pair.
    """
    color = np.asarray(color, np.float64)
    face_id, depth = np.asarray(face_id), np.asarray(depth, np.float64)
    sv, faces = np.asarray(sv, np.float64), np.asarray(faces)
    link = np.asarray(topo.link)

    def orientation(S, g):
        """Projective screen orientation of face g: area * sign(z0 z1 z2) > 0, and |area| / longest edge."""
        P = S[faces[g]]
        area = (P[0, 0] - P[2, 0]) * (P[1, 1] - P[2, 1]) - (P[1, 0] - P[2, 0]) * (P[0, 1] - P[2, 1])
        area *= np.prod(np.where(P[:, 2] < 0, -1.0, 1.0))
        return area > 0, abs(area) / max(np.hypot(*(P[i, :2] - P[i - 1, :2])) for i in range(3))

    B, H, W, C = color.shape
    out = color.copy()
    margin, active, blended = np.inf, set(), []
    for b in range(B):
        S = sv[b if sv.shape[0] > 1 else 0]
        for r in range(H):
            for c in range(W):
                for axis, (r1, c1) in ((0, (r, c + 1)), (1, (r + 1, c))):
                    if r1 >= H or c1 >= W or face_id[b, r, c] == face_id[b, r1, c1]:
                        continue
                    f0, f1 = face_id[b, r, c], face_id[b, r1, c1]
                    front = 1 if (f0 < 0 or (f1 >= 0 and not depth[b, r, c] < depth[b, r1, c1])) else 0
                    ref = np.array([c + 0.5, r + 0.5]) + (np.array([c1 - c, r1 - r]) if front else 0.0)
                    sign = -1.0 if front else 1.0  # direction from the front pixel to the other one
                    along, perp = axis, 1 - axis  # coordinate indices (x = 0, y = 1)

                    def crossing(g, k):
                        """Distance along the pair (from the front centre) where edge k of face g
                        crosses the pair's line, or None."""
                        A, Bv = S[faces[g, (k + 1) % 3]], S[faces[g, (k + 2) % 3]]
                        if A[2] <= EDGE_NEAR or Bv[2] <= EDGE_NEAR:
                            return None
                        na, nb = A[perp] - ref[perp], Bv[perp] - ref[perp]
                        if (na < 0) == (nb < 0):
                            return None
                        return sign * (A[along] + na / (na - nb) * (Bv[along] - A[along]) - ref[along])

                    def exit_edge(g, skip):
                        """(edge, distance along the pair) where the pair's line leaves face g."""
                        best, best_k, second = None, None, -np.inf
                        for k in range(3):
                            s = None if k == skip else crossing(g, k)
                            if s is None:
                                continue
                            if best is None or s > best:
                                second = second if best is None else best
                                best, best_k = s, k
                            else:
                                second = max(second, s)
                        return best_k, best, second

                    g, skip, hit = (f0, f1)[front], -1, None
                    other = (f0, f1)[1 - front]
                    direct = [crossing(g, k) for k in range(3) if link[g, k] >= 0 and link[g, k] >> 3 == other]
                    direct = [s for s in direct if s is not None]
                    if direct:
                        margin = min(margin, *map(abs, direct))
                    if any(s >= 0 for s in direct):
                        continue  # straight from the front face into the other pixel's face
                    for _ in range(MAX_WALK + 1):  # walk along the pair's line to a silhouette edge
                        k, s, second = exit_edge(g, skip)
                        if k is None:
                            break
                        margin = min(margin, abs(s - 1 - AA_EPS))
                        if s >= 1 + AA_EPS:
                            break
                        margin = min(margin, s - second)
                        lk = link[g, k]
                        if lk < 0:  # boundary edge
                            hit = (g, k, s)
                            break
                        n = lk >> 3
                        if n in (f0, f1):  # the surface reaches the other pixel's face
                            break
                        (og, mg), (on, mn) = orientation(S, g), orientation(S, n)
                        margin = min(margin, mg, mn)
                        if (og != on) != bool((lk >> 2) & 1):  # the two faces face opposite ways
                            hit = (g, k, s)
                            break
                        skip, g = lk & 3, n
                    if hit is None:
                        continue
                    g, k, s = hit
                    A, Bv = S[faces[g, (k + 1) % 3]], S[faces[g, (k + 2) % 3]]
                    e = Bv[:2] - A[:2]
                    margin = min(margin, abs(abs(e[perp]) - abs(e[along])) / np.hypot(*e), abs(s + AA_EPS))
                    if abs(e[perp]) < abs(e[along]) or s <= -AA_EPS:
                        continue
                    margin = min(margin, abs(s), abs(s - 1), abs(s - 0.5))
                    dc = min(max(s, 0.0), 1.0)
                    alpha = (0.5 - dc) * (-1.0 if front else 1.0)
                    if 0 < dc < 1:
                        active |= {(b, int(faces[g, (k + 1) % 3])), (b, int(faces[g, (k + 2) % 3]))}
                    p0, p1 = (b, r, c), (b, r1, c1)
                    blended.append((f0, f1))
                    tgt = p0 if alpha > 0 else p1
                    out[tgt] += alpha * (color[p1] - color[p0])
    return out, margin, active, blended


# ----------------------------------------------------------------------------- scenes
def random_triangles(seed=0, B=2, n_tri=6, H=12, W=14):
    """Separate triangles (all edges are boundary edges), overlapping, some partly off-screen."""
    g = np.random.default_rng(seed)
    pts = [g.uniform([-1, -1], [W + 1, H + 1]) + g.normal(0, 0.35 * min(H, W), (3, 2)) for _ in range(n_tri)]
    xy = np.concatenate(pts)
    Vn = xy.shape[0]
    sv = np.concatenate([np.broadcast_to(xy, (B, Vn, 2)) + g.normal(0, 0.3, (B, Vn, 2)),
                         g.uniform(1.0, 4.0, (B, Vn, 1))], -1)
    return sv, np.arange(3 * n_tri, dtype=np.int32).reshape(-1, 3)


def two_spheres(seed=0, H=14, W=16):
    """A closed icosphere with a smaller one in front of it: outer contours and an occlusion
    boundary inside the big sphere's silhouette; slightly jittered vertices."""
    v0, f0 = meshes.icosphere(1, radius=1.0)
    v1, f1 = meshes.icosphere(0, radius=0.45)
    v = np.concatenate([v0.astype(np.float64) + [0.1, 0.05, 0.0], v1.astype(np.float64) + [0.35, -0.3, 1.1]])
    f = np.concatenate([f0, f1 + len(v0)]).astype(np.int32)
    g = np.random.default_rng(seed)
    v = v + g.normal(0, 0.01, v.shape)
    return _project(v, f, H, W, eye=(0.3, 0.2, 3.6)), f


def torus_scene(seed=0, H=14, W=16):
    """A tilted torus: its inner hole and near rim make self-occlusion boundaries in one mesh."""
    v, f = meshes.torus(R=1.0, r=0.35, n_major=10, n_minor=6)
    g = np.random.default_rng(seed)
    v = v.astype(np.float64) + g.normal(0, 0.01, v.shape)
    return _project(v, f, H, W, eye=(0.0, 2.2, 2.0)), f.astype(np.int32)


def open_plane(seed=0, H=12, W=14):
    """An open, folded sheet partly off-screen (boundary edges and a fold)."""
    v, f = meshes.plane(size=2.6, segments=3)
    v = v.astype(np.float64)
    g = np.random.default_rng(seed)
    v[:, 2] += 0.5 * np.sin(2.0 * v[:, 0]) + g.normal(0, 0.02, len(v))
    v = v @ np.array([[1, 0, 0], [0, 0.8, -0.6], [0, 0.6, 0.8]]).T
    return _project(v, f, H, W, eye=(0.7, 0.4, 2.2)), f.astype(np.int32)


def floor_scene(seed=0, H=12, W=14):
    """A floor reaching behind the camera (triangles crossing the camera plane, clipped by the
    rasterizer) with an icosahedron standing on it."""
    v, f = meshes.plane(size=8.0, segments=4)
    v = v.astype(np.float64)[:, [0, 2, 1]] + [0.3, -1.0, 1.5]  # y = -1, from z = -2.5 to 5.5
    vb, fb = meshes.icosahedron(0.6)
    g = np.random.default_rng(seed)
    v = np.concatenate([v, vb.astype(np.float64) + [0.2, -0.4, 2.5]])
    v = v + g.normal(0, 0.01, v.shape)
    f = np.concatenate([f, fb + 25]).astype(np.int32)
    return _project(v, f, H, W, eye=(0.0, 0.0, 0.0), at=(0.0, -0.35, 1.0)), f


def _project(v, f, H, W, eye, at=(0.0, 0.0, 0.0)):
    cam = tr.PerspectiveCamera.look_at(torch.tensor(eye, dtype=torch.float64), torch.tensor(at, dtype=torch.float64),
                                       image_size=(H, W), fov_y=50.0, dtype=torch.float64)
    return tr.project(torch.as_tensor(v), cam).detach().numpy()


def fragments_of(sv, faces, H, W):
    fr = tr.rasterize(torch.as_tensor(sv), torch.as_tensor(faces), (H, W))
    return Fragments(*(x.detach() for x in fr))


def setup(sv, faces, H, W, C=3, seed=0, dtype=torch.float64):
    fr = fragments_of(sv, faces, H, W)
    g = torch.Generator().manual_seed(seed)
    B = fr.face_id.shape[0]
    color = torch.rand(B, H, W, C, generator=g, dtype=torch.float64).to(dtype)
    return color, fr, torch.as_tensor(sv, dtype=dtype), torch.as_tensor(faces)


SCENES = {
    "triangles": lambda: (random_triangles(seed=3), 12, 14),
    "two_spheres": lambda: (two_spheres(seed=1), 14, 16),
    "torus": lambda: (torus_scene(seed=2), 14, 16),
    "open_plane": lambda: (open_plane(seed=0), 12, 14),
    "floor": lambda: (floor_scene(seed=0), 12, 14),
}


def _scene(name):
    (sv, faces), H, W = SCENES[name]()
    return sv, faces, H, W


# ----------------------------------------------------------------------------- forward
@pytest.mark.parametrize("name", sorted(SCENES))
def test_matches_reference(name):
    sv, faces, H, W = _scene(name)
    color, fr, svt, ft = setup(sv, faces, H, W)
    topo = edge_topology(faces)
    out = antialias(color, fr, svt, ft, topo)
    ref, margin, active, _ = ref_antialias(color.numpy(), fr.face_id.numpy(), fr.depth.numpy(), sv, faces, topo)
    assert len(active) >= 6, active  # the scene exercises the blend
    assert (out != color).any()
    np.testing.assert_allclose(out.numpy(), ref, atol=1e-12, rtol=0)
    # untouched pixels stay bit-identical
    changed = np.abs(ref - color.numpy()).max(-1) > 0
    assert torch.equal(out[torch.as_tensor(~changed)], color[torch.as_tensor(~changed)])


def test_interior_occlusion_boundaries_count():
    """Pairs whose both pixels are covered (a nearer part of the mesh over a farther part) blend;
    interior edges of one smooth surface do not."""
    sv, faces, H, W = _scene("two_spheres")
    color, fr, svt, ft = setup(sv, faces, H, W)
    out = antialias(color, fr, svt, ft)
    ref, _, _, blended = ref_antialias(color.numpy(), fr.face_id.numpy(), fr.depth.numpy(), sv, faces,
                                       edge_topology(faces))
    np.testing.assert_allclose(out.numpy(), ref, atol=1e-12, rtol=0)
    # the small sphere (faces >= 80) over the big one (faces < 80)
    over = [(f0, f1) for f0, f1 in blended if min(f0, f1) >= 0 and (f0 >= 80) != (f1 >= 80)]
    assert len(over) >= 4, blended
    assert not [p for p in blended if min(p) >= 0 and (p[0] >= 80) == (p[1] >= 80)]  # no pair within one sphere
    small = fr.face_id >= 80
    inner = small.clone()  # pixels of the small sphere whose four neighbours are too
    inner[:, 1:-1, 1:-1] &= small[:, :-2, 1:-1] & small[:, 2:, 1:-1] & small[:, 1:-1, :-2] & small[:, 1:-1, 2:]
    inner[:, [0, -1]] = False
    inner[:, :, [0, -1]] = False
    assert inner.sum() >= 4 and not (out != color).any(-1)[inner].any()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_marking_is_exact(dtype):
    """Analysing only the pairs that `mark` flags gives what analysing every pair gives: the
    marking is a pure speed-up (kernel level)."""
    from taichirast.kernels import antialias as K
    from taichirast.kernels import real_type

    for name in sorted(SCENES):
        sv, faces, H, W = _scene(name)
        color, fr, svt, ft = setup(sv, faces, H, W, dtype=dtype)
        prep = PRIM.prepare(color, Fragments(fr.face_id, None, fr.depth.to(dtype)), svt, ft)
        color, sv_, fid, dep, faces_, link = prep.inputs
        k = K.build(real_type(str(dtype).split(".")[1]))
        B, Bs, Vn, F, N = color.shape[0], sv_.shape[0], sv_.shape[1], faces_.shape[0], color[..., 0].numel()
        svf = sv_.reshape(-1, 3)
        fbits = torch.empty(Bs * F, dtype=torch.int32)
        k["setup"](svf, faces_, fbits, Vn)
        res = []
        for marked in (True, False):
            alpha = torch.zeros(N, 2, dtype=dtype)
            code = torch.zeros(N, 2, dtype=torch.int32)
            seg = torch.zeros(B * H * K.ROW_SEGMENTS, dtype=torch.int32)
            if marked:
                k["mark"](svf, faces_, link, fbits, alpha, seg, B, H, W, Vn)
                n_marked = int((alpha == K.MARK).sum())
            else:
                alpha.fill_(K.MARK)
                seg.fill_(1)
            k["analyse"](svf, faces_, link, fbits, fid.reshape(N), dep.reshape(N), alpha, code, seg, H, W, Vn,
                         int(Bs == 1))
            res.append((alpha, torch.where(alpha != 0, code, 0)))
        assert torch.equal(res[0][0], res[1][0]) and torch.equal(res[0][1], res[1][1]), name
        assert (res[0][0] != 0).sum() > 0 and n_marked > 0, name


def test_constant_color_is_unchanged_and_deterministic():
    sv, faces, H, W = _scene("torus")
    _, fr, svt, ft = setup(sv, faces, H, W)
    color = torch.full((1, H, W, 2), 0.25, dtype=torch.float64)
    assert torch.equal(antialias(color, fr, svt, ft), color)
    color = torch.rand(1, H, W, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    a, b = antialias(color, fr, svt, ft), antialias(color, fr, svt, ft)
    assert torch.equal(a, b)


def test_no_nan_behind_camera_and_degenerate():
    """Arbitrary face ids over vertices behind / on the camera plane and degenerate faces."""
    g = np.random.default_rng(5)
    H, W = 10, 12
    Vn = 30
    sv = np.concatenate([g.uniform(-40, 50, (1, Vn, 2)), g.choice([-1.0, 0.0, 1e-9, 1e-5, 0.5, 2.0], (1, Vn, 1))], -1)
    sv[0, :5, :2] = g.uniform(-1e9, 1e9, (5, 2))  # projections of points near the camera plane
    faces = g.integers(0, Vn, (40, 3)).astype(np.int32)
    faces[:3, 1] = faces[:3, 0]  # degenerate
    fid = g.integers(-1, 40, (1, H, W)).astype(np.int32)
    depth = np.where(fid >= 0, g.uniform(0.1, 3, (1, H, W)), np.inf)
    svt = torch.tensor(sv, requires_grad=True)
    color = torch.rand(1, H, W, 2, dtype=torch.float64, requires_grad=True)
    out = antialias(color, Fragments(torch.tensor(fid), None, torch.tensor(depth)), svt, torch.tensor(faces))
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(svt.grad).all() and torch.isfinite(color.grad).all()


def test_floor_through_camera_plane():
    sv, faces, H, W = _scene("floor")
    assert (sv[..., 2] < 0).any()  # vertices behind the camera
    color, fr, svt, ft = setup(sv, faces, H, W)
    s = svt.clone().requires_grad_()
    out = antialias(color, fr, s, ft)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(s.grad).all()
    assert (fr.face_id >= 32).any() and (fr.face_id == -1).any()  # the icosahedron and the sky show


# ----------------------------------------------------------------------------- gradients
def _check_margin(sv, faces, fr, color, min_margin=1e-4):
    _, margin, active, _ = ref_antialias(color.detach().numpy(), fr.face_id.numpy(), fr.depth.numpy(), sv, faces,
                                      edge_topology(faces))
    assert margin > min_margin, f"test scene has a crossing {margin:.2e} px from a kink: change its seed"
    assert len(active) >= 5


@pytest.mark.parametrize("name", sorted(SCENES))
def test_gradcheck(name):
    sv, faces, H, W = _scene(name)
    color, fr, svt, ft = setup(sv, faces, H, W, C=2)
    _check_margin(sv, faces, fr, color)
    topo = edge_topology(faces)
    assert torch.autograd.gradcheck(lambda c, s: antialias(c, fr, s, ft, topo),
                                    [color.clone().requires_grad_(), svt.clone().requires_grad_()],
                                    eps=1e-6, atol=1e-6, rtol=1e-5)


def test_gradcheck_shared_vertices_over_batch():
    """(V, 3) screen vertices shared by a batch of two colour images (gradients summed)."""
    sv, faces, H, W = _scene("two_spheres")
    color, fr, svt, ft = setup(sv, faces, H, W, C=2)
    fr2 = Fragments(*(torch.cat([x, x]) for x in fr))
    color2 = torch.cat([color, color.flip(-1)])
    _check_margin(sv, faces, fr, color)
    assert torch.autograd.gradcheck(lambda c, s: antialias(c, fr2, s, ft), [color2.requires_grad_(),
                                                                            svt[0].clone().requires_grad_()],
                                    eps=1e-6, atol=1e-6, rtol=1e-5)


def test_position_gradient_only_on_crossing_edges():
    """Vertices of no blended edge crossing get exactly zero gradient; z never gets any."""
    sv, faces, H, W = _scene("two_spheres")
    color, fr, svt, ft = setup(sv, faces, H, W)
    s = svt.clone().requires_grad_()
    antialias(color, fr, s, ft).sum().backward()
    _, _, active, _ = ref_antialias(color.numpy(), fr.face_id.numpy(), fr.depth.numpy(), sv, faces,
                                 edge_topology(faces))
    mask = torch.zeros(s.shape[:2], dtype=torch.bool)
    for b, v in active:
        mask[b, v] = True
    assert mask.sum() >= 6 and (s.grad[..., :2][mask].abs().sum(-1) > 0).float().mean() > 0.8
    assert (s.grad[~mask] == 0).all() and (s.grad[..., 2] == 0).all()


def _coverage_mean(t, verts, faces, cam, H, W, aa=True):
    """Mean of the coverage channel of the (antialiased) image of ``verts + t``."""
    sv = tr.project(verts + t, cam)
    fr = tr.rasterize(sv, faces, (H, W))
    cov = tr.interpolate(torch.ones(verts.shape[0], 1, dtype=verts.dtype), faces, fr)
    img = antialias(cov, fr, sv, faces) if aa else cov
    return img.mean()


def test_translation_gradient_matches_finite_differences():
    """Silhouette gradient of the antialiased coverage w.r.t. a global translation of the mesh
    (through project and rasterize) vs central differences of the same forward; hard
    rasterization alone gives 0 there."""
    H, W = 40, 44
    v, f = meshes.icosphere(2)
    verts = torch.as_tensor(v, dtype=torch.float64)
    faces = torch.as_tensor(f)
    # the sphere is cut by the image border, so moving it changes the visible area
    cam = tr.PerspectiveCamera.look_at(torch.tensor([0.9, 0.5, 3.2], dtype=torch.float64),
                                       at=torch.tensor([0.9, 0.5, 0.0], dtype=torch.float64),
                                       image_size=(H, W), fov_y=45.0, dtype=torch.float64)
    t0 = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    _coverage_mean(t0, verts, faces, cam, H, W).backward()
    g = t0.grad.clone()
    t1 = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    _coverage_mean(t1, verts, faces, cam, H, W, aa=False).backward()
    assert t1.grad.abs().max() < 1e-12  # hard coverage: no visibility gradient
    # a step of ~0.15 px on screen: the antialiased coverage follows the true covered area, so
    # its derivative holds beyond the scale of single pixel events (without walking to the
    # silhouette edge across sub-pixel rim faces it would not: see kernels/antialias.py)
    h = 1e-2
    fd = torch.zeros(3, dtype=torch.float64)
    with torch.no_grad():
        for i in range(3):
            e = torch.zeros(3, dtype=torch.float64)
            e[i] = h
            fd[i] = (_coverage_mean(e, verts, faces, cam, H, W) - _coverage_mean(-e, verts, faces, cam, H, W)) / (2 * h)
    assert fd.abs().min() > 1e-3, fd  # all three directions change the coverage
    assert ((g - fd).abs() <= 0.02 * fd.abs()).all(), (g, fd)


def test_float32_matches_float64():
    sv, faces, H, W = _scene("torus")
    color, fr, svt, ft = setup(sv, faces, H, W)
    wgt = torch.rand(color.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    res = {}
    for dt in (torch.float32, torch.float64):
        c = color.to(dt).requires_grad_()
        s = svt.to(dt).requires_grad_()
        frd = Fragments(fr.face_id, None, fr.depth.to(dt))
        out = antialias(c, frd, s, ft)
        (out * wgt.to(dt)).sum().backward()
        res[dt] = (out.detach().double(), c.grad.double(), s.grad.double())
    for a, b in zip(res[torch.float32], res[torch.float64]):
        assert torch.allclose(a, b, atol=2e-4 * max(1.0, b.abs().max().item()), rtol=1e-4)


def test_numpy_bridge_matches_torch():
    sv, faces, H, W = _scene("two_spheres")
    color, fr, svt, ft = setup(sv, faces, H, W)
    g = torch.rand(color.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    c = color.clone().requires_grad_()
    s = svt.clone().requires_grad_()
    out = antialias(c, fr, s, ft)
    out.backward(g)
    frn = Fragments(*(None if x is None else x.numpy() for x in fr))
    topo = edge_topology(faces)
    out_np = antialias_np(color.numpy(), frn, sv, faces, topo)
    assert isinstance(out_np, np.ndarray) and np.array_equal(out_np, out.detach().numpy())
    out2, pullback = PRIM.numpy_vjp(color.numpy(), frn, sv, faces, topo)
    gc, gs = pullback(g.numpy())
    assert np.array_equal(out2, out_np)
    np.testing.assert_allclose(gc, c.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(gs, s.grad.numpy(), atol=1e-12)
    # float32 NumPy works too
    out32 = antialias_np(color.numpy().astype(np.float32), Fragments(frn.face_id, None, frn.depth.astype(np.float32)),
                         sv.astype(np.float32), faces)
    assert out32.dtype == np.float32 and np.abs(out32 - out_np).max() < 1e-4


def test_empty_mesh_and_background():
    H, W = 6, 7
    color = torch.rand(1, H, W, 3, dtype=torch.float64, requires_grad=True)
    fr = Fragments(torch.full((1, H, W), -1, dtype=torch.int32), None, torch.full((1, H, W), np.inf))
    sv = torch.zeros(1, 0, 3, dtype=torch.float64, requires_grad=True)
    out = antialias(color, fr, sv, torch.zeros(0, 3, dtype=torch.int32))
    assert torch.equal(out, color)
    out.sum().backward()
    assert torch.equal(color.grad, torch.ones_like(color)) and sv.grad.shape == (1, 0, 3)


# ----------------------------------------------------------------------------- topology
def _brute_topology(faces):
    """(neighbor, opposite) by a dict over sorted edges: the first two faces (by id) pair up."""
    faces = np.asarray(faces)
    seen = {}
    for fi, tri in enumerate(faces):
        if len(set(tri.tolist())) < 3:
            continue
        for i in range(3):
            key = tuple(sorted((int(tri[(i + 1) % 3]), int(tri[(i + 2) % 3]))))
            seen.setdefault(key, []).append((fi, i))
    nbr = -np.ones(faces.shape, np.int32)
    opp = -np.ones(faces.shape, np.int32)
    for lst in seen.values():
        if len(lst) >= 2:
            (fa, ia), (fb, ib) = lst[0], lst[1]
            opp[fa, ia], opp[fb, ib] = faces[fb, ib], faces[fa, ia]
            nbr[fa, ia], nbr[fb, ib] = fb, fa
    return nbr, opp


def test_edge_topology():
    v, f = meshes.icosphere(2)
    topo = edge_topology(f)
    assert isinstance(topo, EdgeTopology) and topo.link.dtype == np.int32 and topo.neighbor.dtype == np.int32
    assert (topo.opposite >= 0).all() and (topo.neighbor >= 0).all()  # closed mesh
    nbr, opp = _brute_topology(f)
    np.testing.assert_array_equal(topo.neighbor, nbr)
    np.testing.assert_array_equal(topo.opposite, opp)
    g = np.random.default_rng(0)
    faces = g.integers(0, 12, (60, 3))  # many non-manifold edges, duplicates and degenerate faces
    nbr, opp = _brute_topology(faces)
    t = edge_topology(faces)
    np.testing.assert_array_equal(t.neighbor, nbr)
    np.testing.assert_array_equal(t.opposite, opp)
    tt = edge_topology(torch.as_tensor(faces))
    assert torch.is_tensor(tt.link) and np.array_equal(tt.opposite.numpy(), opp)
    assert np.array_equal(tt.link.numpy(), t.link) and tt.opposite.dtype == torch.int32
    assert np.array_equal(tt.neighbor.numpy(), nbr) and tt.faces.dtype == torch.int32
    assert edge_topology(np.zeros((0, 3), np.int32)).opposite.shape == (0, 3)
    assert doctest.testmod(topology_module, optionflags=doctest.NORMALIZE_WHITESPACE).failed == 0
    with pytest.raises(ValueError, match=r"shape \(F, 3\)"):
        edge_topology(np.zeros((4, 4), np.int32))
    with pytest.raises(TypeError, match="integer"):
        edge_topology(np.zeros((4, 3)))


def test_edge_topology_speed_and_cache():
    v, f = meshes.plane(segments=2)
    assert int((edge_topology(f).opposite < 0).sum()) == 8  # 2x2 quads: 8 boundary edges
    import time

    v, f = meshes.icosphere(5)  # 20k faces
    t0 = time.perf_counter()
    edge_topology(np.tile(f, (5, 1)) + np.repeat(np.arange(5) * len(v), len(f))[:, None])  # 100k faces
    assert time.perf_counter() - t0 < 1.0
    # a cached topology gives the same image as building it inside
    sv, faces, H, W = _scene("open_plane")
    color, fr, svt, ft = setup(sv, faces, H, W)
    a = antialias(color, fr, svt, ft)
    assert torch.equal(a, antialias(color, fr, svt, ft, edge_topology(ft)))


# ----------------------------------------------------------------------------- bad input
def test_bad_input():
    sv, faces, H, W = _scene("triangles")
    color, fr, svt, ft = setup(sv, faces, H, W)
    topo = edge_topology(faces)
    with pytest.raises(ValueError, match="color must have 4 dimensions"):
        antialias(color[0], fr, svt, ft)
    with pytest.raises(ValueError, match=r"fragments.face_id must have shape \(B, H, W\)"):
        antialias(color[:, :-1], fr, svt, ft)
    with pytest.raises(ValueError, match="fragments.depth must have shape"):
        antialias(color, Fragments(fr.face_id, None, fr.depth[:, :-1]), svt, ft)
    with pytest.raises(ValueError, match="screen_verts has batch 2 but color has batch 1"):
        antialias(color[:1], Fragments(fr.face_id[:1], None, fr.depth[:1]), svt, ft)
    with pytest.raises(ValueError, match="faces has indices"):
        antialias(color, fr, svt, ft + 100)
    with pytest.raises(ValueError, match="fragments.face_id has values"):
        antialias(color, fr, svt, ft[:2])
    with pytest.raises(ValueError, match="different faces"):
        antialias(color, fr, svt, ft, edge_topology(ft.flip(0)))
    with pytest.raises(ValueError, match="topology is for 2 faces"):
        antialias(color, fr, svt, ft, edge_topology(ft[:2]))
    with pytest.raises(TypeError, match="topology must be an EdgeTopology"):
        antialias(color, fr, svt, ft, topology=topo.link)
    with pytest.raises(TypeError, match="fragments must be a taichirast.Fragments"):
        antialias(color, fr.face_id, svt, ft)
    with pytest.raises(TypeError, match="share one dtype"):
        antialias(color.float(), fr, svt, ft)
    with pytest.raises(TypeError, match="face_id must be an integer"):
        antialias(color, Fragments(fr.face_id.double(), None, fr.depth), svt, ft)
    with pytest.raises(ValueError, match="screen_verts contains NaN"):
        antialias(color, fr, svt * np.nan, ft)
    with pytest.raises(ValueError, match="topology.link has values"):
        antialias(color, fr, svt, ft, EdgeTopology(topo.faces, topo.link + 100))
    # NumPy / torch mixing in the NumPy API
    frn = Fragments(fr.face_id.numpy(), None, fr.depth.numpy())
    with pytest.raises(TypeError, match="torch tensor"):
        antialias_np(color, frn, sv, faces)
    with pytest.raises(TypeError, match="'fragments' is a torch tensor"):
        antialias_np(color.numpy(), fr, sv, faces)
    with pytest.raises(TypeError, match="'topology' is a torch tensor"):
        antialias_np(color.numpy(), frn, sv, faces, edge_topology(ft))
    # NumPy pieces in the torch API are converted (as everywhere in the torch API)
    assert torch.equal(antialias(color, frn, svt, ft, topo), antialias(color, fr, svt, ft))
