"""sciamba.ssm.causal_fft_conv against a direct causal sum."""

import numpy as np
import pytest
import torch

from sciamba.ssm import causal_fft_conv
from sciamba.ssm._testing import single_thread_torch


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny matrices: one intra-op thread avoids synchronization stalls on a busy machine."""
    yield from single_thread_torch()


def _direct(u, k):
    L = u.shape[-1]
    y = np.zeros(np.broadcast_shapes(u.shape[:-1], k.shape[:-1]) + (L,), dtype=np.result_type(u, k))
    for i in range(L):
        for j in range(min(i + 1, k.shape[-1])):
            y[..., i] += k[..., j] * u[..., i - j]
    return y


@pytest.mark.parametrize("L,Lk", [(1, 1), (17, 17), (33, 5), (8, 20)])
@pytest.mark.parametrize("complex_kernel", [False, True])
def test_matches_direct_sum(rng, L, Lk, complex_kernel):
    u = rng.normal(size=(2, 1, L))
    k = rng.normal(size=(3, Lk)) + (1j * rng.normal(size=(3, Lk)) if complex_kernel else 0)
    y = causal_fft_conv(torch.tensor(u), torch.tensor(k))
    assert y.shape == (2, 3, L)
    assert y.is_complex() == complex_kernel
    np.testing.assert_allclose(y.numpy(), _direct(u, k), rtol=1e-10, atol=1e-12)


def test_float32_and_gradcheck(rng):
    u = rng.normal(size=(4, 11))
    k = rng.normal(size=(11,))
    y32 = causal_fft_conv(torch.tensor(u, dtype=torch.float32), torch.tensor(k, dtype=torch.float32))
    assert y32.dtype == torch.float32
    np.testing.assert_allclose(y32.numpy(), _direct(u, k), rtol=1e-4, atol=1e-5)
    ut = torch.tensor(u[:2, :7], requires_grad=True)
    kt = torch.tensor(k[:7] + 0.5j * rng.normal(size=7), requires_grad=True)
    assert torch.autograd.gradcheck(causal_fft_conv, (ut, kt))


def test_bad_inputs():
    with pytest.raises(TypeError, match="u must be a torch.Tensor"):
        causal_fft_conv(np.ones(3), torch.ones(3))
    with pytest.raises(TypeError, match="k must be a floating or complex tensor"):
        causal_fft_conv(torch.ones(3), torch.ones(3, dtype=torch.int64))
    with pytest.raises(ValueError, match="non-empty last"):
        causal_fft_conv(torch.ones(3), torch.ones(0))
