"""LSTMRegressor, LSTMClassifier, LSTMForecaster: API conventions, input forms,
training behaviour, reproducibility and errors.

Models are tiny (a few units, a few epochs, n_threads=1 unless the test is
about threads) so the file runs in seconds on 2 cores.
"""

import pickle

import numpy as np
import pytest

import helpers
from helpers import CELLS

import fastlstm
from fastlstm.estimators import LSTMClassifier, LSTMForecaster, LSTMRegressor
from fastlstm.exceptions import DivergenceError, NotFittedError

FAST = dict(hidden_sizes=(6,), epochs=3, batch_size=16, n_threads=1, random_state=0)


def _seq_data(n=48, T=7, d=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, T, d))
    y = X[:, -1, 0] - 0.5 * X[:, -2, -1]
    return X, y


# ---------------------------------------------------------------- package surface


def test_package_exports():
    for name in ("LSTMRegressor", "LSTMClassifier", "LSTMForecaster", "load",
                 "sliding_windows", "pad_sequences"):
        assert hasattr(fastlstm, name), f"fastlstm.{name} is not exported"
    assert fastlstm.LSTMRegressor is LSTMRegressor
    assert fastlstm.load.__module__.startswith("fastlstm")


def test_no_sklearn_import_at_runtime():
    import subprocess
    import sys

    code = (
        "import sys, numpy as np, fastlstm.estimators as e\n"
        "X = np.random.default_rng(0).normal(size=(8, 4, 2))\n"
        "m = e.LSTMClassifier(hidden_sizes=(3,), epochs=1, n_threads=1).fit(X, [0, 1] * 4)\n"
        "m.predict_proba(X); e.LSTMRegressor().get_params(); repr(m)\n"
        "try:\n    e.LSTMRegressor().predict(X)\nexcept ValueError:\n    pass\n"
        "assert 'sklearn' not in sys.modules, 'sklearn was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=helpers.CHILD_CWD, env=helpers.child_env(),
                   check=True)


# ---------------------------------------------------------------- sklearn conventions


@pytest.mark.parametrize("cls", [LSTMRegressor, LSTMClassifier])
def test_constructor_stores_arguments_untouched(cls):
    hs = [4, 4]  # a list stays the very same object, not converted
    rs = np.random.RandomState(0)
    est = cls(hidden_sizes=hs, random_state=rs, learning_rate="not validated yet")
    assert est.hidden_sizes is hs and est.random_state is rs
    assert est.learning_rate == "not validated yet"
    params = est.get_params()
    assert params["hidden_sizes"] is hs
    assert set(params) == set(cls._get_param_names())
    assert not [k for k in vars(est) if k.endswith("_") and not k.startswith("_")]


def test_get_set_params_and_repr():
    est = LSTMRegressor()
    assert repr(est) == "LSTMRegressor()"
    assert est.set_params(epochs=5, cell="gru") is est
    assert est.get_params()["epochs"] == 5
    assert repr(est) == "LSTMRegressor(cell='gru', epochs=5)"
    with pytest.raises(ValueError, match="Invalid parameter 'epoch'"):
        est.set_params(epoch=3)


@pytest.mark.parametrize("method", ["predict", "score", "save"])
def test_not_fitted_error(method, tmp_path):
    X, y = _seq_data()
    est = LSTMRegressor()
    args = {"predict": (X,), "score": (X, y), "save": (tmp_path / "m.npz",)}[method]
    with pytest.raises(NotFittedError, match="not fitted"):
        getattr(est, method)(*args)
    assert issubclass(NotFittedError, ValueError) and issubclass(NotFittedError, AttributeError)


def test_not_fitted_error_is_sklearns_when_sklearn_is_loaded():
    sk = pytest.importorskip("sklearn.exceptions")
    with pytest.raises(sk.NotFittedError):
        LSTMClassifier().predict_proba(np.zeros((2, 3)))


def test_fit_returns_self_and_sets_learned_attributes():
    X, y = _seq_data()
    est = LSTMRegressor(**FAST)
    assert est.fit(X, y) is est
    assert est.n_features_in_ == 3
    assert len(est.loss_curve_) == est.n_iter_ == 3
    assert est.best_loss_ == min(est.loss_curve_)
    assert est.validation_scores_ is None
    assert est.n_outputs_ == 1


# ---------------------------------------------------------------- input forms


def test_input_forms_2d_3d_and_lists():
    X, y = _seq_data(d=1)
    a = LSTMRegressor(**FAST).fit(X, y).predict(X)
    b = LSTMRegressor(**FAST).fit(X[:, :, 0], y).predict(X[:, :, 0])  # (n, T) univariate
    c = LSTMRegressor(**FAST).fit(X.tolist(), y.tolist()).predict(X.tolist())
    np.testing.assert_array_equal(a, b)  # same data, same seed, same arithmetic
    np.testing.assert_array_equal(a, c)


def test_variable_length_sequences_match_running_each_alone():
    rng = np.random.default_rng(1)
    seqs = [rng.normal(size=(n, 2)) for n in (3, 7, 1, 5, 7, 2)]
    y = np.array([s[:, 0].sum() for s in seqs])
    est = LSTMRegressor(**dict(FAST, bidirectional=True)).fit(seqs, y)
    batch = est.predict(seqs)
    for s, p in zip(seqs, batch):
        # float32 kernels; the row is computed with the same arithmetic alone,
        # tolerance covers any GEMM blocking difference with batch size
        np.testing.assert_allclose(est.predict([s]), [p], rtol=1e-5, atol=1e-6)
    # 1-D sequences are univariate too
    est1 = LSTMRegressor(**FAST).fit([s[:, 0] for s in seqs], y)
    assert est1.n_features_in_ == 1


@pytest.mark.parametrize("shape", [(40,), (40, 2), (40, 7, 2)])
def test_target_shapes(shape):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(40, 7, 3))
    y = rng.normal(size=shape)
    est = LSTMRegressor(**FAST).fit(X, y)
    pred = est.predict(X)
    assert pred.shape == shape and pred.dtype == np.float64


def test_sequence_targets_with_variable_lengths_ignore_padding():
    rng = np.random.default_rng(3)
    seqs = [rng.normal(size=(n, 2)) for n in (4, 6, 2)]
    ys = [np.cumsum(s[:, :1], axis=0) for s in seqs]
    est = LSTMRegressor(**FAST).fit(seqs, ys)
    pred = est.predict(seqs)
    assert pred.shape == (3, 6, 1)
    for i, s in enumerate(seqs):
        assert np.all(pred[i, len(s):] == 0.0)


def test_classifier_string_labels_binary_and_multiclass():
    X, y = _seq_data()
    for labels in (np.where(y > 0, "yes", "no"), np.digitize(y, [-0.5, 0.5]).astype(str)):
        est = LSTMClassifier(**FAST).fit(X, labels)
        np.testing.assert_array_equal(est.classes_, np.unique(labels))
        proba = est.predict_proba(X)
        assert proba.shape == (len(X), len(est.classes_))
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(est.classes_[proba.argmax(axis=1)], est.predict(X))
        np.testing.assert_allclose(est.predict_log_proba(X), np.log(proba), atol=1e-9)
        assert 0.0 <= est.score(X, labels) <= 1.0


def test_classifier_column_vector_y_warns():
    X, y = _seq_data()
    with pytest.warns(UserWarning, match="column-vector y"):
        LSTMClassifier(**FAST).fit(X, (y > 0)[:, None])


def test_embedding_ids_padding_is_masked_pre_or_post():
    from fastlstm.data import pad_sequences

    rng = np.random.default_rng(4)
    seqs = [list(rng.integers(1, 20, size=n)) for n in rng.integers(1, 9, size=40)]
    labels = np.array([int(np.sum(s) % 2) for s in seqs])
    pre = pad_sequences(seqs, maxlen=10)
    post = pad_sequences(seqs, maxlen=10, padding="post")
    est = LSTMClassifier(**dict(FAST, embedding_dim=4, vocab_size=20)).fit(pre, labels)
    assert est.vocab_size_ == 20 and est.n_features_in_ == 1
    p_pre, p_post, p_list = est.predict_proba(pre), est.predict_proba(post), est.predict_proba(seqs)
    np.testing.assert_array_equal(p_pre, p_post)  # identical computation after masking
    np.testing.assert_array_equal(p_pre, p_list)
    # extra padding changes nothing either
    np.testing.assert_array_equal(p_pre, est.predict_proba(pad_sequences(seqs, maxlen=15)))
    # an all-padding row gets the prediction of an empty sequence, no crash
    assert est.predict_proba(np.zeros((1, 10), dtype=int)).shape == (1, 2)


def test_embedding_ids_out_of_range_and_invalid():
    est = LSTMClassifier(**dict(FAST, embedding_dim=3)).fit(
        np.array([[1, 2, 3], [4, 5, 0]]), [0, 1])
    assert est.vocab_size_ == 6
    with pytest.raises(ValueError, match="token id 9"):
        est.predict(np.array([[9, 1, 0]]))
    with pytest.raises(ValueError, match=">= 0"):
        est.predict(np.array([[-1, 1, 0]]))
    with pytest.raises(ValueError, match="integer"):
        est.predict(np.array([[1.5, 1, 0]]))
    with pytest.raises(ValueError, match="vocab_size"):
        LSTMClassifier(**dict(FAST, embedding_dim=3, vocab_size=4)).fit(
            np.array([[1, 7]]), [0])


# ---------------------------------------------------------------- training


def test_training_reduces_the_loss_and_learns():
    X, y = _seq_data(n=128)
    est = LSTMRegressor(hidden_sizes=(16,), epochs=40, learning_rate=0.01, n_threads=1,
                        random_state=0, tol=0.0, n_iter_no_change=40).fit(X, y)
    assert est.loss_curve_[-1] < 0.3 * est.loss_curve_[0]
    assert est.score(X, y) > 0.8


def test_blobs_accuracy_like_sklearn_check():
    """The accuracy part of sklearn's check_classifiers_train (see test_sklearn_checks)."""
    datasets = pytest.importorskip("sklearn.datasets")
    from sklearn.preprocessing import StandardScaler

    X, y = datasets.make_blobs(n_samples=300, random_state=0)
    X = StandardScaler().fit_transform(X)
    for Xp, yp in ((X[y != 2], y[y != 2]), (X, y)):
        est = LSTMClassifier(hidden_sizes=(8,), epochs=30, batch_size=8, learning_rate=0.02,
                             n_threads=1, random_state=0).fit(Xp, yp)
        assert (est.predict(Xp) == yp).mean() > 0.83


@pytest.mark.parametrize("cell", CELLS)
def test_every_cell_trains(cell):
    X, y = _seq_data()
    est = LSTMRegressor(**dict(FAST, cell=cell, epochs=5, learning_rate=0.01,
                               hidden_sizes=(6, 5), bidirectional=True, dropout=0.1,
                               activation="relu" if cell == "peephole" else "tanh")).fit(X, y)
    assert est.loss_curve_[-1] < est.loss_curve_[0]


def test_losses_and_optimizers_run():
    X, y = _seq_data()
    for kw in (dict(loss="mae"), dict(loss="huber"), dict(optimizer="sgd", learning_rate=0.05),
               dict(weight_decay=1e-3, clip_norm=0.5), dict(shuffle=False),
               dict(gate_activation="hard_sigmoid"), dict(dtype="float64")):
        est = LSTMRegressor(**dict(FAST, **kw)).fit(X, y)
        assert np.isfinite(est.predict(X)).all()


def test_early_stopping_and_restore_best_weights():
    X, y = _seq_data(n=80)
    est = LSTMRegressor(**dict(FAST, epochs=200, learning_rate=0.05, early_stopping=True,
                               n_iter_no_change=3, validation_fraction=0.25)).fit(X, y)
    assert est.n_iter_ < 200
    assert len(est.validation_scores_) == len(est.validation_loss_curve_) == est.n_iter_
    assert est.best_loss_ == min(est.validation_loss_curve_)
    # with an explicit validation set the restored weights reproduce the best
    # validation loss; float32 outputs, the loss summed in float64 here and in
    # the estimator: equal to ~1e-6 relative
    Xv, yv = _seq_data(n=30, seed=5)
    for restore in (True, False):
        est = LSTMRegressor(**dict(FAST, epochs=200, learning_rate=0.2, early_stopping=True,
                                   n_iter_no_change=4, restore_best_weights=restore)
                            ).fit(X, y, validation_data=(Xv, yv))
        mse = np.mean((est.predict(Xv) - yv) ** 2)
        final = est.validation_loss_curve_[-1]
        want = est.best_loss_ if restore else final
        assert mse == pytest.approx(want, rel=1e-5)
        assert est.best_loss_ == min(est.validation_loss_curve_)
        # validation_scores_ are R^2 (scikit-learn's meaning), of the same outputs
        if not restore:
            assert est.validation_scores_[-1] == pytest.approx(est.score(Xv, yv), rel=1e-5)
    assert final > est.best_loss_  # it did stop after getting worse, so the test means something


def test_validation_data_is_used_and_reported(capsys):
    X, y = _seq_data(n=60)
    est = LSTMRegressor(**dict(FAST, verbose=1)).fit(X[:40], y[:40], validation_data=(X[40:], y[40:]))
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "epoch" in ln]
    assert len(lines) == est.n_iter_ == 3
    for ln in lines:
        assert "loss" in ln and "val_loss" in ln and ln.rstrip().endswith("s")
    assert len(est.validation_scores_) == 3


def test_tol_stops_on_training_plateau():
    X, y = _seq_data()
    est = LSTMRegressor(**dict(FAST, epochs=100, tol=10.0, n_iter_no_change=2)).fit(X, y)
    # the first epoch sets best_loss_; no later one improves it by 10, so training
    # stops after n_iter_no_change more epochs (scikit-learn's MLP rule)
    assert est.n_iter_ == 3


def test_warm_start_and_partial_fit_continue():
    X, y = _seq_data()
    est = LSTMRegressor(**dict(FAST, warm_start=True)).fit(X, y)
    p1 = est._network.params.copy()
    est.fit(X, y)
    assert est.n_iter_ == 6 and len(est.loss_curve_) == 6
    cold = LSTMRegressor(**FAST).fit(X, y)
    np.testing.assert_array_equal(cold._network.params, p1)  # first fit == cold fit
    est.partial_fit(X, y)
    assert est.n_iter_ == 7
    with pytest.raises(ValueError, match="hidden_sizes"):
        est.set_params(hidden_sizes=(3,)).fit(X, y)
    clf = LSTMClassifier(**FAST)
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X, y > 0)
    clf.partial_fit(X, y > 0, classes=[False, True])
    clf.partial_fit(X, y > 0)
    assert clf.n_iter_ == 2
    with pytest.raises(ValueError, match="not\\s+seen|were not"):
        clf.partial_fit(X, np.where(y > 0, 2, 0))


def test_divergence_raises_a_clear_error():
    X, y = _seq_data()
    est = LSTMRegressor(**dict(FAST, learning_rate=1e6, activation="relu"))
    with pytest.raises(DivergenceError, match="learning_rate") as info:
        est.fit(X * 1e3, y * 1e8)
    assert "clip_norm" in str(info.value)
    assert isinstance(info.value, ValueError) and isinstance(info.value, FloatingPointError)


# ---------------------------------------------------------------- reproducibility


def test_same_random_state_bitwise_identical_for_1_and_2_threads():
    X, y = _seq_data(n=64)
    preds = []
    for n_threads in (1, 2, 1, 2):
        est = LSTMRegressor(hidden_sizes=(12, 8), epochs=3, dropout=0.2, bidirectional=True,
                            random_state=7, n_threads=n_threads).fit(X, y)
        preds.append(est.predict(X))
    for p in preds[1:]:
        np.testing.assert_array_equal(preds[0], p)


def test_different_random_state_differs():
    X, y = _seq_data()
    a = LSTMRegressor(**dict(FAST, random_state=1)).fit(X, y).predict(X)
    b = LSTMRegressor(**dict(FAST, random_state=2)).fit(X, y).predict(X)
    assert not np.array_equal(a, b)


def test_clone_and_pickle_give_identical_predictions():
    base = pytest.importorskip("sklearn.base")
    X, y = _seq_data()
    est = LSTMClassifier(**dict(FAST, cell="gru")).fit(X, y > 0)
    cloned = base.clone(est).fit(X, y > 0)
    np.testing.assert_array_equal(est.predict_proba(X), cloned.predict_proba(X))
    restored = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(est.predict_proba(X), restored.predict_proba(X))
    assert base.clone(est).get_params() == est.get_params()


def test_predict_does_not_depend_on_n_threads_after_fit():
    X, y = _seq_data()
    est = LSTMRegressor(**FAST).fit(X, y)
    p1 = est.predict(X)
    p2 = est.set_params(n_threads=2).predict(X)
    np.testing.assert_array_equal(p1, p2)


# ---------------------------------------------------------------- scikit-learn tools


def test_pipeline_gridsearch_cross_val_score():
    pytest.importorskip("sklearn")
    from sklearn.model_selection import GridSearchCV, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = _seq_data(n=60, T=5, d=1)
    X2 = X[:, :, 0]  # (n, T) works with tabular transformers
    pipe = make_pipeline(StandardScaler(), LSTMRegressor(**FAST))
    assert np.isfinite(pipe.fit(X2, y).score(X2, y))
    gs = GridSearchCV(LSTMRegressor(**FAST), {"hidden_sizes": [(3,), (5,)], "cell": ["lstm", "gru"]},
                      cv=2).fit(X, y)
    assert gs.best_params_["cell"] in ("lstm", "gru")
    scores = cross_val_score(LSTMClassifier(**FAST), X, y > 0, cv=3)
    assert scores.shape == (3,) and np.all((0 <= scores) & (scores <= 1))


def test_score_is_r2():
    metrics = pytest.importorskip("sklearn.metrics")
    X, y = _seq_data()
    est = LSTMRegressor(**FAST).fit(X, y)
    # float64 arithmetic on the same predictions: equal to rounding
    assert est.score(X, y) == pytest.approx(metrics.r2_score(y, est.predict(X)), rel=1e-12)
    w = np.linspace(0.5, 2, len(y))
    assert est.score(X, y, sample_weight=w) == pytest.approx(
        metrics.r2_score(y, est.predict(X), sample_weight=w), rel=1e-12)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "X,match",
    [
        (np.zeros(5), "Reshape your data"),
        (np.zeros((2, 3, 4, 5)), r"\(n, T\)"),
        (np.zeros((0, 3)), "0 sample"),
        (np.zeros((3, 0)), "0 feature"),
        (np.array([[1.0, np.nan]]), "NaN"),
        (np.array([[1.0, np.inf]]), "infinity"),
        (np.array([[1 + 1j, 2]]), "Complex"),
        ([np.zeros((2, 2)), np.zeros((3, 3))], "same number of features"),
        ([np.zeros((2, 2)), np.zeros((0, 2))], "empty sequence"),
    ],
)
def test_bad_X_raises_value_error_naming_the_problem(X, match):
    with pytest.raises(ValueError, match=match):
        LSTMRegressor(**FAST).fit(X, np.zeros(len(X)))


def test_bad_X_types():
    with pytest.raises(TypeError):
        LSTMRegressor(**FAST).fit(np.array([["a", "b"]]), [1.0])
    with pytest.raises(TypeError, match="string.* number"):
        LSTMRegressor(**FAST).fit(np.array([[{"a": 1}, 2.0]], dtype=object), [1.0])


def test_bad_y():
    X, y = _seq_data()
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        LSTMRegressor(**FAST).fit(X, y[:-1])
    with pytest.raises(ValueError, match="y is None"):
        LSTMRegressor(**FAST).fit(X, None)
    with pytest.raises(ValueError, match="NaN"):
        LSTMRegressor(**FAST).fit(X, np.full(len(X), np.nan))
    with pytest.raises(ValueError, match="continuous"):
        LSTMClassifier(**FAST).fit(X, y)
    with pytest.raises(ValueError, match="one class"):
        LSTMClassifier(**FAST).fit(X, np.ones(len(X)))
    with pytest.raises(ValueError, match="time step"):
        LSTMRegressor(**FAST).fit(X, np.zeros((len(X), 3, 1)))


def test_predict_checks_features():
    X, y = _seq_data()
    est = LSTMRegressor(**FAST).fit(X, y)
    with pytest.raises(ValueError, match="X has 2 features, but LSTMRegressor is expecting 3"):
        est.predict(X[:, :, :2])
    # a different sequence length is fine for a recurrent model
    assert est.predict(X[:, :4]).shape == (len(X),)


@pytest.mark.parametrize(
    "param,value,exc",
    [
        ("hidden_sizes", (), ValueError), ("hidden_sizes", (0,), ValueError),
        ("hidden_sizes", "50", ValueError), ("cell", "rnn", ValueError),
        ("activation", "sigmoid", ValueError), ("dropout", 1.0, ValueError),
        ("dropout", -0.1, ValueError), ("loss", "log_loss", ValueError),
        ("optimizer", "rmsprop", ValueError), ("learning_rate", 0.0, ValueError),
        ("learning_rate", float("nan"), ValueError), ("learning_rate", "0.1", TypeError),
        ("batch_size", 0, ValueError), ("batch_size", 2.0, TypeError),
        ("epochs", 0, ValueError), ("shuffle", "yes", TypeError),
        ("weight_decay", -1.0, ValueError), ("clip_norm", 0.0, ValueError),
        ("validation_fraction", 1.0, ValueError), ("n_iter_no_change", 0, ValueError),
        ("tol", -1.0, ValueError), ("random_state", "seed", TypeError),
        ("random_state", -1, ValueError), ("n_threads", 0, ValueError),
        ("n_threads", 1.5, TypeError), ("verbose", -1, ValueError),
        ("dtype", "float16", ValueError), ("embedding_dim", 0, ValueError),
        ("vocab_size", 10, ValueError), ("bidirectional", None, TypeError),
    ],
)
def test_bad_parameters_name_the_parameter(param, value, exc):
    X, y = _seq_data()
    est = LSTMRegressor(**FAST).set_params(**{param: value})  # set_params never validates
    with pytest.raises(exc, match=param):
        est.fit(X, y)


def test_sparse_input_is_rejected():
    sparse = pytest.importorskip("scipy.sparse")
    with pytest.raises(TypeError, match="sparse"):
        LSTMRegressor(**FAST).fit(sparse.csr_matrix(np.ones((4, 3))), np.zeros(4))


# ---------------------------------------------------------------- forecaster


def _series(n=120, seed=0):
    t = np.arange(n)
    return 10 + np.sin(2 * np.pi * t / 12) * 3 + 0.05 * t + \
        np.random.default_rng(seed).normal(scale=0.1, size=n)


@pytest.mark.parametrize("strategy", ["direct", "recursive"])
def test_forecaster_shapes_and_history(strategy):
    s = _series()
    fc = LSTMForecaster(window=12, horizon=4, strategy=strategy, **FAST).fit(s)
    f = fc.predict()
    assert f.shape == (4,) and np.isfinite(f).all()
    np.testing.assert_array_equal(f, fc.predict(s))  # default history = training series
    np.testing.assert_array_equal(fc.predict(s[:-5]), fc.predict(s[-30:-5]))  # last window only
    assert fc.n_features_in_ == 1
    s2 = np.c_[s, -s]
    fc2 = LSTMForecaster(window=6, horizon=3, strategy=strategy, **FAST).fit(s2)
    assert fc2.predict().shape == (3, 2)
    with pytest.raises(ValueError, match="variables"):
        fc2.predict(s)
    with pytest.raises(ValueError, match="at least window"):
        fc2.predict(s2[:4])


def test_forecaster_scaling_is_fitted_on_training_data_only():
    s = _series()
    fc = LSTMForecaster(window=6, **FAST).fit(s[:80])
    np.testing.assert_allclose(fc.mean_, [s[:80].mean()], rtol=1e-12)
    np.testing.assert_allclose(fc.scale_, [s[:80].std()], rtol=1e-12)
    fc.predict(s)  # predicting on longer history does not refit the scaler
    np.testing.assert_allclose(fc.mean_, [s[:80].mean()], rtol=1e-12)


def test_forecaster_learns_a_seasonal_series():
    s = _series(n=144)
    train, test = s[:-12], s[-12:]
    fc = LSTMForecaster(window=12, horizon=12, hidden_sizes=(16,), epochs=60,
                        learning_rate=0.01, n_threads=1, random_state=0).fit(train)
    rmse = np.sqrt(np.mean((fc.predict() - test) ** 2))
    # the series' noise sd is 0.1 and its seasonal amplitude 3: a model that
    # learned nothing (predicting the mean) has RMSE ~2.2
    assert rmse < 1.0


def test_forecaster_errors():
    with pytest.raises(ValueError, match="too short"):
        LSTMForecaster(window=10, horizon=5, **FAST).fit(np.arange(12.0))
    with pytest.raises(TypeError, match="window"):
        LSTMForecaster(window=None, **FAST).fit(np.arange(12.0))
    with pytest.raises(ValueError, match="strategy"):
        LSTMForecaster(window=3, strategy="both", **FAST).fit(np.arange(12.0))
    with pytest.raises(ValueError, match="NaN"):
        LSTMForecaster(window=3, **FAST).fit(np.r_[np.arange(12.0), np.nan])
    with pytest.raises(NotFittedError):
        LSTMForecaster(window=3).predict()


def test_forecaster_difference_removes_a_trend():
    t = np.arange(100.0)
    s = 5.0 + 0.8 * t  # a pure trend: differences are constant
    fc = LSTMForecaster(window=5, horizon=3, difference=True, **FAST).fit(s[:90])
    # constant differences standardise to 0 with scale 1 (sd 0 -> 1); the forecast
    # adds back mean differences, whatever the network outputs around 0
    assert fc.mean_ == pytest.approx([0.8], rel=1e-12)
    f = fc.predict()
    assert f.shape == (3,)
    np.testing.assert_allclose(np.diff(np.r_[s[89], f]), 0.8, atol=0.5)
    assert fc.last_window_.shape == (6, 1)
    with pytest.raises(ValueError, match=r"\+ 1"):
        fc.predict(s[:5])


def test_forecaster_early_stopping_validates_on_the_latest_windows():
    s = _series(n=100)
    fc = LSTMForecaster(window=10, horizon=2, early_stopping=True, validation_fraction=0.2,
                        **dict(FAST, epochs=4)).fit(s)
    assert len(fc.validation_scores_) == fc.n_iter_ == 4
    # recompute the validation loss of the restored (best) weights from the last
    # 20% of the windows, through the public predict(history)
    n_windows = 100 - 10 - 2 + 1
    n_val = int(np.ceil(0.2 * n_windows))
    errs = []
    for start in range(n_windows - n_val, n_windows):
        pred = fc.predict(s[: start + 10])
        errs.append(((pred - s[start + 10: start + 12]) / fc.scale_[0]) ** 2)
    # float32 network outputs, float64 losses: agreement to ~1e-6 relative
    assert np.mean(errs) == pytest.approx(fc.best_loss_, rel=1e-4)


@pytest.mark.parametrize("restore", [True, False])
def test_predictions_use_the_final_weights_after_validation_evals(restore):
    """Validation passes run inference mid-training; predict must still see every
    later optimizer step (no stale packed weights)."""
    X, y = _seq_data()
    est = LSTMClassifier(**dict(FAST, epochs=5, learning_rate=0.05,
                                restore_best_weights=restore)).fit(
        X, y > 0, validation_data=(X[:10], y[:10] > 0))
    fresh = pickle.loads(pickle.dumps(est))  # rebuilt from the flat buffer alone
    np.testing.assert_array_equal(est.predict_proba(X), fresh.predict_proba(X))
