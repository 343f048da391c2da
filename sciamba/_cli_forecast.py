"""``sciamba forecast``: the main job.

Fit a :class:`~sciamba.MambaForecaster` with a prediction interval on one
series, judge it on a held-back window against the naive and AR baselines,
then forecast beyond the end of the data and write the result as a plot and
as a CSV or netCDF table.

Protocol
--------
The last ``horizon`` values are held back. The model (and both baselines) see
only the values before them; the report scores all three on the held-back
window (MAE, RMSE, and how many held-back values fall inside the interval).
The same fitted model then forecasts the ``horizon`` values after the end of
the data from the full series: a global forecaster conditions on whatever
history it is given, so no refit is needed.
"""

from __future__ import annotations

import argparse
import os
import time as _time
from typing import TextIO

import numpy as np

from ._cli import CLIError, add_common_options, fast_mode
from ._cli_data import (
    FORECAST_DATASETS,
    Series,
    future_times,
    load_forecast_dataset,
    read_csv_series,
    read_netcdf_series,
)

DEFAULT_DATASET = "sunspots-monthly"
#: Training budget of the default run, chosen so `sciamba` with no options
#: finishes in under two minutes on two CPU cores. Measured on monthly
#: sunspots (2 CPU cores, torch backend): ~7 CPU-seconds per epoch; the
#: validation loss levels off after ~12 epochs with the settings below.
DEFAULT_MAX_EPOCHS = 15
#: A single long series gives few crops per epoch: small batches and a higher
#: learning rate than the estimator's defaults make those epochs count, and a
#: short patience stops once the validation loss is flat.
BATCH_SIZE = 8
LEARNING_RATE = 3e-3
PATIENCE = 3
VALIDATION_FRACTION = 0.05
#: Epochs under SCIAMBA_FAST=1 (the test suite's end-to-end run).
FAST_MAX_EPOCHS = 1
#: At least this many training windows, or the series is too short.
MIN_WINDOWS = 8


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "forecast",
        help="fit a Mamba forecaster on a series; report, plot and save the forecast (the default)",
        description=(
            "Fit a MambaForecaster with a prediction interval on one series, score it on a "
            "held-back window (the last HORIZON values) against a naive and an AR baseline, "
            "and forecast HORIZON steps beyond the end of the data. Writes a plot (--plot) and "
            "a table (--out: .csv, or .nc for netCDF). Without a data option it uses the shipped "
            "monthly sunspot numbers."
        ),
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--dataset", default=None, metavar="NAME",
                     help=f"shipped dataset: {', '.join(FORECAST_DATASETS)} (default: {DEFAULT_DATASET})")
    src.add_argument("--csv", metavar="FILE", help="a CSV file; pick the series with --column")
    src.add_argument("--netcdf", metavar="FILE", help="a netCDF file (read with xarray); pick the series with --variable")
    p.add_argument("--column", metavar="NAME", help="CSV column to forecast")
    p.add_argument("--time-column", metavar="NAME",
                   help="CSV column with the time stamps (default: a column named time/date, else the row number)")
    p.add_argument("--variable", metavar="NAME", help="netCDF variable to forecast (one series along 'time')")
    p.add_argument("--horizon", type=int, metavar="H",
                   help="steps to forecast; also the held-back window (default: one solar cycle, "
                        "132 months, for monthly sunspots; 11 years for yearly; 12 for files)")
    p.add_argument("--lookback", type=int, metavar="L",
                   help="history the model conditions on (default: one horizon for sunspots, "
                        "3 x horizon for files, clipped to the data)")
    p.add_argument("--coverage", type=float, default=0.9,
                   help="nominal coverage of the prediction interval (default: 0.9)")
    p.add_argument("--max-epochs", type=int, default=None,
                   help=f"training epochs at most; early stopping may end sooner (default: "
                        f"{DEFAULT_MAX_EPOCHS}; {FAST_MAX_EPOCHS} when SCIAMBA_FAST=1)")
    p.add_argument("--d-model", type=int, default=32, help="model width (default: 32)")
    p.add_argument("--n-layers", type=int, default=2, help="Mamba blocks (default: 2)")
    p.add_argument("--backbone", default="mamba", choices=["mamba", "s4d", "transformer", "lstm"],
                   help="sequence model (default: mamba)")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda (default: auto)")
    p.add_argument("--plot", default="forecast.png", metavar="FILE",
                   help="figure to write (default: forecast.png; '' for none)")
    p.add_argument("--out", default="forecast.csv", metavar="FILE",
                   help="table to write: .csv, or .nc for netCDF (default: forecast.csv; '' for none)")
    add_common_options(p)


def _load(args: argparse.Namespace) -> Series:
    if args.csv is not None:
        if args.variable is not None:
            raise CLIError("--variable is for --netcdf; with --csv use --column")
        return read_csv_series(args.csv, args.column, args.time_column)
    if args.netcdf is not None:
        if args.column is not None:
            raise CLIError("--column is for --csv; with --netcdf use --variable")
        return read_netcdf_series(args.netcdf, args.variable)
    if args.column is not None or args.variable is not None:
        raise CLIError("--column needs --csv FILE and --variable needs --netcdf FILE")
    return load_forecast_dataset(args.dataset or DEFAULT_DATASET)


def _trim_leading_missing(series: Series) -> Series:
    finite = np.flatnonzero(np.isfinite(series.values))
    if finite.size == 0:
        raise CLIError(f"{series.description}: has no finite values")
    first, last = finite[0], finite[-1]
    series.values, series.time = series.values[first : last + 1], series.time[first : last + 1]
    return series


def _plan(series: Series, args: argparse.Namespace) -> tuple[int, int]:
    """Horizon and lookback, checked against the series length."""
    n = series.values.shape[0]
    horizon = args.horizon if args.horizon is not None else (series.default_horizon or 12)
    if horizon < 1:
        raise CLIError(f"--horizon must be a positive integer, got {horizon}")
    n_train = n - horizon  # values before the held-back window
    if args.lookback is not None:
        if args.lookback < 1:
            raise CLIError(f"--lookback must be a positive integer, got {args.lookback}")
        lookback = args.lookback
    else:
        lookback = series.default_lookback or 3 * horizon
        lookback = min(lookback, n_train - horizon - MIN_WINDOWS + 1)
        lookback = max(lookback, 2)
    need = lookback + 2 * horizon + MIN_WINDOWS - 1
    if n < need:
        raise CLIError(
            f"series too short: {series.description} has {n} values; forecasting {horizon} steps "
            f"from {lookback} of history needs at least {need} (held-back window {horizon} + "
            f"{MIN_WINDOWS} training windows of {lookback}+{horizon}); use a smaller --horizon or --lookback"
        )
    if not np.isfinite(series.values[n_train:]).any():
        raise CLIError(f"the held-back window (last {horizon} values) has no finite values to score against")
    return horizon, lookback


def _fill_gaps(y: np.ndarray) -> np.ndarray:
    """Linear interpolation over NaN gaps: the baselines need gap-free input (the model does not)."""
    ok = np.isfinite(y)
    if ok.all():
        return y
    idx = np.arange(y.shape[0])
    return np.interp(idx, idx[ok], y[ok])


def _history_curves(model) -> dict:
    """Per-epoch train and validation loss from ``history_`` (dict of lists or list of dicts)."""
    hist = getattr(model, "history_", None)
    if hist is None:
        return {}
    if isinstance(hist, dict):
        train = hist.get("train_loss", hist.get("train", []))
        val = hist.get("val_loss", hist.get("validation_loss", hist.get("validation", [])))
    else:
        train = [h.get("train_loss", np.nan) for h in hist]
        val = [h.get("val_loss", h.get("validation_loss", np.nan)) for h in hist]
    return {"train": [float(v) for v in train], "validation": [float(v) for v in val]}


def _format_time(t) -> str:
    t = np.asarray(t)
    if np.issubdtype(t.dtype, np.datetime64):
        return str(np.datetime_as_string(t, unit="D"))
    return f"{float(t):g}"


def run(args: argparse.Namespace, out: TextIO) -> int:
    if not 0.0 < args.coverage < 1.0:
        raise CLIError(f"--coverage must be strictly between 0 and 1, got {args.coverage}")
    if args.max_epochs is None:
        args.max_epochs = FAST_MAX_EPOCHS if fast_mode() else DEFAULT_MAX_EPOCHS
    if args.max_epochs < 1:
        raise CLIError(f"--max-epochs must be a positive integer, got {args.max_epochs}")
    for path in (args.plot, args.out):
        if path and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            raise CLIError(f"cannot write {path}: its directory does not exist")
    if args.out and not args.out.lower().endswith((".csv", ".nc", ".nc4", ".netcdf")):
        raise CLIError(f"--out must end in .csv or .nc (netCDF), got {args.out!r}")

    series = _trim_leading_missing(_load(args))
    horizon, lookback = _plan(series, args)
    p = lambda *a: print(*a, file=out, flush=True)  # noqa: E731

    import torch

    from sciamba import MambaForecaster
    from sciamba.kernels import available_backends

    from ._baselines import ar_forecast, ar_select_order, forecast_errors, naive_forecast

    values, time = series.values, series.time
    n = values.shape[0]
    split = n - horizon
    train, held = values[:split], values[split:]
    alpha = 1.0 - args.coverage
    quantiles = (alpha / 2, 0.5, 1 - alpha / 2)

    p(f"sciamba forecast: {series.description}")
    p(f"  data      {n} values, {_format_time(time[0])} .. {_format_time(time[-1])}"
      + (f", {int(np.isnan(values).sum())} missing" if np.isnan(values).any() else ""))
    p(f"  held back the last {horizon} values ({_format_time(time[split])} .. {_format_time(time[-1])}) "
      f"for scoring; lookback {lookback}")

    model = MambaForecaster(
        horizon=horizon,
        lookback=lookback,
        quantiles=quantiles,
        backbone=args.backbone,
        d_model=args.d_model,
        n_layers=args.n_layers,
        max_epochs=args.max_epochs,
        batch_size=BATCH_SIZE,
        learning_rate=LEARNING_RATE,
        n_iter_no_change=PATIENCE,
        validation_fraction=VALIDATION_FRACTION,
        device=args.device,
        random_state=args.seed,
        verbose=0 if args.quiet else 1,
    )
    t0 = _time.perf_counter()
    model.fit(train[None, :])
    fit_s = _time.perf_counter() - t0
    device = str(getattr(model, "device_", "cpu"))
    backend = available_backends(device).auto
    curves = _history_curves(model)
    val = [v for v in curves.get("validation", []) if np.isfinite(v)]

    # Scores on the held-back window: model and baselines saw only `train`.
    pred_held = np.asarray(model.predict(train[None, :]))[0]  # (H,)
    lo_held, hi_held = np.asarray(model.predict_interval(train[None, :], coverage=args.coverage))[0]  # (2 H)
    train_filled = _fill_gaps(train)
    ar_order = ar_select_order(train_filled, min(24, max((train_filled.size - 2) // 2, 0))).order
    naive_held = naive_forecast(train_filled, horizon)
    ar_held = ar_forecast(train_filled, horizon, order=ar_order)
    scores = {
        "Mamba": forecast_errors(held, pred_held),
        "naive": forecast_errors(held, naive_held),
        f"AR({ar_order})": forecast_errors(held, ar_held),
    }
    ok = np.isfinite(held)
    inside = float(np.mean((held[ok] >= lo_held[ok]) & (held[ok] <= hi_held[ok])))

    # Beyond the data: the same model, conditioned on the series up to its end. The
    # estimator takes histories of the training length, so pass the last `split` values.
    recent = values[None, n - split :]  # (1 split)
    pred_fut = np.asarray(model.predict(recent))[0]
    lo_fut, hi_fut = np.asarray(model.predict_interval(recent, coverage=args.coverage))[0]
    t_fut = future_times(time, horizon)
    full_filled = _fill_gaps(values)
    naive_fut = naive_forecast(full_filled, horizon)
    ar_fut = ar_forecast(full_filled, horizon, order=ar_order)

    n_epochs = getattr(model, "n_epochs_", len(curves.get("train", [])))
    best = getattr(model, "best_epoch_", None)
    p(f"  model     MambaForecaster(backbone={args.backbone!r}, d_model={args.d_model}, "
      f"n_layers={args.n_layers}, quantiles={tuple(round(q, 4) for q in quantiles)})")
    p(f"  device    {device}, selective-scan backend {backend!r}, torch {torch.__version__}, "
      f"{torch.get_num_threads()} threads")
    p(f"  training  {n_epochs} epochs in {fit_s:.1f} s"
      + (f", best epoch {best}" if best is not None else "")
      + (f", best validation loss {min(val):.4g} (pinball loss of standardized values)" if val else ""))
    p(f"  held-back window, {int(ok.sum())} values:")
    p(f"    {'method':<10}{'MAE':>10}{'RMSE':>10}")
    for name, s in scores.items():
        p(f"    {name:<10}{s['mae']:>10.3f}{s['rmse']:>10.3f}")
    p(f"    {100 * args.coverage:g}% interval holds {100 * inside:.1f}% of the held-back values")
    p(f"  forecast  {horizon} steps, {_format_time(t_fut[0])} .. {_format_time(t_fut[-1])}")

    held_part = {"time": time[split:], "mamba": pred_held, "lower": lo_held, "upper": hi_held,
                 "naive": naive_held, "ar": ar_held}
    fut_part = {"time": t_fut, "mamba": pred_fut, "lower": lo_fut, "upper": hi_fut,
                "naive": naive_fut, "ar": ar_fut}
    if args.out:
        _write_table(args.out, series, held_part, fut_part, held, scores, inside, args, ar_order)
        p(f"  wrote     {args.out}")
    if args.plot:
        from ._cli_plot import plot_forecast

        best_rmse = ", ".join(f"{k} {v['rmse']:.1f}" for k, v in scores.items())
        plot_forecast(
            args.plot,
            title=f"{series.description}\nRMSE on the held-back window: {best_rmse}",
            ylabel=series.name + (f" [{series.units}]" if series.units and series.units != "1" else ""),
            time=time, values=values, split=split, held_back=held_part, future=fut_part,
            coverage=args.coverage, history=curves or None, context=max(4 * horizon, lookback),
        )
        p(f"  wrote     {args.plot}")
    return 0


def _write_table(path, series, held_part, fut_part, held, scores, inside, args, ar_order) -> None:
    import pandas as pd

    def frame(part, segment, observed):
        return pd.DataFrame({
            "time": part["time"], "segment": segment, "observed": observed,
            "forecast": part["mamba"], "lower": part["lower"], "upper": part["upper"],
            "naive": part["naive"], f"ar{ar_order}": part["ar"],
        })

    table = pd.concat([
        frame(held_part, "held-back", held),
        frame(fut_part, "forecast", np.full(len(fut_part["time"]), np.nan)),
    ], ignore_index=True)
    if path.lower().endswith(".csv"):
        table.to_csv(path, index=False, float_format="%.6g")
        return
    ds = table.set_index("time").to_xarray()
    ds.attrs.update({
        "title": f"sciamba forecast of {series.description}",
        "coverage": args.coverage,
        "interval_hit_rate_held_back": inside,
        **{f"{k}_rmse_held_back": v["rmse"] for k, v in scores.items()},
        **{f"{k}_mae_held_back": v["mae"] for k, v in scores.items()},
    })
    ds.attrs = {k.replace("(", "").replace(")", ""): v for k, v in ds.attrs.items()}
    ds.to_netcdf(path)
