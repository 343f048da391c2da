"""``MambaRegressor``: series -> real-valued target(s)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin, _fit_context

from ._base import MambaEstimatorMixin
from ._data import as_panel, nan_mean_std, wrap_series_output
from ._supervised import SeriesToVectorMixin, split_validation

__all__ = ["MambaRegressor"]


class MambaRegressor(SeriesToVectorMixin, MambaEstimatorMixin, RegressorMixin, BaseEstimator):
    r"""Time series regressor: series -> scalar or vector target.

    The architecture of :class:`MambaClassifier` (standardized input, a
    :mod:`sciamba.nn` backbone, pooling over the observed steps, a linear
    readout) plus a linear "highway" from the standardized series straight to
    the output, as in LSTNet [2]_ (initialized at zero: the network learns
    what a linear model misses), trained with the mean squared error on
    standardized targets.

    Parameters
    ----------
    backbone : {"mamba", "s4d", "transformer", "lstm"}, default="mamba"
        Sequence model from :func:`sciamba.nn.make_backbone`. Only ``"mamba"``
        (and backbones with ``supports_gaps``) skip missing steps in time; the
        others receive the sampling pattern as two extra input features.
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
    bidirectional : bool, default=True
        Read each series in both directions (the target depends on the whole
        series, so no causality is needed).
    max_epochs : int, default=100
        Maximum passes over the training series.
    batch_size : int, default=16
        Series per gradient step.
    learning_rate : float, default=3e-3
        Peak AdamW learning rate (linear warm-up over two epochs, cosine
        decay to a tenth over ``max_epochs``; with early stopping also halved
        whenever the monitored loss has not improved for a third of
        ``n_iter_no_change`` epochs).
    weight_decay : float, default=0.0
        AdamW decoupled weight decay.
    early_stopping : bool or "auto", default="auto"
        True: hold out ``validation_fraction`` of the series, stop when
        the validation loss has not improved for ``n_iter_no_change`` epochs
        and restore the best weights (with too few series for a split, the
        training loss is watched instead). False: train all ``max_epochs`` on
        every series and keep the last weights. ``"auto"``: True when the
        validation share holds at least 50 series (500 series at the default
        fraction), else False; the loss of a handful of held-out series is
        too noisy to pick an epoch by.
    validation_fraction : float, default=0.1
        Share of the series held out for early stopping.
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
        torch RNG state is left as it was). A fixed value gives bit-identical
        predictions on the CPU.
    verbose : int, default=0
        ``> 0`` shows a tqdm bar per epoch with the training and validation loss.
    warm_start : bool, default=False
        Continue training the fitted network (same classes and layout) instead
        of starting afresh.

    Attributes
    ----------
    n_features_in_ : int
        Size of axis 1 of the training ``X`` (time steps for 2-D input,
        channels for 3-D input), as in scikit-learn.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Column names, when ``X`` was a DataFrame with string column names.
    model_ : torch.nn.Module
        The trained network.
    device_ : torch.device
        Where ``model_`` lives.
    history_ : dict
        ``"train_loss"`` and ``"val_loss"`` per epoch (mean squared error of
        the standardized targets).
    n_epochs_ : int
        Epochs run.
    best_epoch_ : int
        Epoch whose weights were kept.

    See Also
    --------
    MambaClassifier : series -> class label.
    MambaForecaster : series -> their next values.

    Notes
    -----
    Layout, missing values and ``times=`` as in :class:`MambaClassifier`.
    Targets are standardized per column for training and mapped back.

    References
    ----------
    .. [1] A. Gu and T. Dao, "Mamba: Linear-Time Sequence Modeling with
           Selective State Spaces", arXiv:2312.00752, 2023.
    .. [2] G. Lai, W.-C. Chang, Y. Yang and H. Liu, "Modeling Long- and
           Short-Term Temporal Patterns with Deep Neural Networks", SIGIR 2018,
           arXiv:1703.07015.

    Examples
    --------
    >>> import numpy as np
    >>> from sciamba import MambaRegressor
    >>> rng = np.random.default_rng(0)
    >>> amp = rng.uniform(0.5, 2.0, 40)
    >>> X = amp[:, None] * np.sin(np.linspace(0, 6, 24))
    >>> reg = MambaRegressor(d_model=8, max_epochs=5, random_state=0).fit(X, amp)
    >>> reg.predict(X).shape
    (40,)
    """

    _parameter_constraints: dict = {
        **MambaEstimatorMixin._parameter_constraints,
        "bidirectional": ["boolean"],
    }

    def __init__(
        self,
        *,
        backbone: str = "mamba",
        d_model: int = 32,
        n_layers: int = 2,
        d_state: int = 8,
        expand: int = 2,
        bidirectional: bool = True,
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
        self.backbone = backbone
        self.d_model = d_model
        self.n_layers = n_layers
        self.d_state = d_state
        self.expand = expand
        self.bidirectional = bidirectional
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
        tags.target_tags.multi_output = True
        return tags

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any, *, times: Any = None) -> "MambaRegressor":
        """Train on series with real-valued targets.

        Parameters
        ----------
        X : array-like or xarray.DataArray of shape (n_series, [n_channels,] n_timesteps)
            Training series, time last; NaN where not observed.
        y : array-like of shape (n_series,) or (n_series, n_targets)
            Targets (finite).
        times : array-like of shape (n_timesteps,) or (n_series, n_timesteps), optional
            Sampling instants (numeric or datetime64); from a DataArray's
            ``time`` coordinate when not given.

        Returns
        -------
        self : MambaRegressor
        """
        self._resolve_device()
        panel, y = as_panel(
            self, X, y, reset=True, times=times,
            y_kwargs={"multi_output": True, "y_numeric": True},
        )
        y = np.asarray(y, dtype=np.float64)
        self._y_1d = y.ndim == 1
        y2 = y.reshape(len(y), -1)
        warm = (
            self.warm_start and hasattr(self, "_y_mean") and self._y_mean.shape[1] == y2.shape[1]
        )
        if not warm:
            self._fit_scaler(panel)
            self._y_mean, self._y_scale = nan_mean_std(y2, axis=(0,))
        seed = self._seed()
        rng = np.random.default_rng(seed)
        data = self._model_inputs(panel)
        data["y"] = ((y2 - self._y_mean) / self._y_scale).astype(np.float32)
        early = self._early_stopping_enabled(panel.n_series)
        if early:
            train, val = split_validation(panel.n_series, self.validation_fraction, rng)
        else:
            train, val = np.arange(panel.n_series), None
        config = self._network_config(
            panel.n_channels, y2.shape[1], pooled=True, bidirectional=self.bidirectional,
            highway=panel.n_timesteps,
        )
        self._train(config, data, train, val, seed, warm_ok=warm, early_stopping=early)
        return self

    def _batch_loss(self, model, batch):
        pred = model(batch["x"], batch["gaps"]).float()  # (B n_targets)
        err = (pred - batch["y"]) ** 2
        return err.sum(), err.numel()

    def predict(self, X: Any, *, times: Any = None) -> Any:
        """Predicted targets.

        Parameters
        ----------
        X : array-like or xarray.DataArray
            Series in the training layout.
        times : array-like, optional
            Sampling instants, as in :meth:`fit`.

        Returns
        -------
        y_pred : ndarray or xarray.DataArray of shape (n_series,) or (n_series, n_targets)
        """
        out, layout = self._decision(X, times)
        y = out * self._y_scale + self._y_mean  # (n n_targets)
        if self._y_1d:
            y = y[:, 0]
        if layout.ndim == 1:
            return y
        return wrap_series_output(y, layout, extra=("target", np.arange(y.shape[-1])))
