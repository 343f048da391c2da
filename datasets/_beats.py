"""Cutting fixed windows around annotated heart beats (shared by the MIT-BIH
loader and the synthetic ECG generator, so both give identical layouts)."""

from __future__ import annotations

import numpy as np

#: Annotation codes that mark a beat in the MIT-BIH / WFDB convention
#: (PhysioNet "Table of WFDB annotation codes"): N normal, L/R bundle branch
#: block, B unspecified bundle branch block, A/a/J/S supraventricular
#: premature, V premature ventricular, r R-on-T, F fusion, e/j/n escape,
#: E ventricular escape, / paced, f fusion of paced and normal, Q/? unclassifiable.
#: Everything else (``+`` rhythm change, ``~`` noise, ``|`` artefact, ``x``
#: non-conducted P wave, ...) is not a beat.
BEAT_SYMBOLS = frozenset("NLRBAaJSVrFejnE/fQ?")


def window_samples(fs: float, pre: float, post: float) -> tuple[int, int]:
    """Samples before and after the R peak for a window of ``pre``/``post`` seconds."""
    if not (np.isfinite(pre) and np.isfinite(post)) or pre < 0 or post <= 0:
        raise ValueError(
            f"beat window must have pre >= 0 and post > 0 seconds, got pre={pre}, post={post}"
        )
    return int(round(pre * fs)), int(round(post * fs))


def segment_beats(
    signal: np.ndarray,
    r_samples: np.ndarray,
    labels: np.ndarray,
    fs: float,
    pre: float,
    post: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windows ``signal[..., r - n_pre : r + n_post]`` around each R peak.

    Parameters
    ----------
    signal : ndarray, shape (n_leads, n_times)
    r_samples : ndarray of int, shape (n_beats,)
        Sample index of each R peak (the annotation position).
    labels : ndarray, shape (n_beats,)
    fs : float
        Sampling rate in Hz.
    pre, post : float
        Seconds kept before and after the R peak.

    Returns
    -------
    X : ndarray, shape (n_kept, n_leads, n_pre + n_post)
    y : ndarray, shape (n_kept,)
    kept : ndarray of int, shape (n_kept,)
        Indices (into ``r_samples``) of the beats whose window lies inside the
        record; beats too close to either end are dropped.
    """
    n_pre, n_post = window_samples(fs, pre, post)
    r_samples = np.asarray(r_samples, dtype=np.int64)
    n_times = signal.shape[-1]
    kept = np.flatnonzero((r_samples - n_pre >= 0) & (r_samples + n_post <= n_times))
    idx = r_samples[kept, None] + np.arange(-n_pre, n_post)  # (n_kept, window)
    X = np.moveaxis(signal[:, idx], 1, 0)  # (n_leads, n_kept, window) -> (n_kept, n_leads, window)
    return np.ascontiguousarray(X), np.asarray(labels)[kept], kept
