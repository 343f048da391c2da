"""MambaClassifier's convolutional input stem and pooled-feature dropout."""

import pickle

import numpy as np
import pytest
import torch
from scipy.special import erf

from sciamba.estimators import MambaClassifier
from sciamba.estimators._network import ConvStem, SeriesNetwork

TINY = dict(d_model=8, n_layers=1, d_state=4, expand=1, max_epochs=2, device="cpu", random_state=0)


def _stem_reference(x, stem):
    """Plain-loop float64 ConvStem: linear, centred correlations + GELU, then the mix."""
    B, L, C = x.shape
    W, b = stem.linear.weight.detach().double().numpy(), stem.linear.bias.detach().double().numpy()
    parts = [x @ W.T + b]  # (B L D)
    for conv in stem.convs:
        K = conv.weight.detach().double().numpy()  # (D C k)
        kb = conv.bias.detach().double().numpy()  # (D)
        D, _, k = K.shape
        left = (k - 1) // 2  # "same" padding: the extra zero of an even kernel goes right
        y = np.zeros((B, L, D))
        for bb in range(B):
            for t in range(L):
                for j in range(k):
                    s = t - left + j
                    if 0 <= s < L:
                        y[bb, t] += K[:, :, j] @ x[bb, s]
        y += kb
        parts.append(0.5 * y * (1.0 + erf(y / np.sqrt(2.0))))  # exact GELU
    Wm, bm = stem.mix.weight.detach().double().numpy(), stem.mix.bias.detach().double().numpy()
    return np.concatenate(parts, axis=-1) @ Wm.T + bm


@pytest.mark.parametrize("kernels", [(3, 9), (1, 4, 7)])
def test_conv_stem_matches_a_plain_loop(rng, kernels):
    B, L, C, D = 3, int(rng.integers(11, 30)), 2, 5
    torch.manual_seed(int(rng.integers(2**31)))
    stem = ConvStem(C, D, kernels).double()
    x = rng.standard_normal((B, L, C))
    got = stem(torch.from_numpy(x)).detach().numpy()
    assert got.shape == (B, L, D)
    np.testing.assert_allclose(got, _stem_reference(x, stem), rtol=1e-10, atol=1e-10)


def test_conv_stem_gradients():
    torch.manual_seed(0)
    stem = ConvStem(2, 3, (3, 4)).double()
    x = torch.randn(2, 9, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(stem, (x,))


def test_head_dropout_acts_in_training_only(rng):
    kw = dict(backbone="mamba", d_model=6, n_layers=1, pooled=True, d_state=4, expand=1,
              bidirectional=True, causal=False)
    torch.manual_seed(int(rng.integers(2**31)))
    net = SeriesNetwork(1, 3, stem=(3,), head_dropout=0.5, **kw).double()
    plain = SeriesNetwork(1, 3, stem=(3,), **kw).double()
    plain.load_state_dict(net.state_dict())
    x = torch.from_numpy(rng.standard_normal((4, 17, 1)))
    gaps = torch.ones(4, 17, dtype=torch.float64)
    net.eval(), plain.eval()
    torch.testing.assert_close(net(x, gaps), plain(x, gaps), rtol=0, atol=0)
    # In training mode, the pooled features are dropped at rate 0.5: outputs differ.
    net.train()
    assert not torch.allclose(net(x, gaps), plain(x, gaps))


def test_stem_refuses_per_step_networks():
    with pytest.raises(ValueError, match="pooled"):
        SeriesNetwork(1, 1, backbone="mamba", d_model=4, n_layers=1, pooled=False, stem=(3,))


def _data(rng, n=24, L=20):
    t = np.linspace(0, 1, L)
    X = np.concatenate([np.sin(6 * t) + 0.3 * rng.standard_normal((n // 2, L)),
                        np.cos(6 * t) + 0.3 * rng.standard_normal((n // 2, L))])
    return X, np.repeat([0, 1], n // 2)


def test_classifier_embeddings_and_pickle(rng):
    X, y = _data(rng)
    clf = MambaClassifier(**TINY).fit(X, y)  # the defaults: stem (3, 9, 19), no head dropout
    assert isinstance(clf.model_.embed, ConvStem) and clf.model_.embed.kernels == (3, 9, 19)
    assert clf.model_.head_dropout is None
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))
    lin = MambaClassifier(**TINY, stem_kernels=None, head_dropout=0.25).fit(X, y)
    assert isinstance(lin.model_.embed, torch.nn.Linear) and lin.model_.head_dropout.p == 0.25
    again = pickle.loads(pickle.dumps(lin))
    np.testing.assert_array_equal(again.predict_proba(X), lin.predict_proba(X))


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(stem_kernels=(3, 0)), "positive integer"),
        (dict(stem_kernels=(3, 2.5)), "positive integer"),
        (dict(stem_kernels="3,9"), "stem_kernels"),
        (dict(head_dropout=1.0), "head_dropout"),
        (dict(head_dropout=-0.1), "head_dropout"),
    ],
)
def test_bad_stem_and_dropout_values(rng, params, match):
    X, y = _data(rng, n=8, L=10)
    with pytest.raises(ValueError, match=match):
        MambaClassifier(**TINY, **params).fit(X, y)
