"""Forecast a solar cycle of monthly sunspot numbers, with a prediction interval.

The monthly mean sunspot number (1749-2009) ships with sciamba. We hold back
the last solar cycle (132 months, 1998-07 to 2009-06), fit a
:class:`sciamba.MambaForecaster` with quantile outputs on everything before
it, and compare its forecast of the whole cycle with two classical
baselines fitted on the same history:

* the naive forecast (the last observed value, repeated), and
* an autoregressive AR(p) model fitted by least squares, order by AIC.

An ``xarray.DataArray`` goes in and the forecast comes back as a DataArray;
the plot uses the held-back months' own time stamps.

Run ``python examples/forecast_sunspots.py``; ``SCIAMBA_FAST=1`` trains for a
few epochs only (for the test suite). The figure is written to
``forecast_sunspots.png`` in the current directory (or ``SCIAMBA_OUTPUT_DIR``).
"""

import os
import time

import matplotlib

if not os.environ.get("DISPLAY") and not os.environ.get("MPLBACKEND"):
    matplotlib.use("Agg")  # headless: write the file, open no window
import matplotlib.pyplot as plt
import numpy as np

from sciamba import MambaForecaster
from sciamba._baselines import ar_forecast, ar_select_order, forecast_errors, naive_forecast
from sciamba.datasets import load_sunspots

FAST = os.environ.get("SCIAMBA_FAST", "0") not in ("", "0")
OUT = os.environ.get("SCIAMBA_OUTPUT_DIR", ".")
HORIZON = 132  # one solar cycle, in months
LOOKBACK = HORIZON  # condition on the last cycle

sunspots = load_sunspots(freq="monthly")  # DataArray, dim "time" (datetime64), 3126 months
history, held_back = sunspots[:-HORIZON], sunspots[-HORIZON:]
print(f"{sunspots.attrs['title']}: {sunspots.sizes['time']} months; "
      f"holding back {str(held_back.time[0].values)[:7]} .. {str(held_back.time[-1].values)[:7]}")

model = MambaForecaster(
    horizon=HORIZON,
    lookback=LOOKBACK,
    quantiles=(0.05, 0.5, 0.95),  # pinball loss: median and a 90% interval
    d_model=16 if FAST else 32,
    n_layers=1 if FAST else 2,
    max_epochs=1 if FAST else 15,
    # One long series gives few training crops per epoch: small batches and a
    # higher learning rate make each epoch count; stop when validation is flat.
    batch_size=8,
    learning_rate=3e-3,
    n_iter_no_change=3,
    validation_fraction=0.05,
    random_state=0,
    verbose=0 if FAST else 1,
)
t0 = time.perf_counter()
model.fit(history)
print(f"trained {model.n_epochs_} epochs in {time.perf_counter() - t0:.1f} s on {model.device_}")

forecast = model.predict(history)  # DataArray (time: 132) after the end of the history
lower, upper = model.predict_interval(history, coverage=0.9)
forecast, lower, upper = (np.asarray(a).squeeze() for a in (forecast, lower, upper))

y_hist = history.values
order = ar_select_order(y_hist, max_order=24).order
baselines = {
    "naive": naive_forecast(y_hist, HORIZON),
    f"AR({order})": ar_forecast(y_hist, HORIZON, order=order),
}
truth = held_back.values
print(f"{'method':<10}{'MAE':>8}{'RMSE':>8}   (held-back cycle, {HORIZON} months)")
for name, pred in {"Mamba": forecast, **baselines}.items():
    err = forecast_errors(truth, pred)
    print(f"{name:<10}{err['mae']:>8.2f}{err['rmse']:>8.2f}")
inside = np.mean((truth >= lower) & (truth <= upper))
print(f"90% interval holds {100 * inside:.0f}% of the held-back months")

fig, ax = plt.subplots(figsize=(10, 4.5), layout="constrained")
context = sunspots[-5 * HORIZON:]
ax.plot(context.time, context, color="0.3", lw=0.8, label="observed")
t_held = held_back.time.values
ax.fill_between(t_held, lower, upper, color="tab:blue", alpha=0.2, lw=0, label="Mamba 90% interval")
ax.plot(t_held, forecast, color="tab:blue", lw=1.8, label="Mamba median forecast")
ax.plot(t_held, baselines["naive"], color="tab:gray", ls="--", label="naive")
ax.plot(t_held, baselines[f"AR({order})"], color="tab:orange", ls=":", lw=1.8, label=f"AR({order})")
ax.axvline(t_held[0], color="0.5", lw=0.8, ls="-.")
ax.set_ylabel("monthly mean sunspot number")
ax.set_title("Forecasting solar cycle 23 from the cycles before it")
ax.legend(loc="upper left", fontsize=8)
ax.grid(alpha=0.3)
path = os.path.join(OUT, "forecast_sunspots.png")
fig.savefig(path, dpi=120)
print(f"wrote {path}")
