"""Non-rigid deformation energies and an as-rigid-as-possible solver (torch).

* :func:`acap_energy` -- as-conformal-as-possible energy, following TF Graphics'
  ``tfg.geometry.deformation_energy.as_conformal_as_possible.energy`` (Yoshiyasu et al. 2014,
  "As-Conformal-As-Possible Surface Registration"): each vertex carries a rotation and a scale,
  encoded as one non-unit quaternion ``q`` (``q p q*`` = ``|q|^2 R(q) p``, so ``s = |q|^2``).
* :func:`arap_energy` -- as-rigid-as-possible energy (Sorkine & Alexa 2007, eq. 3 / 7) with the
  per-vertex optimal rotations of eq. 6 computed inside.
* :func:`arap_solve` -- the alternating local/global solver of Sorkine & Alexa 2007 (Sec. 3,
  eq. 9) for handle-driven editing of small meshes.
* :func:`arap_weights` -- the undirected edges and their uniform / cotangent weights.

Conventions (DESIGN.md §2): vertices ``(V, 3)`` or ``(B, V, 3)`` float (float32 default, float64
for gradient checks); faces ``(F, 3)`` integer (int32 / int64); edges ``(E, 2)`` integer;
quaternions ``(w, x, y, z)`` -- note TF Graphics stores ``(x, y, z, w)``. The rest pose may be
``(V, 3)`` (shared) or ``(B, V, 3)``. Energies are differentiable w.r.t. the deformed vertices (and
ACAP's quaternions); every public function also accepts NumPy arrays and then returns NumPy
arrays (forward only).
"""
from __future__ import annotations


import torch

from ._numpy import numpy_compatible
from .mesh import _cot_weights, edges as _mesh_edges

__all__ = ["acap_energy", "arap_energy", "arap_solve", "arap_weights"]


# ---------------------------------------------------------------------------------- input checks
def _pts(fn, name, x):
    if not torch.is_tensor(x) or not x.is_floating_point() or x.dim() not in (2, 3) or x.shape[-1] != 3:
        got = f"{tuple(x.shape)} {x.dtype}" if torch.is_tensor(x) else type(x).__name__
        raise ValueError(f"{fn}: {name} must be a float tensor of shape (V, 3) or (B, V, 3), got {got}")
    return x if x.dim() == 3 else x[None]


def _pair(fn, verts_rest, verts_deformed):
    """-> rest (1|B, V, 3), deformed (B, V, 3), was_batched."""
    r = _pts(fn, "verts_rest", verts_rest)
    d = _pts(fn, "verts_deformed", verts_deformed)
    if r.shape[1] != d.shape[1]:
        raise ValueError(f"{fn}: verts_rest and verts_deformed must have the same number of vertices, "
                         f"got {r.shape[1]} and {d.shape[1]}")
    if r.shape[0] not in (1, d.shape[0]):
        raise ValueError(f"{fn}: verts_rest batch {r.shape[0]} does not match verts_deformed batch {d.shape[0]}")
    batched = verts_deformed.dim() == 3 or verts_rest.dim() == 3
    if d.shape[0] == 1 and r.shape[0] > 1:
        d = d.expand(r.shape[0], -1, -1)
    return r.to(d.dtype), d, batched


def _index(fn, name, x, cols, num_verts):
    if not torch.is_tensor(x) or x.dim() != 2 or x.shape[1] != cols or x.is_floating_point() or x.dtype == torch.bool:
        got = f"{tuple(x.shape)} {x.dtype}" if torch.is_tensor(x) else type(x).__name__
        raise ValueError(f"{fn}: {name} must be an integer tensor of shape (N, {cols}), got {got}")
    x = x.long()
    if x.numel() and (int(x.min()) < 0 or int(x.max()) >= num_verts):
        raise ValueError(f"{fn}: {name} index out of range [0, {num_verts}): min {int(x.min())}, max {int(x.max())}")
    return x


def _edges(fn, name, faces_or_edges, num_verts, device):
    """(F, 3) faces -> unique edges; (E, 2) edges -> as given. Returns int64 (E, 2)."""
    cols = faces_or_edges.shape[1] if torch.is_tensor(faces_or_edges) and faces_or_edges.dim() == 2 else 3
    x = _index(fn, name, faces_or_edges, 3 if cols == 3 else 2, num_verts).to(device)
    return _mesh_edges(x) if cols == 3 else x


def _directed(e):
    """Undirected (E, 2) -> directed sources and targets (2E,): (i -> j) then (j -> i)."""
    return torch.cat([e[:, 0], e[:, 1]]), torch.cat([e[:, 1], e[:, 0]])


def _per_edge(fn, name, w, B, E, like):
    """Optional per-edge weight -> (B, E) tensor (or ones)."""
    if w is None:
        return torch.ones(B, E, dtype=like.dtype, device=like.device)
    w = torch.as_tensor(w, dtype=like.dtype, device=like.device)
    if w.shape[-1:] != (E,) or w.dim() > 2:
        raise ValueError(f"{fn}: {name} must have shape ({E},) or (B, {E}), got {tuple(w.shape)}")
    return w.expand(B, E) if w.dim() == 1 else w


# ----------------------------------------------------------------------------------- rotations
def _rotate_by_quaternion(q, p):
    """``q p q*`` for (not necessarily unit) ``q = (w, u)``: ``(w^2 - u.u) p + 2 (u.p) u + 2 w u x p``.

    Equals ``|q|^2 R(q / |q|) p`` -- the scaled rotation TF Graphics' ``quaternion.rotate`` applies.
    """
    w, u = q[..., :1], q[..., 1:]
    return (w * w - (u * u).sum(-1, keepdim=True)) * p + 2.0 * (u * p).sum(-1, keepdim=True) * u \
        + 2.0 * w * torch.cross(u, p.expand_as(u), dim=-1)


@torch.no_grad()
def _procrustes(src, w, e_rest, e_def, V, with_scale=False):
    """Per-vertex best rotation (and scale) mapping rest edges onto deformed edges.

    Sorkine & Alexa 2007 eq. 5-6: ``S_i = sum_j w_ij e_ij e'_ij^T = U Sigma W^T``, ``R_i = W U^T``
    with the sign of the column of ``U`` of the smallest singular value flipped if
    ``det(W U^T) < 0``. With ``with_scale``, the optimal scale for that rotation is
    ``s_i = sum_j w_ij e'_ij . R_i e_ij / sum_j w_ij |e_ij|^2`` (clamped at 0: ``s = |q|^2 >= 0``).
    Returns ``R (B, V, 3, 3)`` and ``s (B, V)`` (ones without ``with_scale``); no gradient.
    """
    B = e_def.shape[0]
    outer = (w[..., None, None] * e_rest[..., :, None] * e_def[..., None, :])
    S = torch.zeros(B, V, 3, 3, dtype=e_def.dtype, device=e_def.device).index_add_(1, src, outer)
    U, _, Wh = torch.linalg.svd(S)
    Wm, Ut = Wh.mT, U.mT
    d = torch.sign(torch.det(Wm @ Ut))
    d = torch.where(d == 0, torch.ones_like(d), d)
    D = torch.ones(B, V, 3, dtype=S.dtype, device=S.device)
    D[..., 2] = d
    R = Wm @ (D[..., :, None] * Ut)
    s = torch.ones(B, V, dtype=S.dtype, device=S.device)
    if with_scale:
        Re = (R[:, src] @ e_rest[..., None])[..., 0]
        num = torch.zeros_like(s).index_add_(1, src, w * (e_def * Re).sum(-1))
        den = torch.zeros_like(s).index_add_(1, src, w * (e_rest * e_rest).sum(-1))
        s = torch.where(den > 0, num / den.clamp(min=1e-300), torch.ones_like(s)).clamp(min=0.0)
    return R, s


# ------------------------------------------------------------------------------------- weights
@numpy_compatible
def arap_weights(verts_rest, faces, weights: str = "cotangent"):
    """Undirected edges of ``faces`` and their ARAP weights on the rest pose.

    ``weights="uniform"``: ``w_ij = 1``. ``"cotangent"``: ``w_ij = (cot alpha_ij + cot beta_ij) / 2``
    (Sorkine & Alexa 2007 Sec. 3; Pinkall & Polthier 1993), the angles opposite edge ``ij`` in
    its one or two faces, clamped at 0 (obtuse triangles would give negative weights and break
    the energy's positivity and the global system's definiteness).

    Returns ``(edges (E, 2) int64, w (E,) or (B, E))``, ``w`` in the dtype of ``verts_rest``.
    """
    r = _pts("arap_weights", "verts_rest", verts_rest)
    f = _index("arap_weights", "faces", faces, 3, r.shape[1]).to(r.device)
    if weights not in ("uniform", "cotangent"):
        raise ValueError(f"arap_weights: weights must be 'uniform' or 'cotangent', got {weights!r}")
    e, fe = _mesh_edges(f, return_face_edges=True)
    if weights == "uniform":
        w = torch.ones(r.shape[0], e.shape[0], dtype=r.dtype, device=r.device)
    else:
        cot = _cot_weights(r, f)  # (B, F, 3): column k = cot at corner k, opposite edge (k+1, k+2)
        w = torch.zeros(r.shape[0], e.shape[0], dtype=r.dtype, device=r.device)
        for k in range(3):  # face_edges column c is edge (c, c+1), opposite corner c+2
            w = w.index_add(1, fe[:, (k + 1) % 3], 0.5 * cot[..., k])
        w = w.clamp(min=0.0)
    return e, (w if verts_rest.dim() == 3 else w[0])


# ------------------------------------------------------------------------------------ energies
@numpy_compatible
def acap_energy(verts_rest, verts_deformed, faces_or_neighbors, quaternions=None, vertex_weight=None,
                edge_weight=None, conformal: bool = True, aggregate: bool = True):
    """As-conformal-as-possible energy (TF Graphics' ``as_conformal_as_possible.energy``).

    For every edge ``(i, j)`` two terms, one per end, each with that end's quaternion:
    ``E_ij = |w_i w_ij ((v'_i - v'_j) - q_i (v_i - v_j) q_i*)|^2`` and likewise ``E_ji`` with
    ``q_j``. ``q p q*`` rotates ``p`` by ``q / |q|`` and scales it by ``|q|^2``, so a vertex may
    rotate *and* scale freely (Yoshiyasu et al. 2014); ``conformal=False`` normalises the
    quaternions first (pure rotations: the ARAP energy of Sorkine & Alexa 2007, eq. 7).
    With ``aggregate=True`` the result is TF Graphics' ``(mean_e E_ij + mean_e E_ji) / 2``.

    Args:
        verts_rest: ``(V, 3)`` or ``(B, V, 3)`` rest pose.
        verts_deformed: ``(V, 3)`` or ``(B, V, 3)`` deformed pose (differentiable).
        faces_or_neighbors: ``(F, 3)`` faces (their unique edges are used) or ``(E, 2)`` edges.
        quaternions: ``(V, 4)`` or ``(B, V, 4)`` ``(w, x, y, z)`` per-vertex scaled rotations
            (differentiable). ``None`` uses, per vertex, the optimal rotation and scale (closed-form
            Procrustes, computed without gradient; by the envelope theorem the gradient w.r.t.
            ``verts_deformed`` is still that of the minimised energy).
        vertex_weight: optional ``(V,)`` weights ``w_i`` (default 1).
        edge_weight: optional ``(E,)`` or ``(B, E)`` weights ``w_ij`` (default 1), in the order of
            the edges given, or of ``edges(faces)`` (sorted, ``i < j``) for faces.
        conformal: allow a per-vertex scale (default); ``False``: rotation only.
        aggregate: return ``(B,)`` / scalar energies; ``False`` returns the ``(B, 2E)`` / ``(2E,)``
            terms (``E_ij`` for all edges, then ``E_ji``).

    Example:
        >>> import torch
        >>> from taichirast.geometry.deformation import acap_energy
        >>> v = torch.tensor([[0., 0, 0], [1, 0, 0], [0, 1, 0]]); f = torch.tensor([[0, 1, 2]])
        >>> float(acap_energy(v, 2 * v, f)) < 1e-10  # uniform scale costs nothing
        True
    """
    fn = "acap_energy"
    r, d, batched = _pair(fn, verts_rest, verts_deformed)
    B, V = d.shape[:2]
    e = _edges(fn, "faces_or_neighbors", faces_or_neighbors, V, d.device)
    E = e.shape[0]
    we = _per_edge(fn, "edge_weight", edge_weight, B, E, d)
    wv = _per_edge(fn, "vertex_weight", vertex_weight, 1, V, d)[0] if vertex_weight is not None else None
    src, dst = _directed(e)
    w_dir = torch.cat([we, we], -1)  # (B, 2E)
    if wv is not None:
        w_dir = w_dir * wv[src]
    e_rest = r[:, src] - r[:, dst]
    e_def = d[:, src] - d[:, dst]
    if quaternions is None:
        R, s = _procrustes(src, w_dir.detach() ** 2, e_rest.detach().expand_as(e_def), e_def.detach(), V,
                           with_scale=conformal)
        pred = s[:, src, None] * (R[:, src] @ e_rest[..., None].expand(B, -1, 3, 1))[..., 0]
    else:
        if not torch.is_tensor(quaternions) or quaternions.dim() not in (2, 3) or quaternions.shape[-2:] != (V, 4):
            got = tuple(quaternions.shape) if torch.is_tensor(quaternions) else type(quaternions).__name__
            raise ValueError(f"{fn}: quaternions must be a tensor of shape (V, 4) or (B, V, 4) with V = {V}, got {got}")
        q = quaternions.to(d.dtype)
        q = q if q.dim() == 3 else q[None]
        if q.shape[0] not in (1, B):
            raise ValueError(f"{fn}: quaternions batch {q.shape[0]} does not match verts_deformed batch {B}")
        if not conformal:
            q = q * torch.rsqrt((q * q).sum(-1, keepdim=True).clamp(min=1e-24))
        pred = _rotate_by_quaternion(q[:, src], e_rest)
    terms = ((w_dir[..., None] * (e_def - pred)) ** 2).sum(-1)  # (B, 2E)
    out = terms.mean(-1) if aggregate else terms
    return out if batched else out[0]


@numpy_compatible
def arap_energy(verts_rest, verts_deformed, faces, weights="uniform"):
    """As-rigid-as-possible energy (Sorkine & Alexa 2007, eq. 3 summed over vertices, eq. 7).

    ``E = sum_i sum_{j in N(i)} w_ij |(v'_i - v'_j) - R_i (v_i - v_j)|^2`` with each ``R_i`` the
    rotation minimising vertex ``i``'s term (eq. 6, SVD of the weighted edge covariance),
    computed without gradient: by the envelope theorem, the gradient of ``min_R E`` w.r.t. the
    deformed vertices is exactly ``dE/dv'`` at the optimal rotations. Each undirected edge
    appears twice (once per end). Zero for any rigid motion of the rest pose.

    Args:
        verts_rest: ``(V, 3)`` or ``(B, V, 3)`` rest pose (the weights are computed on it).
        verts_deformed: ``(V, 3)`` or ``(B, V, 3)`` deformed pose (differentiable).
        faces: ``(F, 3)`` integer faces.
        weights: ``"uniform"`` (default), ``"cotangent"`` (see :func:`arap_weights`) or a tensor
            ``(E,)`` / ``(B, E)`` of weights in the order of ``edges(faces)``.

    Returns:
        ``(B,)`` energies, or a scalar for un-batched inputs.
    """
    fn = "arap_energy"
    r, d, batched = _pair(fn, verts_rest, verts_deformed)
    B, V = d.shape[:2]
    f = _index(fn, "faces", faces, 3, V).to(d.device)
    if isinstance(weights, str):
        if weights not in ("uniform", "cotangent"):
            raise ValueError(f"{fn}: weights must be 'uniform', 'cotangent' or a tensor, got {weights!r}")
        e, w = arap_weights(r, f, weights)
    else:
        e = _mesh_edges(f)
        w = weights
    w = _per_edge(fn, "weights", w.detach() if torch.is_tensor(w) else w, B, e.shape[0], d)
    src, dst = _directed(e)
    w_dir = torch.cat([w, w], -1)
    e_rest = (r[:, src] - r[:, dst]).expand(B, -1, 3)
    e_def = d[:, src] - d[:, dst]
    R, _ = _procrustes(src, w_dir, e_rest, e_def.detach(), V)
    pred = (R[:, src] @ e_rest[..., None])[..., 0]
    out = (w_dir * ((e_def - pred) ** 2).sum(-1)).sum(-1)
    return out if batched else out[0]


# -------------------------------------------------------------------------------------- solver
@numpy_compatible
def arap_solve(verts_rest, faces, handle_idx, handle_pos, iterations: int = 10, weights: str = "cotangent",
               init=None, return_history: bool = False):
    """Handle-driven ARAP deformation by alternating local/global steps (Sorkine & Alexa 2007).

    Vertices ``handle_idx`` are held at ``handle_pos`` (include pinned vertices with their rest
    positions); the others minimise :func:`arap_energy`. Each iteration: local step -- the
    optimal rotation ``R_i`` per vertex for the current guess (eq. 6); global step -- the sparse
    linear system ``L p' = b`` with ``L`` the weighted graph Laplacian and
    ``b_i = sum_j w_ij / 2 (R_i + R_j)(v_i - v_j)`` (eq. 9), solved for the free vertices with a
    SciPy sparse LU factorised once. The energy never increases. The first local step on the
    default initial guess (the rest pose) gives ``R = I``, i.e. a Laplacian-editing start.
    For small to medium meshes, ``(V, 3)`` only, no gradient.

    Args:
        verts_rest: ``(V, 3)`` rest pose.
        faces: ``(F, 3)`` integer faces.
        handle_idx: ``(H,)`` distinct vertex indices (every connected component needs one).
        handle_pos: ``(H, 3)`` their target positions.
        iterations: number of local/global iterations (>= 1).
        weights: ``"cotangent"`` (default) or ``"uniform"``.
        init: optional ``(V, 3)`` initial guess (default: the rest pose).
        return_history: also return the list of ``(V, 3)`` iterates (one per iteration).

    Returns:
        ``(V, 3)`` deformed vertices (dtype of ``verts_rest``), or ``(verts, history)``.
    """
    import numpy as np
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    fn = "arap_solve"
    if not torch.is_tensor(verts_rest) or verts_rest.dim() != 2:
        got = tuple(verts_rest.shape) if torch.is_tensor(verts_rest) else type(verts_rest).__name__
        raise ValueError(f"{fn}: verts_rest must be a float tensor of shape (V, 3), got {got}")
    r = _pts(fn, "verts_rest", verts_rest)[0].detach()
    V = r.shape[0]
    f = _index(fn, "faces", faces, 3, V)
    if not torch.is_tensor(handle_idx) or handle_idx.dim() != 1 or handle_idx.is_floating_point() or handle_idx.numel() == 0:
        raise ValueError(f"{fn}: handle_idx must be a non-empty 1-D integer tensor")
    h = _index(fn, "handle_idx", handle_idx[:, None], 1, V)[:, 0].cpu()
    if torch.unique(h).numel() != h.numel():
        raise ValueError(f"{fn}: handle_idx has repeated vertices")
    if not torch.is_tensor(handle_pos) or tuple(handle_pos.shape) != (h.numel(), 3):
        got = tuple(handle_pos.shape) if torch.is_tensor(handle_pos) else type(handle_pos).__name__
        raise ValueError(f"{fn}: handle_pos must have shape ({h.numel()}, 3), got {got}")
    if int(iterations) < 1:
        raise ValueError(f"{fn}: iterations must be >= 1, got {iterations!r}")
    if weights not in ("uniform", "cotangent"):
        raise ValueError(f"{fn}: weights must be 'uniform' or 'cotangent', got {weights!r}")

    r64 = r.cpu().double()
    e, w = arap_weights(r64, f.cpu(), weights)
    ei, ej, wn = e[:, 0].numpy(), e[:, 1].numpy(), w.numpy()
    L = sp.coo_matrix((np.concatenate([-wn, -wn]), (np.concatenate([ei, ej]), np.concatenate([ej, ei]))), shape=(V, V)).tocsr()
    L = L + sp.diags(-np.asarray(L.sum(1)).ravel())
    free = np.setdiff1d(np.arange(V), h.numpy())
    p = r64.clone() if init is None else _pts(fn, "init", init)[0].detach().cpu().double().clone()
    if p.shape[0] != V:
        raise ValueError(f"{fn}: init must have shape ({V}, 3), got {tuple(p.shape)}")
    p[h] = handle_pos.detach().cpu().double()
    history = []
    if free.size:
        Lff = L[free][:, free].tocsc()
        Lfc = L[free][:, h.numpy()]
        try:
            solve = spla.factorized(Lff)
        except RuntimeError as err:  # singular: a free component without a handle
            raise ValueError(f"{fn}: handle_idx must reach every connected component (free block singular: {err})")
        rhs_c = Lfc @ p[h].numpy()
    src, dst = _directed(e)
    w_dir = torch.cat([w, w])[None]
    e_rest = (r64[src] - r64[dst])[None]
    for _ in range(int(iterations)):
        if free.size:
            R, _ = _procrustes(src, w_dir, e_rest, (p[src] - p[dst])[None], V)
            R = R[0]
            # eq. 9: b_i = sum_j w_ij / 2 (R_i + R_j) (v_i - v_j)
            t = 0.5 * w_dir[0, :, None] * ((R[src] + R[dst]) @ e_rest[0, :, :, None])[..., 0]
            b = torch.zeros(V, 3, dtype=torch.float64, device=t.device).index_add_(0, src, t).cpu().numpy()
            x = np.stack([solve(b[free, k] - rhs_c[:, k]) for k in range(3)], 1)
            p[torch.as_tensor(free, device=p.device)] = torch.as_tensor(x, device=p.device)  # CPU solve
        if return_history:
            history.append(p.to(verts_rest.dtype).to(verts_rest.device).clone())
    out = p.to(dtype=verts_rest.dtype, device=verts_rest.device)
    return (out, history) if return_history else out
