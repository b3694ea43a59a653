"""What every fastlstm estimator shares: scikit-learn's estimator conventions
and the checks of the data it is given.

The estimators follow scikit-learn's conventions (constructor stores its
arguments untouched, ``get_params``/``set_params``, learned attributes end in
``_``, ``fit`` returns self, ``NotFittedError`` before fit) without
importing scikit-learn: ``EstimatorBase`` does what ``BaseEstimator`` does.
Constructor arguments are checked at fit time against each class's
``_parameter_constraints`` (fastlstm._validation).
"""

import inspect
import warnings

import numpy as np

from . import _kernels
from ._version import __version__


def store_init_params(est, args):
    """The body of every estimator's ``__init__``: store each argument as given
    (scikit-learn's rule), from the ``locals()`` of that ``__init__``."""
    for name in type(est)._get_param_names():
        setattr(est, name, args[name])


class EstimatorBase:
    """get_params / set_params / repr / tags, as scikit-learn's BaseEstimator."""

    _estimator_type = None

    @classmethod
    def _get_param_names(cls):
        init = cls.__init__
        if init is object.__init__:
            return []
        sig = inspect.signature(init)
        for p in sig.parameters.values():
            if p.kind == p.VAR_POSITIONAL:
                raise RuntimeError(f"{cls.__name__} must not take *args in __init__")
        return sorted(p.name for p in sig.parameters.values()
                      if p.name != "self" and p.kind != p.VAR_KEYWORD)

    def get_params(self, deep=True):
        out = {}
        for key in self._get_param_names():
            value = getattr(self, key)
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                for k, v in value.get_params().items():
                    out[f"{key}__{k}"] = v
            out[key] = value
        return out

    def set_params(self, **params):
        if not params:
            return self
        valid = self.get_params(deep=True)
        nested = {}
        for key, value in params.items():
            key, delim, sub = key.partition("__")
            if key not in valid:
                raise ValueError(
                    f"Invalid parameter {key!r} for estimator {type(self).__name__}. "
                    f"Valid parameters are: {self._get_param_names()!r}."
                )
            if delim:
                nested.setdefault(key, {})[sub] = value
            else:
                setattr(self, key, value)
                valid[key] = value
        for key, sub_params in nested.items():
            valid[key].set_params(**sub_params)
        return self

    def __repr__(self):
        defaults = {
            name: p.default
            for name, p in inspect.signature(type(self).__init__).parameters.items()
            if p.default is not p.empty
        }
        parts = []
        for name in self._get_param_names():
            value = getattr(self, name, None)
            if name in defaults and _same_value(value, defaults[name]):
                continue
            parts.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(parts)})"

    def __sklearn_is_fitted__(self):
        return hasattr(self, "_network")

    def __sklearn_tags__(self):
        # only called by scikit-learn, which is then already imported
        from sklearn.utils import (ClassifierTags, InputTags, RegressorTags, Tags,
                                   TargetTags)

        tags = Tags(
            estimator_type=self._estimator_type,
            target_tags=TargetTags(required=True),
            input_tags=InputTags(two_d_array=True, three_d_array=True),
        )
        if self._estimator_type == "regressor":
            tags.regressor_tags = RegressorTags()
            tags.target_tags.multi_output = True
            tags.target_tags.single_output = True
        elif self._estimator_type == "classifier":
            tags.classifier_tags = ClassifierTags(multi_class=True, multi_label=False)
            tags.target_tags.single_output = True
        return tags

    def _more_tags(self):  # scikit-learn < 1.6
        return {
            "X_types": ["2darray", "3darray"],
            "multioutput": self._estimator_type == "regressor",
            "requires_y": True,
        }

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_spent_cache", None)   # scratch memory, not model state
        state["_fastlstm_version"] = _version()
        return state

    def __setstate__(self, state):
        state = dict(state)
        pickled = state.pop("_fastlstm_version", "before 0.1.0")
        if pickled != __version__:
            from .exceptions import InconsistentVersionWarning

            warnings.warn(InconsistentVersionWarning(type(self).__name__, pickled, __version__),
                          stacklevel=2)
        self.__dict__.update(state)


def _version():
    return __version__


def _same_value(a, b):
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    try:
        return bool(a == b)
    except Exception:
        return False



# ---------------------------------------------------------------- input checks


def is_sparse(X):
    mod = type(X).__module__ or ""
    return mod.startswith("scipy.sparse") or (hasattr(X, "tocsr") and hasattr(X, "nnz"))


def reshape_hint():
    return (
        "Reshape your data: X.reshape(1, -1) if it is one univariate sequence, "
        "or X.reshape(-1, 1) if it holds many sequences of length 1."
    )


def check_finite(arr, name):
    if arr.dtype.kind != "f":
        return
    # one C pass without numpy's temporary array, for plain float32/64 arrays
    plain = arr.dtype in (np.float32, np.float64)
    status = _kernels.array_status(arr, arr.dtype == np.float64, arr.ndim) if plain else 0
    if status == 1 or (status == 0 and np.isfinite(arr).all()):
        return
    if np.isnan(arr).any():
        raise ValueError(f"Input {name} contains NaN.")
    raise ValueError(f"Input {name} contains infinity or a value too large for {arr.dtype}.")


def to_numeric(arr, name):
    """Object / bool / int arrays to float64; complex and strings rejected."""
    if np.iscomplexobj(arr):
        raise ValueError(f"Complex data not supported: {name} has dtype {arr.dtype}.")
    if arr.dtype == object:
        if any(isinstance(v, complex) for v in arr.flat):
            raise ValueError(f"Complex data not supported in {name}.")
        arr = arr.astype(np.float64)  # float() errors name the bad element's type
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numbers, got an array of dtype {arr.dtype}")
    return arr


def split_ragged(X):
    """(array, None) for regular input, or (None, list of arrays) for ragged input."""
    if isinstance(X, (list, tuple)):
        if len(X) and all(isinstance(x, np.ndarray) for x in X):
            shapes = {x.shape for x in X}
            if len(shapes) > 1:
                return None, [np.asarray(x) for x in X]
        try:
            arr = np.asarray(X)
        except ValueError:
            # numpy refuses inhomogeneous nested lists: variable-length input
            return None, [np.asarray(x) for x in X]
        return arr, None
    arr = np.asarray(X)
    if arr.dtype == object and arr.ndim == 1 and arr.size and all(
        isinstance(x, (np.ndarray, list, tuple)) for x in arr
    ):
        return None, [np.asarray(x) for x in arr]
    return arr, None
