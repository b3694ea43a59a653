"""scikit-learn's estimator checks over LSTMRegressor and LSTMClassifier.

Every check must pass, except the few listed in ``EXPECTED_FAILED``, each
with a reason that holds for any sequence model; ``xfail_strict=True`` makes
an unexpected pass fail too, so the list cannot go stale. Epochs are tiny so
the file runs in seconds; n_threads=1 keeps it independent of machine load.
"""

import inspect

import pytest

sklearn = pytest.importorskip("sklearn", minversion="1.6")  # __sklearn_tags__ API

from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from fastlstm.estimators import LSTMClassifier, LSTMRegressor  # noqa: E402

_SEQ_LEN = (
    "2-D X is (n_samples, n_timesteps) univariate sequences, and a recurrent "
    "model accepts sequences of any length"
)

EXPECTED_FAILED = {
    "check_n_features_in": (
        "n_features_in_ counts features per time step (d of (n, T, d)); for 2-D X "
        "that is 1, not X.shape[1] (the sequence length)"
    ),
    "check_n_features_in_after_fitting": (
        "n_features_in_ counts features per time step, and " + _SEQ_LEN +
        ", so X[:, [1]] (sequences of length 1) is valid input, not a feature mismatch"
    ),
    "check_estimators_partial_fit_n_features": (
        _SEQ_LEN + ", so dropping a column gives shorter sequences, not fewer features"
    ),
    "check_sample_weight_equivalence_on_dense_data": (
        "mini-batch training with shuffling: k copies of a sample land in other batches "
        "than one sample of weight k (scikit-learn lists the same for its SGD and MLP "
        "models); with one full batch the two are equal, as "
        "test_weights.py::test_integer_weights_train_like_copies_of_the_samples shows"
    ),
}

EXPECTED_FAILED_CLASSIFIER = {
    "check_classifiers_train": (
        "predict(X.T) must raise, but " + _SEQ_LEN + ": X.T is n_features valid "
        "sequences of length n_samples (the accuracy part of this check is "
        "repeated in test_estimators.py::test_blobs_accuracy_like_sklearn_check)"
    ),
}


def _expected_failed(estimator):
    out = dict(EXPECTED_FAILED)
    if isinstance(estimator, LSTMClassifier):
        out.update(EXPECTED_FAILED_CLASSIFIER)
    return out


SMALL = dict(hidden_sizes=(8,), epochs=30, batch_size=8, learning_rate=0.02, n_threads=1)


# xfail_strict (scikit-learn >= 1.8) turns an unexpected pass into a failure
_STRICT = ({"xfail_strict": True}
           if "xfail_strict" in inspect.signature(parametrize_with_checks).parameters else {})


@parametrize_with_checks(
    [LSTMRegressor(**SMALL), LSTMClassifier(**SMALL)],
    expected_failed_checks=_expected_failed,
    **_STRICT,
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


@pytest.mark.parametrize("cls", [LSTMRegressor, LSTMClassifier])
def test_expected_failures_hold_for_the_stated_reason(cls):
    """What each xfailed check trips on is the sequence semantics, and the
    feature-count check the checks want does exist for per-step features."""
    import re

    import numpy as np

    rng = np.random.RandomState(0)
    X = rng.normal(size=(15, 4))
    y = rng.normal(size=15) if cls is LSTMRegressor else np.arange(15) % 3
    est = cls(**SMALL).fit(X, y)
    assert est.n_features_in_ == 1  # check_n_features_in wants 4 (= T)
    # shorter / transposed 2-D input is valid: sequences of another length
    assert est.predict(X[:, [1]]).shape == (15,)
    assert est.predict(X.T).shape == (4,)
    part = cls(**SMALL)
    kw = {"classes": np.unique(y)} if cls is LSTMClassifier else {}
    part.partial_fit(X, y, **kw).partial_fit(X[:, :-1], y)
    # with 3-D input a real feature-count change raises scikit-learn's message
    X3 = rng.normal(size=(15, 5, 4))
    est3 = cls(**SMALL).fit(X3, y)
    msg = f"X has 1 features, but {cls.__name__} is expecting 4 features as input"
    for method in ("predict", "score") + (("predict_proba",) if cls is LSTMClassifier else ()):
        args = (X3[:, :, [1]],) + ((y,) if method == "score" else ())
        with pytest.raises(ValueError, match=re.escape(msg)):
            getattr(est3, method)(*args)
    with pytest.raises(ValueError, match=re.escape(msg)):
        cls(**SMALL).partial_fit(X3, y, **kw).partial_fit(X3[:, :, [1]], y)
