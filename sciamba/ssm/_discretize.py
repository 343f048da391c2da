"""Continuous-to-discrete conversion of state space systems.

The one implementation of the discretization math in sciamba: :func:`discretize`
for dense systems (every method of :func:`scipy.signal.cont2discrete`, NumPy or
batched, differentiable PyTorch) and :func:`discretize_diagonal` for diagonal
(possibly complex) systems as used by S4D/S5/Mamba layers.
"""

from __future__ import annotations

import torch

from ._validation import DIAGONAL_METHODS, as_tensor, check_dt, check_finite, check_method

__all__ = ["discretize", "discretize_diagonal"]


def _prepare_abcd(A, B, C, D):
    """Tensors A (..., n, n), B (..., n, m), C (..., p, n), D (..., p, m) in one dtype; shapes checked."""
    names = ("A", "B", "C", "D")
    mats = [as_tensor(nm, x) for nm, x in zip(names, (A, B, C, D), strict=True)]
    dtype = mats[0].dtype
    for t in mats[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    mats = [t.to(dtype) for t in mats]
    A, B, C, D = mats
    for nm, t in zip(names[:3], (A, B, C), strict=True):
        if t.ndim < 2:
            raise ValueError(
                f"{nm} must be a matrix (at least 2-D, leading dims are batch dims); got shape {tuple(t.shape)}"
            )
    n = A.shape[-1]
    if A.shape[-2] != n:
        raise ValueError(f"A must be square (..., n, n); got shape {tuple(A.shape)}")
    if B.shape[-2] != n:
        raise ValueError(f"B must have n = {n} rows to match A; got shape {tuple(B.shape)}")
    if C.shape[-1] != n:
        raise ValueError(f"C must have n = {n} columns to match A; got shape {tuple(C.shape)}")
    m, p = B.shape[-1], C.shape[-2]
    if D.ndim == 0:
        # A scalar D (typically 0, as scipy users write it) means D * ones((p, m)).
        D = D.expand(p, m)
    if D.ndim < 2 or D.shape[-2:] != (p, m):
        raise ValueError(
            f"D must have shape (p, m) = ({p}, {m}) to match C (p, n) and B (n, m); got shape {tuple(D.shape)}"
        )
    for nm, t in zip(names, (A, B, C, D), strict=True):
        check_finite(nm, t)
    return A, B, C, D


def _dt_tensor(dt, like: torch.Tensor) -> torch.Tensor:
    """dt as a real tensor of the dtype of ``like`` (its real counterpart for complex systems)."""
    real = like.real.dtype if like.is_complex() else like.dtype
    return as_tensor("dt", dt, dtype=real, device=like.device)


#: Below this 1-norm :func:`_expm` sums the Taylor series itself (degree ``_TAYLOR_DEGREE``).
_TAYLOR_NORM, _TAYLOR_DEGREE = 0.1, 12


def _expm(M: torch.Tensor) -> torch.Tensor:
    r"""Matrix exponential of ``M`` (..., n, n), accurate to rounding for every norm.

    ``torch.linalg.matrix_exp`` loses accuracy in float64 for matrices (n >= 2)
    whose 1-norm lies in about (0.004, 0.1): ``expm(-0.044 I)`` is off by
    1.3e-10 (torch 2.13; scipy.linalg.expm is exact), i.e. it truncates its
    Taylor series too early there -- exactly the ``A·dt`` of a stable system
    sampled fast. For such matrices the series is summed here instead, by
    Horner's rule, :math:`e^M pprox I + M(I + 	frac{M}{2}(I + \cdots(I + 	frac{M}{12})))`,
    whose truncation error is below :math:`\|M\|^{13}/13! < 10^{-22}` at
    :math:`\|M\|_1 < 0.1`; larger matrices keep torch's scaling and squaring.
    Differentiable either way.
    """
    eye = torch.eye(M.shape[-1], dtype=M.dtype, device=M.device)  # (n n)
    series = eye.expand_as(M)
    for k in range(_TAYLOR_DEGREE, 0, -1):
        series = eye + (M @ series) / k  # (... n n)
    small = M.abs().sum(dim=-2).amax(dim=-1) < _TAYLOR_NORM  # (...,) 1-norm
    return torch.where(small[..., None, None], series, torch.linalg.matrix_exp(M))


def _expm_blocks(top: torch.Tensor, size: int) -> torch.Tensor:
    """expm of the square matrix whose first rows are ``top`` (..., r, size) and the rest zeros."""
    r = top.shape[-2]
    zeros = top.new_zeros(top.shape[:-2] + (size - r, size))
    return _expm(torch.cat([top, zeros], dim=-2))


def _discretize_tensors(A, B, C, D, dt, method: str, alpha: float | None):
    """Core formulas on tensors; ``dt`` (...) broadcasts against the batch dims of A, B, C, D."""
    n, m, p = A.shape[-1], B.shape[-1], C.shape[-2]
    try:
        batch = torch.broadcast_shapes(A.shape[:-2], B.shape[:-2], C.shape[:-2], D.shape[:-2], dt.shape)
    except RuntimeError:
        shapes = ", ".join(f"{nm} {tuple(t.shape)}" for nm, t in zip("ABCD", (A, B, C, D), strict=True))
        raise ValueError(
            f"batch dimensions do not broadcast: {shapes}, dt {tuple(dt.shape)} "
            "(matrices are (..., rows, cols); dt is (...))"
        ) from None
    A = A.expand(batch + (n, n))  # (... n n)
    B = B.expand(batch + (n, m))  # (... n m)
    C = C.expand(batch + (p, n))  # (... p n)
    D = D.expand(batch + (p, m))  # (... p m)
    dtm = dt.expand(batch)[..., None, None].to(A.dtype)  # (... 1 1)

    if method == "zoh":
        # expm(dt [[A, B], [0, 0]]) = [[Ad, Bd], [0, I]]: no A^{-1}, so singular A is fine.
        E = _expm_blocks(torch.cat([A * dtm, B * dtm], dim=-1), n + m)  # (... n+m n+m)
        return E[..., :n, :n], E[..., :n, n:], C, D
    if method == "foh":
        # expm([[A dt, B dt, 0], [0, 0, I], [0, 0, 0]]) (scipy's foh; Franklin, Powell & Workman).
        eye_m = torch.eye(m, dtype=A.dtype, device=A.device).expand(batch + (m, m))
        top = torch.cat([A * dtm, B * dtm, A.new_zeros(batch + (n, m))], dim=-1)  # (... n n+2m)
        mid = torch.cat([A.new_zeros(batch + (m, n + m)), eye_m], dim=-1)  # (... m n+2m)
        E = _expm_blocks(torch.cat([top, mid], dim=-2), n + 2 * m)  # (... n+2m n+2m)
        M11, M12, M13 = E[..., :n, :n], E[..., :n, n : n + m], E[..., :n, n + m :]
        return M11, M12 - M13 + M11 @ M13, C, D + C @ M13
    if method == "impulse":
        if not bool((D.detach() == 0).all()):
            raise ValueError("method='impulse' is only defined for strictly proper systems (D = 0)")
        Ad = _expm(A * dtm)  # (... n n)
        return Ad, Ad @ B * dtm, C, C @ B * dtm
    # Generalized bilinear transform (Zhang, Chen & Chen 2009), as scipy's gbt.
    eye = torch.eye(n, dtype=A.dtype, device=A.device)
    ima = eye - alpha * dtm * A  # (... n n)
    Ad = torch.linalg.solve(ima, eye + (1.0 - alpha) * dtm * A)  # (... n n)
    Bd = torch.linalg.solve(ima, dtm * B)  # (... n m)
    Cd = torch.linalg.solve(ima.mT, C.mT).mT  # (... p n)
    return Ad, Bd, Cd, D + alpha * C @ Bd


def discretize(A, B, C, D, dt, method: str = "zoh", alpha: float | None = None):
    r"""Discretize a continuous-time state space system.

    Converts :math:`\dot x = A x + B u,\; y = C x + D u` into
    :math:`x[k+1] = A_d x[k] + B_d u[k],\; y[k] = C_d x[k] + D_d u[k]`, exactly as
    :func:`scipy.signal.cont2discrete` does, for NumPy arrays or (batched,
    differentiable) PyTorch tensors.

    Parameters
    ----------
    A, B, C, D : array_like or torch.Tensor
        System matrices of shapes ``(..., n, n)``, ``(..., n, m)``, ``(..., p, n)``
        and ``(..., p, m)``; leading dimensions are batch dimensions and broadcast.
        ``D`` may be a scalar (``0``), meaning ``D * ones((p, m))``.
    dt : float, array_like or torch.Tensor
        Sampling interval(s), all finite and positive. An array of shape ``(...)``
        broadcasts against the batch dimensions, giving one discretization per entry.
    method : str, optional
        ``"zoh"`` (default), ``"foh"``, ``"impulse"``, ``"bilinear"``/``"tustin"``,
        ``"euler"``/``"forward_diff"``, ``"backward_diff"`` or ``"gbt"``.
    alpha : float, optional
        Weight in ``[0, 1]`` for ``method="gbt"``; ignored otherwise.

    Returns
    -------
    Ad, Bd, Cd, Dd : ndarray or torch.Tensor
        Discrete matrices, with the broadcast batch shape. NumPy in, NumPy
        (float64 or complex128) out; if any input is a tensor, tensors come out
        and gradients flow to ``A``, ``B``, ``C``, ``D`` and ``dt``.

    Raises
    ------
    ValueError
        Unknown method, ``gbt`` without a valid ``alpha``, inconsistent shapes,
        non-finite entries, ``dt <= 0`` or non-finite, ``"impulse"`` with ``D != 0``.

    See Also
    --------
    scipy.signal.cont2discrete : the reference implementation (unbatched NumPy).
    discretize_diagonal : the same for diagonal systems, elementwise.

    Notes
    -----
    With :math:`\Delta` = ``dt`` and :math:`I` the identity:

    * ``zoh`` (input held constant over each step): the top block row of
      :math:`\exp\left(\Delta\begin{bmatrix}A & B\\ 0 & 0\end{bmatrix}\right)`
      is :math:`[A_d\; B_d]`, i.e. :math:`A_d = e^{A\Delta}`,
      :math:`B_d = \int_0^\Delta e^{A\tau}\,d\tau\, B`; this augmented matrix
      exponential [1]_ never inverts :math:`A`, so a singular :math:`A` (an
      integrator) is fine. :math:`C_d = C`, :math:`D_d = D`.
    * ``foh`` (input linear between samples): with
      :math:`M = \exp\begin{bmatrix}A\Delta & B\Delta & 0\\ 0 & 0 & I\\ 0 & 0 & 0\end{bmatrix}`,
      :math:`A_d = M_{11}`, :math:`B_d = M_{12} - M_{13} + M_{11} M_{13}`,
      :math:`C_d = C`, :math:`D_d = D + C M_{13}` [2]_. Its state is
      :math:`x[k] - M_{13} u[k]`, so a zero discrete initial state means the
      continuous system at rest only if :math:`u[0] = 0`; then the output equals
      :func:`scipy.signal.lsim` with its default linear interpolation exactly.
    * ``impulse``: :math:`A_d = e^{A\Delta}`, :math:`B_d = e^{A\Delta} B\Delta`,
      :math:`C_d = C`, :math:`D_d = C B \Delta`; needs :math:`D = 0`.
    * ``gbt`` with weight :math:`\alpha` [3]_: :math:`A_d = (I - \alpha\Delta A)^{-1}(I + (1-\alpha)\Delta A)`,
      :math:`B_d = (I - \alpha\Delta A)^{-1}\Delta B`, :math:`C_d = C (I - \alpha\Delta A)^{-1}`,
      :math:`D_d = D + \alpha C B_d`. ``bilinear``/``tustin`` is
      :math:`\alpha = 1/2` (:math:`H_d(z) = H_c(\tfrac{2}{\Delta}\tfrac{z-1}{z+1})` exactly),
      ``euler`` is :math:`\alpha = 0`, ``backward_diff`` is :math:`\alpha = 1`.

    Unlike S4/S5 "bilinear", SciPy's transforms :math:`C` and :math:`D` too; the
    results here equal SciPy's (to rounding) for every method.

    References
    ----------
    .. [1] C. Van Loan, "Computing integrals involving the matrix exponential",
       IEEE Trans. Automatic Control 23(3), 395-404, 1978.
    .. [2] G. F. Franklin, J. D. Powell, M. L. Workman, *Digital Control of
       Dynamic Systems*, 3rd ed., Addison-Wesley, 1998, sec. 6.3.
    .. [3] G. Zhang, X. Chen, T. Chen, "Digital redesign via the generalized
       bilinear transformation", Int. J. Control 82(4), 741-754, 2009.

    Examples
    --------
    A double integrator (singular :math:`A`) under zero-order hold:

    >>> import numpy as np
    >>> from sciamba.ssm import discretize
    >>> A = np.array([[0.0, 1.0], [0.0, 0.0]]); B = np.array([[0.0], [1.0]])
    >>> Ad, Bd, Cd, Dd = discretize(A, B, np.eye(2), np.zeros((2, 1)), dt=0.1)
    >>> Bd.ravel()  # [dt**2 / 2, dt]
    array([0.005, 0.1  ])

    Batched over step sizes, with gradients:

    >>> import torch
    >>> dt = torch.tensor([0.1, 0.2, 0.5], dtype=torch.float64, requires_grad=True)
    >>> Ad, Bd, Cd, Dd = discretize(torch.tensor(A), torch.tensor(B), torch.eye(2, dtype=torch.float64),
    ...                             torch.zeros(2, 1, dtype=torch.float64), dt, method="bilinear")
    >>> Ad.shape, Dd.shape
    (torch.Size([3, 2, 2]), torch.Size([3, 2, 1]))
    >>> Bd.sum().backward(); dt.grad.shape
    torch.Size([3])
    """
    method, alpha = check_method(method, alpha)
    use_torch = any(isinstance(x, torch.Tensor) for x in (A, B, C, D, dt))
    A, B, C, D = _prepare_abcd(A, B, C, D)
    if not use_torch and not A.is_complex():
        # NumPy path: compute in float64 whatever the input precision, as scipy does.
        A, B, C, D = (t.to(torch.float64) for t in (A, B, C, D))
    check_dt(dt)
    dtt = _dt_tensor(dt, A)
    out = _discretize_tensors(A, B, C, D, dtt, method, alpha)
    if use_torch:
        return out
    return tuple(t.detach().cpu().numpy().copy() for t in out)


def _phi1(z: torch.Tensor) -> torch.Tensor:
    r""":math:`\varphi_1(z) = (e^z - 1)/z`, with :math:`\varphi_1(0) = 1`, accurate for :math:`z \to 0`."""
    small = z.abs() < 1e-4
    # Keep the unused branch away from 0/0 so that its gradient is finite too.
    z_safe = torch.where(small, torch.ones_like(z), z)
    series = 1 + z / 2 + z * z / 6  # error below |z|^3/24 < 1e-13 relative
    return torch.where(small, series, torch.expm1(z_safe) / z_safe)


def discretize_diagonal(Lambda, B, dt, method: str = "zoh", alpha: float | None = None):
    r"""Discretize a diagonal continuous-time system, elementwise.

    For :math:`\dot x_n = \lambda_n x_n + B_n u` (the diagonal state matrices of
    S4D, S5 and Mamba, real or complex) returns :math:`(\bar\lambda_n, \bar B_n)`
    with :math:`x_n[k+1] = \bar\lambda_n x_n[k] + \bar B_n u[k]`.

    Parameters
    ----------
    Lambda : torch.Tensor or array_like
        Diagonal of the state matrix, shape ``(..., N)``, real or complex.
    B : torch.Tensor or array_like
        Input weights, broadcastable against ``Lambda`` (e.g. ``(..., N)``).
    dt : float or torch.Tensor
        Step size(s), finite and positive; broadcast against ``Lambda`` and ``B``.
        A scalar, one step per channel (``(H, 1)`` against ``Lambda`` of shape
        ``(H, N)``), or one per time step (``(..., L, 1)``) all work.
    method : str, optional
        ``"zoh"`` (default), ``"bilinear"``/``"tustin"``, ``"euler"``/``"forward_diff"``,
        ``"backward_diff"`` or ``"gbt"`` (with ``alpha``).
    alpha : float, optional
        Weight in ``[0, 1]`` for ``method="gbt"``.

    Returns
    -------
    Lambda_d, B_d : torch.Tensor
        Broadcast shape of ``Lambda``, ``B`` and ``dt``; complex if ``Lambda`` or
        ``B`` is. Differentiable in all three inputs.

    Raises
    ------
    ValueError
        Unknown or unsupported method (``foh``/``impulse`` change the output
        matrices; use :func:`discretize`), non-finite values, ``dt <= 0``.

    See Also
    --------
    discretize : dense systems, all SciPy methods, including C and D.

    Notes
    -----
    With :math:`z = \Delta\lambda`:

    * ``zoh``: :math:`\bar\lambda = e^{z}`,
      :math:`\bar B = \Delta\,\varphi_1(z)\,B` where
      :math:`\varphi_1(z) = (e^{z}-1)/z` is evaluated with ``expm1`` (and its
      Taylor series for :math:`|z| < 10^{-4}`), so :math:`\lambda \to 0` is
      exact, also in float32, unlike the textbook :math:`(e^{z}-1)/\lambda`,
      which returns 0 or NaN there.
    * ``gbt`` with weight :math:`\alpha`: :math:`\bar\lambda = (1 + (1-\alpha)z)/(1 - \alpha z)`,
      :math:`\bar B = \Delta B/(1 - \alpha z)`; ``bilinear`` is :math:`\alpha = 1/2`.

    These are the :math:`A_d, B_d` of :func:`discretize` for ``A = diag(Lambda)``.
    The output side is left to the caller: S4/S5 keep :math:`C` and :math:`D`
    (their "bilinear" is therefore not SciPy's Tustin, which also changes
    :math:`C` and :math:`D`; see :func:`discretize`).

    References
    ----------
    .. [1] A. Gu, A. Gupta, K. Goel, C. Ré, "On the Parameterization and
       Initialization of Diagonal State Space Models", NeurIPS 2022, arXiv:2206.11893.
    .. [2] J. T. H. Smith, A. Warrington, S. W. Linderman, "Simplified State Space
       Layers for Sequence Modeling", ICLR 2023, arXiv:2208.04933.

    Examples
    --------
    >>> import torch
    >>> from sciamba.ssm import discretize_diagonal, s4d_init
    >>> A, B = s4d_init("lin", 4)
    >>> Lambda, B = torch.as_tensor(A), torch.as_tensor(B)
    >>> dt = torch.tensor([[1e-3], [1e-2]], dtype=torch.float64)   # two channels
    >>> Ld, Bd = discretize_diagonal(Lambda, B, dt)
    >>> Ld.shape
    torch.Size([2, 4])
    >>> discretize_diagonal(torch.zeros(1), torch.ones(1), 0.1)[1]   # integrator: B_d = dt
    tensor([0.1000])
    """
    if isinstance(method, str) and method.lower() in ("foh", "impulse"):
        raise ValueError(
            f"method={method!r} also changes C and D, which a diagonal (Lambda, B) pair does not hold; "
            "use sciamba.ssm.discretize on the dense system instead"
        )
    method, alpha = check_method(method, alpha, allowed=DIAGONAL_METHODS)
    Lambda = as_tensor("Lambda", Lambda)
    B = as_tensor("B", B, device=Lambda.device)
    if isinstance(dt, bool) or isinstance(dt, torch.Tensor) and (dt.is_complex() or dt.dtype == torch.bool):
        check_dt(dt)  # raises the TypeError
    real = Lambda.real.dtype if Lambda.is_complex() else Lambda.dtype
    dt = as_tensor("dt", dt, dtype=real, device=Lambda.device) if not isinstance(dt, torch.Tensor) else dt
    # This runs in training loops: one combined test (one device sync), details only on failure.
    ok = torch.isfinite(Lambda).all() & torch.isfinite(B).all() & torch.isfinite(dt).all() & (dt > 0).all()
    if not bool(ok):
        check_finite("Lambda", Lambda)
        check_finite("B", B)
        check_dt(dt)
    z = dt * Lambda  # (... N)
    if method == "zoh":
        return torch.exp(z), dt * _phi1(z) * B
    denom = 1 - alpha * z  # (... N)
    return (1 + (1 - alpha) * z) / denom, dt * B / denom
