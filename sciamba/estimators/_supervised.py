"""What the classifier and the regressor share: whole series in, one vector out."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._data import Panel, nan_mean_std, pack_observations, standardize

__all__ = ["SeriesToVectorMixin", "split_validation"]


def split_validation(
    n: int, fraction: float, rng: np.random.Generator, stratify: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Random train/validation split of ``n`` series (stratified when possible).

    Returns ``(train, val)`` index arrays; ``val`` is None when the split would
    leave either side empty (then early stopping watches the training loss).
    """
    n_val = int(np.ceil(fraction * n))
    if n_val < 1 or n - n_val < 1:
        return np.arange(n), None
    if stratify is not None:
        classes, inverse = np.unique(stratify, return_inverse=True)
        counts = np.bincount(inverse)
        if counts.min() >= 2 and n_val >= classes.size and n - n_val >= classes.size:
            val = []
            # Per class, its share of the validation set (at least one each).
            share = np.maximum(1, np.round(counts * n_val / n).astype(int))
            for k in range(classes.size):
                members = rng.permutation(np.flatnonzero(inverse == k))
                val.extend(members[: min(share[k], counts[k] - 1)])
            val = np.sort(np.asarray(val))
            return np.setdiff1d(np.arange(n), val), val
    perm = rng.permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


class SeriesToVectorMixin:
    """Standardization, batching and inference for series -> vector models."""

    def _fit_scaler(self, panel: Panel) -> None:
        # One mean and scale per channel over all observed training values:
        # the amplitude of a series stays informative (it matters for regression).
        self._x_mean, self._x_scale = nan_mean_std(panel.values, axis=(0, 2))  # (1 C 1)

    def _model_inputs(self, panel: Panel) -> dict[str, np.ndarray]:
        packed, _ = pack_observations(panel)  # observations consecutive, missing steps in front
        x = standardize(packed.values, self._x_mean, self._x_scale)  # (n C T)
        return {
            "x": np.ascontiguousarray(x.transpose(0, 2, 1)),  # (n T C)
            "gaps": packed.gaps.astype(np.float32),  # (n T)
        }

    def _make_batch(self, data: dict[str, np.ndarray], samples: np.ndarray) -> dict[str, np.ndarray]:
        return {k: v[samples] for k, v in data.items()}

    def _decision(self, X: Any, times: Any) -> tuple[np.ndarray, Any]:
        self._check_fitted()
        from ._data import as_panel

        panel, _ = as_panel(self, X, reset=False, times=times, time_step=self._time_step)
        inputs = self._model_inputs(panel)
        return self._forward(inputs["x"], inputs["gaps"]), panel.layout
