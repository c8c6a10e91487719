"""Dense pure-torch SoftRas (all pixels x all faces), the comparison baseline of the benchmark.

Same formulas as taichirast.soft_rasterize (distances in NDC units with the shorter side spanning
[-1, 1], sigmoid coverage, depth softmax with background), written the obvious way with
``(B, P, F)`` intermediates and torch autograd: this is what a pure-PyTorch user writes.
"""
import torch


def _seg_dist2(p, a, b):
    e = b - a
    t = ((p - a) * e).sum(-1) / (e * e).sum(-1).clamp(min=1e-30)
    t = t.clamp(0, 1)
    n = a + t[..., None] * e
    return ((p - n) ** 2).sum(-1), t


def dense_soft_rasterize(sv, faces, colors, image_size, background, sigma=1e-4, gamma=1e-4, eps=1e-10,
                         near=0.01, far=100.0, cull_eps=1e-4):
    """sv (B, V, 3), faces (F, 3) long, colors (B, V, C) per vertex -> RGBA (B, H, W, C + 1).

    Faces with a vertex at z <= near or zero screen area are dropped, and a face contributes to a
    pixel only where D >= cull_eps, the same rules as taichirast (and PyTorch3D's blur radius).
    """
    H, W = image_size
    s = 2.0 / min(H, W)
    B = sv.shape[0]
    ys, xs = torch.meshgrid(torch.arange(H, dtype=sv.dtype, device=sv.device) + 0.5,
                            torch.arange(W, dtype=sv.dtype, device=sv.device) + 0.5, indexing="ij")
    p = torch.stack([xs, ys], -1).reshape(1, -1, 1, 2)  # (1, P, 1, 2)
    tri = sv[:, faces.long()]  # (B, F, 3, 3)
    s0, s1, s2 = (tri[:, None, :, i, :2] for i in range(3))  # (B, 1, F, 2)

    def edge(a, b):
        return (a[..., 0] - p[..., 0]) * (b[..., 1] - p[..., 1]) - (b[..., 0] - p[..., 0]) * (a[..., 1] - p[..., 1])

    E = torch.stack([edge(s1, s2), edge(s2, s0), edge(s0, s1)], -1)  # (B, P, F, 3)
    A = E.sum(-1, keepdim=True)
    face_ok = ((tri[..., 2] > near).all(-1)[:, None, :] & (A[..., 0] != 0))  # (B, P, F)
    A = torch.where(face_ok[..., None], A, torch.ones_like(A))
    a = E / A
    inside = (a >= 0).all(-1)
    d01, t01 = _seg_dist2(p, s0, s1)
    d12, t12 = _seg_dist2(p, s1, s2)
    d20, t20 = _seg_dist2(p, s2, s0)
    d = torch.stack([d01, d12, d20], -1)
    dmin, k = d.min(-1)
    x = torch.where(inside, 1.0, -1.0) * dmin * s * s / sigma
    D = torch.sigmoid(x)
    z = tri[:, None, :, :, 2]  # (B, 1, F, 3)
    z = torch.where(face_ok[..., None], z, torch.ones_like(z))
    zero = torch.zeros_like(t01)
    nearest = torch.stack([
        torch.stack([1 - t01, t01, zero], -1),
        torch.stack([zero, 1 - t12, t12], -1),
        torch.stack([t20, zero, 1 - t20], -1)], -2)  # (B, P, F, 3 edges, 3)
    abar = torch.where(inside[..., None], a, torch.gather(nearest, -2, k[..., None, None].expand(*k.shape, 1, 3))[..., 0, :])
    q = abar / z
    Q = q.sum(-1, keepdim=True)
    b = q / Q
    zp = 1.0 / Q[..., 0]
    cf = colors[:, faces.long()]  # (B, F, 3, C)
    c = torch.einsum("bpfk,bfkc->bpfc", b, cf)
    zn = (far - zp) / (far - near)
    valid = face_ok & (D >= cull_eps)
    D = torch.where(valid, D, torch.zeros_like(D))
    alpha = 1 - torch.prod(1 - D, dim=-1)
    logits = torch.where(valid, zn / gamma, torch.full_like(zn, -float("inf")))
    m = torch.maximum(logits.max(-1).values, torch.full_like(logits[..., 0], eps / gamma))
    w = D * torch.exp(logits - m[..., None])
    wb = torch.exp(eps / gamma - m)
    Z = w.sum(-1) + wb
    rgb = (torch.einsum("bpf,bpfc->bpc", w, c) + wb[..., None] * background) / Z[..., None]
    return torch.cat([rgb, alpha[..., None]], -1).reshape(B, H, W, -1)


def torch_deferred_shading(face_id, bary, verts, faces, normals, albedo, eye, ambient, light_dir, light_color,
                           specular, shininess, background):
    """Per-pixel Blinn-Phong the way a pure-PyTorch user writes it (the baseline of ``shade_fragments``).

    face_id (B, H, W), bary (B, H, W, 3) from the rasterizer; verts / normals (B, V, 3) world space;
    faces (F, 3); albedo (B, H, W, 3); eye (3,); one directional light; per-mesh specular (3,) and
    shininess (). Gathers the corners per pixel, interpolates, normalises and shades every pixel
    with torch ops and autograd; background pixels get ``background``. Returns (B, H, W, 3).
    """
    B, H, W = face_id.shape
    f = faces.long()[face_id.clamp(min=0)]                               # (B, H, W, 3)
    bidx = torch.arange(B, device=verts.device)[:, None, None, None]
    x = (bary[..., None] * verts[bidx, f]).sum(-2)                       # (B, H, W, 3)
    n = (bary[..., None] * normals[bidx, f]).sum(-2)
    n = n * torch.rsqrt((n * n).sum(-1, keepdim=True).clamp(min=1e-24))
    v = eye - x
    v = v * torch.rsqrt((v * v).sum(-1, keepdim=True).clamp(min=1e-24))
    ld = -light_dir / light_dir.norm()
    ndl = (n * ld).sum(-1, keepdim=True)
    lit = (ndl > 0).to(x.dtype)
    h = ld + v
    h = h * torch.rsqrt((h * h).sum(-1, keepdim=True).clamp(min=1e-24))
    ndh = (n * h).sum(-1, keepdim=True).clamp(min=0.0)
    spec = specular * light_color * ndh ** shininess * lit
    rgb = albedo * (ambient + light_color * ndl.clamp(min=0.0)) + spec
    cover = (face_id >= 0)[..., None].to(x.dtype)
    return rgb * cover + background * (1 - cover)
