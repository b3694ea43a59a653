"""SequenceScaler: per-feature standardisation over every real time step, on 3-D
arrays and on lists of variable-length sequences, in a scikit-learn Pipeline."""
import numpy as np
import pytest

import fastlstm
from fastlstm.preprocessing import SequenceScaler

RNG = np.random.default_rng(0)


def test_3d_arrays_match_numpy_and_invert():
    X = RNG.normal([1.0, -5.0, 100.0], [2.0, 0.5, 30.0], size=(8, 7, 3))
    s = SequenceScaler().fit(X)
    flat = X.reshape(-1, 3)
    np.testing.assert_allclose(s.mean_, flat.mean(0), rtol=1e-12)
    np.testing.assert_allclose(s.scale_, flat.std(0), rtol=1e-12)
    Z = s.transform(X)
    assert Z.shape == X.shape
    np.testing.assert_allclose(Z.reshape(-1, 3).mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(Z.reshape(-1, 3).std(0), 1, rtol=1e-12)
    np.testing.assert_allclose(s.inverse_transform(Z), X, rtol=1e-12)
    # 2-D input: univariate sequences
    s2 = SequenceScaler().fit(X[:, :, 0])
    np.testing.assert_allclose(s2.transform(X[:, :, 0]), Z[:, :, 0], rtol=1e-12)


def test_ragged_lists_count_only_real_steps():
    seqs = [RNG.normal(size=(n, 2)) + [3, -1] for n in (3, 9, 1, 5)]
    s = SequenceScaler().fit(seqs)
    rows = np.concatenate(seqs)
    np.testing.assert_allclose(s.mean_, rows.mean(0), rtol=1e-12)
    out = s.transform(seqs)
    assert isinstance(out, list) and [o.shape for o in out] == [q.shape for q in seqs]
    np.testing.assert_allclose(np.concatenate(out), (rows - rows.mean(0)) / rows.std(0),
                               rtol=1e-12)
    uni = [q[:, 0] for q in seqs]
    assert SequenceScaler().fit(uni).transform(uni)[2].shape == (1,)


def test_constant_feature_and_errors():
    X = np.ones((4, 5, 2))
    X[..., 1] = RNG.normal(size=(4, 5))
    assert SequenceScaler().fit(X).scale_[0] == 1.0
    with pytest.raises(ValueError, match="NaN"):
        SequenceScaler().fit(np.full((2, 3, 1), np.nan))
    with pytest.raises(ValueError, match="expecting 2"):
        SequenceScaler().fit(X).transform(np.zeros((2, 3, 3)))
    with pytest.raises(fastlstm.NotFittedError):
        SequenceScaler().transform(X)


def test_in_a_pipeline_with_cross_validation():
    sklearn = pytest.importorskip("sklearn")
    from sklearn.base import clone
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline

    X = RNG.normal(50.0, 10.0, size=(30, 6, 2))
    y = (X[:, :, 0].mean(1) - 50.0) / 10.0
    pipe = make_pipeline(SequenceScaler(), fastlstm.LSTMRegressor(
        hidden_sizes=(6,), epochs=3, random_state=0, n_threads=1))
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.shape == (3,) and np.isfinite(scores).all()
    assert clone(pipe).steps[0][1].get_params() == {"with_mean": True, "with_std": True}
    assert sklearn.__version__
