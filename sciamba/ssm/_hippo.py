"""HiPPO state matrices, their normal-plus-low-rank form, and S4D initializations."""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["hippo", "nplr", "s4d_init", "HIPPO_KINDS", "S4D_KINDS"]

HIPPO_KINDS = ("legs", "legt", "lagt", "fourier")
S4D_KINDS = ("real", "lin", "inv")
_ALIASES = {"fout": "fourier"}


def _check_kind(kind, allowed, what: str) -> str:
    if not isinstance(kind, str):
        raise TypeError(f"{what} kind must be a string, one of {allowed}; got {type(kind).__name__}")
    key = _ALIASES.get(kind.lower(), kind.lower())
    if key not in allowed:
        raise ValueError(f"unknown {what} kind {kind!r}; choose one of {allowed}")
    return key


def _check_n(N, kind: str) -> int:
    if isinstance(N, bool) or not isinstance(N, numbers.Integral):
        raise TypeError(f"N must be a positive integer; got {N!r}")
    if N < 1:
        raise ValueError(f"N must be a positive integer; got {N}")
    if kind == "fourier" and N % 2:
        raise ValueError(f"hippo('fourier', N) pairs cosine and sine states, so N must be even; got N={N}")
    return int(N)


def hippo(kind: str, N: int) -> tuple[np.ndarray, np.ndarray]:
    r"""HiPPO transition matrices :math:`(A, B)` of the continuous system :math:`\dot x = A x + B u`.

    Parameters
    ----------
    kind : {"legs", "legt", "lagt", "fourier"}
        Measure: scaled Legendre, translated Legendre, translated Laguerre,
        translated Fourier (``"fout"`` is an alias).
    N : int
        State size (even for ``"fourier"``).

    Returns
    -------
    A : ndarray, shape (N, N), float64
    B : ndarray, shape (N, 1), float64
        An input column, ready for :func:`discretize` and :class:`LTISSM`.

    Raises
    ------
    ValueError
        Unknown kind, ``N < 1``, odd ``N`` for ``"fourier"``.

    See Also
    --------
    nplr : the normal-plus-low-rank (unitarily diagonalizable) form of ``A``.

    Notes
    -----
    Indices start at 0 and :math:`r_n = \sqrt{2n+1}`. The definitions are those
    of the HiPPO paper [1]_ in the orthonormal-basis coordinates used by
    state-spaces/s4 (``src/models/hippo/hippo.py``):

    * LegS: :math:`A_{nk} = -r_n r_k` for :math:`n > k`, :math:`-(n+1)` for
      :math:`n = k`, 0 above the diagonal; :math:`B_n = r_n`. Eigenvalues
      :math:`-1, \dots, -N`.
    * LegT: :math:`A_{nk} = -\tfrac12 r_n r_k` for :math:`n \ge k` and
      :math:`-\tfrac12 r_n r_k (-1)^{n-k}` for :math:`n < k`;
      :math:`B_n = \tfrac12 r_n` (the paper's LegT with window :math:`\theta = 2`,
      halved as in current S4 "for timescale correctness").
    * LagT: :math:`A = -\tfrac12 I - \text{strictly lower ones}`, :math:`B = 1`.
    * FouT: :math:`A = \pi\,\mathrm{blockdiag}(0, 0, R_1, \dots, R_{N/2-1}) - B B^T`
      with :math:`R_k = \begin{bmatrix}0 & -k\\ k & 0\end{bmatrix}` on states
      :math:`(2k, 2k+1)` and :math:`B = (1, 0, \sqrt2, 0, \sqrt2, 0, \dots)`.

    **Numerical trap.** Do not diagonalize these matrices directly (``np.linalg.eig``).
    LegS is diagonalizable in exact arithmetic, but its eigenvector matrix has
    entries :math:`V_{ij} = \binom{i+j}{i-j}`, growing like :math:`2^{4N/3}` [2]_;
    its condition number is about :math:`10^{5}` at N = 8, :math:`10^{11}` at
    N = 16 and beyond :math:`10^{18}` at N = 32, so :math:`V\Lambda V^{-1}` no
    longer reproduces :math:`A` and a diagonal model built from it is garbage.
    Use :func:`nplr`, which diagonalizes the *normal* part with a unitary basis.

    References
    ----------
    .. [1] A. Gu, T. Dao, S. Ermon, A. Rudra, C. Ré, "HiPPO: Recurrent Memory with
       Optimal Polynomial Projections", NeurIPS 2020, arXiv:2008.07669.
    .. [2] A. Gu, K. Goel, C. Ré, "Efficiently Modeling Long Sequences with
       Structured State Spaces", ICLR 2022, arXiv:2111.00396, Lemma 3.2.

    Examples
    --------
    >>> import numpy as np
    >>> from sciamba.ssm import hippo
    >>> A, B = hippo("legs", 4)
    >>> np.sort(np.linalg.eigvals(A).real)
    array([-4., -3., -2., -1.])
    >>> B.shape
    (4, 1)
    """
    kind = _check_kind(kind, HIPPO_KINDS, "HiPPO")
    N = _check_n(N, kind)
    q = np.arange(N, dtype=np.float64)
    r = np.sqrt(2 * q + 1)
    row, col = q[:, None], q[None, :]
    if kind == "legs":
        A = -np.where(row > col, np.outer(r, r), 0.0) - np.diag(q + 1)
        B = r.copy()
    elif kind == "legt":
        sign = np.where(row >= col, 1.0, (-1.0) ** (row - col))
        A = -0.5 * np.outer(r, r) * sign
        B = 0.5 * r
    elif kind == "lagt":
        A = -0.5 * np.eye(N) - np.tril(np.ones((N, N)), -1)
        B = np.ones(N)
    else:  # fourier
        B = np.zeros(N)
        B[0::2] = np.sqrt(2.0)
        B[0] = 1.0
        A = np.zeros((N, N))
        for k in range(1, N // 2):
            A[2 * k, 2 * k + 1] = -np.pi * k
            A[2 * k + 1, 2 * k] = np.pi * k
        A -= np.outer(B, B)
    return A, B[:, None]


def _low_rank(kind: str, N: int) -> np.ndarray:
    """P (N, r) such that A + P P^T is normal (S4's rank correction)."""
    q = np.arange(N, dtype=np.float64)
    if kind == "legs":
        return np.sqrt(q + 0.5)[:, None]
    if kind == "legt":
        # Halved along with A: entries r_n / sqrt(2), even and odd n in separate columns.
        p = np.sqrt(2 * q + 1) / np.sqrt(2.0)
        P = np.zeros((N, 2))
        P[0::2, 0] = p[0::2]
        P[1::2, 1] = p[1::2]
        return P
    if kind == "lagt":
        return np.full((N, 1), np.sqrt(0.5))
    return hippo("fourier", N)[1]


def nplr(kind: str, N: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    r"""Normal-plus-low-rank form of a HiPPO matrix, as in S4.

    Returns :math:`\Lambda, P, B, V` with

    .. math:: A = V \,\mathrm{diag}(\Lambda)\, V^* - P P^T,

    :math:`V` unitary and :math:`P` of rank 1 (LegS, LagT, FouT) or 2 (LegT).

    Parameters
    ----------
    kind : {"legs", "legt", "lagt", "fourier"}
    N : int
        State size.

    Returns
    -------
    Lambda : ndarray, shape (N,), complex128
        Eigenvalues of the normal part :math:`A + PP^T`, sorted by imaginary
        part (ascending), so conjugate pairs split into halves:
        ``Lambda[:N // 2]`` is the half S4 keeps.
    P : ndarray, shape (N, r), float64
        Low-rank factor, in the original coordinates.
    B : ndarray, shape (N,), float64
        The HiPPO input vector (original coordinates; ``V.conj().T @ B`` is S4's).
    V : ndarray, shape (N, N), complex128
        Unitary eigenvector matrix of :math:`A + PP^T`.

    Raises
    ------
    ValueError
        Unknown kind or invalid ``N``.

    See Also
    --------
    hippo : the matrices themselves.

    Notes
    -----
    For every kind here, :math:`S = A + PP^T = cI + W` with :math:`W` skew-symmetric
    (:math:`c = -1/2` for LegS, 0 for LegT, LagT and FouT), so
    :math:`\Lambda = c + i\omega` where :math:`\omega, V` come from the Hermitian
    eigenproblem of :math:`-iW` (``numpy.linalg.eigh``), solved in float64 [1]_.
    Unlike ``eig(A)`` (see the trap described in :func:`hippo`), this basis is
    unitary, so it is perfectly conditioned at any N.

    References
    ----------
    .. [1] A. Gu, K. Goel, C. Ré, "Efficiently Modeling Long Sequences with
       Structured State Spaces", ICLR 2022, arXiv:2111.00396, sec. 3.3.

    Examples
    --------
    >>> import numpy as np
    >>> from sciamba.ssm import hippo, nplr
    >>> Lam, P, B, V = nplr("legs", 16)
    >>> A, _ = hippo("legs", 16)
    >>> np.allclose(V @ np.diag(Lam) @ V.conj().T - P @ P.T, A)
    True
    >>> np.allclose(Lam.real, -0.5), np.linalg.cond(V).round(6)
    (True, np.float64(1.0))
    """
    kind = _check_kind(kind, HIPPO_KINDS, "HiPPO")
    N = _check_n(N, kind)
    A, B = hippo(kind, N)
    P = _low_rank(kind, N)
    S = A + P @ P.T  # (N N): c I + skew
    c = np.mean(np.diag(S))
    W = 0.5 * (S - S.T)  # (N N) skew part
    omega, V = np.linalg.eigh(-1j * W)  # (N,), (N N) unitary
    order = np.argsort(omega, kind="stable")
    Lam = (c + 1j * omega[order]).astype(np.complex128)
    return Lam, P, B[:, 0], V[:, order]


def s4d_init(kind: str, N: int) -> tuple[np.ndarray, np.ndarray]:
    r"""Diagonal state matrix and input vector of the S4D initializations.

    Parameters
    ----------
    kind : {"real", "lin", "inv"}
        S4D-Real, S4D-Lin or S4D-Inv [1]_.
    N : int
        Number of diagonal modes returned. For ``"lin"``/``"inv"`` each complex
        mode stands for a conjugate pair (a layer outputs :math:`2\,\mathrm{Re}(C x)`),
        so the real state size is :math:`2N`; for ``"real"`` it is :math:`N`.

    Returns
    -------
    A : ndarray, shape (N,), complex128
        The diagonal :math:`A_n`, :math:`n = 0, \dots, N-1` (imaginary part 0 for ``"real"``).
    B : ndarray, shape (N,), complex128
        :math:`B_n = 1`, as in the paper.

    Raises
    ------
    ValueError
        Unknown kind or ``N < 1``.

    See Also
    --------
    nplr : S4D-LegS takes the diagonal of the normal part of LegS instead.
    discretize_diagonal : discretizes :math:`(A, B)` for a given step.

    Notes
    -----
    With :math:`n = 0, \dots, N-1`:

    * S4D-Real: :math:`A_n = -(n + 1)`, the eigenvalues of HiPPO-LegS (Mamba's init).
    * S4D-Lin: :math:`A_n = -\tfrac12 + i\pi n`.
    * S4D-Inv: :math:`A_n = -\tfrac12 + i\,\frac{M}{\pi}\left(\frac{M}{2n+1} - 1\right)`
      with :math:`M = 2N` the real state size, the paper's :math:`N` (it indexes
      the :math:`N_{paper}/2` conjugate pairs; state-spaces/s4 ``dplr`` does the same).

    References
    ----------
    .. [1] A. Gu, A. Gupta, K. Goel, C. Ré, "On the Parameterization and
       Initialization of Diagonal State Space Models", NeurIPS 2022,
       arXiv:2206.11893, sec. 4.

    Examples
    --------
    >>> from sciamba.ssm import s4d_init
    >>> A, B = s4d_init("lin", 3)
    >>> A
    array([-0.5+0.j        , -0.5+3.14159265j, -0.5+6.28318531j])
    >>> s4d_init("real", 3)[0].real
    array([-1., -2., -3.])
    """
    kind = _check_kind(kind, S4D_KINDS, "S4D init")
    N = _check_n(N, kind)
    n = np.arange(N, dtype=np.float64)
    if kind == "real":
        A = -(n + 1) + 0j
    elif kind == "lin":
        A = -0.5 + 1j * np.pi * n
    else:
        M = 2 * N
        A = -0.5 + 1j * (M / np.pi) * (M / (2 * n + 1) - 1)
    return A.astype(np.complex128), np.ones(N, dtype=np.complex128)
