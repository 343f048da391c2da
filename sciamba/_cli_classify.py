"""``sciamba classify``: fit a MambaClassifier on labelled series; accuracy, confusion matrix, plot.

Data: the shipped MIT-BIH record-100 heart beats (a stratified random split),
or a UCR archive dataset with its own train/test split (``--ucr PATH``).
Each series is standardized on its own (zero mean, unit variance) before the
classifier, so amplitudes in mV and in arbitrary units train alike. The report
puts the accuracy next to the majority-class accuracy and the balanced
accuracy, because on imbalanced sets (record 100 is 98% normal beats)
accuracy alone flatters any model.
"""

from __future__ import annotations

import argparse
import os
import time as _time
from typing import TextIO

import numpy as np

from ._cli import CLIError, add_common_options, fast_mode
from ._cli_data import CLASSIFY_DATASETS, load_classify_dataset, read_ucr_pair

DEFAULT_DATASET = "mitdb100-beats"
DEFAULT_MAX_EPOCHS = 15
FAST_MAX_EPOCHS = 1
#: Early-stopping patience: on record 100 the validation loss is lowest after a
#: few epochs (measured 2026-11-24: 15 epochs gave accuracy 0.9985, 9 of 10 test
#: A beats found), so waiting 10 flat epochs only costs time.
PATIENCE = 3


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "classify",
        help="fit a Mamba classifier on labelled series; accuracy, confusion matrix, plot",
        description=(
            "Fit a MambaClassifier on a shipped labelled dataset (a stratified train/test split) "
            "or on a UCR dataset (--ucr PATH, its own train/test split), and print the test "
            "accuracy, balanced accuracy and confusion matrix."
        ),
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--dataset", default=None, metavar="NAME",
                     help=f"shipped dataset: {', '.join(CLASSIFY_DATASETS)} (default: {DEFAULT_DATASET})")
    src.add_argument("--ucr", metavar="PATH",
                     help="a UCR dataset: its folder (with NAME_TRAIN/NAME_TEST files) or one of its files")
    p.add_argument("--test-size", type=float, default=0.3,
                   help="fraction held out for testing a shipped dataset (default: 0.3)")
    p.add_argument("--max-epochs", type=int, default=None,
                   help=f"training epochs at most (default: {DEFAULT_MAX_EPOCHS}; "
                        f"{FAST_MAX_EPOCHS} when SCIAMBA_FAST=1)")
    p.add_argument("--d-model", type=int, default=32, help="model width (default: 32)")
    p.add_argument("--n-layers", type=int, default=2, help="Mamba blocks (default: 2)")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda (default: auto)")
    p.add_argument("--plot", default="classify.png", metavar="FILE",
                   help="figure to write (default: classify.png; '' for none)")
    add_common_options(p)


def run(args: argparse.Namespace, out: TextIO) -> int:
    if not 0.0 < args.test_size < 1.0:
        raise CLIError(f"--test-size must be strictly between 0 and 1, got {args.test_size}")
    if args.max_epochs is None:
        args.max_epochs = FAST_MAX_EPOCHS if fast_mode() else DEFAULT_MAX_EPOCHS
    if args.max_epochs < 1:
        raise CLIError(f"--max-epochs must be a positive integer, got {args.max_epochs}")
    if args.plot and not os.path.isdir(os.path.dirname(os.path.abspath(args.plot))):
        raise CLIError(f"cannot write {args.plot}: its directory does not exist")
    if args.ucr is not None:
        data = read_ucr_pair(args.ucr)
    else:
        data = load_classify_dataset(args.dataset or DEFAULT_DATASET, args.seed, args.test_size)

    import torch
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix

    from sciamba import MambaClassifier
    from sciamba.kernels import available_backends

    p = lambda *a: print(*a, file=out, flush=True)  # noqa: E731
    from sciamba.preprocessing import standardize

    # Per series and channel, over observed samples (NaN pads unequal lengths).
    X_tr, X_te = (standardize(X).astype(np.float32) for X in (data.X_train, data.X_test))
    shape = "x".join(str(s) for s in X_tr.shape[1:])
    p(f"sciamba classify: {data.description}")
    p(f"  data      {len(X_tr)} train / {len(X_te)} test series of shape {shape}, "
      f"{np.unique(data.y_train).size} classes")
    for note in data.notes:
        p(f"  note      {note}")
    clf = MambaClassifier(
        d_model=args.d_model,
        n_layers=args.n_layers,
        max_epochs=args.max_epochs,
        n_iter_no_change=PATIENCE,
        device=args.device,
        random_state=args.seed,
        verbose=0 if args.quiet else 1,
    )
    t0 = _time.perf_counter()
    clf.fit(X_tr, data.y_train)
    fit_s = _time.perf_counter() - t0
    y_pred = clf.predict(X_te)
    labels = np.asarray(clf.classes_)
    cm = confusion_matrix(data.y_test, y_pred, labels=labels)
    acc = accuracy_score(data.y_test, y_pred)
    bal = balanced_accuracy_score(data.y_test, y_pred)
    values, counts = np.unique(data.y_train, return_counts=True)
    majority = values[np.argmax(counts)]
    base = float(np.mean(np.asarray(data.y_test) == majority))
    device = str(getattr(clf, "device_", "cpu"))
    p(f"  device    {device}, selective-scan backend {available_backends(device).auto!r}, "
      f"torch {torch.__version__}")
    p(f"  training  {getattr(clf, 'n_epochs_', '?')} epochs in {fit_s:.1f} s")
    p(f"  accuracy  {acc:.4f}  (balanced {bal:.4f}; always predicting {majority!s}: {base:.4f})")
    width = max(6, *(len(str(lab)) + 1 for lab in labels))
    p("  confusion matrix (rows: true, columns: predicted)")
    p("    " + " " * width + "".join(f"{lab!s:>{width}}" for lab in labels))
    for lab, row in zip(labels, cm):
        p("    " + f"{lab!s:>{width}}" + "".join(f"{v:>{width}d}" for v in row))
    if args.plot:
        from ._cli_plot import plot_classification

        plot_classification(
            args.plot, title=f"{data.description}: test accuracy {acc:.3f} (balanced {bal:.3f})",
            cm=cm, labels=labels, X_test=X_te, y_test=np.asarray(data.y_test), y_pred=np.asarray(y_pred),
        )
        p(f"  wrote     {args.plot}")
    return 0
