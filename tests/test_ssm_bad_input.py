"""Every bad input of sciamba.ssm's layer and converters raises a clear error (issue 2, "Bad input")."""

import warnings

import numpy as np
import pytest
import scipy.signal
import torch

from sciamba.ssm import LTISSM, from_lti, hippo, nplr, s4d_init, to_lti
from sciamba.ssm._testing import random_stable_system, single_thread_torch


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny matrices: one intra-op thread avoids synchronization stalls on a busy machine."""
    yield from single_thread_torch()

F64 = torch.float64


@pytest.fixture
def abcd(rng):
    return random_stable_system(rng, 3, 2, 2)


def test_improper_transfer_function():
    for system in (([1.0, 2.0, 3.0], [1.0, 2.0]), scipy.signal.lti([1.0, 2.0, 3.0], [1.0, 2.0]),
                   scipy.signal.dlti([1.0, 0.0, 1.0], [1.0, 0.5], dt=0.1)):
        with pytest.raises(ValueError, match="improper transfer function: numerator degree 2 > denominator degree 1"):
            from_lti(system, dt=0.1)
    for system in (([1.0, 2.0], [-1.0], 1.0), scipy.signal.lti([1.0, 2.0], [-1.0], 1.0)):
        with pytest.raises(ValueError, match="improper transfer function: 2 zeros > 1 poles"):
            from_lti(system, dt=0.1)
    # Leading zeros do not count: (0 s^2 + s + 1) / (s + 2) is proper.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.signal.BadCoefficients)  # scipy flags the leading zero
        assert from_lti(([0.0, 1.0, 1.0], [1.0, 2.0]), dt=0.1).n_states == 1


def test_non_finite_matrices(abcd):
    A, B, C, D = abcd
    for i, name in enumerate("ABCD"):
        mats = [A, B, C, D]
        mats[i] = mats[i].copy()
        mats[i][0, 0] = np.nan if i % 2 else np.inf
        with pytest.raises(ValueError, match=f"{name} contains NaN or infinite"):
            LTISSM(*mats, dt=0.1)
    with pytest.raises(ValueError, match="element 1 of the system tuple contains NaN"):
        from_lti(([1.0], [1.0, np.nan]), dt=0.1)
    with pytest.raises(ValueError, match="B contains NaN"):
        from_lti(scipy.signal.lti([[-1.0]], [[np.nan]], [[1.0]], [[0.0]]), dt=0.1)


@pytest.mark.parametrize("dt", [0.0, -0.5, np.nan, np.inf, -np.inf])
def test_bad_dt(abcd, dt):
    A, B, C, D = abcd
    with pytest.raises(ValueError, match="dt must be"):
        LTISSM(A, B, C, D, dt=dt)
    with pytest.raises(ValueError, match="dt must be"):
        from_lti((A, B, C, D), dt=dt)
    layer = LTISSM(A, B, C, D, dt=0.1, dtype=F64)
    gaps = torch.full((5,), 0.1, dtype=F64)
    gaps[2] = dt
    with pytest.raises(ValueError, match="dt must be"):
        layer(torch.ones(1, 2, 5, dtype=F64), dt=gaps)


def test_bad_dt_types_and_shapes(abcd):
    A, B, C, D = abcd
    with pytest.raises(TypeError, match="dt must be a positive real number"):
        LTISSM(A, B, C, D, dt="0.1")
    with pytest.raises(TypeError, match="not a bool"):
        LTISSM(A, B, C, D, dt=True)
    with pytest.raises(ValueError, match="dt must be a scalar"):
        LTISSM(A, B, C, D, dt=[0.1, 0.2])
    layer = LTISSM(A, B, C, D, dt=0.1, dtype=F64)
    u = torch.ones(2, 2, 6, dtype=F64)
    with pytest.raises(ValueError, match=r"gaps\) must have shape \(L,\) or \(batch, L\) with L = 6"):
        layer(u, dt=torch.full((5,), 0.1, dtype=F64))
    with pytest.raises(ValueError, match="does not broadcast against u"):
        layer(u, dt=torch.full((3, 6), 0.1, dtype=F64))
    with pytest.raises(ValueError, match="need a continuous-time layer"):
        LTISSM(A, B, C, D, dtype=F64)(u, dt=torch.full((6,), 0.1, dtype=F64))


def test_inconsistent_shapes(abcd):
    A, B, C, D = abcd
    with pytest.raises(ValueError, match="A must be square"):
        LTISSM(A[:, :2], B, C, D, dt=0.1)
    with pytest.raises(ValueError, match="B must have n = 3 rows"):
        LTISSM(A, B[:2], C, D, dt=0.1)
    with pytest.raises(ValueError, match="C must have n = 3 columns"):
        LTISSM(A, B, C[:, 1:], D, dt=0.1)
    with pytest.raises(ValueError, match=r"D must have shape \(p, m\) = \(2, 2\)"):
        LTISSM(A, B, C, D[:1], dt=0.1)
    with pytest.raises(ValueError, match="one system per layer"):
        LTISSM(np.stack([A, A]), np.stack([B, B]), C, D, dt=0.1)
    with pytest.raises(ValueError, match="a system tuple must have 2"):
        from_lti((A, B, C, D, D), dt=0.1)


def test_discrete_system_given_another_dt(abcd):
    dsys = scipy.signal.dlti(*scipy.signal.cont2discrete(abcd, 0.1)[:4], dt=0.1)
    with pytest.raises(ValueError, match=r"the discrete system has dt = 0.1 but dt = 0.2 was given"):
        from_lti(dsys, dt=0.2)
    assert from_lti(dsys, dt=0.1).dt == 0.1


def test_input_channels_dtype_and_type(abcd):
    layer = LTISSM(*abcd, dt=0.1, dtype=F64)
    with pytest.raises(ValueError, match="u has 3 input channels .* n_inputs = 2"):
        layer(torch.ones(4, 3, 10, dtype=F64))
    with pytest.raises(ValueError, match=r"shape \(\.\.\., n_inputs, L\)"):
        layer(torch.ones(10, dtype=F64))
    with pytest.raises(TypeError, match="u has dtype torch.float32 but the layer is torch.float64"):
        layer(torch.ones(1, 2, 10))
    with pytest.raises(TypeError, match="u must be a torch.Tensor"):
        layer(np.ones((1, 2, 10)))
    with pytest.raises(ValueError, match="length 0"):
        layer(torch.ones(1, 2, 0, dtype=F64))
    with pytest.raises(ValueError, match="L must be a positive integer"):
        layer.kernel(0)


def test_unknown_method_mode_kind(abcd):
    with pytest.raises(ValueError, match="unknown discretization method 'zoh2'"):
        LTISSM(*abcd, dt=0.1, method="zoh2")
    with pytest.raises(ValueError, match="unknown discretization method 'matched'"):
        from_lti(scipy.signal.lti(*abcd), dt=0.1, method="matched")
    with pytest.raises(ValueError, match="unknown mode 'conv'"):
        LTISSM(*abcd, dt=0.1, mode="conv")
    with pytest.raises(ValueError, match="unknown HiPPO kind 'legendre'"):
        hippo("legendre", 8)
    with pytest.raises(ValueError, match="unknown HiPPO kind 'lmu'"):
        nplr("lmu", 8)
    with pytest.raises(ValueError, match="unknown S4D init kind 'legs'"):
        s4d_init("legs", 8)


def test_layer_construction_errors(abcd):
    A, B, C, D = abcd
    with pytest.raises(ValueError, match="needs dt"):
        LTISSM(A, B, C, D, discrete=False)
    with pytest.raises(ValueError, match="a continuous-time system needs dt"):
        from_lti(scipy.signal.lti(A, B, C, D))
    with pytest.raises(ValueError, match="stable=True needs a Hurwitz A"):
        LTISSM(-A, B, C, D, dt=0.1, stable=True)
    with pytest.raises(ValueError, match="stable=True parameterizes a continuous-time A"):
        LTISSM(A, B, C, D, stable=True)
    with pytest.raises(TypeError, match="dtype must be torch.float32 or torch.float64"):
        LTISSM(A, B, C, D, dt=0.1, dtype=torch.float16)
    with pytest.raises(TypeError, match="A must be real"):
        LTISSM(A + 1j, B, C, D, dt=0.1)
    with pytest.raises(TypeError, match="system must be a scipy.signal.lti"):
        from_lti("1/(s+1)", dt=0.1)
    with pytest.raises(TypeError, match="element 0 of the system tuple is not numeric"):
        from_lti((["a"], [1.0, 1.0]), dt=0.1)
    with pytest.raises(TypeError, match="layer must be an LTISSM"):
        to_lti(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="fixed step"):
        LTISSM(A, B, C, D).discrete_matrices(dt=0.2)
    with pytest.raises(ValueError, match="holds a discrete-time system"):
        LTISSM(A, B, C, D).continuous_matrices()
