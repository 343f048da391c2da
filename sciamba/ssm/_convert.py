"""Conversion between :mod:`scipy.signal` LTI systems and :class:`LTISSM` layers."""

from __future__ import annotations

import numpy as np
import scipy.signal

from ._layer import LTISSM
from ._validation import check_dt, check_finite

__all__ = ["from_lti", "to_lti"]


def _check_proper(system) -> None:
    """Raise for an improper transfer function (more zeros than poles), which has no state space form."""
    if isinstance(system, scipy.signal.TransferFunction):
        num, den = np.atleast_2d(system.num), np.atleast_1d(system.den)
        nz = np.flatnonzero(np.any(num != 0, axis=0))
        deg_num = num.shape[-1] - 1 - (nz[0] if nz.size else num.shape[-1] - 1)
        deg_den = den.shape[-1] - 1 - np.flatnonzero(den != 0)[0] if np.any(den != 0) else -1
        if deg_den < 0:
            raise ValueError("the transfer function denominator is zero")
        if deg_num > deg_den:
            raise ValueError(
                f"improper transfer function: numerator degree {deg_num} > denominator degree {deg_den}; "
                "a state space model needs deg(num) <= deg(den)"
            )
    elif isinstance(system, scipy.signal.ZerosPolesGain):
        nz, npoles = np.size(system.zeros), np.size(system.poles)
        if nz > npoles and system.gain != 0:
            raise ValueError(
                f"improper transfer function: {nz} zeros > {npoles} poles; a state space model needs "
                "no more zeros than poles"
            )


def _as_system(system):
    if isinstance(system, (scipy.signal.lti, scipy.signal.dlti)):
        return system
    if isinstance(system, (tuple, list)):
        if len(system) not in (2, 3, 4):
            raise ValueError(
                f"a system tuple must have 2 (num, den), 3 (zeros, poles, gain) or 4 (A, B, C, D) "
                f"elements; got {len(system)}"
            )
        for i, part in enumerate(system):
            arr = np.asarray(part)
            if arr.dtype.kind not in "biufc":
                raise TypeError(f"element {i} of the system tuple is not numeric: {part!r}")
            check_finite(f"element {i} of the system tuple", arr)
        if len(system) == 2:
            # Check before scipy builds it: lti() accepts improper num/den and fails later.
            _check_proper(scipy.signal.TransferFunction(*system))
        elif len(system) == 3:
            _check_proper(scipy.signal.ZerosPolesGain(*system))
        return scipy.signal.lti(*system)
    raise TypeError(
        "system must be a scipy.signal.lti or dlti instance, or a tuple (num, den), "
        f"(zeros, poles, gain) or (A, B, C, D); got {type(system).__name__}"
    )


def from_lti(system, dt: float | None = None, method: str = "zoh", trainable: bool = False, **kwargs) -> LTISSM:
    r"""Build an :class:`LTISSM` layer from a :mod:`scipy.signal` system.

    Parameters
    ----------
    system : scipy.signal.lti, scipy.signal.dlti or tuple
        Any form (``TransferFunction``, ``ZerosPolesGain``, ``StateSpace``), SISO
        or MIMO, or a tuple as :class:`scipy.signal.lti` takes (continuous).
    dt : float, optional
        Sampling interval. Required for a continuous system, which is then
        discretized with ``method``. A discrete system keeps its own ``dt``;
        passing a different one is an error (passing it for a ``dlti`` with
        ``dt=True``, i.e. unspecified, sets it).
    method : str, optional
        Discretization method for a continuous system (see :func:`discretize`).
    trainable : bool, optional
        Make the matrices (and ``log_dt``) trainable parameters.
    **kwargs
        Passed to :class:`LTISSM`: ``mode``, ``alpha``, ``stable``, ``dtype``.

    Returns
    -------
    LTISSM
        Continuous layer for an ``lti`` (its output equals ``dlsim`` of
        ``cont2discrete(system, dt, method)``), discrete layer for a ``dlti``
        (output equals ``dlsim(system, u)``), both with zero initial state.

    Raises
    ------
    ValueError
        Improper transfer function, non-finite coefficients, ``dt`` missing for a
        continuous system, ``dt <= 0`` or non-finite, a discrete system given a
        different ``dt``, unknown method.
    TypeError
        ``system`` of an unsupported type.

    See Also
    --------
    to_lti : the inverse conversion.

    Notes
    -----
    Transfer functions and zero-pole-gain systems become state space through
    :meth:`scipy.signal.lti.to_ss` (controller canonical form). Such companion
    matrices can be badly conditioned; the layer never diagonalizes them.

    Examples
    --------
    >>> import numpy as np, scipy.signal, torch
    >>> from sciamba.ssm import from_lti
    >>> sys = scipy.signal.lti([1.0], [1.0, 0.4, 4.0])          # 1 / (s^2 + 0.4 s + 4)
    >>> layer = from_lti(sys, dt=0.05, dtype=torch.float64)
    >>> u = np.ones(100)
    >>> y = layer(torch.tensor(u)[None, None])[0, 0].numpy()
    >>> _, y_ref, _ = scipy.signal.dlsim(sys.to_ss().to_discrete(0.05), u)
    >>> bool(np.allclose(y, y_ref[:, 0], rtol=1e-10))
    True
    """
    system = _as_system(system)
    _check_proper(system)
    ss = system.to_ss() if not isinstance(system, scipy.signal.StateSpace) else system
    if isinstance(system, scipy.signal.dlti):
        sys_dt = system.dt
        if dt is not None:
            dt = check_dt(dt)
            if sys_dt is not True and not np.isclose(float(dt), float(sys_dt), rtol=1e-12, atol=0.0):
                raise ValueError(
                    f"the discrete system has dt = {sys_dt} but dt = {dt} was given; a discrete system "
                    "keeps its own sampling interval (omit dt, or resample the system first)"
                )
        else:
            dt = None if sys_dt is True else sys_dt
        return LTISSM(ss.A, ss.B, ss.C, ss.D, dt=dt, discrete=True, trainable=trainable, method=method, **kwargs)
    if dt is None:
        raise ValueError("a continuous-time system needs dt (the sampling interval of the layer)")
    return LTISSM(ss.A, ss.B, ss.C, ss.D, dt=dt, method=method, trainable=trainable, **kwargs)


def to_lti(layer: LTISSM, discrete: bool = False) -> scipy.signal.StateSpace:
    r"""The :class:`scipy.signal.StateSpace` system a layer holds.

    Parameters
    ----------
    layer : LTISSM
    discrete : bool, optional
        For a continuous layer, return its discretization at the layer's ``dt``
        (the system the layer actually runs) instead of the continuous system.

    Returns
    -------
    scipy.signal.StateSpace
        Continuous (``dt`` None) for a continuous layer, discrete with the layer's
        ``dt`` (``True`` if unspecified) otherwise; float64 matrices. A trained
        layer can then be analysed with :mod:`scipy.signal` (poles, ``freqresp``,
        ``bode``, ``lsim``).

    Raises
    ------
    TypeError
        If ``layer`` is not an :class:`LTISSM`.

    See Also
    --------
    from_lti : the inverse conversion.

    Examples
    --------
    >>> import numpy as np, scipy.signal
    >>> from sciamba.ssm import from_lti, to_lti
    >>> sys = scipy.signal.lti([1.0], [1.0, 0.4, 4.0])
    >>> back = to_lti(from_lti(sys, dt=0.05))
    >>> np.sort_complex(np.linalg.eigvals(back.A)).round(4)   # the poles
    array([-0.2-1.99j, -0.2+1.99j])
    >>> to_lti(from_lti(sys, dt=0.05), discrete=True).dt
    0.05
    """
    if not isinstance(layer, LTISSM):
        raise TypeError(f"layer must be an LTISSM; got {type(layer).__name__}")
    if layer.is_continuous and not discrete:
        mats = layer.continuous_matrices()
        dt = None
    else:
        mats = layer.discrete_matrices()
        dt = True if layer.dt is None else layer.dt
    A, B, C, D = (t.detach().to("cpu").double().numpy().copy() for t in mats)
    if dt is None:
        return scipy.signal.StateSpace(A, B, C, D)
    return scipy.signal.StateSpace(A, B, C, D, dt=dt)
