"""MambaClassifier(n_estimators=...): the soft-voting ensemble and its module."""

import copy
import io
import pickle

import joblib
import numpy as np
import pytest
import torch
from scipy.special import softmax
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from sciamba.estimators import MambaClassifier
from sciamba.estimators._network import ProbabilityAverage, SeriesNetwork, network_from_config

TINY = dict(d_model=8, n_layers=1, d_state=4, expand=1, max_epochs=2, device="cpu", random_state=0)


def _two_class(rng, n=16, T=18):
    t = np.linspace(0, 1, T)
    X = np.concatenate([np.sin(8 * t) + 0.3 * rng.standard_normal((n // 2, T)),
                        np.cos(8 * t) + 0.3 * rng.standard_normal((n // 2, T))])
    return X, np.repeat(np.array(["sin", "cos"]), n // 2)


class _FixedLogits(torch.nn.Module):
    """A stand-in member that returns given logits whatever its input."""

    def __init__(self, logits):
        super().__init__()
        self.register_buffer("logits", logits)

    def forward(self, x, gaps):
        return self.logits


# ----------------------------------------------------------------------------- the module
def test_probability_average_is_log_mean_probability(rng):
    M, B, K = 3, 5, 4
    # Logits far apart test the log-sum-exp path (a naive exp would overflow).
    logits = rng.standard_normal((M, B, K)) * np.array([1.0, 30.0, 400.0])[:, None, None]
    ens = ProbabilityAverage([_FixedLogits(torch.from_numpy(z)) for z in logits])
    out = ens(torch.zeros(B, 7, 1, dtype=torch.float64), torch.ones(B, 7, dtype=torch.float64))
    want = softmax(logits, axis=-1).mean(axis=0)  # (B K), an independent reference
    np.testing.assert_allclose(np.exp(out.numpy()), want, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(softmax(out.numpy(), axis=-1), want, rtol=1e-12, atol=1e-300)
    # One member: the output is that member's log-softmax.
    one = ProbabilityAverage([_FixedLogits(torch.from_numpy(logits[0]))])
    np.testing.assert_allclose(one(None, None).numpy(), np.log(softmax(logits[0], axis=-1)),
                               rtol=1e-12)


def test_probability_average_needs_members():
    with pytest.raises(ValueError, match="at least one member"):
        ProbabilityAverage([])


def test_network_from_config_builds_an_ensemble():
    cfg = dict(n_channels=1, n_outputs=3, backbone="lstm", d_model=4, n_layers=1, pooled=True)
    assert isinstance(network_from_config(cfg), SeriesNetwork)
    ens = network_from_config({**cfg, "n_members": 3})
    assert isinstance(ens, ProbabilityAverage) and len(ens.members) == 3
    assert all(isinstance(m, SeriesNetwork) for m in ens.members)


# ----------------------------------------------------------------------------- the estimator
def test_predict_proba_is_the_mean_of_the_members(rng):
    X, y = _two_class(rng)
    clf = MambaClassifier(**TINY, n_estimators=3).fit(X, y)
    assert isinstance(clf.model_, ProbabilityAverage) and len(clf.model_.members) == 3
    # Each member run by hand on the standardized series (gap-free: every gap
    # 1), rounded to float32 as the estimator stores its inputs.
    x = ((X[:, None, :] - clf._x_mean) / clf._x_scale).astype(np.float32).astype(np.float64)  # (n 1 T)
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 2, 1)))  # (n T 1) float64
    gaps = torch.ones(X.shape, dtype=torch.float64)  # (n T)
    probs = []
    for member in clf.model_.members:
        with torch.no_grad():
            logits = copy.deepcopy(member).double().eval()(xt, gaps).numpy()  # (n K)
        probs.append(softmax(logits, axis=-1))
    mean = np.mean(probs, axis=0)  # (n K)
    np.testing.assert_allclose(clf.predict_proba(X), mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[np.argmax(mean, axis=1)])
    # Members are separate fits: their outputs differ.
    assert not np.allclose(probs[0], probs[1])


def test_member_zero_is_the_single_network_and_fits_are_reproducible(rng, best_epoch):
    X, y = _two_class(rng)
    kw = {**TINY, "early_stopping": True, "validation_fraction": 0.25}
    torch_state = torch.get_rng_state()
    ens = MambaClassifier(**kw, n_estimators=2).fit(X, y)
    again = MambaClassifier(**kw, n_estimators=2).fit(X, y)
    single = MambaClassifier(**kw).fit(X, y)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(ens.predict_proba(X), again.predict_proba(X))
    w_ens, w_single = ens.model_.members[0].state_dict(), single.model_.state_dict()
    assert all(torch.equal(w_ens[k], w_single[k]) for k in w_single)
    # Early stopping per member: each has its own history and best epoch.
    assert isinstance(ens.history_, list) and len(ens.history_) == 2
    assert ens.n_epochs_.shape == ens.best_epoch_.shape == (2,)
    for h, n, b in zip(ens.history_, ens.n_epochs_, ens.best_epoch_):
        assert len(h["val_loss"]) == n and b == best_epoch(h["val_loss"])
    assert ens.history_[0] == single.history_
    assert ens.history_[0]["val_loss"] != ens.history_[1]["val_loss"]


def test_ensemble_pickle_joblib_and_clone(rng):
    X, y = _two_class(rng)
    clf = MambaClassifier(**TINY, n_estimators=2).fit(X, y)
    before = clf.predict_proba(X)
    restored = pickle.loads(pickle.dumps(clf))
    assert isinstance(restored.model_, ProbabilityAverage)
    assert np.array_equal(restored.predict_proba(X), before)
    buf = io.BytesIO()
    joblib.dump(clf, buf)
    buf.seek(0)
    assert np.array_equal(joblib.load(buf).predict_proba(X), before)
    twin = clone(clf)
    assert twin.get_params()["n_estimators"] == 2 and not hasattr(twin, "model_")
    gs = GridSearchCV(MambaClassifier(**TINY), {"n_estimators": [1, 2]}, cv=2).fit(X, y)
    assert gs.best_params_["n_estimators"] in (1, 2) and np.isfinite(gs.best_score_)
    assert len(getattr(gs.best_estimator_.model_, "members", [None])) == gs.best_params_["n_estimators"]


def test_ensemble_warm_start_continues_each_member(rng, capsys):
    X, y = _two_class(rng)
    clf = MambaClassifier(**{**TINY, "warm_start": True, "verbose": 2}, n_estimators=2).fit(X, y)
    err = capsys.readouterr().err
    assert "MambaClassifier 1/2" in err and "MambaClassifier 2/2" in err and "train_loss" in err
    w0 = [{k: v.clone() for k, v in m.state_dict().items()} for m in clf.model_.members]
    clf.fit(X, y)
    np.testing.assert_array_equal(clf.n_epochs_, [4, 4])
    assert all(len(h["train_loss"]) == 4 for h in clf.history_)
    for w, m in zip(w0, clf.model_.members):
        assert any(not torch.equal(w[k], v) for k, v in m.state_dict().items())
    # A different ensemble size starts afresh.
    clf.set_params(n_estimators=3, verbose=0).fit(X, y)
    np.testing.assert_array_equal(clf.n_epochs_, [2, 2, 2])


@pytest.mark.parametrize("bad", [0, -1, 1.5, "3"])
def test_n_estimators_must_be_a_positive_int(rng, bad):
    X, y = _two_class(rng)
    with pytest.raises(ValueError, match="n_estimators"):
        MambaClassifier(**TINY, n_estimators=bad).fit(X, y)
