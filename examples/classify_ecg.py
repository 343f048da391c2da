"""Classify ECG heart beats with a filter -> standardize -> Mamba pipeline.

Two data sets:

1. **MIT-BIH record 100** (ships with sciamba): 2,271 beats, two leads
   (MLII and V5) at 360 Hz, each a 0.7 s window around its R peak, labelled
   normal (``N``) or atrial premature (``A``) by the database's cardiologists.
   The one ventricular beat (``V``) cannot be both trained on and tested, so it
   is left out. Pipeline: Butterworth band-pass 1-40 Hz (removes the baseline
   offset and muscle noise in each window) -> decimation to 120 Hz ->
   per-beat standardization -> :class:`sciamba.MambaClassifier`.
2. **ECG200** from the UCR archive (research use only, so not shipped): give
   its folder as the first argument, or it is looked up in
   ``../shared/data/ucr_ECG200`` beside the repository. The archive does not
   give a sampling rate, so the pipeline is standardization -> classifier.
   Published test accuracies for reference: 1-NN Euclidean 0.880, ROCKET
   0.906, InceptionTime 0.930 (UCR archive results, Dau et al. 2019).

Run ``python examples/classify_ecg.py [PATH_TO_ECG200]``. ``SCIAMBA_FAST=1``
trains on a subset for a couple of epochs (for the test suite). The figure is
written to ``classify_ecg.png`` in the current directory (or
``SCIAMBA_OUTPUT_DIR``).
"""

import os
import sys
import time
from pathlib import Path

import matplotlib

if not os.environ.get("DISPLAY") and not os.environ.get("MPLBACKEND"):
    matplotlib.use("Agg")  # headless: write the file, open no window
import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import ConfusionMatrixDisplay, accuracy_score, balanced_accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline

from sciamba import MambaClassifier
from sciamba.datasets import load_mitdb_record100, read_ucr
from sciamba.preprocessing import Butterworth, Decimate, Standardize

FAST = os.environ.get("SCIAMBA_FAST", "0") not in ("", "0")
OUT = os.environ.get("SCIAMBA_OUTPUT_DIR", ".")
REPO = Path(__file__).resolve().parent.parent


def classifier(max_epochs: int) -> MambaClassifier:
    return MambaClassifier(
        d_model=16 if FAST else 32,
        n_layers=1 if FAST else 2,
        max_epochs=1 if FAST else max_epochs,
        learning_rate=3e-3,
        random_state=0,
        verbose=0 if FAST else 1,
    )


def evaluate(name, pipe, X_tr, y_tr, X_te, y_te):
    t0 = time.perf_counter()
    pipe.fit(X_tr, y_tr)
    y_pred = pipe.predict(X_te)
    acc, bal = accuracy_score(y_te, y_pred), balanced_accuracy_score(y_te, y_pred)
    print(f"{name}: {len(X_tr)} train / {len(X_te)} test, fitted in {time.perf_counter() - t0:.1f} s; "
          f"test accuracy {acc:.3f}, balanced accuracy {bal:.3f}")
    return y_pred, acc, bal


def find_ecg200() -> Path | None:
    candidates = [Path(sys.argv[1])] if len(sys.argv) > 1 else []
    candidates.append(REPO.parent / "shared" / "data" / "ucr_ECG200")
    for path in candidates:
        if path.exists():
            return path
    return None


# ---------------------------------------------------------------- 1. record 100 beats
beats = load_mitdb_record100(beats=True)  # xarray Dataset: beats (beat, lead, offset), label
X, y = beats["beats"].values, beats["label"].values  # (2271, 2, 252) in mV; N/A/V
keep = y != "V"
X, y = X[keep], y[keep]
X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
if FAST:  # a stratified subset keeps the run short
    X_tr, _, y_tr, _ = train_test_split(X_tr, y_tr, train_size=80, stratify=y_tr, random_state=0)
    X_te, _, y_te, _ = train_test_split(X_te, y_te, train_size=60, stratify=y_te, random_state=0)
beats_pipe = make_pipeline(
    Butterworth((1.0, 40.0), btype="bandpass", fs=360.0),
    Decimate(3),  # 360 -> 120 Hz (anti-aliased): a third of the steps to train on
    Standardize(),  # per beat and lead: zero mean, unit variance
    classifier(max_epochs=15),
)
beats_pred, beats_acc, beats_bal = evaluate("MIT-BIH record 100 beats", beats_pipe, X_tr, y_tr, X_te, y_te)
print(f"  (always answering 'N' would score {np.mean(y_te == 'N'):.3f} accuracy, 0.5 balanced)")

# ---------------------------------------------------------------- 2. ECG200 (UCR)
ecg200 = find_ecg200()
if ecg200 is None:
    print("ECG200 not found: pass its UCR folder as the first argument to include it")
else:
    E_tr, e_tr = read_ucr(ecg200, split="train")  # (100, 1, 96)
    E_te, e_te = read_ucr(ecg200, split="test")
    if FAST:
        E_tr, e_tr = E_tr[:50], e_tr[:50]
    ecg_pipe = make_pipeline(Standardize(), classifier(max_epochs=60))
    ecg_pred, ecg_acc, _ = evaluate("UCR ECG200", ecg_pipe, E_tr, e_tr, E_te, e_te)
    print("  published: 1-NN Euclidean 0.880, ROCKET 0.906, InceptionTime 0.930")

# ---------------------------------------------------------------- figure
n_panels = 3 if ecg200 is not None else 2
fig, axes = plt.subplots(1, n_panels, figsize=(4.6 * n_panels, 4.2), layout="constrained")
t_ms = 1000 * beats["offset"].values  # seconds from the R peak -> ms
for label, color in (("N", "tab:blue"), ("A", "tab:red")):
    sel = X_te[y_te == label][:20, 0]
    axes[0].plot(t_ms, sel.T, color=color, lw=0.6, alpha=0.5)
    axes[0].plot([], [], color=color, label=f"{label} (test beats, lead MLII)")
axes[0].set_xlabel("time from R peak [ms]")
axes[0].set_ylabel("mV")
axes[0].legend(fontsize=8)
axes[0].set_title("record 100: normal vs atrial premature beats", fontsize=10)
ConfusionMatrixDisplay.from_predictions(y_te, beats_pred, ax=axes[1], colorbar=False)
axes[1].set_title(f"record 100: accuracy {beats_acc:.3f}, balanced {beats_bal:.3f}", fontsize=10)
if ecg200 is not None:
    ConfusionMatrixDisplay.from_predictions(e_te, ecg_pred, ax=axes[2], colorbar=False)
    axes[2].set_title(f"ECG200: accuracy {ecg_acc:.3f} (1-NN 0.880, ROCKET 0.906)", fontsize=10)
path = os.path.join(OUT, "classify_ecg.png")
fig.savefig(path, dpi=120)
print(f"wrote {path}")
