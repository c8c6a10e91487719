"""Real spherical harmonics of any band: SciPy parity, orthonormality, the renderer's bands 0-2,
Lambertian irradiance against numerical integration, projection, gradients, NumPy, bad input."""
import math

import numpy as np
import pytest
import torch

import taichirast as tr
from taichirast.geometry import spherical_harmonics as SH

D = torch.float64


def _fibonacci(n):
    i = torch.arange(n, dtype=D) + 0.5
    z = 1 - 2 * i / n
    r = torch.sqrt(1 - z * z)
    phi = math.pi * (3 - math.sqrt(5)) * i
    return torch.stack([r * torch.cos(phi), r * torch.sin(phi), z], -1)


def test_matches_scipy_real_sh_without_condon_shortley_phase():
    special = pytest.importorskip("scipy.special")
    d = _fibonacci(257)
    L = 6
    Y = SH.sh_basis(d, L).numpy()
    theta = np.arccos(d[:, 2].numpy())                 # polar
    phi = np.arctan2(d[:, 1].numpy(), d[:, 0].numpy())  # azimuth
    for l in range(L + 1):
        for m in range(-l, l + 1):
            c = special.sph_harm_y(l, abs(m), theta, phi)   # complex, with the (-1)^m phase
            if m == 0:
                ref = c.real
            elif m > 0:
                ref = math.sqrt(2) * (-1) ** m * c.real
            else:
                ref = math.sqrt(2) * (-1) ** m * c.imag
            np.testing.assert_allclose(Y[:, SH.sh_index(l, m)], ref, atol=1e-10, err_msg=f"l={l} m={m}")


def test_orthonormal_and_bands_0_to_2_match_the_shading_kernel():
    d = _fibonacci(20000)
    Y = SH.sh_basis(d, 4)
    gram = (Y.T @ Y) * (4 * math.pi / d.shape[0])
    torch.testing.assert_close(gram, torch.eye(25, dtype=D), atol=2e-3, rtol=0)
    # the renderer's SH lighting is sh_irradiance / pi for bands 0-2 (white albedo, no other light)
    g = torch.Generator().manual_seed(0)
    coeffs = torch.randn(9, 3, generator=g, dtype=D)
    n = torch.randn(50, 3, generator=g, dtype=D)
    ones, zeros = torch.ones(50, 3, dtype=D), torch.zeros(50, 3, dtype=D)
    shaded = tr.shade(n, zeros, ones, zeros, torch.ones(50, dtype=D), torch.tensor([0.0, 0.0, 5.0], dtype=D),
                      sh_coeffs=coeffs)
    torch.testing.assert_close(SH.sh_irradiance(coeffs, n / n.norm(dim=-1, keepdim=True)) / math.pi, shaded)


def test_irradiance_against_numerical_integration_for_band_4():
    g = torch.Generator().manual_seed(1)
    coeffs = torch.randn(25, 2, generator=g, dtype=D)
    d = _fibonacci(200000)
    radiance = SH.sh_basis(d, 4) @ coeffs                        # (N, 2)
    for n in (torch.tensor([0.0, 0.0, 1.0], dtype=D), torch.tensor([0.3, -0.5, 0.81], dtype=D)):
        n = n / n.norm()
        cos = (d @ n).clamp(min=0.0)
        E = (radiance * cos[:, None]).sum(0) * (4 * math.pi / d.shape[0])
        torch.testing.assert_close(SH.sh_irradiance(coeffs, n), E, atol=2e-3, rtol=0)
    A = SH.lambertian_sh_factors(4)
    assert A.shape == (25,) and abs(float(A[0]) - math.pi) < 1e-12 and float(A[SH.sh_index(3, 0)]) == 0.0
    assert abs(float(A[SH.sh_index(4, 0)]) + math.pi / 24) < 1e-12


def test_project_recovers_coefficients_gradients_numpy_and_errors():
    g = torch.Generator().manual_seed(2)
    coeffs = torch.randn(16, 3, generator=g, dtype=D)
    d = _fibonacci(40000)
    rec = SH.sh_project(SH.sh_basis(d, 3) @ coeffs, d, 3)
    torch.testing.assert_close(rec, coeffs, atol=2e-3, rtol=0)
    dirs = torch.randn(5, 3, generator=g, dtype=D, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: SH.sh_basis(x, 5), (dirs,))
    c = torch.randn(9, 2, generator=g, dtype=D, requires_grad=True)
    assert torch.autograd.gradcheck(lambda cc, x: SH.sh_irradiance(cc, x), (c, dirs))
    pole = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0], [0.0, 0.0, 0.0]], dtype=D)
    assert torch.isfinite(SH.sh_basis(pole, 6)).all()
    batched = SH.sh_irradiance(c.detach()[None].expand(2, 9, 2), dirs.detach()[None].expand(2, 5, 3))
    torch.testing.assert_close(batched[1], SH.sh_irradiance(c.detach(), dirs.detach()))
    out = SH.sh_basis(np.array([[0.0, 1.0, 0.0]]), 2)
    assert isinstance(out, np.ndarray) and out.shape == (1, 9)
    assert SH.sh_count(3) == 16 and SH.sh_index(2, -2) == 4
    with pytest.raises(ValueError, match="max_band"):
        SH.sh_basis(dirs, -1)
    with pytest.raises(ValueError, match="directions"):
        SH.sh_basis(torch.zeros(4, 2, dtype=D), 2)
    with pytest.raises(ValueError, match="square"):
        SH.sh_irradiance(torch.zeros(8, 3, dtype=D), dirs)
    with pytest.raises(ValueError, match="NaN"):
        SH.sh_basis(torch.full((2, 3), float("nan"), dtype=D), 1)
    with pytest.raises(ValueError, match="l >= 0"):
        SH.sh_index(1, 2)


def test_lights_point_to_sh_irradiance_for_higher_bands():
    with pytest.raises(ValueError, match="sh_irradiance"):
        tr.Lights(sh=torch.zeros(16, 3))
