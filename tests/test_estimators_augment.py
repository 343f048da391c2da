"""Training-time augmentation and the regularized loss of MambaClassifier."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sciamba.estimators import MambaClassifier
from sciamba.estimators._augment import JITTER_SD, SCALE_SD, mixup_batch, scale_and_jitter

TINY = dict(d_model=8, n_layers=1, d_state=4, expand=1, max_epochs=2, device="cpu", random_state=0)


def _batch(rng, B=5, L=13, C=3):
    x = rng.standard_normal((B, L, C)).astype(np.float32)
    observed = rng.random((B, L)) < 0.7
    observed[:, -1] = True
    x[~observed] = 0.0
    return x, observed


def test_scale_and_jitter_matches_a_plain_loop(rng):
    x, observed = _batch(rng)
    seed = int(rng.integers(2**31))
    got = scale_and_jitter(x, observed, np.random.default_rng(seed), 0.2, 0.05)
    # Same draws, in the documented order: one factor per series, then the noise.
    ref_rng = np.random.default_rng(seed)
    eta = ref_rng.standard_normal((x.shape[0], 1, 1))
    eps = ref_rng.standard_normal(x.shape)
    want = np.zeros(x.shape)
    for b in range(x.shape[0]):
        for t in range(x.shape[1]):
            if observed[b, t]:
                for c in range(x.shape[2]):
                    want[b, t, c] = (1 + 0.2 * eta[b, 0, 0]) * float(x[b, t, c]) + 0.05 * eps[b, t, c]
    assert got.dtype == np.float32 and got.shape == x.shape
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    assert np.all(got[~observed] == 0)


def test_scale_and_jitter_default_spread(rng):
    # Large batch: the factors' and the noise's standard deviations are the documented ones.
    B, L = 4000, 50
    ones = np.ones((B, L, 1), dtype=np.float64)
    zeros = np.zeros((B, L, 1))
    observed = np.ones((B, L), dtype=bool)
    seed = int(rng.integers(2**31))
    noise = scale_and_jitter(zeros, observed, np.random.default_rng(seed))
    assert np.std(noise) == pytest.approx(JITTER_SD, rel=0.02)
    scaled = scale_and_jitter(ones, observed, np.random.default_rng(seed)) - noise
    assert np.allclose(scaled, scaled[:, :1])  # one factor per series
    assert np.std(scaled[:, 0, 0]) == pytest.approx(SCALE_SD, rel=0.1)
    assert np.mean(scaled[:, 0, 0]) == pytest.approx(1.0, abs=0.01)


def test_mixup_batch_pairs_series_with_one_weight(rng):
    x, _ = _batch(rng, B=7)
    mixed, perm, lam = mixup_batch(x, 0.4, np.random.default_rng(int(rng.integers(2**31))))
    assert 0.0 <= lam <= 1.0
    assert sorted(perm.tolist()) == list(range(7))
    for b in range(7):
        np.testing.assert_allclose(mixed[b], lam * x[b] + (1 - lam) * x[perm[b]], rtol=1e-6, atol=1e-7)
    assert mixed.dtype == x.dtype
    # Beta(alpha, alpha) weights: mean 1/2, variance 1 / (4 (2 alpha + 1)).
    g = np.random.default_rng(int(rng.integers(2**31)))
    lams = np.array([mixup_batch(x[:2], 0.4, g)[2] for _ in range(4000)])
    assert lams.mean() == pytest.approx(0.5, abs=0.02)
    assert lams.var() == pytest.approx(1 / (4 * 1.8), rel=0.1)
    with pytest.raises(ValueError, match="alpha > 0"):
        mixup_batch(x, 0.0, g)


def _fitted(rng, **params):
    return MambaClassifier(**{**TINY, **params}).fit(*_three_class(rng))


def test_training_batch_is_augmented_and_evaluation_batch_is_not(rng):
    from sciamba.estimators._data import as_panel

    clf = _fitted(rng)
    X = rng.standard_normal((9, 16))
    panel, _ = as_panel(clf, X, reset=False)
    data = clf._model_inputs(panel)
    data["y"] = np.arange(9) % 3
    samples = np.array([4, 0, 7, 2])
    plain = clf._make_batch(data, samples)
    seed = int(rng.integers(2**31))
    batch = clf._training_batch(data, samples, np.random.default_rng(seed))
    # The documented pipeline, replayed from the same generator.
    g = np.random.default_rng(seed)
    x = scale_and_jitter(plain["x"], plain["gaps"] > 0, g)
    x, perm, lam = mixup_batch(x, clf.mixup, g)
    np.testing.assert_array_equal(batch["x"], x)
    np.testing.assert_array_equal(batch["y_mix"], plain["y"][perm])
    np.testing.assert_array_equal(batch["lam"], np.full(4, lam, dtype=np.float32))
    np.testing.assert_array_equal(batch["gaps"], plain["gaps"])
    # Everything off: the training batch is the plain one and draws nothing.
    off = MambaClassifier(augment=False, mixup=0.0)
    g = np.random.default_rng(seed)
    state = g.bit_generator.state
    same = off._training_batch(data, samples, g)
    assert g.bit_generator.state == state
    assert same.keys() == plain.keys()
    for k in plain:
        np.testing.assert_array_equal(same[k], plain[k])


def test_batch_loss_is_smoothed_mixed_cross_entropy_in_training_only(rng):
    # No dropout and no batch norm (the inception stem's): train == eval forward.
    clf = _fitted(rng, label_smoothing=0.2, head_dropout=0.0, stem="multiscale")
    model = clf.model_.double()
    B, K, eps = 6, 3, 0.2
    batch = {
        "x": torch.as_tensor(rng.standard_normal((B, 16, 1))),
        "gaps": torch.ones(B, 16, dtype=torch.float64),
        "y": torch.as_tensor(rng.integers(0, K, B)),
        "y_mix": torch.as_tensor(rng.integers(0, K, B)),
        "lam": torch.full((B,), 0.3, dtype=torch.float64),
    }
    model.train()
    got, count = clf._batch_loss(model, batch)
    model.eval()
    logp = torch.log_softmax(model(batch["x"], batch["gaps"]).double(), dim=-1).detach().numpy()
    y, y2 = batch["y"].numpy(), batch["y_mix"].numpy()

    def smoothed(target):
        # Target distribution (1 - eps) one-hot + eps / K everywhere.
        q = np.full((B, K), eps / K)
        q[np.arange(B), target] += 1 - eps
        return -(q * logp).sum(axis=1)

    want = (0.3 * smoothed(y) + 0.7 * smoothed(y2)).sum()
    assert count == B
    # _batch_loss takes the logits to float32 (as under autocast).
    assert float(got.detach()) == pytest.approx(want, rel=1e-6)
    # Evaluation (the validation loss of early stopping): plain cross-entropy.
    plain = {k: batch[k] for k in ("x", "gaps", "y")}
    got_eval, _ = clf._batch_loss(model, plain)
    assert float(got_eval.detach()) == pytest.approx(-logp[np.arange(B), y].sum(), rel=1e-6)


def _three_class(rng):
    t = np.linspace(0, 1, 16)
    X = np.concatenate([np.sin(8 * t) + 0.3 * rng.standard_normal((6, 16)),
                        np.cos(8 * t) + 0.3 * rng.standard_normal((6, 16)),
                        t + 0.3 * rng.standard_normal((6, 16))])
    return X, np.repeat(np.array(["sin", "cos", "lin"]), 6)


def test_regularization_defaults_change_training_and_are_validated(rng):
    X, y = _three_class(rng)
    a = MambaClassifier(**TINY).fit(X, y)
    assert (a.augment, a.mixup, a.label_smoothing) == (True, 0.4, 0.1)
    # Each switch on its own changes the trained network (same seed otherwise).
    p = a.predict_proba(X)
    for off in [dict(augment=False), dict(mixup=0.0), dict(label_smoothing=0.0)]:
        b = MambaClassifier(**{**TINY, **off}).fit(X, y)
        assert not np.array_equal(b.predict_proba(X), p), off
    for params in [dict(mixup=-0.1), dict(label_smoothing=1.0), dict(label_smoothing=-0.1),
                   dict(augment="yes")]:
        with pytest.raises(ValueError, match=next(iter(params))):
            MambaClassifier(**{**TINY, **params}).fit(X, y)
