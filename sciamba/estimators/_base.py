"""Shared machinery of the three estimators: parameters, device, training loop, pickling."""

from __future__ import annotations

import copy
import math
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from ._network import SeriesNetwork, network_from_config

__all__ = ["MambaEstimatorMixin", "BACKBONES"]

BACKBONES = ("mamba", "s4d", "transformer", "lstm")

#: Fewest validation series with which ``early_stopping="auto"`` stops early.
AUTO_EARLY_STOPPING_MIN_VAL = 50
#: ``max_epochs="auto"``: at least this many epochs ...
AUTO_MIN_EPOCHS = 100
#: ... and enough of them for this many optimizer steps.
AUTO_MIN_STEPS = 1000


class MambaEstimatorMixin:
    """Parameters, device handling, the training loop and pickling.

    Subclasses (also deriving from :class:`~sklearn.base.BaseEstimator`)
    provide ``_make_batch(data, samples)`` returning a dict of numpy arrays
    with at least ``x`` ``(B, L, C)`` and ``gaps`` ``(B, L)``, and
    ``_batch_loss(model, batch)`` returning ``(sum of losses, count)``
    (``model.training`` tells a training batch from an evaluation one); they
    may override ``_training_batch`` to augment training batches.
    """

    _parameter_constraints: dict = {
        "backbone": [StrOptions(set(BACKBONES))],
        "d_model": [Interval(Integral, 1, None, closed="left")],
        "n_layers": [Interval(Integral, 1, None, closed="left")],
        "d_state": [Interval(Integral, 1, None, closed="left")],
        "expand": [Interval(Integral, 1, None, closed="left")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "early_stopping": ["boolean", StrOptions({"auto"})],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "device": [str, torch.device],
        "precision": [StrOptions({"auto", "float32", "bfloat16"})],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
    }

    #: Subclasses: make_backbone keywords that are not shared parameters.
    def _backbone_kwargs(self) -> dict[str, Any]:
        return {"d_state": self.d_state, "expand": self.expand}

    # ------------------------------------------------------------------ tags
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # NaN = not observed (padding and gaps)
        tags.input_tags.three_d_array = True  # (n_series, n_channels, n_timesteps)
        # Seeded CPU training is bit-reproducible; CUDA kernels use atomics.
        try:
            tags.non_deterministic = self._resolve_device().type == "cuda"
        except (ValueError, TypeError):
            tags.non_deterministic = False
        return tags

    # ---------------------------------------------------------------- device
    def _resolve_device(self) -> torch.device:
        dev = self.device
        if isinstance(dev, str) and dev == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            dev = torch.device(dev)
        except (RuntimeError, TypeError):
            raise ValueError(
                f"device={self.device!r} is not a torch device; use 'auto', 'cpu', "
                "'cuda' or 'cuda:<index>'."
            ) from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(
                f"device={self.device!r} asks for CUDA, but torch sees no CUDA device "
                "here; use device='cpu' or 'auto'."
            )
        if dev.type not in ("cpu", "cuda"):
            raise ValueError(f"device={self.device!r}: only CPU and CUDA devices are supported.")
        return dev

    def _autocast_dtype(self, device: torch.device) -> torch.dtype | None:
        if self.precision == "bfloat16" or (self.precision == "auto" and device.type == "cuda"):
            return torch.bfloat16
        return None

    def _fork_devices(self, device: torch.device) -> list[int]:
        if device.type != "cuda":
            return []
        return [device.index if device.index is not None else torch.cuda.current_device()]

    # ----------------------------------------------------------------- model
    def _build_model(self, config: dict[str, Any], device: torch.device) -> SeriesNetwork:
        return SeriesNetwork(**config).to(device)

    def _network_config(self, n_channels: int, n_outputs: int, *, pooled: bool,
                        bidirectional: bool, **extra: Any) -> dict[str, Any]:
        return dict(
            **extra,
            n_channels=n_channels,
            n_outputs=n_outputs,
            backbone=self.backbone,
            d_model=self.d_model,
            n_layers=self.n_layers,
            pooled=pooled,
            bidirectional=bidirectional,
            causal=not bidirectional,
            **self._backbone_kwargs(),
        )

    # -------------------------------------------------------------- training
    def _seed(self) -> int:
        return int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))

    def _train(
        self,
        config: dict[str, Any],
        data: Any,
        train_samples: np.ndarray,
        val_samples: np.ndarray | None,
        seed: int,
        warm_ok: bool = True,
        early_stopping: bool | None = None,
    ) -> None:
        """Fit ``model_`` with AdamW; early stopping restores the best weights.

        Everything random (initialization, shuffling, dropout) is drawn
        inside :func:`torch.random.fork_rng` from ``seed``, so a fixed
        ``random_state`` gives bit-identical CPU results and the caller's
        global RNG state is left as it was. ``early_stopping`` overrides the
        parameter of that name (the subclass's resolution of ``"auto"``).
        """
        warm = (
            warm_ok
            and self.warm_start
            and getattr(self, "model_", None) is not None
            and getattr(self, "_model_config", None) == config
        )
        start = (self.model_, self.history_, self.n_epochs_) if warm else None
        model, history, n_epochs, best_epoch = self._fit_network(
            config, data, train_samples, val_samples, seed, start=start,
            early_stopping=early_stopping,
        )
        self._set_fitted(model, config, history, n_epochs, best_epoch)

    def _set_fitted(self, model: torch.nn.Module, config: dict[str, Any], history: Any, n_epochs: Any,
                    best_epoch: Any) -> None:
        """Store a trained network (or ensemble), its build config and its training record."""
        self.model_ = model
        self._model_config = config
        self.device_ = self._resolve_device()
        self.history_ = history
        self.n_epochs_ = n_epochs
        self.best_epoch_ = best_epoch

    def _fit_network(
        self,
        config: dict[str, Any],
        data: Any,
        train_samples: np.ndarray,
        val_samples: np.ndarray | None,
        seed: int,
        *,
        start: tuple[torch.nn.Module, dict, int] | None = None,
        early_stopping: bool | None = None,
        desc: str | None = None,
    ) -> tuple[torch.nn.Module, dict[str, list[float]], int, int]:
        """Train one network; returns ``(model, history, n_epochs, best_epoch)``.

        ``start``: ``(model, history, n_epochs)`` of a fitted network to
        continue (warm start); otherwise a new one is built from ``config``
        with ``seed``. ``desc`` labels the progress bar. See :meth:`_train`.
        """
        early = bool(self.early_stopping) if early_stopping is None else early_stopping
        device = self._resolve_device()
        amp = self._autocast_dtype(device)
        rng = np.random.default_rng(seed)
        with torch.random.fork_rng(devices=self._fork_devices(device)):
            torch.manual_seed(seed)
            if start is not None:
                model = start[0].to(device)
                history = {k: list(v) for k, v in start[1].items()}
                epoch0 = start[2]
            else:
                model = self._build_model(config, device)
                history = {"train_loss": [], "val_loss": []}
                epoch0 = 0
            opt = torch.optim.AdamW(
                model.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay
            )
            steps_per_epoch = max(1, math.ceil(len(train_samples) / self.batch_size))
            total = self._resolve_max_epochs(steps_per_epoch)
            # Linear warm-up over the first epochs, then cosine decay to 10 %;
            # with early stopping, also halved on each plateau of a third of
            # the patience (fine-tuning before giving up).
            base = _warmup_cosine(
                total * steps_per_epoch, min(steps_per_epoch * 2, total * steps_per_epoch // 10 + 1)
            )
            plateau = [1.0]
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: base(step) * plateau[0])
            plateau_every = max(2, self.n_iter_no_change // 3)
            monitor = "val_loss" if val_samples is not None and len(val_samples) else "train_loss"
            best = math.inf
            best_state = None
            best_epoch = epoch0
            stale = 0
            bar = tqdm(
                range(total), disable=self.verbose <= 0, desc=desc or type(self).__name__,
                unit="epoch", leave=self.verbose > 1,
            )
            n_run = 0
            for _ in bar:
                model.train()
                order = rng.permutation(len(train_samples))
                # The epoch's loss is summed on the device and read once at its end: reading
                # it at every step made the host wait for the GPU once more per step (the batch's
                # copy to the device and the model's checks of the gaps still wait).
                loss_sum, count = torch.zeros((), device=device, dtype=torch.float64), 0.0
                for start in range(0, len(order), self.batch_size):
                    batch = self._to_torch(
                        self._training_batch(
                            data, train_samples[order[start:start + self.batch_size]], rng
                        ),
                        device,
                    )
                    with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
                        s, c = self._batch_loss(model, batch)
                    if c == 0:
                        continue
                    loss = s / c
                    opt.zero_grad(set_to_none=True)
                    # The backward on this thread: one device gains nothing from autograd's
                    # per-device worker thread, and handing each backward to it and back cost
                    # more host time than whole small steps on GPU hosts (benchmarks/RESULTS.md,
                    # "Autograd's device thread").
                    with torch.autograd.set_multithreading_enabled(False):
                        loss.backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                    opt.step()
                    sched.step()
                    loss_sum += s.detach()
                    count += float(c)
                n_run += 1
                train_loss = float(loss_sum) / max(count, 1.0)
                history["train_loss"].append(train_loss)
                if monitor == "val_loss":
                    val_loss = self._evaluate(model, data, val_samples, device, amp)
                    history["val_loss"].append(val_loss)
                    bar.set_postfix(train_loss=f"{train_loss:.4g}", val_loss=f"{val_loss:.4g}")
                else:
                    val_loss = train_loss
                    bar.set_postfix(train_loss=f"{train_loss:.4g}")
                if not math.isfinite(train_loss):
                    raise FloatingPointError(
                        f"{type(self).__name__}: the training loss became {train_loss} at "
                        f"epoch {epoch0 + n_run}; lower learning_rate or check the input scale."
                    )
                improved = not math.isfinite(best) or val_loss < best - 1e-4 * abs(best)
                if improved:
                    best = val_loss
                    best_epoch = epoch0 + n_run
                    stale = 0
                    if early:
                        best_state = copy.deepcopy(model.state_dict())
                else:
                    stale += 1
                    if early and stale % plateau_every == 0:
                        plateau[0] *= 0.5
                if early and stale >= self.n_iter_no_change:
                    break
            bar.close()
            if early and best_state is not None:
                model.load_state_dict(best_state)
            else:
                best_epoch = epoch0 + n_run
        model.eval()
        return model, history, epoch0 + n_run, best_epoch

    def _training_batch(self, data: Any, samples: np.ndarray, rng: np.random.Generator) -> dict:
        """A training batch: :meth:`_make_batch`, plus any augmentation drawn from ``rng``."""
        return self._make_batch(data, samples)

    @staticmethod
    def _to_torch(batch: dict[str, np.ndarray], device: torch.device) -> dict[str, torch.Tensor]:
        return {k: torch.from_numpy(np.ascontiguousarray(v)).to(device) for k, v in batch.items()}

    @torch.no_grad()
    def _evaluate(self, model, data, samples, device, amp) -> float:
        model.eval()
        s_tot, c_tot = 0.0, 0.0
        bs = self._eval_batch_size()
        for start in range(0, len(samples), bs):
            batch = self._to_torch(self._make_batch(data, samples[start:start + bs]), device)
            with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
                s, c = self._batch_loss(model, batch)
            s_tot += float(s)
            c_tot += float(c)
        return s_tot / max(c_tot, 1.0)

    def _eval_batch_size(self) -> int:
        return max(self.batch_size, 64)

    @torch.no_grad()
    def _forward(self, x: np.ndarray, gaps: np.ndarray, *, last_step: bool = False) -> np.ndarray:
        """Run the fitted network on ``x`` ``(n, L, C)``, in batches; float64 output.

        On the CPU (without bfloat16) a float64 copy of the network runs, so
        a series' prediction does not depend on the batch it is in (float32
        matrix products round differently for different batch sizes).
        ``last_step`` keeps only the last time step of a per-step output,
        batch by batch, so the full ``(n, L, ...)`` output is never held.
        """
        model = self.model_
        model.eval()
        device = self.device_
        amp = self._autocast_dtype(device)
        dtype = torch.float32
        if device.type == "cpu" and amp is None:
            model = copy.deepcopy(model).double()
            dtype = torch.float64
        outs = []
        bs = self._eval_batch_size()
        for start in range(0, x.shape[0], bs):
            xb = torch.as_tensor(x[start:start + bs], dtype=dtype, device=device)
            gb = torch.as_tensor(gaps[start:start + bs], dtype=dtype, device=device)
            with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
                out = model(xb, gb)
            if last_step:
                out = out[:, -1]
            outs.append(out.double().cpu().numpy())
        return np.concatenate(outs, axis=0)

    # -------------------------------------------------------------- pickling
    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        model = state.get("model_")
        if model is not None:
            # Weights travel as CPU tensors: a model trained on a GPU unpickles
            # on a CPU-only machine.
            state = dict(state)
            state["model_"] = None
            state["_model_weights"] = {k: v.detach().cpu() for k, v in model.state_dict().items()}
            state["device_"] = str(state.get("device_"))
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        weights = state.pop("_model_weights", None)
        super().__setstate__(state)
        if weights is None:
            return
        device = torch.device(self.device_)
        if device.type == "cuda" and not torch.cuda.is_available():
            device = torch.device("cpu")
        with torch.random.fork_rng(devices=[]):
            model = network_from_config(self._model_config)
        model.load_state_dict(weights)
        self.model_ = model.to(device).eval()
        self.device_ = device

    def _resolve_max_epochs(self, steps_per_epoch: int) -> int:
        """``max_epochs``, with ``"auto"`` resolved for ``steps_per_epoch`` steps per epoch.

        ``"auto"`` is :data:`AUTO_MIN_EPOCHS` epochs, or more when that many
        epochs would make fewer than :data:`AUTO_MIN_STEPS` optimizer steps:
        a small data set has few batches per epoch, and a fixed epoch count
        would leave it undertrained (ECGFiveDays, 23 series, 2 batches per
        epoch: 100 epochs gave 0.72-0.90 test accuracy over seeds 0-4,
        400 epochs 0.86-0.98 over seeds 0-2). Published convolutional
        baselines on the UCR archive train 1500-2000 epochs for the same
        reason [1]_.

        References
        ----------
        .. [1] H. Ismail Fawaz, G. Forestier, J. Weber, L. Idoumghar and
               P.-A. Muller, "Deep learning for time series classification: a
               review", Data Min. Knowl. Disc. 33, 917-963 (2019),
               arXiv:1809.04356.
        """
        if isinstance(self.max_epochs, str):  # "auto"
            return max(AUTO_MIN_EPOCHS, math.ceil(AUTO_MIN_STEPS / max(steps_per_epoch, 1)))
        return int(self.max_epochs)

    def _early_stopping_enabled(self, n_series: int) -> bool:
        """``early_stopping`` for ``n_series`` training series, ``"auto"`` resolved.

        The validation share of ``n_series`` series holds
        ``ceil(validation_fraction * n_series)`` of them; see
        :meth:`_auto_early_stopping`.
        """
        return self._auto_early_stopping(math.ceil(self.validation_fraction * n_series))

    def _auto_early_stopping(self, n_val: int) -> bool:
        """``early_stopping`` with ``"auto"`` resolved for ``n_val`` validation units.

        A unit is what the split holds out: a series (classifier, regressor,
        forecaster without ``lookback``) or a window (forecaster with
        ``lookback``). ``"auto"`` stops early only when there are at least
        :data:`AUTO_EARLY_STOPPING_MIN_VAL` of them: the loss of a smaller
        validation set is too noisy to choose an epoch by (ECG200, 100
        series: 10 held out gave test accuracies of 0.64-0.85 over seeds,
        against 0.81-0.86 for training the full schedule).
        """
        if isinstance(self.early_stopping, str):  # "auto"
            return n_val >= AUTO_EARLY_STOPPING_MIN_VAL
        return bool(self.early_stopping)

    def _check_fitted(self) -> None:
        check_is_fitted(self, "model_")


def _warmup_cosine(total_steps: int, warmup: int):
    total_steps = max(total_steps, 1)
    warmup = max(min(warmup, total_steps), 1)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = (step - warmup) / max(total_steps - warmup, 1)
        return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0)))

    return factor
