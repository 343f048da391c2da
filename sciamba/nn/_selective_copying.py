"""The selective copying task of Gu & Dao (2023), section 4.1."""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.utils import check_random_state

__all__ = ["make_selective_copying"]


def make_selective_copying(
    n_samples: int,
    *,
    seq_len: int = 4096,
    n_tokens: int = 16,
    vocab_size: int = 16,
    random_state: int | np.random.Generator | np.random.RandomState | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Generate instances of the selective copying task.

    Each input holds ``n_tokens`` data tokens scattered at random positions
    among ``seq_len`` positions of noise, followed by ``n_tokens`` marker
    tokens; at the marker positions a model must output the data tokens in
    the order they appeared. Because the spacing between data tokens is random,
    a time-invariant (LTI) model such as S4 cannot solve it with a fixed
    convolution kernel: the model has to *select* what to remember from the
    content of the input, which is what Mamba's input-dependent
    :math:`\\Delta, B, C` allow [1]_.

    Token ids: ``0 .. vocab_size - 1`` are data tokens, ``vocab_size`` is the
    noise (blank) token and ``vocab_size + 1`` the marker token, so an
    embedding needs ``vocab_size + 2`` rows and a classifier head
    ``vocab_size`` outputs.

    Parameters
    ----------
    n_samples : int
        Number of sequences.
    seq_len : int, optional
        Length of the region the data tokens are scattered in. The paper uses
        4096. The inputs are ``seq_len + n_tokens`` long.
    n_tokens : int, optional
        Number of data tokens to memorize and copy (paper: 16). At most
        ``seq_len``.
    vocab_size : int, optional
        Number of distinct data tokens (paper: 16).
    random_state : int, numpy Generator or RandomState, or None, optional
        Seed or generator, as in scikit-learn.

    Returns
    -------
    inputs : ndarray of int64, shape (n_samples, seq_len + n_tokens)
        Token ids.
    targets : ndarray of int64, shape (n_samples, n_tokens)
        The data tokens in order; these are the labels of the last
        ``n_tokens`` positions of ``inputs``.

    See Also
    --------
    sciamba.nn.make_backbone : the models compared on this task.

    References
    ----------
    .. [1] A. Gu and T. Dao, "Mamba: Linear-Time Sequence Modeling with
           Selective State Spaces", arXiv:2312.00752, 2023. Section 4.1.1 and
           Table 1 (2-layer models: S4 18.3 %, Mamba 97.0 % accuracy).

    Examples
    --------
    >>> from sciamba.nn import make_selective_copying
    >>> X, y = make_selective_copying(2, seq_len=10, n_tokens=3, vocab_size=4, random_state=0)
    >>> X.shape, y.shape
    ((2, 13), (2, 3))
    >>> data = X[0, :10][X[0, :10] < 4]   # the data tokens in the first sequence
    >>> bool((data == y[0]).all()), bool((X[:, -3:] == 5).all())
    (True, True)
    """
    for name, value, low in (
        ("n_samples", n_samples, 1),
        ("seq_len", seq_len, 1),
        ("n_tokens", n_tokens, 1),
        ("vocab_size", vocab_size, 1),
    ):
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if n_tokens > seq_len:
        raise ValueError(
            f"n_tokens ({n_tokens}) cannot exceed seq_len ({seq_len}): the data tokens "
            "need distinct positions"
        )
    if isinstance(random_state, np.random.Generator):
        gen = random_state
    else:
        gen = np.random.default_rng(check_random_state(random_state).randint(2**31 - 1))

    noise, marker = vocab_size, vocab_size + 1
    targets = gen.integers(0, vocab_size, size=(n_samples, n_tokens), dtype=np.int64)
    # Distinct sorted positions per row: argsort of uniform keys is a random
    # permutation; its first n_tokens entries, sorted, are a uniform subset.
    keys = gen.random((n_samples, seq_len))
    positions = np.sort(np.argsort(keys, axis=1)[:, :n_tokens], axis=1)  # (n, n_tokens)
    inputs = np.full((n_samples, seq_len + n_tokens), noise, dtype=np.int64)
    np.put_along_axis(inputs[:, :seq_len], positions, targets, axis=1)
    inputs[:, seq_len:] = marker
    return inputs, targets
