"""``MambaForecaster``: one global causal model that forecasts the next values of series."""

from __future__ import annotations

import warnings
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, _fit_context
from sklearn.metrics import r2_score
from sklearn.utils._param_validation import Interval

from ._base import MambaEstimatorMixin
from ._data import (
    Panel,
    _times_to_float,
    as_panel,
    finish_panel,
    nan_mean_std,
    pack_observations,
    standardize,
    time_step_of,
    wrap_time_output,
)

__all__ = ["MambaForecaster", "pinball_loss"]


def pinball_loss(pred: torch.Tensor, target: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    r"""Elementwise pinball (quantile) loss.

    .. math::

        \rho_\tau(e) = \max(\tau e, (\tau - 1) e), \qquad e = y - \hat y_\tau,

    whose expectation is minimized by the :math:`\tau`-quantile of :math:`y`
    (Koenker and Bassett, 1978).

    Parameters
    ----------
    pred : torch.Tensor
        ``(..., Q)`` predicted quantiles.
    target : torch.Tensor
        ``(...)`` observed values (broadcast over the quantile axis).
    levels : torch.Tensor
        ``(Q,)`` quantile levels in (0, 1).
    """
    e = target.unsqueeze(-1) - pred  # (... Q)
    return torch.maximum(levels * e, (levels - 1.0) * e)


class MambaForecaster(MambaEstimatorMixin, BaseEstimator):
    r"""Global forecaster: the next ``horizon`` values of each series.

    One causal network is trained on every series of ``X``: at each observed
    step :math:`t` a linear head reads the backbone's output and predicts
    :math:`x_{t+1}, \dots, x_{t+h}` for every channel (all forecast origins of
    a series train in one pass, the "forking sequences" scheme of [2]_),
    plus a linear autoregression on the last ``min(lookback, 32)`` values
    (the "highway" of LSTNet [3]_, initialized at zero). Each series is
    standardized by its own mean and scale; forecasts are mapped back.

    Parameters
    ----------
    horizon : int, default=1
        Number of steps forecast after the end of each series.
    lookback : int or None, default=None
        Context length. None: the model reads each series' whole history
        (training runs over full series). An integer: training runs over
        crops of ``lookback + horizon`` steps (half-overlapping), and
        :meth:`predict` reads the last ``lookback`` steps; bounds the cost on
        long series and gives more gradient steps per epoch on few series.
    quantiles : array-like of float in (0, 1) or None, default=None
        Train quantile forecasts with the pinball loss (the median is always
        added); enables :meth:`predict_quantiles` and :meth:`predict_interval`.
        None: point forecasts trained with the squared error.
    backbone : {"mamba", "s4d", "transformer", "lstm"}, default="mamba"
        Causal sequence model from :func:`sciamba.nn.make_backbone`.
    d_model : int, default=32
        Width of the backbone. The defaults (32 wide, 2 layers, 8 states per
        channel) keep a CPU fit of a few hundred series of a few hundred steps
        within minutes; raise them on a GPU or for large data sets.
    n_layers : int, default=2
        Number of backbone layers.
    d_state : int, default=8
        State size per channel of the SSM backbones.
    expand : int, default=2
        Expansion factor of the Mamba block.
    max_epochs : int, default=100
        Maximum passes over the training windows.
    batch_size : int, default=16
        Windows per gradient step.
    learning_rate : float, default=3e-3
        Peak AdamW learning rate (linear warm-up over two epochs, cosine
        decay to a tenth over ``max_epochs``; with early stopping also halved
        whenever the monitored loss has not improved for a third of
        ``n_iter_no_change`` epochs).
    weight_decay : float, default=0.0
        AdamW decoupled weight decay.
    early_stopping : bool or "auto", default="auto"
        True: hold out the last ``validation_fraction`` of every series (at
        least ``horizon`` steps) in time, stop when the validation loss has
        not improved for ``n_iter_no_change`` epochs and restore the best
        weights. Series too short for a split train on everything; with no
        split at all the training loss is watched. False: train all
        ``max_epochs`` on every window and keep the last weights. ``"auto"``:
        True when the split holds at least 50 validation units, else False
        (and nothing is held out). A unit is what the validation loss
        averages over: with ``lookback``, one window per forecast origin in
        the held-out tails; without, one whole series (its tail). A single
        series of 500 values with ``lookback`` has 50 validation origins; a
        few dozen held-out values choose an epoch by noise.
    validation_fraction : float, default=0.1
        Share of each series' end held out for early stopping.
    n_iter_no_change : int, default=15
        Patience of early stopping, in epochs (validation sets of small data
        sets are noisy, hence more than a few). An epoch counts as an
        improvement when its monitored loss is below the best so far by more
        than 1e-4 of that best; ``best_epoch_`` is the last such epoch.
    device : str or torch.device, default="auto"
        ``"auto"`` trains on CUDA when available, else on the CPU.
    precision : {"auto", "float32", "bfloat16"}, default="auto"
        ``"auto"``: bfloat16 autocast on CUDA, float32 on the CPU.
    random_state : int, RandomState instance or None, default=None
        Seeds initialization and shuffling (a local generator: the global
        torch RNG state is left as it was).
    verbose : int, default=0
        ``> 0`` shows a tqdm bar per epoch with the training and validation loss.
    warm_start : bool, default=False
        Continue training the fitted network instead of starting afresh.

    Attributes
    ----------
    n_features_in_ : int
        Size of axis 1 of the training ``X`` (time steps for 2-D input,
        channels for 3-D input), as in scikit-learn.
    quantiles_ : ndarray or None
        Quantile levels the network outputs (``quantiles`` plus 0.5), sorted.
    model_ : torch.nn.Module
        The trained network.
    device_ : torch.device
        Where ``model_`` lives.
    history_ : dict
        ``"train_loss"`` and ``"val_loss"`` per epoch (squared error or pinball
        loss of standardized values).
    n_epochs_ : int
        Epochs run.
    best_epoch_ : int
        Epoch whose weights were kept.

    See Also
    --------
    MambaRegressor : series -> real-valued target.

    Notes
    -----
    *Inputs.* ``X`` is one series (1-D), ``(n_series, n_timesteps)`` or
    ``(n_series, n_channels, n_timesteps)``, time last, or an
    :class:`xarray.DataArray` with a ``time`` dimension. NaN marks missing
    values: leading NaN pad shorter series, interior NaN are gaps skipped in
    time (the network reads each series' observations consecutively, the
    elapsed time entering through the step sizes; the training targets stay
    the values ``1..horizon`` grid steps ahead). Series given to
    :meth:`predict` must have the training shape
    ``X.shape[1:]`` (pad shorter histories with leading NaN); forecasts start
    at the last observation of each series (a warning says when a series
    ends with NaN). ``y`` in :meth:`fit`, when given, is the continuation of
    each series (its next values) and is appended to it.

    *Irregular times.* With ``times`` (or a DataArray ``time`` coordinate)
    the gaps are measured in units of the median sampling step seen in
    :meth:`fit`; the forecasts are for the next ``horizon`` steps of that
    size, and a DataArray output's ``time`` coordinate continues the input's.

    References
    ----------
    .. [1] A. Gu and T. Dao, "Mamba: Linear-Time Sequence Modeling with
           Selective State Spaces", arXiv:2312.00752, 2023.
    .. [2] R. Wen, K. Torkkola, B. Narayanaswamy and D. Madeka, "A
           Multi-Horizon Quantile Recurrent Forecaster", NeurIPS Time Series
           Workshop, 2017, arXiv:1711.11053.
    .. [3] G. Lai, W.-C. Chang, Y. Yang and H. Liu, "Modeling Long- and
           Short-Term Temporal Patterns with Deep Neural Networks", SIGIR 2018,
           arXiv:1703.07015.

    Examples
    --------
    >>> import numpy as np
    >>> from sciamba import MambaForecaster
    >>> t = np.arange(200)
    >>> series = np.sin(2 * np.pi * t / 25)
    >>> f = MambaForecaster(horizon=5, d_model=8, max_epochs=3, random_state=0)
    >>> f.fit(series).predict().shape
    (5,)
    >>> fq = MambaForecaster(horizon=5, quantiles=(0.1, 0.9), d_model=8,
    ...                      max_epochs=3, random_state=0).fit(series)
    >>> fq.predict_quantiles().shape
    (3, 5)
    """

    _parameter_constraints: dict = {
        **MambaEstimatorMixin._parameter_constraints,
        "horizon": [Interval(Integral, 1, None, closed="left")],
        "lookback": [Interval(Integral, 1, None, closed="left"), None],
        "quantiles": ["array-like", Interval(Real, 0, 1, closed="neither"), None],
    }

    def __init__(
        self,
        horizon: int = 1,
        lookback: int | None = None,
        quantiles: Any = None,
        *,
        backbone: str = "mamba",
        d_model: int = 32,
        n_layers: int = 2,
        d_state: int = 8,
        expand: int = 2,
        max_epochs: int = 100,
        batch_size: int = 16,
        learning_rate: float = 3e-3,
        weight_decay: float = 0.0,
        early_stopping: bool | str = "auto",
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 15,
        device: str | torch.device = "auto",
        precision: str = "auto",
        random_state: Any = None,
        verbose: int = 0,
        warm_start: bool = False,
    ) -> None:
        self.horizon = horizon
        self.lookback = lookback
        self.quantiles = quantiles
        self.backbone = backbone
        self.d_model = d_model
        self.n_layers = n_layers
        self.d_state = d_state
        self.expand = expand
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.device = device
        self.precision = precision
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = False
        return tags

    # ------------------------------------------------------------ validation
    def _quantile_levels(self) -> np.ndarray | None:
        if self.quantiles is None:
            return None
        q = np.atleast_1d(np.asarray(self.quantiles, dtype=np.float64))
        if q.ndim != 1 or q.size == 0:
            raise ValueError(f"quantiles must be a 1-D sequence of levels; got {self.quantiles!r}.")
        if not np.all((q > 0) & (q < 1)):
            raise ValueError(
                f"quantiles must lie strictly between 0 and 1; got {q.tolist()}."
            )
        return np.unique(np.append(q, 0.5))

    def _append_y(self, panel: Panel, y: Any, times: Any) -> tuple[np.ndarray, Any]:
        """Concatenate the continuation ``y`` to the series (and extend ``times``)."""
        n, C, T = panel.values.shape
        y = np.asarray(y)
        try:
            y = y.astype(np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"y must be numeric (the next values of each series); got dtype {y.dtype}.") from None
        if np.isinf(y).any():
            raise ValueError("y contains infinity; mark missing values with NaN.")
        if y.ndim == 0 or y.shape[0] != n:
            raise ValueError(
                f"y must hold the continuation of each of the {n} series of X "
                f"(shape ({n},), ({n}, n_steps) or ({n}, n_channels, n_steps)); got "
                f"shape {y.shape}."
            )
        if y.ndim == 1:
            y = y[:, None, None]
        elif y.ndim == 2:
            if C != 1:
                raise ValueError(
                    f"X has {C} channels, so y must be ({n}, {C}, n_steps); got {y.shape}."
                )
            y = y[:, None, :]
        elif y.ndim != 3 or y.shape[1] != C:
            raise ValueError(f"y must be ({n}, {C}, n_steps) for X of {C} channels; got {y.shape}.")
        values = np.concatenate([panel.values, y], axis=2)
        if times is not None:
            t = _times_to_float(np.asarray(times))
            k = y.shape[2]
            t2 = t if t.ndim == 2 else t[None, :]
            obs = np.isfinite(panel.values).any(axis=1) if t.ndim == 2 else np.isfinite(panel.values).any(axis=(0, 1))[None]
            step = time_step_of(t2, obs)
            ext = t2[:, -1:] + step * np.arange(1, k + 1)
            times = np.concatenate([t2, ext], axis=1)
            if t.ndim == 1:
                times = times[0]
        return values, times

    # ------------------------------------------------------------------ fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any = None, *, times: Any = None) -> "MambaForecaster":
        """Train one model on all series of ``X``.

        Parameters
        ----------
        X : array-like or xarray.DataArray of shape ([n_series,] [n_channels,] n_timesteps)
            Training series, time last; NaN where not observed.
        y : array-like of shape (n_series, [n_channels,] n_steps), optional
            The values that follow each series of ``X`` (appended to it).
        times : array-like of shape (n_timesteps,) or (n_series, n_timesteps), optional
            Sampling instants (numeric or datetime64); from a DataArray's
            ``time`` coordinate when not given.

        Returns
        -------
        self : MambaForecaster
        """
        self._resolve_device()
        levels = self._quantile_levels()
        panel, _ = as_panel(self, X, reset=True, times=times)
        if y is not None:
            if times is None and panel.layout.time_coord is not None:
                times = panel.layout.time_coord
            values, times = self._append_y(panel, y, times)
            panel = finish_panel(self, values, panel.layout, times=times, time_step=None, reset=True)
        h = self.horizon
        need = (self.lookback or 1) + h
        n_obs = panel.observed.sum(axis=1)
        short = np.flatnonzero(n_obs < need)
        if short.size:
            raise ValueError(
                f"series {short[:10].tolist()} of X {'have' if short.size > 1 else 'has'} "
                f"{int(n_obs[short[0]])} observed value(s), but the forecaster needs at least "
                f"{'lookback + horizon' if self.lookback else 'horizon + 1'} = {need} per series "
                "to form one training window; give longer series or lower "
                f"{'horizon/lookback' if self.lookback else 'horizon'}."
            )
        prev = getattr(self, "quantiles_", "unfitted")
        warm = (prev is None and levels is None) or (
            isinstance(prev, np.ndarray) and levels is not None and np.array_equal(prev, levels)
        )
        self.quantiles_ = levels
        self._train_panel = panel
        data = self._series_data(panel)
        seed = self._seed()
        train, val = self._windows(panel)
        early = (val is not None) if isinstance(self.early_stopping, str) else bool(self.early_stopping)
        n_q = 1 if levels is None else levels.size
        config = self._network_config(
            panel.n_channels, h * panel.n_channels * n_q, pooled=False, bidirectional=False,
            highway=self._ar_order(), out_shape=(h, panel.n_channels, n_q),
        )
        self._train(config, data, train, val, seed, warm_ok=bool(warm), early_stopping=early)
        return self

    def _series_data(self, panel: Panel) -> dict[str, Any]:
        """Network inputs on packed steps (:func:`pack_observations`), targets on the time grid.

        ``position`` maps a packed step to its grid step, from which its
        targets ``1..horizon`` steps ahead are read.
        """
        mean, scale = nan_mean_std(panel.values, axis=(2,))  # (n C 1): per series
        z = (panel.values - mean) / scale  # (n C T) NaN kept: the targets
        packed, order = pack_observations(panel)
        x = standardize(packed.values, mean, scale)  # (n C T), NaN -> 0
        return {
            "x": np.ascontiguousarray(x.transpose(0, 2, 1)),  # (n T C) packed
            "target": np.ascontiguousarray(z.astype(np.float32).transpose(0, 2, 1)),  # (n T C) grid
            "gaps": packed.gaps.astype(np.float32),  # (n T) packed
            "observed": packed.observed,  # (n T) packed
            "position": order,  # (n T): grid step of each packed step
            "mean": mean,  # (n C 1)
            "scale": scale,  # (n C 1)
        }

    def _ar_order(self) -> int:
        # The autoregressive highway reads at most 32 past values (and never
        # more than the model's context).
        return min(self.lookback, 32) if self.lookback is not None else 32

    def _crop_width(self, T: int) -> int:
        return T if self.lookback is None else self.lookback + self.horizon

    def _windows(self, panel: Panel, split: bool | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Training and validation windows as rows ``(series, start, lo, hi, limit)``.

        A window is the crop ``[start, start + W)`` of the packed steps of
        :meth:`_series_data` (``start`` may be negative: left padding); the
        loss covers origins ``lo <= t < hi`` (packed) and targets before the
        grid step ``limit``. ``split`` holds out the series' tails; None resolves
        ``early_stopping``, ``"auto"`` keeping the split only when it yields
        enough validation rows (:meth:`_auto_early_stopping`).
        """
        if split is None:
            if isinstance(self.early_stopping, str):  # "auto"
                train, val = self._windows(panel, split=True)
                if self._auto_early_stopping(0 if val is None else len(val)):
                    return train, val
                return self._windows(panel, split=False)
            split = bool(self.early_stopping)
        n, _, T = panel.values.shape
        h, k = self.horizon, self.lookback
        train, val = [], []
        for i in range(n):
            obs_idx = np.flatnonzero(panel.observed[i])  # grid steps of the observations
            n_obs = obs_idx.size
            first = T - n_obs  # packed: the observations fill [first, T)
            n_val = max(h, int(np.ceil(self.validation_fraction * n_obs)))
            cut, limit = T, T  # first validation step: packed, and on the grid
            if split and n_obs - n_val >= (k or 1) + h:
                cut, limit = first + n_obs - n_val, int(obs_idx[n_obs - n_val])
            if k is None:
                train.append((i, 0, 0, cut - 1, limit))
                if cut < T:
                    val.append((i, 0, cut - 1, T - 1, T))
            else:
                stride = max(1, (k + 1) // 2)
                # Crops tile [first, cut): every origin lies in at least one.
                for a in range(first, max(first + 1, cut - 1), stride):
                    train.append((i, a, a, min(a + k, cut - 1), limit))
                    if a + k >= cut - 1:
                        break
                for p in range(max(cut - 1, first), T - 1):
                    val.append((i, p - k + 1, p, p + 1, T))
        train_arr = np.asarray(train, dtype=np.int64)
        val_arr = np.asarray(val, dtype=np.int64) if val else None
        return train_arr, val_arr

    def _make_batch(self, data: dict[str, Any], samples: np.ndarray) -> dict[str, np.ndarray]:
        T = data["x"].shape[1]
        W = self._crop_width(T)
        h = self.horizon
        i, a, lo, hi, limit = (samples[:, j] for j in range(5))
        pos = a[:, None] + np.arange(W)  # (B W) absolute positions
        inside = (pos >= 0) & (pos < T)  # (B W)
        pc = np.clip(pos, 0, T - 1)
        rows = i[:, None]
        x = data["x"][rows, pc] * inside[..., None]  # (B W C)
        gaps = data["gaps"][rows, pc] * inside  # (B W)
        origin = inside & (pos >= lo[:, None]) & (pos < hi[:, None]) & data["observed"][rows, pc]  # (B W)
        tpos = data["position"][rows, pc][..., None] + np.arange(1, h + 1)  # (B W h) grid steps
        tvalid = (tpos >= 0) & (tpos < np.minimum(limit, T)[:, None, None])  # (B W h)
        target = data["target"][rows[..., None], np.clip(tpos, 0, T - 1)]  # (B W h C)
        tmask = origin[..., None, None] & tvalid[..., None] & np.isfinite(target)  # (B W h C)
        return {
            "x": x.astype(np.float32),
            "gaps": gaps.astype(np.float32),
            "target": np.nan_to_num(target, nan=0.0).astype(np.float32),
            "tmask": tmask,
        }

    def _levels_tensor(self, device) -> torch.Tensor | None:
        if self.quantiles_ is None:
            return None
        return torch.as_tensor(self.quantiles_, dtype=torch.float32, device=device)

    def _batch_loss(self, model, batch):
        out = model(batch["x"], batch["gaps"]).float()  # (B W h*C*Q)
        B, W, _ = out.shape
        C = batch["target"].shape[-1]
        levels = self._levels_tensor(out.device)
        Q = 1 if levels is None else levels.numel()
        pred = out.reshape(B, W, self.horizon, C, Q)  # (B W h C Q)
        mask = batch["tmask"]  # (B W h C)
        if levels is None:
            err = (pred[..., 0] - batch["target"]) ** 2  # (B W h C)
            return err[mask].sum(), int(mask.sum())
        loss = pinball_loss(pred, batch["target"], levels).sum(-1)  # (B W h C)
        return loss[mask].sum(), int(mask.sum()) * Q

    # -------------------------------------------------------------- predict
    def _history(self, X: Any, times: Any) -> Panel:
        self._check_fitted()
        if X is None:
            if times is not None:
                raise ValueError("times is given without X; pass the series it belongs to.")
            return self._train_panel
        panel, _ = as_panel(self, X, reset=False, times=times, time_step=self._time_step)
        return panel

    def _raw_forecast(self, panel: Panel) -> np.ndarray:
        """Standardized-back forecasts ``(n, C, Q, h)`` from the end of each series."""
        T = panel.n_timesteps
        # Forecasts start at each series' last observation.
        last = T - 1 - np.argmax(panel.observed[:, ::-1], axis=1)  # (n)
        if np.any(last < T - 1):
            warnings.warn(
                f"{int(np.sum(last < T - 1))} series end with NaN; their forecasts start at "
                "the last observation, so the first values forecast the missing tail "
                "(trim trailing NaN to forecast from the end of the array).",
                UserWarning,
                stacklevel=3,
            )
        data = self._series_data(panel)
        W = T if self.lookback is None else min(self.lookback, T)
        # Packed, every series' last observation is step T - 1.
        pos = T - W + np.arange(W)[None, :]  # (1 W): windows ending at the last observation
        inside = pos >= 0
        rows = np.arange(panel.n_series)[:, None]
        pc = np.clip(pos, 0, T - 1)
        x = data["x"][rows, pc] * inside[..., None]  # (n W C)
        gaps = data["gaps"][rows, pc] * inside  # (n W)
        # Only the last step's head output is a forecast.
        out = self._forward(x, gaps, last_step=True)  # (n h*C*Q)
        n, C = panel.n_series, panel.n_channels
        Q = 1 if self.quantiles_ is None else self.quantiles_.size
        pred = out.reshape(n, self.horizon, C, Q).transpose(0, 2, 3, 1)  # (n C Q h)
        pred = pred * data["scale"][..., None] + data["mean"][..., None]  # (n C Q h)
        if Q > 1:
            pred = np.sort(pred, axis=2)  # no quantile crossing
        return pred

    def _shape_output(self, pred: np.ndarray, panel: Panel, extra: tuple[str, np.ndarray] | None):
        """Drop the axes the input did not have; wrap as a DataArray if it was one."""
        ndim = panel.layout.ndim
        if extra is None:
            pred = pred[:, :, 0]  # (n C h)
        if ndim <= 2:
            pred = pred[:, 0]  # (n [E] h)
        if ndim == 1:
            pred = pred[0]
        return wrap_time_output(pred, panel.layout, self._time_step, extra=extra)

    def predict(self, X: Any = None, *, times: Any = None) -> Any:
        """Forecast the next ``horizon`` values after the end of each series.

        Parameters
        ----------
        X : array-like or xarray.DataArray, optional
            Histories in the training layout. None: the training series.
        times : array-like, optional
            Sampling instants of ``X``, as in :meth:`fit`.

        Returns
        -------
        forecast : ndarray or xarray.DataArray of shape ([n_series,] [n_channels,] horizon)
            Point forecasts (the median when trained with ``quantiles``).
            A DataArray input gives a DataArray whose ``time`` coordinate
            continues the input's.
        """
        panel = self._history(X, times)
        pred = self._raw_forecast(panel)  # (n C Q h)
        if self.quantiles_ is not None:
            pred = pred[:, :, [int(np.argmin(np.abs(self.quantiles_ - 0.5)))]]
        return self._shape_output(pred, panel, None)

    def predict_quantiles(self, X: Any = None, *, times: Any = None) -> Any:
        """Quantile forecasts at the levels of ``quantiles`` (plus the median).

        Parameters
        ----------
        X : array-like or xarray.DataArray, optional
            Histories in the training layout; None: the training series.
        times : array-like, optional
            Sampling instants of ``X``.

        Returns
        -------
        quantiles : ndarray or xarray.DataArray of shape ([n_series,] [n_channels,] n_quantiles, horizon)
            Sorted along the quantile axis, in the order of ``quantiles_``.
        """
        self._check_fitted()
        if self.quantiles_ is None:
            raise ValueError(
                "this MambaForecaster was trained without quantiles; refit with e.g. "
                "quantiles=(0.05, 0.5, 0.95) to get quantile forecasts."
            )
        panel = self._history(X, times)
        return self._shape_output(self._raw_forecast(panel), panel, ("quantile", self.quantiles_))

    def predict_interval(self, X: Any = None, *, coverage: float = 0.9, times: Any = None) -> Any:
        """Central prediction interval from the quantile forecasts.

        The bounds are the :math:`(1 \\mp c)/2` quantiles, linearly
        interpolated between the trained levels.

        Parameters
        ----------
        X : array-like or xarray.DataArray, optional
            Histories in the training layout; None: the training series.
        coverage : float, default=0.9
            Nominal coverage :math:`c` in (0, 1).
        times : array-like, optional
            Sampling instants of ``X``.

        Returns
        -------
        interval : ndarray or xarray.DataArray of shape ([n_series,] [n_channels,] 2, horizon)
            Lower bound at index 0, upper bound at index 1 (dimension ``bound``).
        """
        self._check_fitted()
        if self.quantiles_ is None:
            raise ValueError(
                "this MambaForecaster was trained without quantiles; refit with e.g. "
                "quantiles=(0.05, 0.5, 0.95) to get prediction intervals."
            )
        if not isinstance(coverage, Real) or not 0 < coverage < 1:
            raise ValueError(f"coverage must be a number in (0, 1); got {coverage!r}.")
        lo_q, hi_q = (1 - coverage) / 2, (1 + coverage) / 2
        levels = self.quantiles_
        if lo_q < levels[0] - 1e-12 or hi_q > levels[-1] + 1e-12:
            raise ValueError(
                f"coverage={coverage} needs the {lo_q:g} and {hi_q:g} quantiles, outside the "
                f"trained levels [{levels[0]:g}, {levels[-1]:g}]; refit with quantiles that "
                "cover them or ask for a lower coverage."
            )
        panel = self._history(X, times)
        q = self._raw_forecast(panel)  # (n C Q h)
        bounds = np.stack([_interp_levels(q, levels, lo_q), _interp_levels(q, levels, hi_q)], axis=2)
        return self._shape_output(bounds, panel, ("bound", np.array(["lower", "upper"])))

    def score(self, X: Any = None, y: Any = None, *, times: Any = None) -> float:
        """:math:`R^2` of the forecasts over the forecast window of held-out data.

        With ``y``, the forecasts from ``X`` are compared with ``y`` (the next
        ``horizon`` values of each series). Without, the last ``horizon``
        steps of each series of ``X`` are held out: the forecast from the
        history before them (left-padded with NaN to the training shape) is
        compared with them. The coefficient is pooled over series, channels
        and steps, ignoring missing values:
        :math:`1 - \\sum (y - \\hat y)^2 / \\sum (y - \\bar y)^2`.

        Parameters
        ----------
        X : array-like or xarray.DataArray, optional
            Series in the training layout; None: the training series.
        y : array-like of shape ([n_series,] [n_channels,] horizon), optional
            True continuation of ``X``.
        times : array-like, optional
            Sampling instants of ``X``.

        Returns
        -------
        score : float
        """
        self._check_fitted()
        h = self.horizon
        if y is not None:
            if X is None:
                raise ValueError("y is given without X: pass the histories it continues.")
            pred = np.asarray(self.predict(X, times=times), dtype=np.float64)
            y_true = np.asarray(y, dtype=np.float64)
            if y_true.shape != pred.shape:
                if y_true.size == pred.size and h == 1:
                    y_true = y_true.reshape(pred.shape)
                else:
                    raise ValueError(
                        f"y must have the forecast shape {pred.shape} (series, [channels,] "
                        f"horizon={h}); got {y_true.shape}."
                    )
        else:
            panel = self._history(X, times)
            values = panel.values  # (n C T)
            if values.shape[2] <= h:
                raise ValueError(f"series must be longer than horizon={h} to hold out a window.")
            hist = np.concatenate([np.full(values.shape[:2] + (h,), np.nan), values[:, :, :-h]], axis=2)
            gaps = np.concatenate([np.zeros((values.shape[0], h)), panel.gaps[:, :-h]], axis=1)
            hp = Panel(values=hist, observed=np.isfinite(hist).any(axis=1), gaps=gaps, layout=panel.layout)
            pred = self._raw_forecast(hp)  # (n C Q h)
            if self.quantiles_ is not None:
                pred = pred[:, :, [int(np.argmin(np.abs(self.quantiles_ - 0.5)))]]
            pred = pred[:, :, 0]
            y_true = values[:, :, -h:]
        ok = np.isfinite(y_true)
        return float(r2_score(y_true[ok], pred[ok]))


def _interp_levels(q: np.ndarray, levels: np.ndarray, level: float) -> np.ndarray:
    """Quantile at ``level`` by linear interpolation along axis 2 of ``q`` ``(n C Q h)``."""
    j = int(np.clip(np.searchsorted(levels, level), 1, levels.size - 1)) if levels.size > 1 else 0
    if levels.size == 1:
        return q[:, :, 0]
    l0, l1 = levels[j - 1], levels[j]
    w = np.clip((level - l0) / (l1 - l0), 0.0, 1.0)
    return (1 - w) * q[:, :, j - 1] + w * q[:, :, j]
