"""`LTISSM`: a linear time-invariant state space system as a PyTorch layer."""

from __future__ import annotations

import numpy as np
import scipy.linalg
import torch
from torch import nn

from ._discretize import _discretize_tensors, _prepare_abcd
from ._fftconv import causal_fft_conv
from ._scan import lti_scan, ltv_scan
from ._validation import as_tensor, check_dt, check_method

__all__ = ["LTISSM"]

_MODES = ("scan", "fft")


def _to_dissipative_coordinates(A, B, C):
    """Similarity transform making A + A^T negative definite (needs a Hurwitz A).

    With P solving the Lyapunov equation A^T P + P A = -I and P = T^T T,
    A' = T A T^{-1} satisfies A' + A'^T = -(T T^T)^{-1} < 0 (same transfer function).
    """
    if A.size == 0 or np.max(np.linalg.eigvalsh(0.5 * (A + A.T))) < 0:
        return A, B, C  # already dissipative: keep the user's coordinates
    Pm = scipy.linalg.solve_continuous_lyapunov(A.T, -np.eye(A.shape[0]))
    T = np.linalg.cholesky(0.5 * (Pm + Pm.T)).T  # P = T^T T
    Ti = np.linalg.inv(T)
    return T @ A @ Ti, T @ B, C @ Ti


class LTISSM(nn.Module):
    r"""Linear time-invariant state space layer, consistent with :mod:`scipy.signal`.

    Runs :math:`x[k+1] = A_d x[k] + B_d u[k]`, :math:`y[k] = C_d x[k] + D_d u[k]`,
    :math:`x[0] = 0`, over the last (time) axis, with SciPy's index convention
    (so the output equals :func:`scipy.signal.dlsim`, with no one-step shift).
    A continuous-time system :math:`(A, B, C, D)` with step ``dt`` is discretized
    on the fly by :func:`discretize`, so gradients reach the continuous parameters.

    Parameters
    ----------
    A, B, C, D : array_like or torch.Tensor
        Real system matrices, shapes ``(n, n)``, ``(n, m)``, ``(p, n)``, ``(p, m)``.
    dt : float, optional
        Sampling interval. With ``dt`` (and ``discrete`` unset) the matrices are
        continuous-time; without, they are discrete-time.
    method : str, optional
        Discretization method of a continuous layer (any of :func:`discretize`).
    trainable : bool, optional
        Hold the matrices (and, for a continuous layer, ``log_dt``) as
        :class:`torch.nn.Parameter`; otherwise as buffers.
    mode : {"scan", "fft"}, optional
        ``"scan"``: the recurrence, by a parallel prefix scan (:math:`O(\log L)`
        steps). ``"fft"``: convolution with the impulse response :meth:`kernel`
        (S4's convolutional view). Both give the same output.
    alpha : float, optional
        Weight for ``method="gbt"``.
    stable : bool, optional
        Continuous layers only. Parameterize :math:`A = W - W^T - R R^T` with
        :math:`R` lower triangular with positive diagonal (:math:`\exp` of a
        parameter), so :math:`A + A^T \prec 0` and every eigenvalue has a negative
        real part for any parameter values. The given ``A`` must be Hurwitz; it is
        first brought to coordinates where :math:`A + A^T \prec 0` (a similarity
        transform from the Lyapunov equation, applied to ``B`` and ``C`` too, so
        the transfer function is unchanged but the matrices may differ).
    discrete : bool, optional
        Force the interpretation of the matrices: ``True`` means discrete-time
        with sampling interval ``dt`` (``None``: unspecified, as ``dlti(dt=True)``).
    dtype : torch.dtype, optional
        ``torch.float32`` or ``torch.float64``; default :func:`torch.get_default_dtype`.

    Attributes
    ----------
    n_states, n_inputs, n_outputs : int
    is_continuous : bool
        Whether the layer holds continuous-time parameters.
    dt : float or None
        Current sampling interval (``exp(log_dt)`` for trainable continuous layers;
        ``None`` for a discrete layer with unspecified interval).
    A, B, C, D : torch.Tensor
        The matrices as held (continuous or discrete), parameters or buffers.
        With ``stable=True``, ``A`` is replaced by ``A_skew``, ``A_tril`` and
        ``A_logdiag`` (use :meth:`continuous_matrices`).
    log_dt : torch.nn.Parameter
        Trainable continuous layers only; a fixed step is the buffer ``dt_``.

    Raises
    ------
    ValueError
        Inconsistent shapes, non-finite matrices, ``dt <= 0`` or non-finite,
        unknown method or mode, ``stable=True`` with a non-Hurwitz or discrete ``A``.
    TypeError
        Complex or non-numeric matrices, a non-float ``dtype``.

    See Also
    --------
    from_lti, to_lti : conversion from and to :mod:`scipy.signal` systems.
    discretize : the discretization used here.

    Notes
    -----
    Deep SSMs (S4, S5, Mamba) write :math:`x_k = \bar A x_{k-1} + \bar B u_k`, whose
    state already contains :math:`u_k`; their output leads SciPy's by one sample.
    This layer keeps SciPy's timing: internally it scans
    :math:`s_k = A_d s_{k-1} + B_d u_k` and reads :math:`x[k] = s_{k-1}`.

    **Irregular sampling.** ``layer(u, dt=gaps)`` treats ``gaps[k]`` as the
    interval from sample ``k`` to ``k+1`` and discretizes per step (exact ZOH
    with ``method="zoh"``: :math:`x[k+1] = e^{A\Delta_k}x[k] + \int_0^{\Delta_k}
    e^{A\tau}d\tau\,B u[k]`), then runs a time-varying scan. The gaps are
    physical time: the layer's own ``dt`` is not used. The per-step system is
    time-varying, so this path always scans, in either ``mode``.

    Examples
    --------
    A damped oscillator sampled at 10 Hz, compared with :func:`scipy.signal.dlsim`:

    >>> import numpy as np, scipy.signal, torch
    >>> from sciamba.ssm import LTISSM
    >>> A = np.array([[0.0, 1.0], [-4.0, -0.8]]); B = np.array([[0.0], [1.0]])
    >>> C = np.array([[1.0, 0.0]]); D = np.zeros((1, 1))
    >>> layer = LTISSM(A, B, C, D, dt=0.1, dtype=torch.float64)
    >>> u = torch.randn(3, 1, 50, dtype=torch.float64)       # (batch, inputs, L)
    >>> y = layer(u)                                          # (batch, outputs, L)
    >>> dsys = scipy.signal.cont2discrete((A, B, C, D), 0.1)
    >>> _, y_ref, _ = scipy.signal.dlsim(dsys, u[0].T.numpy())
    >>> bool(np.allclose(y[0, 0].numpy(), y_ref[:, 0]))
    True
    >>> layer.kernel(4).shape                                 # (outputs, inputs, L)
    torch.Size([1, 1, 4])
    """

    def __init__(
        self,
        A,
        B,
        C,
        D,
        dt: float | None = None,
        method: str = "zoh",
        trainable: bool = False,
        mode: str = "scan",
        *,
        alpha: float | None = None,
        stable: bool = False,
        discrete: bool | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.method, self.alpha = check_method(method, alpha)
        self._method_name = method
        if mode not in _MODES:
            raise ValueError(f"unknown mode {mode!r}; choose 'scan' (recurrence) or 'fft' (convolution)")
        self.mode = mode
        dtype = torch.get_default_dtype() if dtype is None else dtype
        if dtype not in (torch.float32, torch.float64):
            raise TypeError(f"dtype must be torch.float32 or torch.float64; got {dtype}")
        self.is_continuous = (dt is not None) if discrete is None else not discrete
        if self.is_continuous and dt is None:
            raise ValueError("a continuous-time layer needs dt (the sampling interval); pass dt=...")
        if dt is not None:
            dt = check_dt(dt)
            if np.ndim(dt) != 0:
                raise ValueError(f"dt must be a scalar; got shape {np.shape(dt)} (per-step gaps go to forward)")
            dt = float(dt)
        self.trainable = bool(trainable)
        self.stable = bool(stable)

        mats = _prepare_abcd(A, B, C, D)
        for name, t in zip("ABCD", mats, strict=True):
            if t.is_complex():
                raise TypeError(f"{name} must be real; got a complex array")
            if t.ndim != 2:
                raise ValueError(f"{name} must be 2-D (one system per layer); got shape {tuple(t.shape)}")
        A, B, C, D = (t.detach().to(torch.float64).cpu().numpy() for t in mats)
        self.n_states, self.n_inputs, self.n_outputs = A.shape[0], B.shape[1], C.shape[0]

        def hold(name, value):
            t = torch.as_tensor(np.ascontiguousarray(value), dtype=dtype)
            if self.trainable:
                setattr(self, name, nn.Parameter(t))
            else:
                self.register_buffer(name, t)

        if self.stable:
            if not self.is_continuous:
                raise ValueError("stable=True parameterizes a continuous-time A; give dt and continuous matrices")
            eig_max = np.max(np.linalg.eigvals(A).real) if A.size else -np.inf
            if not eig_max < 0:
                raise ValueError(
                    f"stable=True needs a Hurwitz A (all eigenvalues with Re < 0); got max Re = {eig_max:.3g}"
                )
            A, B, C = _to_dissipative_coordinates(A, B, C)
            R = np.linalg.cholesky(-0.5 * (A + A.T))  # lower, positive diagonal
            hold("A_skew", 0.25 * (A - A.T))  # W - W^T = skew part of A
            hold("A_tril", np.tril(R, -1))
            hold("A_logdiag", np.log(np.diag(R)))
        else:
            hold("A", A)
        hold("B", B)
        hold("C", C)
        hold("D", D)
        if self.is_continuous:
            if self.trainable:
                # log-parameterized so that gradient steps keep dt > 0
                self.log_dt = nn.Parameter(torch.tensor(np.log(dt), dtype=dtype))
            else:
                self.register_buffer("dt_", torch.tensor(dt, dtype=dtype))
        self._dt_value = dt  # the exact float given; a trainable dt lives in log_dt

    # ---- parameters ---------------------------------------------------------------

    @property
    def dt(self) -> float | None:
        if not self.is_continuous:
            return self._dt_value
        step = float(self._step())
        v = self._dt_value
        if not self.trainable and float(torch.tensor(v, dtype=self.dt_.dtype)) == step:
            return v  # the exact float given (the buffer may hold it rounded to float32)
        return step

    def _step(self) -> torch.Tensor:
        return torch.exp(self.log_dt) if self.trainable else self.dt_

    def _state_matrix(self) -> torch.Tensor:
        if not self.stable:
            return self.A
        R = torch.tril(self.A_tril, -1) + torch.diag(torch.exp(self.A_logdiag))  # (n n)
        return self.A_skew - self.A_skew.mT - R @ R.mT

    def continuous_matrices(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The continuous-time ``(A, B, C, D)`` of a continuous layer (differentiable).

        Returns
        -------
        A, B, C, D : torch.Tensor
            Shapes ``(n, n)``, ``(n, m)``, ``(p, n)``, ``(p, m)``; with ``stable=True``,
            ``A`` is assembled from its parameterization.

        Raises
        ------
        ValueError
            If the layer holds a discrete-time system.

        Examples
        --------
        >>> import numpy as np, torch
        >>> from sciamba.ssm import LTISSM
        >>> layer = LTISSM(np.diag([-1.0, -2.0]), np.ones((2, 1)), np.ones((1, 2)), np.zeros((1, 1)), dt=0.1)
        >>> layer.continuous_matrices()[0]
        tensor([[-1.,  0.],
                [ 0., -2.]])
        """
        if not self.is_continuous:
            raise ValueError("this layer holds a discrete-time system; use discrete_matrices()")
        return self._state_matrix(), self.B, self.C, self.D

    def discrete_matrices(self, dt=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The discrete ``(Ad, Bd, Cd, Dd)`` the layer runs (for a continuous layer, at ``dt``).

        Parameters
        ----------
        dt : float or torch.Tensor, optional
            Step(s) for a continuous layer; default the layer's ``dt``. A tensor of
            shape ``(...)`` gives batched matrices ``(..., n, n)`` etc.

        Returns
        -------
        Ad, Bd, Cd, Dd : torch.Tensor
            As :func:`discretize` returns them (differentiable in the parameters).

        Raises
        ------
        ValueError
            ``dt`` given for a discrete-time layer, or ``dt <= 0`` / non-finite.

        Examples
        --------
        >>> import numpy as np, torch
        >>> from sciamba.ssm import LTISSM
        >>> layer = LTISSM(-np.eye(1), np.ones((1, 1)), np.ones((1, 1)), np.zeros((1, 1)), dt=0.5,
        ...                dtype=torch.float64)
        >>> layer.discrete_matrices()[0]          # exp(-0.5)
        tensor([[0.6065]], dtype=torch.float64)
        """
        if not self.is_continuous:
            if dt is not None:
                raise ValueError("a discrete-time layer has a fixed step; dt cannot be changed")
            return self.A, self.B, self.C, self.D
        step = self._step() if dt is None else as_tensor("dt", check_dt(dt), dtype=self.B.dtype)
        A, B, C, D = self.continuous_matrices()
        return _discretize_tensors(A, B, C, D, step, self.method, self.alpha)

    # ---- evaluation ---------------------------------------------------------------

    def kernel(self, L: int) -> torch.Tensor:
        r"""Impulse response :math:`h[0] = D_d`, :math:`h[l] = C_d A_d^{l-1} B_d`, shape ``(p, m, L)``.

        ``kernel(L)[:, i, :]`` equals ``scipy.signal.dimpulse(system, n=L)[1][i].T``.
        Powers of :math:`A_d` are formed by repeated squaring (:math:`O(\log L)` steps).

        Parameters
        ----------
        L : int
            Number of samples, ``L >= 1``.

        Returns
        -------
        h : torch.Tensor
            Shape ``(n_outputs, n_inputs, L)``.

        Examples
        --------
        >>> import numpy as np, torch
        >>> from sciamba.ssm import LTISSM
        >>> layer = LTISSM([[0.5]], [[1.0]], [[1.0]], [[2.0]], dtype=torch.float64)  # discrete
        >>> layer.kernel(4)
        tensor([[[2.0000, 1.0000, 0.5000, 0.2500]]], dtype=torch.float64)
        """
        if isinstance(L, bool) or not isinstance(L, (int, np.integer)) or L < 1:
            raise ValueError(f"L must be a positive integer; got {L!r}")
        Ad, Bd, Cd, Dd = self.discrete_matrices()
        # X[l] = Ad^l Bd for l = 0 .. L-2, by doubling.
        X = Bd[None]  # (1 n m)
        P = Ad  # (n n)
        while X.shape[0] < L - 1:
            X = torch.cat([X, P @ X], dim=0)  # (2l n m)
            P = P @ P
        X = X[: L - 1]  # (L-1 n m)
        tail = torch.einsum("pn,lnm->pml", Cd, X)  # (p m L-1)
        return torch.cat([Dd[..., None], tail], dim=-1)  # (p m L)

    def _check_input(self, u) -> torch.Tensor:
        if not isinstance(u, torch.Tensor):
            raise TypeError(f"u must be a torch.Tensor of shape (batch, n_inputs, L); got {type(u).__name__}")
        if u.ndim < 2:
            raise ValueError(f"u must have shape (..., n_inputs, L); got shape {tuple(u.shape)}")
        if u.shape[-2] != self.n_inputs:
            raise ValueError(
                f"u has {u.shape[-2]} input channels (axis -2) but the system has n_inputs = {self.n_inputs}; "
                "u must have shape (batch, n_inputs, L)"
            )
        if u.dtype != self.B.dtype:
            raise TypeError(f"u has dtype {u.dtype} but the layer is {self.B.dtype}; convert one of them")
        if u.shape[-1] == 0:
            raise ValueError("u has length 0 along the time axis")
        return u

    def forward(self, u: torch.Tensor, dt=None) -> torch.Tensor:
        """Output ``y`` of shape ``(..., n_outputs, L)`` for input ``u`` of shape ``(..., n_inputs, L)``.

        Parameters
        ----------
        u : torch.Tensor
            Input, zero initial state.
        dt : array_like or torch.Tensor, optional
            Irregular sampling: per-step intervals of shape ``(L,)`` or ``(batch, L)``
            (continuous layers only; see Notes of the class).

        Returns
        -------
        y : torch.Tensor
            Output, same dtype as ``u``.

        Notes
        -----
        With irregular steps the system is time-varying, so the output always
        comes from the scan, whatever ``mode``.
        """
        u = self._check_input(u)
        L = u.shape[-1]
        if dt is not None:
            return self._forward_irregular(u, dt)
        Ad, Bd, Cd, Dd = self.discrete_matrices()
        if self.mode == "fft":
            K = self.kernel(L)  # (p m L)
            return causal_fft_conv(u[..., None, :, :], K).sum(dim=-2)  # (... p L)
        b = torch.einsum("nm,...ml->...ln", Bd, u)  # (... L n)
        s = lti_scan(Ad, b)  # (... L n): s[k] = x[k+1]
        x = torch.cat([torch.zeros_like(s[..., :1, :]), s[..., :-1, :]], dim=-2)  # (... L n)
        return torch.einsum("pn,...ln->...pl", Cd, x) + torch.einsum("pm,...ml->...pl", Dd, u)  # (... p L)

    def _forward_irregular(self, u: torch.Tensor, gaps) -> torch.Tensor:
        if not self.is_continuous:
            raise ValueError("irregular steps (forward(u, dt=gaps)) need a continuous-time layer")
        L = u.shape[-1]
        gaps = as_tensor("dt", check_dt(gaps), dtype=u.dtype, device=u.device)
        if gaps.ndim == 0 or gaps.shape[-1] != L:
            raise ValueError(f"dt (the gaps) must have shape (L,) or (batch, L) with L = {L}; got {tuple(gaps.shape)}")
        try:
            torch.broadcast_shapes(gaps.shape[:-1], u.shape[:-2])
        except RuntimeError:
            raise ValueError(
                f"dt (the gaps) of shape {tuple(gaps.shape)} does not broadcast against u of shape {tuple(u.shape)}"
            ) from None
        A, B, C, D = self.continuous_matrices()
        Ad, Bd, Cd, Dd = _discretize_tensors(A, B, C, D, gaps, self.method, self.alpha)  # (... L n n) etc.
        b = torch.einsum("...lnm,...ml->...ln", Bd, u)  # (... L n)
        s = ltv_scan(Ad, b)  # (... L n): s[k] = x[k+1]
        x = torch.cat([torch.zeros_like(s[..., :1, :]), s[..., :-1, :]], dim=-2)  # (... L n)
        return torch.einsum("...lpn,...ln->...pl", Cd, x) + torch.einsum("...lpm,...ml->...pl", Dd, u)

    def extra_repr(self) -> str:
        if self.is_continuous:
            kind = f"continuous, dt={self.dt:.4g}, method={self._method_name!r}"
        else:
            kind = f"discrete, dt={self.dt}"
        return (
            f"n_states={self.n_states}, n_inputs={self.n_inputs}, n_outputs={self.n_outputs}, {kind}, "
            f"mode={self.mode!r}, trainable={self.trainable}, stable={self.stable}"
        )
