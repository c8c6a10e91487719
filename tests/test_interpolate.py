"""interpolate: closed form, broadcasting, face-varying topology, gradients, bridges, bad input."""
import numpy as np
import pytest
import torch

from taichirast._prims.interpolate import PRIM as INTERP
from taichirast.fragments import Fragments


def _fr(face_id, bary):
    return Fragments(face_id, bary, None)


def _frags(B=2, H=6, W=5, F=7, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    fid = rng.integers(-1, F, size=(B, H, W)).astype(np.int32)
    fid[0, 0, 0] = -1
    bary = rng.dirichlet(np.ones(3), size=(B, H, W)).astype(dtype)
    bary[fid < 0] = 0
    return fid, bary


def _ref(attrs, faces, fid, bary):
    attrs = attrs if attrs.ndim == 3 else attrs[None]
    B = fid.shape[0]
    out = np.zeros(fid.shape + (attrs.shape[-1],))
    for b in range(B):
        a = attrs[b if attrs.shape[0] > 1 else 0]
        m = fid[b] >= 0
        tri = faces[fid[b][m]]  # (N, 3)
        out[b][m] = np.einsum("ni,nic->nc", bary[b][m], a[tri])
    return out


@pytest.mark.parametrize("batched_attrs", [False, True])
def test_matches_closed_form(batched_attrs):
    rng = np.random.default_rng(1)
    fid, bary = _frags()
    faces = rng.integers(0, 9, size=(7, 3)).astype(np.int32)
    attrs = rng.normal(size=(2, 9, 4) if batched_attrs else (9, 4))
    out = INTERP.numpy_call(attrs, faces, _fr(fid, bary))
    assert out.shape == (2, 6, 5, 4) and out.dtype == np.float64
    np.testing.assert_allclose(out, _ref(attrs, faces, fid, bary), rtol=1e-12, atol=1e-12)
    assert (out[fid < 0] == 0).all() and np.abs(out[fid >= 0]).max() > 0.1
    # face-varying topology: per-corner attributes (3F, C) indexed by arange(3F)
    corner = rng.normal(size=(21, 2)).astype(np.float32)
    out32 = INTERP.numpy_call(corner, np.arange(21).reshape(7, 3), _fr(fid, bary.astype(np.float32)))
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, _ref(corner.astype(np.float64), np.arange(21).reshape(7, 3), fid, bary),
                               rtol=1e-5, atol=1e-6)


def test_gradcheck_attrs_and_bary():
    fid, bary = _frags(B=2, H=4, W=3)
    faces = torch.tensor([[0, 1, 2], [2, 3, 4], [4, 5, 0], [1, 3, 5], [0, 2, 4], [5, 4, 3], [1, 1, 2]])
    fid_t = torch.from_numpy(fid)
    for attrs_shape in ((6, 3), (2, 6, 3), (1, 6, 2)):
        attrs = torch.randn(*attrs_shape, dtype=torch.float64, requires_grad=True)
        b = torch.tensor(bary, requires_grad=True)
        assert torch.autograd.gradcheck(lambda a, bb: INTERP.torch_call(a, faces, _fr(fid_t, bb)), (attrs, b),
                                        eps=1e-6, atol=1e-8)


@pytest.mark.parametrize("C", [3, 6])
def test_gradient_values_and_numpy_bridge(C):
    rng = np.random.default_rng(3)
    fid, bary = _frags(B=2, H=5, W=4)
    fid[1, 2, :] = 3  # a run of one face along a row (gradients are summed in registers along runs)
    faces = rng.integers(0, 6, size=(7, 3)).astype(np.int32)
    attrs = rng.normal(size=(6, C))
    g = rng.normal(size=(2, 5, 4, C))
    out, pullback = INTERP.numpy_vjp(attrs, faces, _fr(fid, bary))
    ga, g_frags = pullback(g)
    gb = g_frags.bary
    assert g_frags.face_id is None and g_frags.depth is None
    # closed form: ga[v] = sum over pixels/corners with faces[fid, i] == v of bary_i g
    ref_ga = np.zeros_like(attrs)
    ref_gb = np.zeros_like(bary)
    for b, r, c in zip(*np.nonzero(fid >= 0)):
        for i, v in enumerate(faces[fid[b, r, c]]):
            ref_ga[v] += bary[b, r, c, i] * g[b, r, c]
            ref_gb[b, r, c, i] = g[b, r, c] @ attrs[v]
    np.testing.assert_allclose(ga, ref_ga, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gb, ref_gb, rtol=1e-12, atol=1e-12)
    assert ga.shape == (6, C) and (gb[fid < 0] == 0).all()
    # torch autograd gives the same numbers
    ta = torch.tensor(attrs, requires_grad=True)
    tb = torch.tensor(bary, requires_grad=True)
    to = INTERP.torch_call(ta, torch.from_numpy(faces), _fr(torch.from_numpy(fid), tb))
    np.testing.assert_array_equal(to.detach().numpy(), out)
    to.backward(torch.from_numpy(g))
    np.testing.assert_allclose(ta.grad.numpy(), ga, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(tb.grad.numpy(), gb, rtol=1e-12, atol=1e-12)
    # only one of the two needs a gradient
    tb2 = torch.tensor(bary, requires_grad=True)
    INTERP.torch_call(torch.tensor(attrs), torch.from_numpy(faces), _fr(torch.from_numpy(fid), tb2)).backward(
        torch.from_numpy(g))
    np.testing.assert_allclose(tb2.grad.numpy(), gb, rtol=1e-12, atol=1e-12)


def test_empty_channels_and_all_background():
    fid = np.full((1, 3, 4), -1, np.int32)
    bary = np.zeros((1, 3, 4, 3))
    out = INTERP.numpy_call(np.ones((5, 0)), np.array([[0, 1, 2]]), _fr(fid, bary))
    assert out.shape == (1, 3, 4, 0)
    a = torch.ones(5, 2, dtype=torch.float64, requires_grad=True)
    out = INTERP.torch_call(a, torch.tensor([[0, 1, 2]]), _fr(torch.from_numpy(fid), torch.from_numpy(bary)))
    assert (out == 0).all()
    out.sum().backward()
    assert torch.equal(a.grad, torch.zeros_like(a))


@pytest.mark.parametrize("kw, exc, msg", [
    ({"face_id": np.full((2, 6, 5), 7, np.int32)}, ValueError, "face_id"),
    ({"face_id": np.full((2, 6, 5), -2, np.int32)}, ValueError, "face_id"),
    ({"face_id": np.zeros((2, 6, 5), np.float32)}, TypeError, "face_id"),
    ({"face_id": np.zeros((2, 6), np.int32)}, ValueError, "face_id"),
    ({"bary": np.zeros((2, 6, 4, 3))}, ValueError, "bary"),
    ({"bary": np.zeros((2, 6, 5, 2))}, ValueError, "bary"),
    ({"bary": np.zeros((2, 6, 5, 3), np.float32)}, TypeError, "dtype"),
    ({"attrs": np.zeros((9, 4), np.int64)}, TypeError, "attrs"),
    ({"attrs": np.zeros((3, 9, 4))}, ValueError, "attrs"),
    ({"attrs": np.full((9, 4), np.inf)}, ValueError, "attrs"),
    ({"faces": np.full((7, 3), 9)}, ValueError, "faces"),
    ({"faces": np.zeros((7, 2), np.int32)}, ValueError, "faces"),
])
def test_bad_input(kw, exc, msg):
    fid, bary = _frags()
    args = {"attrs": np.zeros((9, 4)), "faces": np.zeros((7, 3), np.int32), "face_id": fid, "bary": bary}
    args.update(kw)
    with pytest.raises(exc, match=msg):
        INTERP.numpy_call(args["attrs"], args["faces"], _fr(args["face_id"], args["bary"]))
    t = {k: torch.from_numpy(v) for k, v in args.items()}
    with pytest.raises(exc, match=msg):
        INTERP.torch_call(t["attrs"], t["faces"], _fr(t["face_id"], t["bary"]))


def test_fragments_argument_must_be_fragments():
    fid, bary = _frags()
    with pytest.raises(TypeError, match="fragments must be a taichirast.Fragments"):
        INTERP.numpy_call(np.zeros((9, 4)), np.zeros((7, 3), np.int32), fid)
