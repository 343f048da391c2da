"""Classical state space models that round-trip with :mod:`scipy.signal`.

Conventions follow SciPy: continuous time :math:`\\dot x = A x + B u`,
:math:`y = C x + D u`; discrete time :math:`x[k+1] = A x[k] + B u[k]`,
:math:`y[k] = C x[k] + D u[k]`. Time is the last axis everywhere; layers take
inputs of shape ``(batch, n_inputs, L)``.

Layers and conversion
---------------------
LTISSM    -- a (trainable) LTI system as a torch layer: scan or FFT mode, irregular steps
from_lti  -- scipy.signal lti/dlti (any form, SISO/MIMO) or tuple -> LTISSM
to_lti    -- LTISSM -> scipy.signal.StateSpace (continuous or discrete)

Discretization
--------------
discretize           -- every :func:`scipy.signal.cont2discrete` method; NumPy or batched torch
discretize_diagonal  -- the same, elementwise, for diagonal (S4D/S5/Mamba) systems

Structured initializations
--------------------------
hippo     -- HiPPO matrices (LegS, LegT, LagT, FouT)
nplr      -- their normal-plus-low-rank form (S4)
s4d_init  -- S4D-Real, S4D-Lin, S4D-Inv diagonals

Convolution
-----------
causal_fft_conv  -- causal convolution with an impulse response, by FFT
"""

from ._convert import from_lti, to_lti
from ._discretize import discretize, discretize_diagonal
from ._fftconv import causal_fft_conv
from ._hippo import hippo, nplr, s4d_init
from ._layer import LTISSM

__all__ = [
    "LTISSM",
    "causal_fft_conv",
    "discretize",
    "discretize_diagonal",
    "from_lti",
    "hippo",
    "nplr",
    "s4d_init",
    "to_lti",
]
