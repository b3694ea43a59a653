"""scikit-learn-style estimators: LSTMRegressor, LSTMClassifier, LSTMForecaster.

They follow scikit-learn's conventions (constructor stores its arguments
untouched, ``get_params``/``set_params``, learned attributes end in ``_``,
``fit`` returns self, ``NotFittedError`` before fit) without importing
scikit-learn: the small base class below does what ``BaseEstimator`` does.

Input forms
-----------
X : (n, T, d) array of n sequences of T steps with d features each;
    (n, T) array: n univariate sequences (d = 1);
    a list of n arrays (T_i, d) or (T_i,) of different lengths: variable-length
    sequences, padded internally and run with their lengths (never trained
    on the padding).
    With ``embedding_dim`` set: (n, T) integer token ids (or a list of id
    lists), 0 is padding wherever it appears and is masked.
y : (n,), (n, k), or (n, T, k) for sequence-to-sequence output.

``n_features_in_`` is the number of features per time step (d), because a
recurrent model accepts sequences of any length T.
"""

import copy
import inspect
import math
import numbers
import time
import warnings

import numpy as np

from . import _kernels
from . import exceptions as _exc
from ._limits import MAX_INFERRED_VOCAB, MAX_LAYERS, MAX_THREADS, MAX_WIDTH
from ._threads import effective_n_threads
from .data import _compact_token_ids, sliding_windows
from .network import Network, build_spec, check_spec, loss_and_grad, param_count
from .optim import clip_grad_norm, grad_norm, make_optimizer

__all__ = ["LSTMRegressor", "LSTMClassifier", "LSTMForecaster"]

_CELLS = ("lstm", "peephole", "cifg", "gru")
_ACTIVATIONS = ("tanh", "relu")
_GATE_ACTIVATIONS = ("sigmoid", "hard_sigmoid")
_OPTIMIZERS = ("adam", "sgd")
_DTYPES = ("float32", "float64")
_PREDICT_CHUNK = 2048
_MAX_FILE_HORIZON = 100_000  # recursive steps one predict() of a loaded model may run


# ====================================================================== base


class _EstimatorBase:
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
        state.pop("_fastlstm_version", None)
        self.__dict__.update(state)


def _version():
    from ._version import __version__

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


# ====================================================================== validation helpers


def _is_int(v):
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def _is_real(v):
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))


class _Checker:
    """Validates constructor arguments at fit time, naming the estimator."""

    def __init__(self, est):
        self.prefix = type(est).__name__
        self.est = est

    def fail(self, name, what, value, exc=ValueError):
        raise exc(f"{self.prefix}: {name} must be {what}, got {value!r}")

    def int_(self, name, low=None, none_ok=False):
        v = getattr(self.est, name)
        if v is None and none_ok:
            return None
        if not _is_int(v):
            self.fail(name, f"an int{'' if low is None else f' >= {low}'}"
                      + (" or None" if none_ok else ""), v, TypeError)
        if low is not None and v < low:
            self.fail(name, f"an int >= {low}", v)
        return int(v)

    def real(self, name, low=None, high=None, low_open=False, high_open=False, none_ok=False):
        v = getattr(self.est, name)
        if v is None and none_ok:
            return None
        if not _is_real(v):
            self.fail(name, "a real number" + (" or None" if none_ok else ""), v, TypeError)
        v = float(v)
        lo_bad = low is not None and (v < low or (low_open and v == low))
        hi_bad = high is not None and (v > high or (high_open and v == high))
        if not math.isfinite(v) or lo_bad or hi_bad:
            lo = "" if low is None else f"{'>' if low_open else '>='} {low}"
            hi = "" if high is None else f"{'<' if high_open else '<='} {high}"
            self.fail(name, "a finite number " + " and ".join(x for x in (lo, hi) if x), v)
        return v

    def bool_(self, name):
        v = getattr(self.est, name)
        if not isinstance(v, (bool, np.bool_)):
            self.fail(name, "True or False", v, TypeError)
        return bool(v)

    def choice(self, name, choices):
        v = getattr(self.est, name)
        if not isinstance(v, str) or v not in choices:
            self.fail(name, f"one of {choices}", v)
        return v

    def hidden_sizes(self):
        v = self.est.hidden_sizes
        if _is_int(v):
            v = (v,)
        if isinstance(v, np.ndarray):
            v = tuple(v.tolist())
        if not isinstance(v, (tuple, list)) or not 1 <= len(v) <= MAX_LAYERS or not all(
            _is_int(h) and 1 <= h <= MAX_WIDTH for h in v
        ):
            self.fail("hidden_sizes", f"a non-empty tuple of at most {MAX_LAYERS} ints in "
                      f"[1, {MAX_WIDTH}], e.g. (50,) or (50, 50)", v)
        return tuple(int(h) for h in v)

    def dtype(self):
        v = self.est.dtype
        try:
            name = np.dtype(v).name
        except TypeError:
            name = None
        if name not in _DTYPES:
            self.fail("dtype", '"float32" or "float64"', v)
        return name

    def random_state(self):
        v = self.est.random_state
        if v is None or _is_int(v) or isinstance(v, (np.random.RandomState, np.random.Generator)):
            if _is_int(v) and not (0 <= v < 2**32):
                self.fail("random_state", "None, an int in [0, 2**32) or a numpy random generator", v)
            return v
        self.fail("random_state", "None, an int or a numpy random generator", v, TypeError)

    def n_threads(self):
        v = self.est.n_threads
        if v is None:
            return None
        if not _is_int(v) or v == 0 or abs(v) > MAX_THREADS:
            self.fail("n_threads", f"None (all cores) or a non-zero int of at most {MAX_THREADS} "
                      "in absolute value", v, ValueError if _is_int(v) else TypeError)
        return int(v)


def _seed_from(random_state):
    """An int seed from None / int / RandomState / Generator (consumes one draw)."""
    if random_state is None:
        return int(np.random.SeedSequence().generate_state(1)[0])
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, 2**31 - 1))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(0, 2**31 - 1))
    return int(random_state)


def _is_sparse(X):
    mod = type(X).__module__ or ""
    return mod.startswith("scipy.sparse") or (hasattr(X, "tocsr") and hasattr(X, "nnz"))


def _reshape_hint():
    return (
        "Reshape your data: X.reshape(1, -1) if it is one univariate sequence, "
        "or X.reshape(-1, 1) if it holds many sequences of length 1."
    )


def _check_finite(arr, name):
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


def _to_numeric(arr, name):
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


def _split_ragged(X):
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


# ====================================================================== the recurrent estimator


class _LSTMBase(_EstimatorBase):
    """Training loop and data handling shared by the regressor and classifier."""

    _default_loss = "mse"
    _losses = ("mse", "mae", "huber")

    # ------------------------------------------------------------ parameters

    def _validate_params(self):
        c = _Checker(self)
        p = {}
        p["hidden_sizes"] = c.hidden_sizes()
        p["cell"] = c.choice("cell", _CELLS)
        p["activation"] = c.choice("activation", _ACTIVATIONS)
        p["gate_activation"] = c.choice("gate_activation", _GATE_ACTIVATIONS)
        p["bidirectional"] = c.bool_("bidirectional")
        p["dropout"] = c.real("dropout", 0.0, 1.0, high_open=True)
        if hasattr(self, "embedding_dim"):
            p["embedding_dim"] = c.int_("embedding_dim", 1, none_ok=True)
            p["vocab_size"] = c.int_("vocab_size", 2, none_ok=True)
            if p["vocab_size"] is not None and p["embedding_dim"] is None:
                raise ValueError(f"{c.prefix}: vocab_size is only used with embedding_dim; "
                                 "set embedding_dim too, or leave vocab_size=None")
        else:
            p["embedding_dim"] = p["vocab_size"] = None
        p["loss"] = c.choice("loss", self._losses)
        p["optimizer"] = c.choice("optimizer", _OPTIMIZERS)
        p["learning_rate"] = c.real("learning_rate", 0.0, low_open=True)
        p["batch_size"] = c.int_("batch_size", 1)
        p["epochs"] = c.int_("epochs", 1)
        p["shuffle"] = c.bool_("shuffle")
        p["weight_decay"] = c.real("weight_decay", 0.0)
        p["clip_norm"] = c.real("clip_norm", 0.0, low_open=True, none_ok=True)
        p["early_stopping"] = c.bool_("early_stopping")
        p["validation_fraction"] = c.real("validation_fraction", 0.0, 1.0, True, True)
        p["n_iter_no_change"] = c.int_("n_iter_no_change", 1)
        p["tol"] = c.real("tol", 0.0)
        p["restore_best_weights"] = c.bool_("restore_best_weights")
        p["warm_start"] = c.bool_("warm_start")
        p["random_state"] = c.random_state()
        p["n_threads"] = c.n_threads()
        v = self.verbose
        if isinstance(v, (bool, np.bool_)):
            v = int(v)
        if not _is_int(v) or v < 0:
            c.fail("verbose", "an int >= 0", self.verbose)
        p["verbose"] = int(v)
        p["dtype"] = c.dtype()
        return p

    # ------------------------------------------------------------ input

    def _uses_ids(self, p=None):
        if hasattr(self, "_network"):
            return self._network.spec["embedding_dim"] is not None
        return p is not None and p.get("embedding_dim") is not None

    def _check_X(self, X, reset, p=None, dtype=None):
        """Validate X; returns (Xarr, lengths, d).

        Xarr: (n, T, d) floats of ``dtype``, or (n, T) int64 token ids with
        real tokens first. lengths: (n,) int64 or None when all are T.
        """
        name = type(self).__name__
        ids = self._uses_ids(p)
        if X is None:
            raise ValueError(f"{name}: X is None; expected an array (n, T) or (n, T, d) "
                             "or a list of sequences")
        if _is_sparse(X):
            raise TypeError(
                f"{name}: sparse input is not supported; pass a dense array of shape "
                "(n, T) or (n, T, d) (for example X.toarray())"
            )
        arr, seqs = _split_ragged(X)
        if seqs is not None:
            return self._check_ragged(seqs, reset, ids, dtype)
        arr = _to_numeric(arr, "X")
        if arr.ndim < 2:
            raise ValueError(
                f"{name}: expected X of shape (n, T) or (n, T, d), got a {arr.ndim}-D "
                f"array of shape {arr.shape}. {_reshape_hint()}"
            )
        if arr.ndim > 3:
            raise ValueError(f"{name}: X must be (n, T) or (n, T, d), got shape {arr.shape}")
        if arr.shape[0] == 0:
            raise ValueError(
                f"Found array with 0 sample(s) (shape={arr.shape}) while a minimum of 1 "
                "is required."
            )
        if arr.shape[1] == 0 or (arr.ndim == 3 and arr.shape[2] == 0):
            raise ValueError(
                f"Found array with 0 feature(s) (shape={arr.shape}) while a minimum of 1 "
                "is required: X needs at least one time step and one feature."
            )
        if ids:
            if arr.ndim == 3:
                if arr.shape[2] != 1:
                    raise ValueError(f"{name}: with embedding_dim, X must be (n, T) integer "
                                     f"token ids, got shape {arr.shape}")
                arr = arr[:, :, 0]
            tok = self._check_ids(arr, reset)
            compact, lengths = _compact_token_ids(tok)
            if np.all(lengths == compact.shape[1]):
                lengths = None
            return compact, lengths, 1
        _check_finite(arr, "X")
        if arr.ndim == 2:
            arr = arr[:, :, None]
        d = arr.shape[2]
        self._check_n_features(d, reset)
        return np.ascontiguousarray(arr, dtype=dtype), None, d

    def _check_ragged(self, seqs, reset, ids, dtype):
        name = type(self).__name__
        if len(seqs) == 0:
            raise ValueError("Found array with 0 sample(s) while a minimum of 1 is required.")
        if ids:
            arrs = []
            for i, s in enumerate(seqs):
                s = _to_numeric(np.asarray(s), f"X[{i}]")
                if s.ndim != 1:
                    raise ValueError(f"{name}: with embedding_dim, each sequence must be a 1-D "
                                     f"list of token ids; X[{i}] has shape {s.shape}")
                arrs.append(s)
            T = max(max(len(s) for s in arrs), 1)
            padded = np.zeros((len(arrs), T), dtype=np.float64 if any(
                s.dtype.kind == "f" for s in arrs) else np.int64)
            for i, s in enumerate(arrs):
                padded[i, :len(s)] = s
            tok = self._check_ids(padded, reset)
            compact, lengths = _compact_token_ids(tok)
            if np.all(lengths == compact.shape[1]):
                lengths = None
            return compact, lengths, 1
        arrs = []
        d = None
        for i, s in enumerate(seqs):
            s = _to_numeric(np.asarray(s), f"X[{i}]")
            if s.ndim == 1:
                s = s[:, None]
            if s.ndim != 2:
                raise ValueError(f"{name}: each sequence must be (T_i,) or (T_i, d); X[{i}] "
                                 f"has shape {s.shape}")
            if s.shape[0] == 0:
                raise ValueError(f"{name}: X[{i}] is an empty sequence; every sequence needs "
                                 "at least one time step")
            if d is None:
                d = s.shape[1]
            elif s.shape[1] != d:
                raise ValueError(f"{name}: all sequences need the same number of features; "
                                 f"X[0] has {d}, X[{i}] has {s.shape[1]}")
            _check_finite(s, f"X[{i}]")
            arrs.append(s)
        if d == 0:
            raise ValueError("Found array with 0 feature(s) while a minimum of 1 is required.")
        self._check_n_features(d, reset)
        lengths = np.array([s.shape[0] for s in arrs], dtype=np.int64)
        Xp = np.zeros((len(arrs), int(lengths.max()), d), dtype=dtype)
        for i, s in enumerate(arrs):
            Xp[i, :s.shape[0]] = s
        if np.all(lengths == Xp.shape[1]):
            lengths = None
        return Xp, lengths, d

    def _check_ids(self, arr, reset):
        name = type(self).__name__
        if arr.dtype.kind == "f":
            _check_finite(arr, "X")
            if not np.all(arr == np.round(arr)):
                raise ValueError(f"{name}: with embedding_dim, X must hold integer token ids; "
                                 "found non-integer values")
        tok = arr.astype(np.int64)
        if tok.size and tok.min() < 0:
            raise ValueError(f"{name}: token ids must be >= 0 (0 is padding), found {tok.min()}")
        top = int(tok.max()) if tok.size else 0
        if reset:
            if self.vocab_size is None and top >= MAX_INFERRED_VOCAB:
                raise ValueError(
                    f"{name}: X contains token id {top}; with vocab_size=None the embedding "
                    f"would get {top + 1} rows. Ids must be below {MAX_INFERRED_VOCAB} unless "
                    "vocab_size is given; map tokens to consecutive ids (0 = padding) first")
            vocab = self.vocab_size if self.vocab_size is not None else max(top + 1, 2)
            if top >= vocab:
                raise ValueError(f"{name}: X contains token id {top}, but vocab_size={vocab} "
                                 f"allows ids 0..{vocab - 1}; raise vocab_size")
            self._fit_vocab = vocab
            self.n_features_in_ = 1
        else:
            vocab = self.vocab_size_
            if top >= vocab:
                raise ValueError(f"{name}: X contains token id {top}, but the model was fitted "
                                 f"with vocab_size_={vocab} (ids 0..{vocab - 1}); map unseen "
                                 "tokens to a known id (e.g. an out-of-vocabulary id)")
        return tok

    def _check_n_features(self, d, reset):
        if reset:
            self.n_features_in_ = d
        elif d != self.n_features_in_:
            raise ValueError(
                f"X has {d} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input (features per time step: X is "
                "(n, T, d), or (n, T) for d = 1)."
            )

    # ------------------------------------------------------------ fit

    def _setup(self, p, n_features, n_outputs, sequence_output, first):
        """Build the network (first fit) or check it matches (warm start)."""
        spec = build_spec(
            n_features, p["hidden_sizes"], n_outputs, cell=p["cell"],
            activation=p["activation"], gate_activation=p["gate_activation"],
            bidirectional=p["bidirectional"], dropout=p["dropout"],
            vocab_size=(getattr(self, "_fit_vocab", None) if first else
                        getattr(self, "vocab_size_", None)) if p["embedding_dim"] else None,
            embedding_dim=p["embedding_dim"], sequence_output=sequence_output,
            dtype=p["dtype"],
        )
        if first:
            seed = _seed_from(p["random_state"])
            ss = np.random.SeedSequence(seed).spawn(4)
            self._network = Network(spec, seed=int(ss[0].generate_state(1)[0]),
                                    n_threads=p["n_threads"])
            self._split_rng = np.random.default_rng(ss[1])
            self._shuffle_rng = np.random.default_rng(ss[2])
            self._dropout_rng = np.random.default_rng(ss[3])
            self.loss_curve_ = []
            self.validation_scores_ = None
            self.best_loss_ = np.inf
            self.n_iter_ = 0
            self._no_improvement_count = 0
            if p["embedding_dim"] is not None:
                self.vocab_size_ = spec["vocab_size"]
        else:
            old = dict(self._network.spec)
            diff = sorted(k for k in spec if k != "dropout" and spec[k] != old[k])
            if diff:
                raise ValueError(
                    f"{type(self).__name__}: warm_start/partial_fit needs the same architecture "
                    f"as the fitted model, but {', '.join(diff)} changed "
                    f"(fitted: {', '.join(f'{k}={old[k]!r}' for k in diff)}); "
                    "set warm_start=False to train a new model"
                )
            self._network.set_n_threads(p["n_threads"])
            # fresh dropout masks for the new spec's p are drawn from the same stream
            self._network.spec["dropout"] = spec["dropout"]

    def _fit(self, X, y, incremental, validation_data=None, classes=None):
        p = self._validate_params()
        first = not hasattr(self, "_network") or not (incremental or p["warm_start"])
        return self._guarded_fit(first, lambda: self._fit_body(X, y, incremental,
                                                               validation_data, classes, p, first))

    def _guarded_fit(self, first, body):
        """Run body(), a fit (first: one that builds a new model), so that it never
        leaves a half-fitted estimator (_after_failed_fit). One fit at a time per
        estimator; predict() in another thread meanwhile sees either a clear error
        (a new model is being built) or the weights after some whole optimizer
        step (training continues in place)."""
        token = {"new_model": first}
        if self.__dict__.setdefault("_fit_in_progress", token) is not token:
            raise RuntimeError(f"{type(self).__name__}: fit or partial_fit is already running on "
                               "this estimator in another thread")
        # what the estimator was before this fit, to go back to if it fails
        # before finishing an epoch (a new model replaces attributes, it does
        # not write into the old ones)
        before = dict(self.__dict__) if first else None
        try:
            return body()
        except BaseException as e:
            self._after_failed_fit(e, first, before)
            raise
        finally:
            del self.__dict__["_fit_in_progress"]

    def _after_failed_fit(self, exc, first, before):
        """Never leave a half-fitted estimator: _train has put back the weights of
        the last whole epoch; a new model with no whole epoch is dropped and the
        estimator is what it was before the fit. Says which."""
        name = type(self).__name__
        if first and self.__dict__.get("n_iter_", 0) == 0:
            self.__dict__.clear()
            self.__dict__.update(before)
            if not isinstance(exc, (_exc.DivergenceError, KeyboardInterrupt)):
                return           # bad input and the like: nothing was trained
            outcome = (f"{name} was left as it was before this fit ("
                       + ("its previous model" if hasattr(self, "_network") else "unfitted")
                       + "): no epoch finished.")
        elif isinstance(exc, (_exc.DivergenceError, KeyboardInterrupt)):
            outcome = (f"{name} keeps the weights from the end of epoch {self.n_iter_}, "
                       "its last whole epoch.")
        else:
            return
        if isinstance(exc, KeyboardInterrupt):
            warnings.warn(f"fit interrupted; {outcome}", RuntimeWarning, stacklevel=4)
        else:
            exc.args = (f"{exc.args[0]} {outcome}",) + exc.args[1:]

    def _fit_body(self, X, y, incremental, validation_data, classes, p, first):
        # activation memory of the last partial_fit batch, recycled by the next one
        spent = self.__dict__.pop("_spent_cache", None)
        dtype = np.dtype(p["dtype"]) if first else self._network.dtype
        if first:
            for attr in ("n_features_in_", "_fit_vocab"):
                self.__dict__.pop(attr, None)
        Xa, lengths, d = self._check_X(X, reset=first, p=p, dtype=dtype)
        Y, n_outputs, seq = self._prepare_y(y, Xa, lengths, first, classes)
        self._setup(p, d, n_outputs, seq, first)
        if first:
            self._set_output_info()
        val = None
        if validation_data is not None:
            if not (isinstance(validation_data, (tuple, list)) and len(validation_data) == 2):
                raise ValueError(f"{type(self).__name__}: validation_data must be a tuple "
                                 "(X_val, y_val)")
            Xv, lv, _ = self._check_X(validation_data[0], reset=False, dtype=dtype)
            Yv, _, _ = self._prepare_y(validation_data[1], Xv, lv, False, None, name="y_val")
            val = (Xv, lv, Yv)
        elif p["early_stopping"] and not incremental:
            Xa, lengths, Y, val = self._split_validation(Xa, lengths, Y, p)
        if val is not None and self.validation_scores_ is None:
            self.validation_scores_ = []
        if not incremental:
            self._optimizer = make_optimizer(p["optimizer"], p["learning_rate"], p["weight_decay"])
        elif not hasattr(self, "_optimizer") or first:
            self._optimizer = make_optimizer(p["optimizer"], p["learning_rate"], p["weight_decay"])
        epochs = 1 if incremental else p["epochs"]
        spent = self._train(Xa, lengths, Y, val, p, epochs, use_stopping=not incremental,
                            cache=spent if incremental and not first else None)
        if incremental:
            self._spent_cache = spent
        return self

    def _split_validation(self, Xa, lengths, Y, p):
        n = Xa.shape[0]
        n_val = int(math.ceil(p["validation_fraction"] * n))
        if n_val < 1 or n - n_val < 1:
            raise ValueError(
                f"{type(self).__name__}: early_stopping holds out validation_fraction="
                f"{p['validation_fraction']} of the {n} samples, which leaves "
                f"{n - n_val} for training and {n_val} for validation; both need at least 1"
            )
        perm = self._split_rng.permutation(n)
        vi, ti = np.sort(perm[:n_val]), np.sort(perm[n_val:])
        lv = None if lengths is None else lengths[vi]
        lt = None if lengths is None else lengths[ti]
        return Xa[ti], lt, Y[ti], (Xa[vi], lv, Y[vi])

    def _batch(self, Xa, lengths, Y, idx):
        Xb, Yb = Xa[idx], Y[idx]
        lb, mask = None, None
        if lengths is not None:
            lb = lengths[idx]
            Tb = max(int(lb.max()), 1)
            Xb = Xb[:, :Tb]
            if self._network.spec["sequence_output"]:
                Yb = Yb[:, :Tb]
                mask = np.arange(Tb)[None, :] < lb[:, None]
            if np.all(lb == Tb):
                lb = None
        return Xb, lb, Yb, mask

    def _train(self, Xa, lengths, Y, val, p, epochs, use_stopping, cache=None):
        """Train for ``epochs`` epochs. ``cache``: a spent training cache of this
        network whose memory the first batch may recycle. Returns the last
        batch's cache (spent)."""
        net = self._network
        opt = self._optimizer
        n_threads = effective_n_threads(net.n_threads)
        bs = min(p["batch_size"], Xa.shape[0])
        name = type(self).__name__
        restore = use_stopping and val is not None and p["restore_best_weights"]
        best_params = None
        for epoch in range(epochs):
            # the weights and optimizer state after the last whole epoch: a
            # diverged or interrupted epoch leaves nothing of itself behind
            checkpoint = (net.params.copy(), copy.deepcopy(opt))
            try:
                epoch_loss, val_loss, cache = self._train_epoch(
                    epoch, epochs, Xa, lengths, Y, val, p, cache, net, opt, n_threads, bs)
            except BaseException:
                with net.updating():
                    net.params[...] = checkpoint[0]
                self._optimizer = opt = checkpoint[1]
                raise
            del checkpoint
            self.loss_curve_.append(epoch_loss)
            self.n_iter_ += 1
            if val_loss is not None:
                self.validation_scores_.append(val_loss)
            monitored = epoch_loss if val_loss is None else val_loss
            if monitored > self.best_loss_ - p["tol"]:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if monitored < self.best_loss_:
                self.best_loss_ = monitored
                if restore:
                    best_params = net.params.copy()
            if use_stopping and self._no_improvement_count >= p["n_iter_no_change"]:
                if p["verbose"]:
                    what = "Validation loss" if val_loss is not None else "Training loss"
                    print(f"{name}: {what} did not improve more than tol={p['tol']} for "
                          f"{p['n_iter_no_change']} consecutive epochs. Stopping.", flush=True)
                break
        if restore and best_params is not None:
            with net.updating():
                net.params[...] = best_params
        self._no_improvement_count = 0 if use_stopping else self._no_improvement_count
        return cache

    def _train_epoch(self, epoch, epochs, Xa, lengths, Y, val, p, cache, net, opt, n_threads, bs):
        """One pass over the data; returns (mean loss, validation loss or None, spent cache)."""
        n = Xa.shape[0]
        t0 = time.perf_counter()
        order = self._shuffle_rng.permutation(n) if p["shuffle"] else np.arange(n)
        total = 0.0
        for b, start in enumerate(range(0, n, bs)):
            idx = order[start:start + bs]
            Xb, lb, Yb, mask = self._batch(Xa, lengths, Y, idx)
            # the previous batch's cache is spent: recycle its activation memory
            out, cache = net.forward(Xb, lb, train=True, rng=self._dropout_rng, reuse=cache)
            loss, dout = loss_and_grad(self._loss_name, out, Yb, mask)
            if not math.isfinite(loss):
                self._diverged(epoch, b, "loss", loss, p)
            net.backward(cache, dout)
            if p["clip_norm"] is not None:
                norm = clip_grad_norm(net.grad, p["clip_norm"])
            else:
                norm = grad_norm(net.grad)
            if not math.isfinite(norm):
                self._diverged(epoch, b, "gradient norm", norm, p)
            with net.updating():
                opt.step(net.params, net.grad, n_threads)
            total += loss * len(idx)
        epoch_loss = total / n
        if not math.isfinite(epoch_loss):
            self._diverged(epoch, None, "mean loss", epoch_loss, p)
        val_loss = None
        if val is not None:
            val_loss = self._eval_loss(*val)
            if not math.isfinite(val_loss):
                self._diverged(epoch, None, "validation loss", val_loss, p)
        if p["verbose"]:
            vl = "" if val_loss is None else f", val_loss {val_loss:.6f}"
            print(f"{type(self).__name__} epoch {epoch + 1}/{epochs}: "
                  f"loss {epoch_loss:.6f}{vl}, {time.perf_counter() - t0:.2f}s", flush=True)
        return epoch_loss, val_loss, cache

    def _diverged(self, epoch, batch, what, value, p):
        where = f"epoch {self.n_iter_ + 1}" + ("" if batch is None else f", batch {batch + 1}")
        hint = (f"lower learning_rate (now {p['learning_rate']}), set clip_norm "
                f"(now {p['clip_norm']}; e.g. clip_norm=1.0), or standardise X and y")
        if p["activation"] == "relu":
            hint += "; activation='relu' is unbounded and usually needs a smaller learning_rate"
        raise _exc.DivergenceError(
            f"{type(self).__name__}: training diverged at {where}: the {what} became {value}. "
            f"To fix it, {hint}."
        )

    def _eval_loss(self, Xv, lv, Yv):
        out = self._network.predict_raw(Xv, lv, chunk=_PREDICT_CHUNK)
        mask = None
        if self._network.spec["sequence_output"] and lv is not None:
            mask = np.arange(out.shape[1])[None, :] < lv[:, None]
        loss, _ = loss_and_grad(self._loss_name, out, Yv.astype(out.dtype, copy=False)
                                if Yv.dtype.kind == "f" else Yv, mask)
        return loss

    # ------------------------------------------------------------ predict

    def _check_fitted(self):
        fitting = self.__dict__.get("_fit_in_progress")
        if fitting is not None and fitting["new_model"]:
            raise RuntimeError(
                f"This {type(self).__name__} is being fitted in another thread and has no "
                "model to use until fit returns. To keep serving while a model retrains, "
                "fit a copy (sklearn.base.clone) and swap it in when fit returns; "
                "partial_fit and warm_start train in place, and predict meanwhile uses the "
                "weights after some whole optimizer step."
            )
        if not hasattr(self, "_network"):
            raise _exc.not_fitted_error(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with "
                "appropriate arguments before using this estimator."
            )

    def _raw_outputs(self, X):
        """Network outputs (float64) for X: (n, K) or (n, T, K); also lengths."""
        self._check_fitted()
        net = self._network
        if self.n_threads != net.n_threads:
            net.set_n_threads(_Checker(self).n_threads())
        Xa, lengths, _ = self._check_X(X, reset=False, dtype=net.dtype)
        out = net.predict_raw(Xa, lengths, chunk=_PREDICT_CHUNK)
        return out.astype(np.float64), lengths

    # ------------------------------------------------------------ io

    def save(self, path):
        """Write the fitted model to one .npz file; read it back with ``fastlstm.load``."""
        from .io import save

        self._check_fitted()
        return save(self, path)

    def _to_file_payload(self):
        params = {}
        for k, v in self.get_params(deep=False).items():
            if isinstance(v, (np.random.RandomState, np.random.Generator)):
                v = None  # a generator's state is not part of the model
            elif isinstance(v, tuple):
                v = list(v)
            elif k == "dtype":
                v = np.dtype(v).name
            elif isinstance(v, np.generic):
                v = v.item()
            params[k] = v
        fitted = {
            "n_features_in_": int(self.n_features_in_),
            "loss_curve_": [float(x) for x in self.loss_curve_],
            "validation_scores_": None if self.validation_scores_ is None
            else [float(x) for x in self.validation_scores_],
            "best_loss_": float(self.best_loss_),
            "n_iter_": int(self.n_iter_),
        }
        fitted.update(self._extra_fitted())
        config = {"estimator": type(self).__name__, "params": params, "fitted": fitted,
                  "network": dict(self._network.spec), "fastlstm_version": _version()}
        arrays = {"params": self._network.params.copy()}
        arrays.update(self._extra_arrays())
        return config, arrays

    def _extra_fitted(self):
        return {}

    def _extra_arrays(self):
        return {}

    @classmethod
    def _check_declared_arrays(cls, config):
        """Before any array is read: the params array the config declares must be
        exactly what its architecture holds (a hostile config costs nothing)."""
        try:
            check_spec(config.get("network"))
        except (TypeError, ValueError) as e:
            raise ValueError(f"invalid network spec in model file: {e}") from None
        spec = config["network"]
        declared = config["arrays"].get("params")
        n = param_count(spec)
        if declared is None or declared["shape"] != [n] or declared["dtype"] != spec["dtype"]:
            raise ValueError(f"the config declares params as {declared}, but the architecture "
                             f"in the config has {n} {spec['dtype']} values")

    @classmethod
    def _from_file_payload(cls, config, arrays):
        for key in ("params", "fitted", "network"):
            if not isinstance(config.get(key), dict):
                raise ValueError(f"model config needs an object {key!r}")
        params = dict(config["params"])
        names = set(cls._get_param_names())
        if set(params) != names:
            raise ValueError(
                f"model config params do not match {cls.__name__}: missing "
                f"{sorted(names - set(params))}, unexpected {sorted(set(params) - names)}"
            )
        for k, v in params.items():
            if isinstance(v, list):
                params[k] = tuple(v)
            elif isinstance(v, dict):
                raise ValueError(f"model config param {k!r} must not be an object")
        est = cls(**params)
        try:
            p = est._validate_params()
        except TypeError as e:
            raise ValueError(f"invalid params in model file: {e}") from None
        spec = config["network"]
        try:
            check_spec(spec)
        except (TypeError, ValueError) as e:
            raise ValueError(f"invalid network spec in model file: {e}") from None
        spec = dict(spec)
        fitted = config["fitted"]
        est._check_payload_consistency(p, spec, fitted, arrays)
        flat = arrays["params"]
        if flat.ndim != 1 or flat.dtype != np.dtype(spec["dtype"]):
            raise ValueError(f"params must be a 1-D {spec['dtype']} array, got "
                             f"{flat.dtype} of shape {flat.shape}")
        if flat.size != param_count(spec):
            raise ValueError(f"params holds {flat.size} values, but the architecture in the "
                             f"config has {param_count(spec)}")
        net = Network.from_params(spec, flat, n_threads=p["n_threads"], copy=False)
        est._network = net
        est._load_fitted(fitted, spec, arrays)
        seed = _seed_from(p["random_state"])
        ss = np.random.SeedSequence(seed).spawn(4)
        est._split_rng = np.random.default_rng(ss[1])
        est._shuffle_rng = np.random.default_rng(ss[2])
        est._dropout_rng = np.random.default_rng(ss[3])
        est._no_improvement_count = 0
        return est

    def _check_payload_consistency(self, p, spec, fitted, arrays):
        name = type(self).__name__
        expected = {"params"} | set(self._extra_array_names(fitted))
        if set(arrays) != expected:
            raise ValueError(f"{name} model file must hold the arrays {sorted(expected)}, "
                             f"found {sorted(arrays)}")
        for key in ("hidden_sizes",):
            if list(p[key]) != list(spec[key]):
                raise ValueError(f"network spec {key}={spec[key]} does not match the params "
                                 f"({list(p[key])})")
        for key in ("cell", "activation", "gate_activation", "bidirectional", "dtype"):
            if p[key] != spec[key]:
                raise ValueError(f"network spec {key}={spec[key]!r} does not match the params "
                                 f"({p[key]!r})")
        if p.get("embedding_dim") != spec["embedding_dim"]:
            raise ValueError("network spec embedding_dim does not match the params")
        if p.get("vocab_size") is not None and p["vocab_size"] != spec["vocab_size"]:
            raise ValueError("network spec vocab_size does not match the params")
        # learned scalars
        nf = fitted.get("n_features_in_")
        if not _is_int(nf) or nf < 1:
            raise ValueError(f"fitted n_features_in_ must be an int >= 1, got {nf!r}")
        if spec["embedding_dim"] is None and nf != spec["input_size"]:
            raise ValueError(f"n_features_in_={nf} does not match the network input size "
                             f"{spec['input_size']}")
        if spec["embedding_dim"] is not None and nf != 1:
            raise ValueError("n_features_in_ must be 1 with token-id input")
        n_iter = fitted.get("n_iter_")
        if not _is_int(n_iter) or n_iter < 0:
            raise ValueError(f"fitted n_iter_ must be an int >= 0, got {n_iter!r}")
        lc = fitted.get("loss_curve_")
        if not isinstance(lc, list) or len(lc) != n_iter or not all(
            _is_real(v) and math.isfinite(v) for v in lc
        ):
            raise ValueError("fitted loss_curve_ must be a list of n_iter_ finite numbers")
        vs = fitted.get("validation_scores_")
        if vs is not None and (not isinstance(vs, list) or len(vs) > n_iter or not all(
            _is_real(v) and math.isfinite(v) for v in vs
        )):
            raise ValueError("fitted validation_scores_ must be null or a list of finite numbers")
        bl = fitted.get("best_loss_")
        if not _is_real(bl) or not math.isfinite(bl):
            raise ValueError(f"fitted best_loss_ must be a finite number, got {bl!r}")
        self._check_extra_fitted(fitted, spec, arrays)

    def _extra_array_names(self, fitted):
        return []

    def _check_extra_fitted(self, fitted, spec, arrays):
        pass

    def _load_fitted(self, fitted, spec, arrays):
        self.n_features_in_ = int(fitted["n_features_in_"])
        self.loss_curve_ = [float(v) for v in fitted["loss_curve_"]]
        vs = fitted["validation_scores_"]
        self.validation_scores_ = None if vs is None else [float(v) for v in vs]
        self.best_loss_ = float(fitted["best_loss_"])
        self.n_iter_ = int(fitted["n_iter_"])
        if spec["embedding_dim"] is not None:
            self.vocab_size_ = int(spec["vocab_size"])
        self._set_output_info_from(fitted, spec, arrays)


_COMMON_DOC = """
    hidden_sizes : tuple of int, default=(50,)
        Units of each stacked recurrent layer.
    cell : {"lstm", "peephole", "cifg", "gru"}, default="lstm"
    activation : {"tanh", "relu"}, default="tanh"
        Candidate and cell-output activation (Keras' ``activation``).
    gate_activation : {"sigmoid", "hard_sigmoid"}, default="sigmoid"
    bidirectional : bool, default=False
        Run each layer in both directions and concatenate the outputs.
    dropout : float in [0, 1), default=0.0
        Dropout on the output of every recurrent layer (training only).
    optimizer : {"adam", "sgd"}, default="adam"
        "sgd" uses momentum 0.9.
    learning_rate : float, default=0.001
    batch_size : int, default=32
    epochs : int, default=100
        Passes over the training data (fewer if training stops early).
    shuffle : bool, default=True
        Shuffle the samples each epoch.
    weight_decay : float, default=0.0
        L2 penalty added to the gradient (torch.optim's ``weight_decay``).
    clip_norm : float or None, default=None
        Clip the gradient to this global L2 norm before each step.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data (or use
        ``fit(..., validation_data=(X_val, y_val))``) and stop when the
        validation loss has not improved by ``tol`` for ``n_iter_no_change``
        epochs. Without it, training stops when the training loss stalls the
        same way (as scikit-learn's MLP does).
    validation_fraction : float in (0, 1), default=0.1
    n_iter_no_change : int, default=10
    tol : float, default=1e-4
    restore_best_weights : bool, default=True
        With a validation set, end with the weights of the best validation epoch.
    warm_start : bool, default=False
        ``fit`` continues from the current weights instead of starting over.
    random_state : int, RandomState, Generator or None, default=None
        Seeds initialisation, shuffling, dropout and the validation split:
        the same int gives bitwise-identical models for any ``n_threads``.
    n_threads : int or None, default=None
        OpenMP threads of the kernels (None: all cores, honouring OMP_NUM_THREADS).
    verbose : int, default=0
        1 prints one line per epoch (loss, validation loss, seconds).
    dtype : {"float32", "float64"}, default="float32"

    Attributes
    ----------
    n_features_in_ : int
        Features per time step (d).
    loss_curve_ : list of float
        Mean training loss of each epoch (without the weight-decay term).
    validation_scores_ : list of float or None
        Validation loss of each epoch (lower is better), when a validation
        set is used.
    best_loss_ : float
        Best monitored loss (validation loss with a validation set,
        training loss otherwise).
    n_iter_ : int
        Epochs run.
"""


class LSTMRegressor(_LSTMBase):
    __doc__ = """Recurrent-network regressor on sequences (LSTM / GRU + dense output).

    Parameters
    ----------
    loss : {"mse", "mae", "huber"}, default="mse"
        Huber uses delta = 1.
    embedding_dim : int or None, default=None
        With an int, X holds integer token ids (0 = padding, masked) fed
        through an embedding of this size.
    vocab_size : int or None, default=None
        Rows of the embedding (ids 0 .. vocab_size-1); None: max id + 1 at fit.
    """ + _COMMON_DOC + """
    n_outputs_ : int
        Outputs per sample (or per step for sequence targets).
    """

    _estimator_type = "regressor"
    _losses = ("mse", "mae", "huber")

    def __init__(self, hidden_sizes=(50,), cell="lstm", activation="tanh",
                 gate_activation="sigmoid", bidirectional=False, dropout=0.0,
                 embedding_dim=None, vocab_size=None, loss="mse", optimizer="adam",
                 learning_rate=0.001, batch_size=32, epochs=100, shuffle=True,
                 weight_decay=0.0, clip_norm=None, early_stopping=False,
                 validation_fraction=0.1, n_iter_no_change=10, tol=1e-4,
                 restore_best_weights=True, warm_start=False, random_state=None,
                 n_threads=None, verbose=0, dtype="float32"):
        self.hidden_sizes = hidden_sizes
        self.cell = cell
        self.activation = activation
        self.gate_activation = gate_activation
        self.bidirectional = bidirectional
        self.dropout = dropout
        self.embedding_dim = embedding_dim
        self.vocab_size = vocab_size
        self.loss = loss
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.epochs = epochs
        self.shuffle = shuffle
        self.weight_decay = weight_decay
        self.clip_norm = clip_norm
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.restore_best_weights = restore_best_weights
        self.warm_start = warm_start
        self.random_state = random_state
        self.n_threads = n_threads
        self.verbose = verbose
        self.dtype = dtype

    @property
    def _loss_name(self):
        return self._fit_loss

    def _prepare_y(self, y, Xa, lengths, first, classes, name="y"):
        est = type(self).__name__
        n = Xa.shape[0]
        if y is None:
            raise ValueError(f"{est} requires y to be passed, but the target y is None")
        arr, seqs = _split_ragged(y)
        if seqs is not None:
            # variable-length sequence targets: pad like X
            seqs = [_to_numeric(np.asarray(s), name) for s in seqs]
            seqs = [s[:, None] if s.ndim == 1 else s for s in seqs]
            if len(seqs) != n:
                raise ValueError(f"X and {name} have inconsistent numbers of samples: "
                                 f"{n} and {len(seqs)}")
            k = seqs[0].shape[1]
            T = Xa.shape[1]
            arr = np.zeros((n, T, k))
            for i, s in enumerate(seqs):
                li = T if lengths is None else lengths[i]
                if s.ndim != 2 or s.shape[1] != k or s.shape[0] != li:
                    raise ValueError(f"{name}[{i}] must have shape ({li}, {k}) to match X[{i}], "
                                     f"got {s.shape}")
                arr[i, :li] = s
        arr = _to_numeric(arr, name)
        if arr.ndim == 0 or arr.ndim > 3:
            raise ValueError(f"{est}: {name} must be (n,), (n, k) or (n, T, k), got shape "
                             f"{arr.shape}")
        if arr.shape[0] != n:
            raise ValueError(f"X and {name} have inconsistent numbers of samples: X has {n}, "
                             f"{name} has {arr.shape[0]} (shape {arr.shape})")
        if arr.ndim >= 2 and arr.shape[-1] == 0:
            raise ValueError(f"{est}: {name} has 0 outputs (shape {arr.shape})")
        _check_finite(arr.astype(np.float64, copy=False), name)
        if arr.ndim == 3 and arr.shape[1] != Xa.shape[1]:
            raise ValueError(f"{est}: sequence targets {name} of shape {arr.shape} need one "
                             f"value per time step of X (T = {Xa.shape[1]})")
        dtype = Xa.dtype if Xa.dtype.kind == "f" else np.dtype(
            self._validate_params()["dtype"] if first else self._network.dtype)
        Y = arr.reshape(n, 1) if arr.ndim == 1 else arr
        Y = np.ascontiguousarray(Y, dtype=dtype)
        if first:
            self._fit_loss = self._validate_params()["loss"]
            self._y_ndim = arr.ndim
            self.n_outputs_ = Y.shape[-1]
        else:
            if arr.ndim != self._y_ndim or Y.shape[-1] != self.n_outputs_:
                raise ValueError(f"{est}: {name} has shape {arr.shape}, but the model was "
                                 f"fitted on targets with {self.n_outputs_} output(s) and "
                                 f"{self._y_ndim} dimension(s)")
        return Y, Y.shape[-1], arr.ndim == 3

    def _set_output_info(self):
        pass

    def _extra_fitted(self):
        return {"n_outputs_": int(self.n_outputs_), "y_ndim": int(self._y_ndim),
                "loss": self._fit_loss}

    def _check_extra_fitted(self, fitted, spec, arrays):
        k, nd, loss = fitted.get("n_outputs_"), fitted.get("y_ndim"), fitted.get("loss")
        if not _is_int(k) or k != spec["n_outputs"]:
            raise ValueError("fitted n_outputs_ does not match the network")
        if nd not in (1, 2, 3) or (nd == 1 and k != 1) or ((nd == 3) != spec["sequence_output"]):
            raise ValueError(f"fitted y_ndim={nd!r} is inconsistent with the network")
        if loss not in self._losses:
            raise ValueError(f"fitted loss {loss!r} is not one of {self._losses}")

    def _set_output_info_from(self, fitted, spec, arrays):
        self.n_outputs_ = int(fitted["n_outputs_"])
        self._y_ndim = int(fitted["y_ndim"])
        self._fit_loss = fitted["loss"]

    def fit(self, X, y, validation_data=None):
        """Train on X, y; returns self. See the class docstring for the input forms."""
        return self._fit(X, y, incremental=False, validation_data=validation_data)

    def partial_fit(self, X, y):
        """One epoch over X, y, continuing from the current weights (and optimizer state).

        The activation memory of the last batch is kept for the next call to
        recycle (one batch of LSTM activations; not pickled, released by ``fit``)."""
        return self._fit(X, y, incremental=True)

    def predict(self, X):
        """Predictions: (n,), (n, k) or (n, T, k), matching the shape of y in fit."""
        out, _ = self._raw_outputs(X)
        if self._y_ndim == 1:
            return out[:, 0]
        return out

    def score(self, X, y, sample_weight=None):
        """Coefficient of determination R^2 (uniform average over outputs)."""
        pred = self.predict(X)
        y = np.asarray(y, dtype=np.float64)
        if y.shape != pred.shape:
            if y.size == pred.size:
                y = y.reshape(pred.shape)
            else:
                raise ValueError(f"y has shape {y.shape}, predictions have shape {pred.shape}")
        n = y.shape[0]
        y2 = y.reshape(n, -1)
        p2 = pred.reshape(n, -1)
        w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        if w.shape != (n,):
            raise ValueError(f"sample_weight must have shape ({n},), got {w.shape}")
        w = w[:, None]
        num = (w * (y2 - p2) ** 2).sum(axis=0)
        mean = (w * y2).sum(axis=0) / w.sum()
        den = (w * (y2 - mean) ** 2).sum(axis=0)
        ok = den != 0
        r2 = np.ones(y2.shape[1])
        r2[ok] = 1 - num[ok] / den[ok]
        r2[~ok & (num != 0)] = 0.0
        return float(r2.mean())


class LSTMClassifier(_LSTMBase):
    __doc__ = """Recurrent-network classifier on sequences (binary and multiclass log-loss).

    Labels may be any sortable values (ints, strings); ``classes_`` holds
    them sorted. Two classes use one sigmoid output, more use a softmax.

    Parameters
    ----------
    embedding_dim : int or None, default=None
        With an int, X holds integer token ids (0 = padding, masked) fed
        through an embedding of this size (Keras ``Embedding(vocab, dim,
        mask_zero=True)``).
    vocab_size : int or None, default=None
        Rows of the embedding (ids 0 .. vocab_size-1); None: max id + 1 at fit.
    loss : {"log_loss"}, default="log_loss"
    """ + _COMMON_DOC + """
    classes_ : ndarray of shape (n_classes,)
    """

    _estimator_type = "classifier"
    _losses = ("log_loss",)

    def __init__(self, hidden_sizes=(50,), cell="lstm", activation="tanh",
                 gate_activation="sigmoid", bidirectional=False, dropout=0.0,
                 embedding_dim=None, vocab_size=None, loss="log_loss", optimizer="adam",
                 learning_rate=0.001, batch_size=32, epochs=100, shuffle=True,
                 weight_decay=0.0, clip_norm=None, early_stopping=False,
                 validation_fraction=0.1, n_iter_no_change=10, tol=1e-4,
                 restore_best_weights=True, warm_start=False, random_state=None,
                 n_threads=None, verbose=0, dtype="float32"):
        self.hidden_sizes = hidden_sizes
        self.cell = cell
        self.activation = activation
        self.gate_activation = gate_activation
        self.bidirectional = bidirectional
        self.dropout = dropout
        self.embedding_dim = embedding_dim
        self.vocab_size = vocab_size
        self.loss = loss
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.epochs = epochs
        self.shuffle = shuffle
        self.weight_decay = weight_decay
        self.clip_norm = clip_norm
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.restore_best_weights = restore_best_weights
        self.warm_start = warm_start
        self.random_state = random_state
        self.n_threads = n_threads
        self.verbose = verbose
        self.dtype = dtype

    @property
    def _loss_name(self):
        return "binary_log_loss" if len(self.classes_) == 2 else "log_loss"

    def _labels_1d(self, y, name):
        est = type(self).__name__
        if y is None:
            raise ValueError(f"{est} requires y to be passed, but the target y is None")
        arr = np.asarray(y)
        if np.iscomplexobj(arr):
            raise ValueError(f"Complex data not supported: {name} has dtype {arr.dtype}.")
        if arr.ndim == 2 and arr.shape[1] == 1:
            warnings.warn(
                "A column-vector y was passed when a 1d array was expected. Please change "
                "the shape of y to (n_samples, ), for example using ravel().",
                _exc.data_conversion_warning_class(), stacklevel=4,
            )
            arr = arr[:, 0]
        if arr.ndim != 1:
            raise ValueError(f"{est}: {name} should be a 1d array of labels, got an array of "
                             f"shape {arr.shape}; multi-output / multi-label classification "
                             "is not supported")
        if arr.dtype.kind in "fc" or (arr.dtype == object and any(
                isinstance(v, float) for v in arr)):
            try:
                f = arr.astype(np.float64)
            except (TypeError, ValueError):
                raise ValueError(f"Unknown label type: {name} mixes types") from None
            if not np.isfinite(f).all():
                raise ValueError(f"Input {name} contains NaN or infinity.")
            if not np.all(f == np.round(f)):
                raise ValueError(
                    f"Unknown label type: continuous. {est} needs class labels, but {name} "
                    "holds continuous values; use LSTMRegressor for regression"
                )
        return arr

    def _prepare_y(self, y, Xa, lengths, first, classes, name="y"):
        est = type(self).__name__
        arr = self._labels_1d(y, name)
        n = Xa.shape[0]
        if arr.shape[0] != n:
            raise ValueError(f"X and {name} have inconsistent numbers of samples: X has {n}, "
                             f"{name} has {arr.shape[0]}")
        try:
            seen = np.unique(arr)
        except TypeError:
            raise ValueError(f"Unknown label type: {name} mixes values that cannot be "
                             "compared (e.g. strings and numbers)") from None
        if first:
            if classes is not None:
                cls_arr = np.unique(np.asarray(classes))
                missing = np.setdiff1d(seen, cls_arr)
                if missing.size:
                    raise ValueError(f"{name} has labels {missing.tolist()} not in classes")
            else:
                cls_arr = seen
            if cls_arr.shape[0] < 2:
                raise ValueError(
                    f"{est} needs samples of at least 2 classes in the data, but the data "
                    f"contains only one class: {cls_arr[0] if cls_arr.size else None!r}"
                )
            self.classes_ = cls_arr
        else:
            if classes is not None and not np.array_equal(np.unique(np.asarray(classes)),
                                                          self.classes_):
                raise ValueError(f"classes={classes!r} is not the same as on the first call "
                                 f"({self.classes_.tolist()})")
            unknown = np.setdiff1d(seen, self.classes_)
            if unknown.size:
                raise ValueError(f"{name} contains labels {unknown.tolist()} that were not "
                                 f"seen in the first fit (classes_={self.classes_.tolist()}); "
                                 "warm_start and partial_fit need the same classes")
        idx = np.searchsorted(self.classes_, arr)
        dtype = np.dtype(self._validate_params()["dtype"] if first else self._network.dtype)
        if len(self.classes_) == 2:
            Y = (idx == 1).astype(dtype)[:, None]
            return Y, 1, False
        return idx.astype(np.int64), len(self.classes_), False

    def _set_output_info(self):
        pass

    def _extra_array_names(self, fitted):
        return ["classes"]

    def _extra_arrays(self):
        cls = self.classes_
        if cls.dtype == object:
            try:
                cls = cls.astype(str) if all(isinstance(c, str) for c in cls) \
                    else cls.astype(np.float64)
            except (TypeError, ValueError):
                raise ValueError("classes_ of this type cannot be saved to a model file")
        if cls.dtype.kind not in "biufU":
            raise ValueError(f"classes_ of dtype {cls.dtype} cannot be saved to a model file")
        if cls.dtype.kind == "i":
            cls = cls.astype(np.int64)
        if cls.dtype.kind == "u":
            cls = cls.astype(np.int64)
        return {"classes": cls}

    def _check_extra_fitted(self, fitted, spec, arrays):
        cls = arrays["classes"]
        if cls.ndim != 1 or cls.shape[0] < 2:
            raise ValueError(f"classes must be a 1-D array of at least 2 labels, got shape "
                             f"{cls.shape}")
        if not np.array_equal(np.unique(cls), cls):
            raise ValueError("classes must be sorted and unique")
        k = 1 if cls.shape[0] == 2 else cls.shape[0]
        if spec["n_outputs"] != k:
            raise ValueError(f"{cls.shape[0]} classes need {k} network outputs, the config "
                             f"says {spec['n_outputs']}")
        if spec["sequence_output"]:
            raise ValueError("a classifier network has no sequence output")

    def _set_output_info_from(self, fitted, spec, arrays):
        self.classes_ = arrays["classes"]

    def fit(self, X, y, validation_data=None):
        """Train on X, labels y; returns self."""
        return self._fit(X, y, incremental=False, validation_data=validation_data)

    def partial_fit(self, X, y, classes=None):
        """One epoch over X, y. ``classes`` (all labels) is required on the first call.

        As for the regressor, the last batch's activation memory is kept for the
        next call to recycle."""
        if not hasattr(self, "_network") and classes is None:
            raise ValueError(f"{type(self).__name__}: classes must be passed on the first call "
                             "to partial_fit (all labels that will ever appear)")
        return self._fit(X, y, incremental=True, classes=classes)

    def predict_proba(self, X):
        """Class probabilities (n, n_classes), columns in the order of ``classes_``."""
        out, _ = self._raw_outputs(X)
        if len(self.classes_) == 2:
            z = out[:, 0]
            p1 = np.where(z >= 0, 1.0 / (1.0 + np.exp(-np.abs(z))),
                          np.exp(-np.abs(z)) / (1.0 + np.exp(-np.abs(z))))
            return np.stack([1.0 - p1, p1], axis=1)
        z = out - out.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def predict_log_proba(self, X):
        out, _ = self._raw_outputs(X)
        if len(self.classes_) == 2:
            z = out[:, 0]
            # log sigmoid(z) = -softplus(-z); log(1 - sigmoid(z)) = -softplus(z)
            sp = lambda t: np.maximum(t, 0) + np.log1p(np.exp(-np.abs(t)))  # noqa: E731
            return np.stack([-sp(z), -sp(-z)], axis=1)
        z = out - out.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    def predict(self, X):
        """Predicted labels (n,) taken from ``classes_``."""
        out, _ = self._raw_outputs(X)
        if len(self.classes_) == 2:
            idx = (out[:, 0] > 0).astype(np.int64)
        else:
            idx = np.argmax(out, axis=1)
        return self.classes_[idx]

    def score(self, X, y, sample_weight=None):
        """Mean accuracy (weighted by sample_weight)."""
        pred = self.predict(X)
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.shape != pred.shape:
            raise ValueError(f"y has shape {y.shape}, predictions have shape {pred.shape}")
        correct = (pred == y).astype(np.float64)
        if sample_weight is None:
            return float(correct.mean())
        w = np.asarray(sample_weight, dtype=np.float64)
        return float((w * correct).sum() / w.sum())


# ====================================================================== forecaster


class LSTMForecaster(_LSTMBase):
    __doc__ = """Time-series forecaster: windows of ``window`` past steps -> the next ``horizon``.

    ``fit(series)`` on (n_time,) or (n_time, n_vars): standardises every
    variable with the mean and standard deviation of the training series,
    cuts it into sliding windows (``fastlstm.sliding_windows``) and trains a
    recurrent network on them. ``predict()`` forecasts the ``horizon`` steps
    after the training series, ``predict(history)`` those after any other
    history of at least ``window`` steps.

    Parameters
    ----------
    window : int
        Past steps the model sees.
    horizon : int, default=1
        Steps forecast.
    strategy : {"direct", "recursive"}, default="direct"
        "direct": one model outputs the whole horizon at once; "recursive":
        a one-step model applied ``horizon`` times, feeding back its forecasts.
    difference : bool, default=False
        Model the first differences of the series (then scaled) and add the
        forecast differences back onto the last observed value. Removes a
        trend the network would otherwise have to extrapolate.
    loss : {"mse", "mae", "huber"}, default="mse"

    With ``early_stopping`` the validation windows are the last
    ``validation_fraction`` of them (time order), not a random sample.
    """ + _COMMON_DOC + """
    mean_, scale_ : ndarray of shape (n_vars,)
        The standardisation fitted on the training series.
    last_window_ : ndarray of shape (window + difference, n_vars)
        The end of the training series (what ``predict()`` starts from).
    """

    _estimator_type = None
    _losses = ("mse", "mae", "huber")

    def __init__(self, window, horizon=1, strategy="direct", difference=False,
                 hidden_sizes=(50,), cell="lstm",
                 activation="tanh", gate_activation="sigmoid", bidirectional=False,
                 dropout=0.0, loss="mse", optimizer="adam", learning_rate=0.001,
                 batch_size=32, epochs=100, shuffle=True, weight_decay=0.0, clip_norm=None,
                 early_stopping=False, validation_fraction=0.1, n_iter_no_change=10,
                 tol=1e-4, restore_best_weights=True, warm_start=False, random_state=None,
                 n_threads=None, verbose=0, dtype="float32"):
        self.window = window
        self.horizon = horizon
        self.strategy = strategy
        self.difference = difference
        self.hidden_sizes = hidden_sizes
        self.cell = cell
        self.activation = activation
        self.gate_activation = gate_activation
        self.bidirectional = bidirectional
        self.dropout = dropout
        self.loss = loss
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.epochs = epochs
        self.shuffle = shuffle
        self.weight_decay = weight_decay
        self.clip_norm = clip_norm
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.restore_best_weights = restore_best_weights
        self.warm_start = warm_start
        self.random_state = random_state
        self.n_threads = n_threads
        self.verbose = verbose
        self.dtype = dtype

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = False
        return tags

    @property
    def _loss_name(self):
        return self._fit_loss

    def _validate_params(self):
        p = super()._validate_params()
        c = _Checker(self)
        p["window"] = c.int_("window", 1)
        p["horizon"] = c.int_("horizon", 1)
        p["strategy"] = c.choice("strategy", ("direct", "recursive"))
        p["difference"] = c.bool_("difference")
        return p

    def _check_series(self, series, name, reset):
        est = type(self).__name__
        if series is None:
            raise ValueError(f"{est}: {name} is None; expected an array (n_time,) or "
                             "(n_time, n_vars)")
        if _is_sparse(series):
            raise TypeError(f"{est}: sparse input is not supported for {name}")
        arr = _to_numeric(np.asarray(series), name)
        if arr.ndim not in (1, 2):
            raise ValueError(f"{est}: {name} must be (n_time,) or (n_time, n_vars), got shape "
                             f"{arr.shape}")
        if arr.shape[0] == 0 or (arr.ndim == 2 and arr.shape[1] == 0):
            raise ValueError(f"{est}: {name} is empty (shape {arr.shape})")
        arr = arr.astype(np.float64)
        _check_finite(arr, name)
        univariate = arr.ndim == 1
        arr2 = arr.reshape(arr.shape[0], -1)
        if reset:
            self.n_features_in_ = arr2.shape[1]
            self._univariate = univariate
        elif arr2.shape[1] != self.n_features_in_:
            raise ValueError(f"{est}: {name} has {arr2.shape[1]} variables, but the model was "
                             f"fitted on {self.n_features_in_}")
        return arr2

    def _prepare_y(self, y, Xa, lengths, first, classes, name="y"):
        return y, y.shape[1], False

    def _set_output_info(self):
        pass

    def fit(self, series, y=None):
        """Fit on a series (n_time,) or (n_time, n_vars); ``y`` is ignored. Returns self."""
        p = self._validate_params()
        first = not (p["warm_start"] and hasattr(self, "_network"))
        return self._guarded_fit(first, lambda: self._fit_series(series, p, first))

    def _fit_series(self, series, p, first):
        est = type(self).__name__
        arr = self._check_series(series, "series", reset=first)
        need = p["window"] + (p["horizon"] if p["strategy"] == "direct" else 1) \
            + int(p["difference"])
        if arr.shape[0] < need:
            raise ValueError(
                f"{est}: series of length {arr.shape[0]} is too short for window={p['window']}"
                f" and horizon={p['horizon']} (strategy={p['strategy']!r}): need at least "
                f"{need} time steps"
            )
        base = np.diff(arr, axis=0) if p["difference"] else arr
        if first:
            self.mean_ = base.mean(axis=0)
            sd = base.std(axis=0)
            self.scale_ = np.where(sd > 0, sd, 1.0)
            self._fit_loss = p["loss"]
            self._fit_window, self._fit_horizon = p["window"], p["horizon"]
            self._fit_strategy, self._fit_difference = p["strategy"], p["difference"]
        elif (p["window"], p["horizon"], p["strategy"], p["difference"]) != (
                self._fit_window, self._fit_horizon, self._fit_strategy, self._fit_difference):
            raise ValueError(f"{est}: warm_start needs the same window, horizon, strategy "
                             "and difference")
        z = (base - self.mean_) / self.scale_
        step = p["horizon"] if p["strategy"] == "direct" else 1
        X, Y = sliding_windows(z, p["window"], step)  # X (n, window, v), Y (n, step, v)
        dtype = np.dtype(p["dtype"]) if first else self._network.dtype
        X = np.ascontiguousarray(X, dtype=dtype)
        Y = np.ascontiguousarray(Y.reshape(Y.shape[0], -1), dtype=dtype)
        self._setup(p, arr.shape[1], Y.shape[1], False, first)
        self.last_window_ = arr[-(p["window"] + int(p["difference"])):].copy()
        val = None
        if p["early_stopping"]:
            # time order: validate on the last windows, train on the ones before
            n_val = int(math.ceil(p["validation_fraction"] * X.shape[0]))
            if n_val < 1 or X.shape[0] - n_val < 1:
                raise ValueError(
                    f"{est}: early_stopping holds out the last validation_fraction="
                    f"{p['validation_fraction']} of the {X.shape[0]} windows; both parts "
                    "need at least one window (use a longer series or no early_stopping)"
                )
            val = (X[-n_val:], None, Y[-n_val:])
            X, Y = X[:-n_val], Y[:-n_val]
        if val is not None and self.validation_scores_ is None:
            self.validation_scores_ = []
        self._optimizer = make_optimizer(p["optimizer"], p["learning_rate"], p["weight_decay"])
        self._train(X, None, Y, val, p, p["epochs"], use_stopping=True)
        return self

    def predict(self, history=None):
        """Forecast the ``horizon`` steps after ``history`` (default: the training series).

        Returns (horizon,) for a univariate model, else (horizon, n_vars).
        """
        self._check_fitted()
        net = self._network
        if self.n_threads != net.n_threads:
            net.set_n_threads(_Checker(self).n_threads())
        w, h = self._fit_window, self._fit_horizon
        need = w + int(self._fit_difference)
        if history is None:
            hist = self.last_window_
        else:
            hist = self._check_series(history, "history", reset=False)
            if hist.shape[0] < need:
                raise ValueError(
                    f"{type(self).__name__}: history has {hist.shape[0]} steps, the model "
                    f"needs at least window={w}" + (" + 1 (difference=True)"
                                                    if self._fit_difference else ""))
            hist = hist[-need:]
        base = np.diff(hist, axis=0) if self._fit_difference else hist
        z = self._scaled(base, net.dtype, "history")
        v = z.shape[1]
        if self._fit_strategy == "direct":
            out = net.predict_raw(z[None])[0].astype(np.float64)
            fz = out.reshape(h, v)
        else:
            buf = z
            steps = []
            for _ in range(h):
                nxt = net.predict_raw(buf[None])[0]
                steps.append(nxt.astype(np.float64))
                buf = np.concatenate([buf[1:], nxt[None].astype(net.dtype)], axis=0)
            fz = np.stack(steps, axis=0)
        with np.errstate(over="ignore", invalid="ignore"):
            f = fz * self.scale_ + self.mean_
            if self._fit_difference:
                f = hist[-1] + np.cumsum(f, axis=0)
        if not np.isfinite(f).all():
            raise ValueError(f"{type(self).__name__}: the forecast overflows float64 once "
                             "unscaled by the model's mean_ and scale_")
        return f[:, 0] if self._univariate else f

    def _scaled(self, base, dtype, name):
        """(base - mean_) / scale_ in the network's dtype; a clear error where that
        overflows (extreme history values, or extreme statistics in a model file)."""
        with np.errstate(over="ignore", invalid="ignore", under="ignore"):
            z = ((base - self.mean_) / self.scale_).astype(dtype)
        if not np.isfinite(z).all():
            raise ValueError(f"{type(self).__name__}: {name} standardised with the model's "
                             f"mean_ and scale_ overflows {np.dtype(dtype).name}")
        return z

    # ------------------------------------------------------------ io

    def _extra_fitted(self):
        return {"univariate": bool(self._univariate), "loss": self._fit_loss}

    def _extra_array_names(self, fitted):
        return ["mean", "scale", "last_window"]

    def _extra_arrays(self):
        return {"mean": self.mean_, "scale": self.scale_, "last_window": self.last_window_}

    def _check_extra_fitted(self, fitted, spec, arrays):
        v = fitted["n_features_in_"]
        if not isinstance(fitted.get("univariate"), bool) or (fitted["univariate"] and v != 1):
            raise ValueError("fitted univariate flag is invalid")
        if fitted.get("loss") not in self._losses:
            raise ValueError("fitted loss is invalid")
        for key in ("mean", "scale"):
            if arrays[key].shape != (v,) or arrays[key].dtype != np.float64:
                raise ValueError(f"{key} must be float64 of shape ({v},)")
        if not np.all(arrays["scale"] > 0):
            raise ValueError("scale must be positive")
        w = self.window + int(self.difference)
        if arrays["last_window"].shape != (w, v) or arrays["last_window"].dtype != np.float64:
            raise ValueError(f"last_window must be float64 of shape ({w}, {v})")
        if self.strategy == "recursive" and self.horizon > _MAX_FILE_HORIZON:
            raise ValueError(f"horizon={self.horizon} in the model file is implausible for "
                             f"the recursive strategy (more than {_MAX_FILE_HORIZON} steps)")
        step = self.horizon if self.strategy == "direct" else 1
        if spec["n_outputs"] != step * v or spec["sequence_output"]:
            raise ValueError("network outputs do not match window/horizon/strategy")

    def _set_output_info_from(self, fitted, spec, arrays):
        self._univariate = fitted["univariate"]
        self._fit_loss = fitted["loss"]
        self._fit_window, self._fit_horizon = self.window, self.horizon
        self._fit_strategy, self._fit_difference = self.strategy, self.difference
        self.mean_ = arrays["mean"]
        self.scale_ = arrays["scale"]
        self.last_window_ = arrays["last_window"]
        # what predict() feeds the network first must be representable
        base = np.diff(self.last_window_, axis=0) if self.difference else self.last_window_
        self._scaled(base, spec["dtype"], "the stored last_window")


_REGISTRY = {cls.__name__: cls for cls in (LSTMRegressor, LSTMClassifier, LSTMForecaster)}


def load(path):
    """Load an estimator saved with ``.save(path)`` (see :func:`fastlstm.io.load`)."""
    from .io import load as _load

    return _load(path)
