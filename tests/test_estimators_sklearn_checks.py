"""scikit-learn's own conformance suite over the three estimators.

Small networks and few epochs keep it fast; the checks exercise the API
(validation, cloning, pickling, determinism, n_features_in_, ...), and the
accuracy checks (``check_classifiers_train``, ``check_regressors_train``) pass
with these settings too, so no ``poor_score`` tag is claimed.
"""

import warnings

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from sciamba.estimators import MambaClassifier, MambaForecaster, MambaRegressor

SMALL = dict(
    d_model=8, n_layers=1, d_state=4, expand=1, max_epochs=4, learning_rate=2e-2,
    batch_size=16, early_stopping=False, device="cpu", random_state=0,
)


def _expected_failed_checks(estimator):
    # None: every applicable check passes.
    return {}


@parametrize_with_checks(
    [MambaClassifier(**SMALL), MambaRegressor(**SMALL), MambaForecaster(**SMALL)],
    expected_failed_checks=_expected_failed_checks,
)
def test_sklearn_compatible_estimator(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        check(estimator)
