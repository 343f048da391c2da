"""Figures of the command line, drawn on bare :class:`matplotlib.figure.Figure` objects.

No pyplot: a bare ``Figure`` renders with the file-format backend (Agg for
PNG) whatever the session's interactive backend is, so the command line never
opens a window, needs no display, and leaves a caller's pyplot state alone.
"""

from __future__ import annotations

import os

import numpy as np


def _figure(width: float, height: float, **kw):
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # matplotlib is the `plot` extra
        raise ImportError(
            "plots need matplotlib: pip install 'sciamba[plot]' (or pass --plot '' to skip the plot)"
        ) from exc
    return Figure(figsize=(width, height), layout="constrained", **kw)


def _save(fig, path: str) -> str:
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"directory of the output file does not exist: {parent}")
    fig.savefig(path, dpi=120)
    return path


def plot_forecast(
    path: str,
    *,
    title: str,
    ylabel: str,
    time,
    values,
    split: int,
    held_back: dict,
    future: dict,
    coverage: float,
    history: dict | None = None,
    context: int | None = None,
) -> str:
    """History, held-back window with all forecasts, and the forecast beyond the data.

    ``held_back`` and ``future`` map ``"time"``, ``"mamba"``, ``"lower"``,
    ``"upper"``, ``"naive"``, ``"ar"`` to arrays; ``split`` is the index where
    the held-back window starts. ``history`` (``"train"``, ``"validation"``
    loss per epoch) adds a small panel with the training curves.
    """
    fig = _figure(11, 5.5 if history else 4.5)
    if history:
        gs = fig.add_gridspec(1, 4)
        ax = fig.add_subplot(gs[0, :3])
        ax_loss = fig.add_subplot(gs[0, 3])
    else:
        ax, ax_loss = fig.add_subplot(), None
    start = 0 if context is None else max(0, split - context)
    ax.plot(time[start:split], values[start:split], color="0.2", lw=0.9, label="observed")
    ax.plot(time[split:], values[split:], color="0.2", lw=0.9, ls="-", alpha=0.55, label="held back")
    pct = f"{100 * coverage:g}%"
    for part, color, tag in ((held_back, "tab:blue", "held-back"), (future, "tab:red", "future")):
        ax.fill_between(part["time"], part["lower"], part["upper"], color=color, alpha=0.18, lw=0,
                        label=f"Mamba {pct} interval ({tag})")
        ax.plot(part["time"], part["mamba"], color=color, lw=1.6, label=f"Mamba forecast ({tag})")
    ax.plot(held_back["time"], held_back["naive"], color="tab:gray", ls="--", lw=1.2, label="naive")
    ax.plot(held_back["time"], held_back["ar"], color="tab:orange", ls=":", lw=1.6, label="AR")
    ax.axvline(time[split], color="0.5", lw=0.8, ls="-.")
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel)
    ax.set_xlabel("time")
    ax.legend(fontsize=7, ncol=2, loc="upper left")
    ax.grid(alpha=0.3)
    if ax_loss is not None:
        for key, style in (("train", "-"), ("validation", "--")):
            curve = np.asarray(history.get(key, []), dtype=float)
            if curve.size and np.isfinite(curve).any():
                ax_loss.plot(np.arange(1, curve.size + 1), curve, ls=style, marker=".", label=key)
        ax_loss.set_yscale("log")
        ax_loss.set_xlabel("epoch")
        ax_loss.set_title("training loss", fontsize=10)
        ax_loss.legend(fontsize=7)
        ax_loss.grid(alpha=0.3)
    return _save(fig, path)


def plot_classification(path: str, *, title: str, cm, labels, X_test, y_test, y_pred) -> str:
    """Confusion matrix beside a few test series of each class (correct in colour, wrong in black)."""
    fig = _figure(11, 4.5)
    gs = fig.add_gridspec(1, 2, width_ratios=[1, 1.4])
    ax_cm = fig.add_subplot(gs[0, 0])
    cm = np.asarray(cm)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    ax_cm.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax_cm.text(j, i, str(cm[i, j]), ha="center", va="center",
                       color="white" if norm[i, j] > 0.5 else "black", fontsize=9)
    ticks = np.arange(len(labels))
    ax_cm.set_xticks(ticks, [str(lab) for lab in labels])
    ax_cm.set_yticks(ticks, [str(lab) for lab in labels])
    ax_cm.set_xlabel("predicted")
    ax_cm.set_ylabel("true")
    ax_cm.set_title("confusion matrix (test)", fontsize=10)

    ax = fig.add_subplot(gs[0, 1])
    X = np.asarray(X_test)
    X = X[:, 0, :] if X.ndim == 3 else X  # first channel
    colors = [f"C{k}" for k in range(10)]
    for k, lab in enumerate(labels):
        idx = np.flatnonzero(np.asarray(y_test) == lab)[:5]
        for n, i in enumerate(idx):
            ok = y_pred[i] == y_test[i]
            ax.plot(X[i], color=colors[k % 10] if ok else "black", lw=0.8, alpha=0.8,
                    label=f"class {lab}" if n == 0 else None)
    ax.set_xlabel("sample")
    ax.set_title("test examples (black: misclassified)", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def plot_lti(path: str, *, title: str, t, u, y_layer, y_scipy) -> str:
    """Response of the SSM layer on top of scipy.signal's, and their difference."""
    fig = _figure(8, 5)
    ax, ax_err = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    ax.plot(t, u, color="0.6", lw=0.8, label="input u")
    for k in range(y_layer.shape[0]):
        ax.plot(t, y_scipy[k], color="tab:blue", lw=2.5, alpha=0.5,
                label="scipy.signal.dlsim" if k == 0 else None)
        ax.plot(t, y_layer[k], color="tab:red", lw=1.0, ls="--",
                label="sciamba LTISSM layer" if k == 0 else None)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax_err.plot(t, np.abs(y_layer - y_scipy).T, color="k", lw=0.8)
    ax_err.set_ylabel("|difference|")
    ax_err.set_xlabel("time")
    ax_err.grid(alpha=0.3)
    return _save(fig, path)
