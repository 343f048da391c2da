"""Random training-time augmentation of standardized series batches (classifier).

Two label-preserving perturbations of a batch ``x`` ``(B, L, C)`` and one
label-mixing one, all drawn from a caller's :class:`numpy.random.Generator`
so that a fixed ``random_state`` reproduces them:

* :func:`scale_and_jitter`: every series is multiplied by one random factor
  ``1 + sigma_s * N(0, 1)`` and gets independent Gaussian noise
  ``sigma_j * N(0, 1)`` at each observed step (magnitude-scaling and jittering
  of Um et al. [1]_; both among the augmentations with the most consistent
  gains in the survey of Iwana and Uchida [2]_);
* :func:`mixup_batch`: convex combinations of pairs of series and of their labels
  with a weight drawn from ``Beta(alpha, alpha)`` (Zhang et al. [3]_).

Unobserved steps (input 0, gap 0) stay 0: the model still skips them.

References
----------
.. [1] T. T. Um et al., "Data Augmentation of Wearable Sensor Data for
       Parkinson's Disease Monitoring using Convolutional Neural Networks",
       ICMI 2017, arXiv:1706.00527.
.. [2] B. K. Iwana and S. Uchida, "An empirical survey of data augmentation
       for time series classification with neural networks", PLOS ONE 16(7),
       e0254841, 2021.
.. [3] H. Zhang, M. Cisse, Y. N. Dauphin and D. Lopez-Paz, "mixup: Beyond
       Empirical Risk Minimization", ICLR 2018, arXiv:1710.09412.
"""

from __future__ import annotations

import numpy as np

__all__ = ["scale_and_jitter", "mixup_batch", "SCALE_SD", "JITTER_SD"]

#: Standard deviation of the per-series amplitude factor (around 1).
SCALE_SD = 0.1
#: Standard deviation of the additive noise, in units of the standardized input.
JITTER_SD = 0.03


def scale_and_jitter(
    x: np.ndarray,
    observed: np.ndarray,
    rng: np.random.Generator,
    scale_sd: float = SCALE_SD,
    jitter_sd: float = JITTER_SD,
) -> np.ndarray:
    """Random per-series amplitude scaling and additive noise at observed steps.

    .. math:: \\tilde x_{b,t,c} = s_b\\, x_{b,t,c} + m_{b,t}\\, \\sigma_j\\, \\varepsilon_{b,t,c},
              \\qquad s_b = 1 + \\sigma_s \\eta_b,

    with :math:`\\eta_b, \\varepsilon_{b,t,c} \\sim N(0, 1)` independent and
    :math:`m_{b,t}` the observation mask.

    Parameters
    ----------
    x : ndarray of shape (B, L, C)
        Standardized batch, 0 where unobserved.
    observed : ndarray of shape (B, L)
        True where a value was observed.
    rng : numpy.random.Generator
        Source of the random draws.
    scale_sd, jitter_sd : float
        :math:`\\sigma_s` and :math:`\\sigma_j`.

    Returns
    -------
    ndarray of shape (B, L, C)
        A new array of ``x``'s dtype.

    Examples
    --------
    >>> import numpy as np
    >>> observed = np.array([[False, True, True, True]] * 2)
    >>> x = observed[..., None].astype(np.float32)  # 1 where observed, 0 elsewhere
    >>> out = scale_and_jitter(x, observed, np.random.default_rng(0))
    >>> out.shape, out.dtype, bool(np.all(out[:, 0] == 0))
    ((2, 4, 1), dtype('float32'), True)
    """
    B = x.shape[0]
    scale = 1.0 + scale_sd * rng.standard_normal((B, 1, 1))  # (B 1 1)
    noise = jitter_sd * rng.standard_normal(x.shape) * observed[..., None]  # (B L C)
    return (x * scale + noise).astype(x.dtype)  # x is 0 where unobserved: it stays 0


def mixup_batch(
    x: np.ndarray, alpha: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, float]:
    """Mix each series of a batch with another one of the same batch.

    .. math:: \\tilde x_b = \\lambda x_b + (1 - \\lambda) x_{\\pi(b)},
              \\qquad \\lambda \\sim \\mathrm{Beta}(\\alpha, \\alpha),

    with :math:`\\pi` a random permutation of the batch; the loss is then
    :math:`\\lambda\\,\\ell(\\tilde x_b, y_b) + (1 - \\lambda)\\,\\ell(\\tilde x_b, y_{\\pi(b)})`.
    Series ``b`` keeps its own sampling pattern: where it is unobserved the
    model ignores the mixed value.

    Parameters
    ----------
    x : ndarray of shape (B, L, C)
        Batch.
    alpha : float
        Beta parameter (> 0); small values keep most pairs near one partner.
    rng : numpy.random.Generator
        Source of the random draws.

    Returns
    -------
    mixed : ndarray of shape (B, L, C)
    perm : ndarray of shape (B,)
        Partner of each series.
    lam : float
        Weight of the series itself.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(6, dtype=np.float32).reshape(3, 2, 1)
    >>> mixed, perm, lam = mixup_batch(x, 0.4, np.random.default_rng(0))
    >>> np.allclose(mixed, lam * x + (1 - lam) * x[perm])
    True
    """
    if not alpha > 0:
        raise ValueError(f"mixup needs alpha > 0; got {alpha!r}.")
    lam = float(rng.beta(alpha, alpha))
    perm = rng.permutation(x.shape[0])  # (B)
    mixed = (lam * x + (1.0 - lam) * x[perm]).astype(x.dtype)  # (B L C)
    return mixed, perm, lam
