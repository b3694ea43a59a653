"""forward(..., reuse=old_cache) recycles activation memory without changing results."""
import numpy as np
import pytest

from fastlstm import GRU, LSTM


@pytest.mark.parametrize("cls, kw", [(LSTM, {}), (LSTM, {"cell": "peephole", "bidirectional": True}),
                                     (GRU, {"num_layers": 2})])
def test_reuse_gives_bitwise_same_results(cls, kw):
    rng = np.random.default_rng(0)
    layer = cls(3, 17, dtype="float64", random_state=0, n_threads=1, **kw)
    x1, x2 = rng.standard_normal((2, 5, 4, 3))
    lengths = np.array([4, 2, 3, 1, 4])
    y1, *_, c1 = layer.forward(x1, lengths=lengths)
    dy = rng.standard_normal(y1.shape)
    fresh = layer.forward(x2, lengths=lengths)
    g_fresh = layer.backward(fresh[-1], dy)
    reused = layer.forward(x2, lengths=lengths, reuse=c1)
    g_reused = layer.backward(reused[-1], dy)
    # identical arithmetic on recycled memory: exact equality
    np.testing.assert_array_equal(reused[0], fresh[0])
    for k in g_fresh:
        np.testing.assert_array_equal(g_reused[k], g_fresh[k], err_msg=k)
    with pytest.raises(ValueError, match="recycled"):
        layer.backward(c1, dy)


def test_reuse_rejects_foreign_cache_and_tolerates_other_shapes():
    a, b = LSTM(3, 4, n_threads=1), LSTM(3, 4, n_threads=1)
    x = np.ones((2, 3, 3), np.float32)
    _, _, ca = a.forward(x)
    with pytest.raises(ValueError, match="reuse"):
        b.forward(x, reuse=ca)
    # a cache of another shape is simply not recycled
    y, _, c = a.forward(np.ones((4, 2, 3), np.float32), reuse=ca)
    assert y.shape == (4, 2, 4)
    a.backward(c, np.ones_like(y))


def test_partial_fit_recycles_the_last_batch_without_changing_results():
    """partial_fit keeps its spent cache for the next call; the weights after three
    calls equal those of an estimator whose spare cache is dropped each time, the
    spare is not pickled, and it does not outlive a shape or a fit() change."""
    import pickle

    from fastlstm import LSTMRegressor
    rng = np.random.default_rng(1)
    X = rng.standard_normal((3, 8, 6, 2))
    y = rng.standard_normal((3, 8))
    kw = dict(hidden_sizes=(5,), batch_size=8, shuffle=False, random_state=0, n_threads=1,
              dtype="float64")
    kept, dropped = LSTMRegressor(**kw), LSTMRegressor(**kw)
    spares = []
    for Xi, yi in zip(X, y):
        kept.partial_fit(Xi, yi)
        spares.append(kept._spent_cache)
        dropped.partial_fit(Xi, yi)
        dropped.__dict__.pop("_spent_cache")
    assert all(s is not None for s in spares)
    np.testing.assert_array_equal(kept._network.params, dropped._network.params)
    # the second call's forward took over the first call's memory
    assert spares[0]["recurrent"].layers is None
    assert "_spent_cache" not in pickle.loads(pickle.dumps(kept)).__dict__
    kept.partial_fit(X[0][:3, :4], y[0][:3])       # another shape: not recycled, no error
    kept.fit(X[0], y[0])
    assert "_spent_cache" not in kept.__dict__
