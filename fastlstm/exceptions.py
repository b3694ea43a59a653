"""Exceptions and warnings raised by fastlstm's estimators.

fastlstm never imports scikit-learn. When scikit-learn *is* already imported
in the process, the errors raised are instances of both fastlstm's class and
scikit-learn's class of the same name (``sklearn.exceptions.NotFittedError``,
``sklearn.exceptions.DataConversionWarning``), so code written against
scikit-learn (``except NotFittedError``, warning filters, the estimator
checks) keeps working. The combined classes are made on first use and live
in this module under a private name, so they pickle.
"""

import sys

__all__ = ["NotFittedError", "DataConversionWarning", "DivergenceError",
           "InconsistentVersionWarning"]


class NotFittedError(ValueError, AttributeError):
    """Raised when an estimator is used before ``fit``.

    Subclasses ValueError and AttributeError, like scikit-learn's.
    """


class DataConversionWarning(UserWarning):
    """Warning used to notify implicit data conversions (e.g. a column-vector y)."""


class InconsistentVersionWarning(UserWarning):
    """An estimator was unpickled by another fastlstm version than the one that
    pickled it (scikit-learn's habit): it may not work or compute the same.
    Model files (``save`` / ``fastlstm.load``) carry their own compatibility
    rules and are the way to move models between versions."""

    def __init__(self, estimator_name, original_version, current_version):
        self.estimator_name = estimator_name
        self.original_version = original_version
        self.current_version = current_version
        super().__init__(
            f"Trying to unpickle estimator {estimator_name} from version {original_version} "
            f"when using version {current_version}. This might lead to breaking code or "
            "invalid results; save models with .save() and fastlstm.load() to move them "
            "between versions.")


class DivergenceError(FloatingPointError, ValueError):
    """Raised when the training loss or gradient becomes NaN or infinite."""


_COMPAT = {
    # private name -> (our class, scikit-learn class name)
    "_SklearnNotFittedError": (NotFittedError, "NotFittedError"),
    "_SklearnDataConversionWarning": (DataConversionWarning, "DataConversionWarning"),
}


def _make_compat(private_name, sklearn_exceptions):
    ours, sk_name = _COMPAT[private_name]
    cls = type(private_name, (ours, getattr(sklearn_exceptions, sk_name)), {
        "__module__": __name__,
        "__doc__": ours.__doc__,
    })
    globals()[private_name] = cls
    return cls


def _compat_class(private_name):
    """Our class, or its scikit-learn-compatible subclass if sklearn is loaded."""
    cls = globals().get(private_name)
    if cls is not None:
        return cls
    sk = sys.modules.get("sklearn.exceptions")
    if sk is None:
        return _COMPAT[private_name][0]
    return _make_compat(private_name, sk)


def not_fitted_error(message):
    return _compat_class("_SklearnNotFittedError")(message)


def data_conversion_warning_class():
    return _compat_class("_SklearnDataConversionWarning")


def __getattr__(name):
    # unpickling a combined class in a fresh process: build it (this is the
    # one place that imports scikit-learn, and only because the pickle
    # references scikit-learn's class)
    if name in _COMPAT:
        import sklearn.exceptions

        return _make_compat(name, sklearn.exceptions)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
