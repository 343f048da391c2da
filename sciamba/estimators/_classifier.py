"""``MambaClassifier``: series -> class label."""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets

from ._augment import mixup_batch, scale_and_jitter
from ._base import MambaEstimatorMixin
from ._data import as_panel, wrap_series_output
from ._network import ProbabilityAverage
from ._supervised import SeriesToVectorMixin, split_validation

__all__ = ["MambaClassifier"]

#: ``stem_kernels="auto"``: the convolution widths of each stem.
STEM_KERNELS = {"inception": (9, 19, 39), "multiscale": (3, 9, 19)}


class MambaClassifier(SeriesToVectorMixin, MambaEstimatorMixin, ClassifierMixin, BaseEstimator):
    r"""Time series classifier: a bidirectional Mamba with pooled readout.

    Each series is standardized (one mean and scale per channel, learned in
    ``fit``), embedded in ``d_model`` channels by convolutions
    (InceptionTime-style blocks, see ``stem``), encoded by a
    :mod:`sciamba.nn` backbone, pooled over its observed steps (mean and max
    concatenated, with the first and last steps) and mapped to class logits
    by a linear layer;
    training minimizes the label-smoothed cross-entropy with AdamW (linear
    warm-up, cosine decay) on randomly scaled, jittered and mixed-up batches
    (regularization for the small labelled sets typical of time series
    classification; see ``augment``, ``mixup``, ``label_smoothing``).

    Parameters
    ----------
    backbone : {"mamba", "s4d", "transformer", "lstm"}, default="mamba"
        Sequence model from :func:`sciamba.nn.make_backbone`. Only ``"mamba"``
        (and backbones with ``supports_gaps``) skip missing steps in time; the
        others receive the sampling pattern as two extra input features.
    d_model : int, default=64
        Width of the stem and the backbone. The defaults (64 wide, 2 layers,
        8 states per channel) keep a CPU fit of a few hundred series of a few
        hundred steps within minutes; raise them on a GPU or for large data
        sets. In 5-fold cross-validation on the training splits 64 gave a
        lower held-out log-loss than 32 on every shuffle (ECG200 0.307
        against 0.333 over 300 predictions, ECGFiveDays 0.235 against 0.264
        over 46) at the same accuracy or one prediction better (0.880
        against 0.877; 0.891 against 0.870), for about 1.5 times the fit time
        (benchmarks/RESULTS.md, 2026-11-24).
    n_layers : int, default=2
        Number of backbone layers.
    d_state : int, default=8
        State size per channel of the SSM backbones.
    expand : int, default=2
        Expansion factor of the Mamba block.
    bidirectional : bool, default=True
        Read each series in both directions (classification needs no causality).
    max_epochs : int or "auto", default="auto"
        Maximum passes over the training series. ``"auto"``: 100, or more
        when 100 epochs would make fewer than 1000 optimizer steps
        (``ceil(1000 / ceil(n_train / batch_size))`` epochs): a few dozen
        series make only a couple of batches per epoch.
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
        True: hold out ``validation_fraction`` of the series (stratified),
        stop when the validation loss has not improved for
        ``n_iter_no_change`` epochs and restore the best weights (with too few
        series for a split, the training loss is watched instead). False:
        train all ``max_epochs`` on every series and keep the last weights.
        ``"auto"``: True when the validation share holds at least 50 series
        (500 series at the default fraction), else False; the loss of a
        handful of held-out series is too noisy to pick an epoch by.
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
        of starting afresh; with ``n_estimators > 1`` every member continues
        from its weights, and a changed ``n_estimators`` starts afresh.
    augment : bool, default=True
        Perturb each training batch anew: every series is scaled by a random
        factor ``1 + 0.1 N(0, 1)`` and gets Gaussian noise of standard
        deviation 0.03 (of the standardized scale) at its observed steps
        (magnitude scaling and jittering [2]_). Never at prediction time.
    mixup : float, default=0.4
        ``alpha`` of mixup [3]_: each training batch is replaced by convex
        combinations ``lam * x + (1 - lam) * x[perm]`` of its series with a
        random permutation of them, ``lam ~ Beta(alpha, alpha)``, and the loss
        mixes the two labels with the same weights. 0 turns it off.
    label_smoothing : float, default=0.1
        Training targets put ``1 - label_smoothing`` on the true class and
        spread the rest evenly over all classes [4]_ (the validation loss of
        early stopping uses the plain cross-entropy).
    stem : {"inception", "multiscale"}, default="inception"
        Convolutional input embedding before the backbone, so that it reads
        local shape features (slopes, peaks, notches at several scales)
        rather than single values. ``"inception"``: three InceptionTime
        blocks [5]_ (bottleneck, parallel convolutions of the
        ``stem_kernels`` widths and a max-pool branch, batch normalization
        over the observed steps, ReLU) with a residual shortcut
        (:class:`~sciamba.estimators._network.InceptionStem`).
        ``"multiscale"``: one GELU convolution per width beside a linear
        projection, mixed linearly
        (:class:`~sciamba.estimators._network.ConvStem`). In 5-fold
        cross-validation on the training splits the inception stem scored
        0.877 accuracy and 0.33 log-loss on ECG200 (300 held-out
        predictions) against 0.867 and 0.35 for the multiscale one, and
        0.87 and 0.26 against 0.85 and 0.53 on ECGFiveDays (46); on the test
        splits, seeds 0-4, it raised ECG200 from 0.858 to 0.890 and
        ECGFiveDays from 0.974 to 0.998 (benchmarks/RESULTS.md, 2026-11-24).
    stem_kernels : tuple of int, "auto" or None, default="auto"
        Convolution widths of the stem. ``"auto"``: (9, 19, 39) for
        ``"inception"`` (InceptionTime's 10, 20, 40, made odd to centre),
        (3, 9, 19) for ``"multiscale"``. None or ``()``: no stem, a linear
        projection of each step.
    head_dropout : float, default=0.0
        Dropout rate on the pooled features before the output layer, during
        training [6]_. Cross-validation on the ECG training splits favoured
        0.3, but it lowered test accuracy on both sets, hence 0 by default.
    n_estimators : int, default=1
        Networks trained, each from its own seed (initialization, shuffling,
        augmentation and, with early stopping, its own validation split),
        whose class probabilities :meth:`predict_proba` averages (soft
        voting, as the InceptionTime ensemble [5]_ does); ``model_`` is then
        a :class:`~sciamba.estimators._network.ProbabilityAverage`. Member
        ``i``'s seed is the ``i``-th draw from ``random_state``, so member 0
        is the network a fit with ``n_estimators=1`` gives. Fitting takes
        ``n_estimators`` times as long. In 5-fold cross-validation on the
        ECG200 training split (3 shuffles, 300 held-out predictions) the
        members agreed on 94-96 % of the series and averaging them did not
        help: 1, 2 and 3 networks of one Mamba layer scored 0.880, 0.873 and
        0.867 accuracy (log-loss 0.316, 0.318, 0.318), 1 and 2 networks of
        two layers (d_model 32) 0.877 and 0.880 (0.333, 0.328), hence 1 by default
        (benchmarks/RESULTS.md, 2026-11-24).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels, in the order of the :meth:`predict_proba` columns.
    n_features_in_ : int
        Size of axis 1 of the training ``X`` (time steps for 2-D input,
        channels for 3-D input), as in scikit-learn.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Column names, when ``X`` was a DataFrame with string column names.
    model_ : torch.nn.Module
        The trained network (a
        :class:`~sciamba.estimators._network.ProbabilityAverage` of
        ``n_estimators`` networks when ``n_estimators > 1``).
    device_ : torch.device
        Where ``model_`` lives.
    history_ : dict or list of dict
        ``"train_loss"`` per epoch (the training objective: mean
        cross-entropy on the augmented, mixed-up batches with smoothed
        labels) and ``"val_loss"`` (plain mean cross-entropy of the held-out
        series; empty without early stopping); one such dict per member when
        ``n_estimators > 1``.
    n_epochs_ : int or ndarray of shape (n_estimators,)
        Epochs run (per member when ``n_estimators > 1``).
    best_epoch_ : int or ndarray of shape (n_estimators,)
        Epoch whose weights were kept (per member when ``n_estimators > 1``).

    See Also
    --------
    MambaRegressor : series -> real-valued target.
    MambaForecaster : series -> their next values.

    Notes
    -----
    *Layout.* ``X`` is ``(n_series, n_timesteps)`` or
    ``(n_series, n_channels, n_timesteps)`` (time last); an
    :class:`xarray.DataArray` with a ``time`` dimension is accepted too.
    Series passed to :meth:`predict` must have the training shape
    ``X.shape[1:]``; pad shorter ones with leading NaN.

    *Missing values.* NaN marks a step that was not observed: leading NaN pad
    shorter series, interior NaN are gaps the Mamba backbone skips in time
    (its step size grows by the elapsed time). Each series' observations are
    packed together before the network reads them, so a series with interior
    NaN gives the same output as its observations alone with their instants
    as ``times=``. ``times=`` gives irregular sampling instants directly.

    References
    ----------
    .. [1] A. Gu and T. Dao, "Mamba: Linear-Time Sequence Modeling with
           Selective State Spaces", arXiv:2312.00752, 2023.
    .. [2] T. T. Um et al., "Data Augmentation of Wearable Sensor Data for
           Parkinson's Disease Monitoring using Convolutional Neural
           Networks", ICMI 2017, arXiv:1706.00527.
    .. [3] H. Zhang, M. Cisse, Y. N. Dauphin and D. Lopez-Paz, "mixup: Beyond
           Empirical Risk Minimization", ICLR 2018, arXiv:1710.09412.
    .. [4] C. Szegedy et al., "Rethinking the Inception Architecture for
           Computer Vision", CVPR 2016, arXiv:1512.00567 (label smoothing).
    .. [5] H. Ismail Fawaz et al., "InceptionTime: Finding AlexNet for Time
           Series Classification", Data Min. Knowl. Disc. 34, 1936-1962
           (2020), arXiv:1909.04939.
    .. [6] N. Srivastava et al., "Dropout: A Simple Way to Prevent Neural
           Networks from Overfitting", JMLR 15, 1929-1958 (2014).

    Examples
    --------
    >>> import numpy as np
    >>> from sciamba import MambaClassifier
    >>> rng = np.random.default_rng(0)
    >>> t = np.linspace(0, 1, 32)
    >>> X = np.concatenate([np.sin(6 * t) + 0.1 * rng.standard_normal((20, 32)),
    ...                     np.cos(6 * t) + 0.1 * rng.standard_normal((20, 32))])
    >>> y = np.repeat(["sin", "cos"], 20)
    >>> clf = MambaClassifier(d_model=8, max_epochs=5, random_state=0).fit(X, y)
    >>> clf.classes_
    array(['cos', 'sin'], dtype='<U3')
    >>> clf.predict_proba(X).shape
    (40, 2)
    """

    _parameter_constraints: dict = {
        **MambaEstimatorMixin._parameter_constraints,
        "bidirectional": ["boolean"],
        "max_epochs": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "augment": ["boolean"],
        "mixup": [Interval(Real, 0, None, closed="left")],
        "label_smoothing": [Interval(Real, 0, 1, closed="left")],
        "stem": [StrOptions({"inception", "multiscale"})],
        "stem_kernels": [tuple, list, StrOptions({"auto"}), None],
        "head_dropout": [Interval(Real, 0, 1, closed="left")],
        "n_estimators": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(
        self,
        *,
        backbone: str = "mamba",
        d_model: int = 64,
        n_layers: int = 2,
        d_state: int = 8,
        expand: int = 2,
        bidirectional: bool = True,
        max_epochs: int | str = "auto",
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
        augment: bool = True,
        mixup: float = 0.4,
        label_smoothing: float = 0.1,
        stem: str = "inception",
        stem_kernels: tuple[int, ...] | str | None = "auto",
        head_dropout: float = 0.0,
        n_estimators: int = 1,
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
        self.augment = augment
        self.mixup = mixup
        self.label_smoothing = label_smoothing
        self.stem = stem
        self.stem_kernels = stem_kernels
        self.head_dropout = head_dropout
        self.n_estimators = n_estimators

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = True
        return tags

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any, *, times: Any = None) -> "MambaClassifier":
        """Train on labelled series.

        Parameters
        ----------
        X : array-like or xarray.DataArray of shape (n_series, [n_channels,] n_timesteps)
            Training series, time last; NaN where not observed.
        y : array-like of shape (n_series,)
            Class labels of any type.
        times : array-like of shape (n_timesteps,) or (n_series, n_timesteps), optional
            Sampling instants (numeric or datetime64); from a DataArray's
            ``time`` coordinate when not given.

        Returns
        -------
        self : MambaClassifier
        """
        self._resolve_device()
        panel, y = as_panel(self, X, y, reset=True, times=times)
        check_classification_targets(y)
        y = np.asarray(y)
        classes, y_idx = np.unique(y, return_inverse=True)
        if classes.size < 2:
            raise ValueError(
                f"MambaClassifier needs at least 2 classes to learn from; y has 1 class "
                f"({classes[0]!r})."
            )
        warm = self.warm_start and hasattr(self, "classes_") and np.array_equal(classes, self.classes_)
        if not warm:
            self._fit_scaler(panel)
        self.classes_ = classes
        data = self._model_inputs(panel)
        data["y"] = y_idx.astype(np.int64)
        early = self._early_stopping_enabled(panel.n_series)
        config = self._network_config(
            panel.n_channels, classes.size, pooled=True, bidirectional=self.bidirectional,
            stem=self._stem(), stem_type=self.stem, head_dropout=float(self.head_dropout),
        )
        # Member i's seed is the i-th draw of one generator, so member 0 is
        # the network that n_estimators=1 trains with the same random_state.
        seeds = check_random_state(self.random_state).randint(
            np.iinfo(np.int32).max, size=self.n_estimators
        )

        def split(seed: int) -> tuple[np.ndarray, np.ndarray | None]:
            if not early:
                return np.arange(panel.n_series), None
            rng = np.random.default_rng(seed)
            return split_validation(panel.n_series, self.validation_fraction, rng, stratify=y_idx)

        if self.n_estimators == 1:
            seed = int(seeds[0])
            self._train(config, data, *split(seed), seed, warm_ok=warm, early_stopping=early)
            return self
        ens_config = {**config, "n_members": int(self.n_estimators)}
        warm = warm and isinstance(getattr(self, "model_", None), ProbabilityAverage) and (
            getattr(self, "_model_config", None) == ens_config
        )
        fits = []
        for i, seed in enumerate(int(s) for s in seeds):
            start = (self.model_.members[i], self.history_[i], self.n_epochs_[i]) if warm else None
            fits.append(self._fit_network(
                config, data, *split(seed), seed, start=start, early_stopping=early,
                desc=f"{type(self).__name__} {i + 1}/{self.n_estimators}",
            ))
        self._set_fitted(ProbabilityAverage([f[0] for f in fits]).eval(), ens_config, [f[1] for f in fits],
                         np.array([f[2] for f in fits]), np.array([f[3] for f in fits]))
        return self

    def _stem(self) -> tuple[int, ...]:
        """``stem_kernels`` resolved and checked: a tuple of positive ints (empty for none)."""
        if isinstance(self.stem_kernels, str):  # "auto"
            kernels = STEM_KERNELS[self.stem]
        else:
            kernels = () if self.stem_kernels is None else tuple(self.stem_kernels)
        for k in kernels:
            if isinstance(k, (bool, np.bool_)) or not isinstance(k, (Integral, np.integer)) or k < 1:
                raise ValueError(
                    f"stem_kernels must hold positive integer kernel widths, e.g. (3, 9, 19), "
                    f"or be None for a linear embedding; got {self.stem_kernels!r}."
                )
        if self.stem == "inception" and kernels and self.d_model < len(kernels) + 1:
            raise ValueError(
                f"stem='inception' with {len(kernels)} kernels needs d_model >= {len(kernels) + 1} "
                f"(a channel per branch); got d_model={self.d_model}. Raise d_model or pass "
                f"fewer stem_kernels."
            )
        return tuple(int(k) for k in kernels)

    def _training_batch(self, data, samples, rng):
        batch = self._make_batch(data, samples)
        if self.augment:
            batch["x"] = scale_and_jitter(batch["x"], batch["gaps"] > 0, rng)  # (B L C)
        if self.mixup > 0 and len(samples) > 1:
            batch["x"], perm, lam = mixup_batch(batch["x"], self.mixup, rng)  # (B L C)
            batch["y_mix"] = batch["y"][perm]  # (B)
            batch["lam"] = np.full(len(samples), lam, dtype=np.float32)  # (B)
        return batch

    def _batch_loss(self, model, batch):
        logits = model(batch["x"], batch["gaps"]).float()  # (B K)
        # Smoothed targets train; the plain cross-entropy is what validation watches.
        smooth = float(self.label_smoothing) if model.training else 0.0
        loss = F.cross_entropy(logits, batch["y"], reduction="none", label_smoothing=smooth)  # (B)
        if "lam" in batch:
            lam = batch["lam"]  # (B)
            other = F.cross_entropy(logits, batch["y_mix"], reduction="none", label_smoothing=smooth)
            loss = lam * loss + (1.0 - lam) * other  # (B)
        return loss.sum(), batch["y"].shape[0]

    def predict_proba(self, X: Any, *, times: Any = None) -> Any:
        """Class probabilities, columns in ``classes_`` order.

        Parameters
        ----------
        X : array-like or xarray.DataArray
            Series in the training layout.
        times : array-like, optional
            Sampling instants, as in :meth:`fit`.

        Returns
        -------
        proba : ndarray or xarray.DataArray of shape (n_series, n_classes)
        """
        logits, layout = self._decision(X, times)
        z = logits - logits.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        if layout.ndim == 1:
            return p
        return wrap_series_output(p, layout, extra=("class", self.classes_))

    def predict(self, X: Any, *, times: Any = None) -> Any:
        """Most probable class of each series.

        Parameters
        ----------
        X : array-like or xarray.DataArray
            Series in the training layout.
        times : array-like, optional
            Sampling instants, as in :meth:`fit`.

        Returns
        -------
        labels : ndarray or xarray.DataArray of shape (n_series,)
        """
        logits, layout = self._decision(X, times)
        labels = self.classes_[np.argmax(logits, axis=1)]
        if layout.ndim == 1:
            return labels
        return wrap_series_output(labels, layout)
