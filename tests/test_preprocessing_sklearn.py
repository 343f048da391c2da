"""scikit-learn conformance of every ``sciamba.preprocessing`` transformer.

The instances are configured for scikit-learn's check data, which has series
of 1 to 5 samples (its columns); the defaults (long zero-phase padding, 256-sample
segments) are exercised on real-length series in the other test files.
"""

import numpy as np
import pytest
from sklearn.utils.estimator_checks import (
    check_global_output_transform_pandas,
    check_set_output_transform,
    check_set_output_transform_pandas,
    check_transformer_get_feature_names_out,
    check_transformer_get_feature_names_out_pandas,
    parametrize_with_checks,
)
from scipy import signal

from sciamba import preprocessing as pp

ESTIMATORS = [
    pp.Butterworth(cutoff=0.2, zero_phase=False),
    pp.Butterworth(cutoff=(0.1, 0.3), btype="bandpass", order=2, padlen=0),
    pp.SOSFilter(signal.cheby1(3, 1.0, 0.25, output="sos"), padtype=None),
    pp.Notch(freq=0.2, quality=5.0, zero_phase=False),
    pp.Detrend(),
    pp.Detrend(type="constant"),
    pp.SavgolFilter(window_length=3, polyorder=1, mode="nearest"),
    pp.MedianFilter(kernel_size=3),
    pp.Resample(num=7),
    pp.Resample(up=3, down=2, method="poly"),
    pp.Decimate(q=2, ftype="fir"),
    pp.Standardize(),
    pp.Standardize(per_series=False, center="median", scale="iqr"),
    pp.Periodogram(fs=2.0),
    pp.Welch(nperseg=2),
    pp.Spectrogram(nperseg=2),
    pp.LombScargle(frequencies=np.linspace(0.05, 0.45, 9)),
    pp.Interpolate(step=0.5),
    pp.FillMissing(),
    pp.FillMissing(method="ffill"),
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_every_public_transformer_is_checked():
    checked = {type(e).__name__ for e in ESTIMATORS}
    public = {n for n in pp.__all__ if n[0].isupper()}
    assert checked == public


TWO_D_OUTPUT = [e for e in ESTIMATORS if hasattr(e, "get_feature_names_out")]


@pytest.mark.parametrize("estimator", TWO_D_OUTPUT, ids=lambda e: repr(e)[:40])
@pytest.mark.parametrize(
    "check",
    [
        check_set_output_transform,
        check_set_output_transform_pandas,
        check_global_output_transform_pandas,
        check_transformer_get_feature_names_out,
        check_transformer_get_feature_names_out_pandas,
    ],
    ids=lambda c: c.__name__,
)
def test_set_output_and_feature_names(estimator, check):
    check(type(estimator).__name__, estimator)


def test_no_set_output_for_variable_or_3d_output():
    # Spectrogram output is 3-D and Interpolate's length depends on the batch:
    # neither can promise column names, so neither offers set_output.
    assert not hasattr(pp.Spectrogram(), "set_output")
    assert not hasattr(pp.Interpolate(step=1.0), "set_output")


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: repr(e)[:40])
def test_tags_are_honest(estimator):
    from sklearn.utils import get_tags

    tags = get_tags(estimator)
    assert tags.input_tags.three_d_array
    stateful = isinstance(estimator, pp.Standardize) and not estimator.per_series
    assert tags.requires_fit == stateful
    # NaN is a missing sample: the irregular-time transformers take it, and so
    # does Standardize (left out of its statistics); filters refuse it.
    assert tags.input_tags.allow_nan == isinstance(
        estimator, (pp.LombScargle, pp.Interpolate, pp.FillMissing, pp.Standardize)
    )
