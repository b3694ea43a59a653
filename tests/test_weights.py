"""sample_weight and class_weight: the loss is the weighted mean a numpy
reference computes; a sample of weight k trains like k copies of it; weight 0
like leaving it out; class_weight="balanced" lifts balanced accuracy on an
imbalanced problem."""
import numpy as np
import pytest

import fastlstm
from fastlstm.network import loss_and_grad

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("loss", ["mse", "mae", "huber", "binary_log_loss", "log_loss"])
@pytest.mark.parametrize("sequence", [False, True])
def test_weighted_loss_and_gradient_match_numpy(loss, sequence):
    B, T, K = 5, 4, 3
    shape = (B, T, K) if sequence else (B, K)
    out = RNG.standard_normal(shape)
    if loss == "log_loss":
        target = RNG.integers(0, K, shape[:-1])
    elif loss == "binary_log_loss":
        target = RNG.integers(0, 2, shape).astype(float)
    else:
        target = RNG.standard_normal(shape)
    mask = (np.arange(T)[None] < np.array([4, 1, 3, 2, 4])[:, None]) if sequence else None
    w = RNG.uniform(0, 2, B)
    got, grad = loss_and_grad(loss, out, target, mask, w)

    def elementwise(o):       # per row (sample, step): the loss before the mean
        if loss == "log_loss":
            lse = np.log(np.exp(o).sum(-1))
            return lse - np.take_along_axis(o, target[..., None], -1)[..., 0]
        d = o - target
        el = {"mse": d * d, "mae": np.abs(d),
              "huber": np.where(np.abs(d) <= 1, 0.5 * d * d, np.abs(d) - 0.5),
              "binary_log_loss": np.logaddexp(0, o) - o * target}[loss]
        return el.mean(-1)

    rw = w[:, None] * mask if sequence else w
    want = (rw * elementwise(out)).sum() / rw.sum()
    assert got == pytest.approx(want, rel=1e-12)
    # gradient by central differences of the numpy reference
    eps, num = 1e-6, np.zeros_like(out)
    for i in np.ndindex(out.shape):
        o1, o2 = out.copy(), out.copy()
        o1[i] += eps
        o2[i] -= eps
        num[i] = ((rw * elementwise(o1)).sum() - (rw * elementwise(o2)).sum()) / rw.sum() / (2 * eps)
    np.testing.assert_allclose(grad, num, rtol=1e-6, atol=1e-8)


def _data(n=12):
    X = RNG.standard_normal((n, 5, 2))
    return X, X[:, :, 0].sum(axis=1) + 0.5 * X[:, -1, 1]


FULL_BATCH = dict(hidden_sizes=(4,), epochs=5, batch_size=1000, shuffle=False, dtype="float64",
                  learning_rate=0.01, random_state=3, n_threads=1)


def test_integer_weights_train_like_copies_of_the_samples():
    X, y = _data()
    w = np.array([1, 2, 3, 1, 1, 2, 1, 1, 3, 1, 2, 1])
    weighted = fastlstm.LSTMRegressor(**FULL_BATCH).fit(X, y, sample_weight=w)
    copies = fastlstm.LSTMRegressor(**FULL_BATCH).fit(np.repeat(X, w, 0), np.repeat(y, w))
    np.testing.assert_allclose(weighted._network.params, copies._network.params,
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(weighted.loss_curve_, copies.loss_curve_, rtol=1e-10)


def test_zero_weight_is_leaving_the_sample_out_and_ones_change_nothing():
    X, y = _data()
    w = np.ones(12)
    w[[2, 7]] = 0
    keep = w > 0
    zero = fastlstm.LSTMRegressor(**FULL_BATCH).fit(X, y, sample_weight=w)
    left_out = fastlstm.LSTMRegressor(**FULL_BATCH).fit(X[keep], y[keep])
    np.testing.assert_allclose(zero._network.params, left_out._network.params,
                               rtol=1e-10, atol=1e-12)
    ones = fastlstm.LSTMRegressor(**FULL_BATCH).fit(X, y, sample_weight=np.ones(12))
    plain = fastlstm.LSTMRegressor(**FULL_BATCH).fit(X, y)
    np.testing.assert_array_equal(ones._network.params, plain._network.params)
    changed = fastlstm.LSTMRegressor(**FULL_BATCH).fit(X, y, sample_weight=np.arange(1, 13))
    assert not np.allclose(changed._network.params, plain._network.params)


def test_partial_fit_takes_weights():
    X, y = _data()
    a = fastlstm.LSTMRegressor(**FULL_BATCH).partial_fit(X, y, sample_weight=np.full(12, 2.0))
    b = fastlstm.LSTMRegressor(**FULL_BATCH).partial_fit(X, y)
    # scaling every weight by 2 leaves a weighted mean unchanged
    np.testing.assert_allclose(a._network.params, b._network.params, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("bad", [np.ones(3), -np.ones(12), np.zeros(12),
                                 np.full(12, np.nan), ["a"] * 12])
def test_bad_sample_weight_is_refused(bad):
    X, y = _data()
    with pytest.raises((ValueError, TypeError), match="sample_weight"):
        fastlstm.LSTMRegressor(**FULL_BATCH).fit(X, y, sample_weight=bad)


def _imbalanced(n=200):
    X = RNG.standard_normal((n, 5, 2)).astype(np.float32)
    return X, (X[:, :, 0].sum(1) > 1.8).astype(int)


def test_balanced_class_weight_lifts_balanced_accuracy():
    X, y = _imbalanced()
    assert 0.15 < y.mean() < 0.3
    kw = dict(hidden_sizes=(8,), epochs=30, random_state=0, n_threads=1)

    def balanced_accuracy(est):
        pred = est.predict(X)
        return np.mean([np.mean(pred[y == c] == c) for c in (0, 1)])
    plain = balanced_accuracy(fastlstm.LSTMClassifier(**kw).fit(X, y))
    balanced = balanced_accuracy(fastlstm.LSTMClassifier(class_weight="balanced", **kw).fit(X, y))
    assert balanced > plain + 0.1, (plain, balanced)


def test_class_weight_dict_is_per_sample_weights(tmp_path):
    X, y = _imbalanced(60)
    labels = np.where(y == 1, "rare", "common")
    kw = dict(hidden_sizes=(4,), epochs=2, random_state=0, n_threads=1)
    by_class = fastlstm.LSTMClassifier(class_weight={"rare": 3.0}, **kw).fit(X, labels)
    by_sample = fastlstm.LSTMClassifier(**kw).fit(X, labels,
                                                  sample_weight=np.where(y == 1, 3.0, 1.0))
    np.testing.assert_array_equal(by_class._network.params, by_sample._network.params)
    loaded = fastlstm.load(by_class.save(tmp_path / "cw.npz"))
    assert loaded.class_weight == {"rare": 3.0}
    np.testing.assert_array_equal(loaded.predict_proba(X), by_class.predict_proba(X))
    ints = fastlstm.LSTMClassifier(class_weight={1: 2.0}, **kw).fit(X, y)
    assert fastlstm.load(ints.save(tmp_path / "cw_int.npz")).class_weight == {1: 2.0}


def test_class_weight_errors():
    X, y = _imbalanced(40)
    kw = dict(hidden_sizes=(4,), epochs=1, random_state=0, n_threads=1)
    with pytest.raises(ValueError, match="not one of the classes"):
        fastlstm.LSTMClassifier(class_weight={7: 2.0}, **kw).fit(X, y)
    with pytest.raises(ValueError, match="balanced"):
        fastlstm.LSTMClassifier(class_weight="balanced", **kw).partial_fit(X, y, classes=[0, 1])
    with pytest.raises(TypeError, match="class_weight"):
        fastlstm.LSTMClassifier(class_weight=[1, 2], **kw).fit(X, y)


def test_ragged_sequence_predictions_come_with_their_lengths():
    seqs = [RNG.standard_normal((n, 2)) for n in (5, 2, 4)]
    ys = [np.cumsum(s[:, :1], axis=0) for s in seqs]
    est = fastlstm.LSTMRegressor(hidden_sizes=(4,), epochs=2, random_state=0,
                                 n_threads=1).fit(seqs, ys)
    pred, lengths = est.predict(seqs, return_lengths=True)
    assert pred.shape == (3, 5, 1) and lengths.tolist() == [5, 2, 4]
    for i, s in enumerate(seqs):
        np.testing.assert_allclose(pred[i, :lengths[i]], est.predict([s])[0], rtol=1e-6,
                                   atol=1e-7)
        assert not pred[i, lengths[i]:].any()
    full = np.stack([s[:2] for s in seqs])
    assert est.predict(full, return_lengths=True)[1].tolist() == [2, 2, 2]
