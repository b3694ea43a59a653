"""scikit-learn-style estimators: LSTMRegressor, LSTMClassifier, LSTMForecaster.

Their conventions and input checks are in ``_estimator_base``, the training
loop in ``_training``, the model file in ``io``; this module holds what each
estimator means: its parameters, targets, outputs and file state.

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
import dataclasses
import inspect
import math
import threading
import warnings

import numpy as np

from . import _pandas, forecasting, io
from . import exceptions as _exc
from ._estimator_base import (EstimatorBase, check_finite, is_sparse, reshape_hint,
                              split_ragged, store_init_params, to_numeric)
from ._limits import MAX_INFERRED_VOCAB, MAX_WIDTH
from ._training import PREDICT_CHUNK, TrainingMixin
from ._validation import (Bool, Callbacks, Choice, ClassWeight, DType, Int, NThreads,
                          Quantiles, RandomState, Real, Verbose, is_int, is_real, seed_from,
                          validate_params)
from .data import _compact_token_ids
from .network import Network
from .optim import make_optimizer, same_settings
from .spec import FIELD_CONSTRAINTS, NetworkSpec

__all__ = ["LSTMRegressor", "LSTMClassifier", "LSTMForecaster", "load"]

_MAX_FILE_HORIZON = 100_000  # recursive steps one predict() of a loaded model may run

# The constructor arguments every estimator takes, and what each accepts.
_COMMON_CONSTRAINTS = {
    **{k: FIELD_CONSTRAINTS[k] for k in ("hidden_sizes", "cell", "activation",
                                         "gate_activation", "bidirectional", "dropout")},
    "optimizer": Choice(("adam", "sgd")),
    "learning_rate": Real(0.0, low_open=True),
    "batch_size": Int(1),
    "epochs": Int(1),
    "shuffle": Bool(),
    "weight_decay": Real(0.0),
    "clip_norm": Real(0.0, low_open=True, none_ok=True),
    "early_stopping": Bool(),
    "validation_fraction": Real(0.0, 1.0, True, True),
    "n_iter_no_change": Int(1),
    "tol": Real(0.0),
    "restore_best_weights": Bool(),
    "warm_start": Bool(),
    "random_state": RandomState(),
    "n_threads": NThreads(),
    "verbose": Verbose(),
    "dtype": DType(),
    "callbacks": Callbacks(),
}
_EMBEDDING_CONSTRAINTS = {
    "embedding_dim": Int(1, MAX_WIDTH, none_ok=True),
    "vocab_size": Int(2, none_ok=True),
}


def _r2(y2, p2, sample_weight):
    """R^2 of predictions p2 for targets y2 (rows, outputs), averaged over the
    outputs (scikit-learn's r2_score, multioutput="uniform_average")."""
    n = y2.shape[0]
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


def _spec_diff(a, b):
    """Names of the fields where two NetworkSpecs differ."""
    return sorted(f.name for f in dataclasses.fields(a) if getattr(a, f.name) != getattr(b, f.name))


class _LSTMBase(TrainingMixin, EstimatorBase):
    """Parameters, data handling, prediction and file state shared by the estimators."""

    _losses = ("mse", "mae", "huber")

    # ------------------------------------------------------------ parameters

    def _validate_params(self):
        p = validate_params(self, self._parameter_constraints)
        p.setdefault("embedding_dim", None)
        p.setdefault("vocab_size", None)
        if p["vocab_size"] is not None and p["embedding_dim"] is None:
            raise ValueError(f"{type(self).__name__}: vocab_size is only used with "
                             "embedding_dim; set embedding_dim too, or leave vocab_size=None")
        return p

    # ------------------------------------------------------------ input

    def _uses_ids(self, p=None):
        if hasattr(self, "_network"):
            return self._network.spec.embedding_dim is not None
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
        if is_sparse(X):
            raise TypeError(
                f"{name}: sparse input is not supported; pass a dense array of shape "
                "(n, T) or (n, T, d) (for example X.toarray())"
            )
        arr, seqs = split_ragged(X)
        if seqs is not None:
            return self._check_ragged(seqs, reset, ids, dtype)
        arr = to_numeric(arr, "X")
        if arr.ndim < 2:
            raise ValueError(
                f"{name}: expected X of shape (n, T) or (n, T, d), got a {arr.ndim}-D "
                f"array of shape {arr.shape}. {reshape_hint()}"
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
        check_finite(arr, "X")
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
                s = to_numeric(np.asarray(s), f"X[{i}]")
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
            s = to_numeric(np.asarray(s), f"X[{i}]")
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
            check_finite(s, f"X[{i}]")
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
            check_finite(arr, "X")
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

    def _network_spec(self, p, n_features, n_outputs, sequence_output, vocab_size):
        """The architecture that parameters ``p`` give for this data: the one
        mapping from an estimator's parameters to its network (fit and load)."""
        ids = p["embedding_dim"] is not None
        return NetworkSpec(
            input_size=None if ids else n_features, hidden_sizes=p["hidden_sizes"],
            n_outputs=n_outputs, cell=p["cell"], activation=p["activation"],
            gate_activation=p["gate_activation"], bidirectional=p["bidirectional"],
            dropout=p["dropout"], vocab_size=vocab_size if ids else None,
            embedding_dim=p["embedding_dim"], sequence_output=sequence_output,
            dtype=p["dtype"])

    def _seed_streams(self, p):
        """The network's seed and the streams for the validation split, shuffling
        and dropout, all from ``random_state``."""
        ss = np.random.SeedSequence(seed_from(p["random_state"])).spawn(4)
        self._split_rng = np.random.default_rng(ss[1])
        self._shuffle_rng = np.random.default_rng(ss[2])
        self._dropout_rng = np.random.default_rng(ss[3])
        return int(ss[0].generate_state(1)[0])

    def _setup(self, p, n_features, n_outputs, sequence_output, first):
        """Build the network (first fit) or check it matches (warm start)."""
        vocab = getattr(self, "_fit_vocab" if first else "vocab_size_", None)
        spec = self._network_spec(p, n_features, n_outputs, sequence_output, vocab)
        if first:
            seed = self._seed_streams(p)
            self._network = Network(spec, seed=seed, n_threads=p["n_threads"])
            self.loss_curve_ = []
            self.validation_scores_ = self.validation_loss_curve_ = None
            self.best_loss_ = np.inf
            self.n_iter_ = 0
            self._no_improvement_count = 0
            if p["embedding_dim"] is not None:
                self.vocab_size_ = spec.vocab_size
        else:
            old = self._network.spec
            diff = _spec_diff(spec, old.replace(dropout=spec.dropout))
            if diff:
                raise ValueError(
                    f"{type(self).__name__}: warm_start/partial_fit needs the same architecture "
                    f"as the fitted model, but {', '.join(diff)} changed "
                    f"(fitted: {', '.join(f'{k}={getattr(old, k)!r}' for k in diff)}); "
                    "set warm_start=False to train a new model"
                )
            self._network.set_n_threads(p["n_threads"])
            # fresh dropout masks for the new p are drawn from the same stream
            self._network.with_dropout(spec.dropout)

    def _fit(self, X, y, incremental, validation_data=None, classes=None, sample_weight=None):
        p = self._validate_params()
        first = not hasattr(self, "_network") or not (incremental or p["warm_start"])
        return self._guarded_fit(first, lambda: self._fit_body(
            X, y, incremental, validation_data, classes, p, first, sample_weight))

    def _sample_weights(self, sample_weight, Y, p, incremental):
        """The weight of each training sample (n,) float64, or None for all equal:
        ``sample_weight`` checked (the classifier multiplies in its class weights)."""
        if sample_weight is None:
            return None
        n = Y.shape[0]
        w = to_numeric(np.asarray(sample_weight), "sample_weight")
        if w.shape != (n,):
            raise ValueError(f"{type(self).__name__}: sample_weight must have shape ({n},), "
                             f"one weight per sample, got {w.shape}")
        w = w.astype(np.float64)
        if not np.isfinite(w).all() or (w < 0).any() or not w.sum() > 0:
            raise ValueError(f"{type(self).__name__}: sample_weight must be finite, >= 0 and "
                             "not all zero")
        return w

    def _fit_body(self, X, y, incremental, validation_data, classes, p, first, sample_weight):
        # activation memory of the last partial_fit batch, recycled by the next one
        spent = self.__dict__.pop("_spent_cache", None)
        dtype = np.dtype(p["dtype"]) if first else self._network.dtype
        if first:
            for attr in ("n_features_in_", "_fit_vocab"):
                self.__dict__.pop(attr, None)
        Xa, lengths, d = self._check_X(X, reset=first, p=p, dtype=dtype)
        if "scale_inputs" in p:
            self._fit_input_scaling(Xa, lengths, p, first)
            Xa = self._scaled_X(Xa, lengths)
        Y, n_outputs, seq = self._prepare_y(y, Xa, lengths, first, classes)
        W = self._sample_weights(sample_weight, Y, p, incremental)
        self._setup(p, d, n_outputs, seq, first)
        val = None
        if validation_data is not None:
            if not (isinstance(validation_data, (tuple, list)) and len(validation_data) == 2):
                raise ValueError(f"{type(self).__name__}: validation_data must be a tuple "
                                 "(X_val, y_val)")
            Xv, lv, _ = self._check_X(validation_data[0], reset=False, dtype=dtype)
            Xv = self._scaled_X(Xv, lv) if "scale_inputs" in p else Xv
            Yv, _, _ = self._prepare_y(validation_data[1], Xv, lv, False, None, name="y_val")
            val = (Xv, lv, Yv)
        elif p["early_stopping"] and not incremental:
            Xa, lengths, Y, W, val = self._split_validation(Xa, lengths, Y, p, W)
        if val is not None and self.validation_scores_ is None:
            self.validation_scores_, self.validation_loss_curve_ = [], []
        # warm_start and partial_fit continue the optimizer's state (unless its
        # settings changed); a new model gets a new one
        if first or not same_settings(getattr(self, "_optimizer", None), p["optimizer"],
                                      p["learning_rate"], p["weight_decay"]):
            self._optimizer = make_optimizer(p["optimizer"], p["learning_rate"], p["weight_decay"])
        epochs = 1 if incremental else p["epochs"]
        spent = self._train(Xa, lengths, Y, val, p, epochs, use_stopping=not incremental,
                            cache=spent if incremental and not first else None, weights=W)
        if incremental:
            self._spent_cache = spent
        return self

    # ------------------------------------------------------------ predict

    def _check_fitted(self):
        fitting = self.__dict__.get("_fit_in_progress")
        # (the fitting thread itself may use the model: a callback saving a checkpoint)
        if fitting is not None and fitting["new_model"] and \
                fitting["thread"] != threading.get_ident():
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
            net.set_n_threads(NThreads().check("n_threads", self.n_threads))
        Xa, lengths, _ = self._check_X(X, reset=False, dtype=net.dtype)
        if getattr(self, "input_mean_", None) is not None:
            Xa = self._scaled_X(Xa, lengths)
        out = net.predict_raw(Xa, lengths, chunk=PREDICT_CHUNK)
        return out.astype(np.float64), lengths

    # ------------------------------------------------------------ reduced precision

    def quantize(self, dtype):
        """A copy of the fitted model whose recurrent weights are ``"bfloat16"`` or
        ``"int8"`` (per-row scales), for inference: predict, score and streaming work
        as before, training raises. See fastlstm.quantize for the accuracy."""
        self._check_fitted()
        if getattr(self._network, "quant_dtype", None):
            raise TypeError(f"this model is already quantized ({self._network.quant_dtype}); "
                            "quantize the float32 model")
        import copy
        from .quantize import quantize_network
        q = copy.copy(self)
        q._network = quantize_network(self._network, dtype)
        for key in ("_spent_cache", "_optimizer"):   # training state: a quantized copy does not train
            q.__dict__.pop(key, None)
        return q

    def _check_not_quantized(self):
        dtype = getattr(getattr(self, "_network", None), "quant_dtype", None)
        if dtype:
            raise NotImplementedError(
                f"a {dtype} model does not export: ONNX's LSTM/GRU operators take float "
                "weights only. Export the float32 model it was quantized from")

    # ------------------------------------------------------------ model file
    # io.py owns the file's schema and the checks common to every estimator;
    # the _extra_* hooks below give and take what is particular to one.

    def save(self, path, include_optimizer=False):
        """Write the fitted model to one .npz file; read it back with ``fastlstm.load``.

        ``include_optimizer=True`` also stores the optimizer state and the
        random streams, so ``partial_fit`` after loading continues exactly as
        it would have without the round trip (a larger file: Adam keeps two
        values per parameter)."""
        self._check_fitted()
        dtype = getattr(self._network, "quant_dtype", None)
        if dtype:
            raise NotImplementedError(
                f"saving a {dtype} model is not supported yet (pickle works): save the "
                "float32 model and call quantize() after loading it")
        return io.save(self, path, include_optimizer)

    # the keys _extra_fitted writes
    _extra_fitted_keys = ()

    def _extra_fitted(self):
        """JSON-able learned values beyond the ones every estimator stores."""
        return {}

    def _extra_arrays(self):
        """Arrays beyond the network's parameters."""
        return {}

    def _extra_array_names(self, fitted):
        return []

    def _check_extra_fitted(self, fitted, spec, arrays):
        """Check the _extra_* values of a file (the params are validated already)."""

    def _network_input_size(self, fitted):
        """Features per step the network reads, from a file's fitted values."""
        return fitted["n_features_in_"]

    def _set_output_info_from(self, fitted, spec, arrays):
        """Take the _extra_* values of a checked file."""

    # ------------------------------------------------------------ export: fastlstm.export

    def state_dict(self):
        """Copies of the fitted parameters under PyTorch's names: ``embedding.weight``
        (token ids), the recurrent layers' (``weight_ih_l0``, ...), ``head.weight``,
        ``head.bias``."""
        from . import export
        return export.estimator_state_dict(self)

    def load_state_dict(self, state_dict):
        """Replace the fitted parameters (``state_dict()``'s names and shapes; arrays or
        torch tensors); ValueError names what does not match. Safe while other
        threads predict."""
        from . import export
        export.load_estimator_state_dict(self, state_dict)

    def to_onnx(self, path=None, opset=None, with_lengths=False):
        """The fitted model as an ONNX model (float32 network; opset None: 17), also
        written to ``path`` when given; needs the onnx package. Inputs and outputs:
        see fastlstm.export (regressor: ``predictions``, classifier:
        ``probabilities``, forecaster: ``forecast``)."""
        self._check_not_quantized()
        from . import export
        return export.estimator_to_onnx(self, path, opset, with_lengths)

    def to_torch(self):
        """A torch ``nn.Module`` computing what ``to_onnx``'s model does; ValueError
        for a cell or activation PyTorch lacks."""
        self._check_not_quantized()
        from . import export
        return export.estimator_to_torch(self)


class _InputScaling:
    """``scale_inputs=True`` (regressor and classifier): each float feature is
    standardised with the mean and std over the real steps of fit's X
    (``input_mean_``, ``input_scale_``), before training and prediction alike."""

    def _fit_input_scaling(self, Xa, lengths, p, first):
        name = type(self).__name__
        if first:
            self.input_mean_ = self.input_scale_ = None
        fitted = getattr(self, "input_mean_", None) is not None
        if not p["scale_inputs"]:
            if fitted:
                raise ValueError(f"{name}: the model was fitted with scale_inputs=True; "
                                 "set warm_start=False to train a new model without it")
            return
        if p["embedding_dim"] is not None:
            raise ValueError(f"{name}: scale_inputs standardises float features; with "
                             "embedding_dim, X holds token ids")
        if not first:
            if not fitted:
                raise ValueError(f"{name}: the model was fitted with scale_inputs=False; "
                                 "set warm_start=False to train a new model with it")
            return
        rows = Xa.reshape(-1, Xa.shape[2]) if lengths is None else \
            Xa[np.arange(Xa.shape[1])[None, :] < lengths[:, None]]
        rows = rows.astype(np.float64)
        sd = rows.std(axis=0)
        self.input_mean_ = rows.mean(axis=0)
        self.input_scale_ = np.where(sd > 0, sd, 1.0)

    def _scaled_X(self, Xa, lengths):
        """X standardised with the fitted statistics (padding steps stay zero)."""
        mean = getattr(self, "input_mean_", None)
        if mean is None:
            return Xa
        with np.errstate(over="ignore", invalid="ignore"):
            Z = ((Xa - mean) / self.input_scale_).astype(Xa.dtype)
        if lengths is not None:
            Z[np.arange(Z.shape[1])[None, :] >= lengths[:, None]] = 0
        if not np.isfinite(Z).all():
            raise ValueError(f"{type(self).__name__}: X standardised with input_mean_ and "
                             f"input_scale_ overflows {Xa.dtype}")
        return Z


class _Streaming:
    """Serving one time step at a time (regressor and classifier): init_state and
    the checked step of the network; each estimator's ``step`` maps the outputs."""

    def init_state(self, n_streams=1):
        """The state of ``n_streams`` independent streams before their first step,
        for ``step`` (a ``fastlstm.StreamState``; ``state.reset(streams)``
        starts those streams over). Needs a forward-only model."""
        self._check_fitted()
        return self._network.init_state(n_streams)

    def _step_outputs(self, x_t, state, streams):
        """Network outputs (float64, (n, K)) of one streaming step."""
        self._check_fitted()
        net = self._network
        if self.n_threads != net.n_threads:
            net.set_n_threads(NThreads().check("n_threads", self.n_threads))
        name = type(self).__name__
        if net.spec.embedding_dim is not None:
            ids = np.asarray(x_t)
            if ids.ndim != 1 or ids.dtype.kind not in "iu":
                raise ValueError(f"{name}: with embedding_dim, x_t must be (n,) integer token "
                                 f"ids, one per stream, got {ids.dtype} of shape {ids.shape}")
            if ids.size and (ids.min() < 1 or ids.max() >= self.vocab_size_):
                raise ValueError(f"{name}: token ids in x_t must be in [1, {self.vocab_size_})"
                                 " (0 is padding, which a stream never receives)")
            x = ids.astype(np.intp)
        else:
            x = np.asarray(x_t)
            if x.dtype != net.dtype:
                x = to_numeric(x, "x_t")
            if x.ndim == 1 and self.n_features_in_ == 1:
                x = x[:, None]
            if x.ndim != 2 or x.shape[1] != self.n_features_in_:
                raise ValueError(f"{name}: x_t must be (n, {self.n_features_in_}), one step "
                                 f"of each stream, got shape {x.shape}")
            if getattr(self, "input_mean_", None) is not None:
                x = self._scaled_X(np.asarray(x, net.dtype)[:, None, :], None)[:, 0]
            # (the layer checks that the values are finite)
        return net.step(x, state, streams).astype(np.float64)


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
        ``fit`` continues from the current weights and optimizer state
        instead of starting over (a model loaded from a checkpoint saved with
        ``include_optimizer=True`` continues exactly where it was saved).
    random_state : int, RandomState, Generator or None, default=None
        Seeds initialisation, shuffling, dropout and the validation split:
        the same int gives bitwise-identical models for any ``n_threads``.
    n_threads : int or None, default=None
        OpenMP threads of the kernels (None: all cores, honouring OMP_NUM_THREADS).
    verbose : int, default=0
        1 prints one line per epoch (loss, validation loss, seconds).
    dtype : {"float32", "float64"}, default="float32"
    scale_inputs : bool, default=False (regressor and classifier)
        Standardise each input feature with the mean and std of its values
        over the real steps of fit's X (``input_mean_``, ``input_scale_``);
        prediction, streaming and export apply the same.
    callbacks : list of callables or None, default=None
        Each is called after every epoch as ``callback(estimator, logs)`` with
        ``logs = {"epoch": n, "loss": ..., "val_loss": ..., "val_score": ...}``
        (the validation entries None without a validation set); a true
        return value stops training after this epoch.
        ``fastlstm.callbacks.Checkpoint(path, every=k)`` saves the model every
        k epochs. Progress lines also go to the ``"fastlstm"`` logger (INFO).

    Attributes
    ----------
    n_features_in_ : int
        Features per time step (d).
    loss_curve_ : list of float
        Mean training loss of each epoch (without the weight-decay term).
    validation_scores_ : list of float or None
        Validation score of each epoch (higher is better, scikit-learn's
        meaning: R^2 for the regressor, accuracy for the classifier, the
        negative validation loss for the forecaster), when a validation set
        is used.
    validation_loss_curve_ : list of float or None
        Validation loss of each epoch (what early stopping watches).
    best_loss_ : float
        Best monitored loss (validation loss with a validation set,
        training loss otherwise).
    n_iter_ : int
        Epochs run.
"""


class LSTMRegressor(_Streaming, _InputScaling, _LSTMBase):
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
    _parameter_constraints = {**_COMMON_CONSTRAINTS, **_EMBEDDING_CONSTRAINTS,
                              "loss": Choice(_losses), "scale_inputs": Bool()}

    def __init__(self, hidden_sizes=(50,), cell="lstm", activation="tanh",
                 gate_activation="sigmoid", bidirectional=False, dropout=0.0,
                 embedding_dim=None, vocab_size=None, loss="mse", optimizer="adam",
                 learning_rate=0.001, batch_size=32, epochs=100, shuffle=True,
                 weight_decay=0.0, clip_norm=None, early_stopping=False,
                 validation_fraction=0.1, n_iter_no_change=10, tol=1e-4,
                 restore_best_weights=True, warm_start=False, random_state=None,
                 n_threads=None, verbose=0, dtype="float32", callbacks=None,
                 scale_inputs=False):
        store_init_params(self, locals())

    @property
    def _loss_name(self):
        return self._fit_loss

    def _prepare_y(self, y, Xa, lengths, first, classes, name="y"):
        est = type(self).__name__
        n = Xa.shape[0]
        if y is None:
            raise ValueError(f"{est} requires y to be passed, but the target y is None")
        arr, seqs = split_ragged(y)
        if seqs is not None:
            # variable-length sequence targets: pad like X
            seqs = [to_numeric(np.asarray(s), name) for s in seqs]
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
        arr = to_numeric(arr, name)
        if arr.ndim == 0 or arr.ndim > 3:
            raise ValueError(f"{est}: {name} must be (n,), (n, k) or (n, T, k), got shape "
                             f"{arr.shape}")
        if arr.shape[0] != n:
            raise ValueError(f"X and {name} have inconsistent numbers of samples: X has {n}, "
                             f"{name} has {arr.shape[0]} (shape {arr.shape})")
        if arr.ndim >= 2 and arr.shape[-1] == 0:
            raise ValueError(f"{est}: {name} has 0 outputs (shape {arr.shape})")
        check_finite(arr.astype(np.float64, copy=False), name)
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

    _extra_fitted_keys = ("n_outputs_", "y_ndim", "loss")

    def _validation_score(self, out, Y, mask, loss):
        # R^2 over the real rows (samples, or real steps), averaged over outputs
        k = out.shape[-1]
        p2 = out.reshape(-1, k) if mask is None else out[mask]
        y2 = Y.reshape(-1, k) if mask is None else Y[mask]
        return _r2(y2.astype(np.float64), p2.astype(np.float64), None)

    def _extra_fitted(self):
        return {"n_outputs_": int(self.n_outputs_), "y_ndim": int(self._y_ndim),
                "loss": self._fit_loss}

    def _check_extra_fitted(self, fitted, spec, arrays):
        k, nd, loss = fitted.get("n_outputs_"), fitted.get("y_ndim"), fitted.get("loss")
        if not is_int(k) or k != spec.n_outputs:
            raise ValueError("fitted n_outputs_ does not match the network")
        if nd not in (1, 2, 3) or (nd == 1 and k != 1) or ((nd == 3) != spec.sequence_output):
            raise ValueError(f"fitted y_ndim={nd!r} is inconsistent with the network")
        if loss not in self._losses:
            raise ValueError(f"fitted loss {loss!r} is not one of {self._losses}")

    def _set_output_info_from(self, fitted, spec, arrays):
        self.n_outputs_ = int(fitted["n_outputs_"])
        self._y_ndim = int(fitted["y_ndim"])
        self._fit_loss = fitted["loss"]

    def fit(self, X, y, validation_data=None, sample_weight=None):
        """Train on X, y; returns self. See the class docstring for the input forms.
        ``sample_weight`` (n,): each sample's weight in the loss (a weighted mean)."""
        return self._fit(X, y, incremental=False, validation_data=validation_data,
                         sample_weight=sample_weight)

    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over X, y, continuing from the current weights (and optimizer state).

        The activation memory of the last batch is kept for the next call to
        recycle (one batch of LSTM activations; not pickled, released by ``fit``)."""
        return self._fit(X, y, incremental=True, sample_weight=sample_weight)

    def predict(self, X, return_lengths=False):
        """Predictions: (n,), (n, k) or (n, T, k), matching the shape of y in fit.

        Sequence outputs of variable-length input are padded to the longest
        sequence with zeros; ``return_lengths=True`` also returns each
        sequence's length (n,), so ``y[i, :lengths[i]]`` are its real steps."""
        out, lengths = self._raw_outputs(X)
        pred = out[:, 0] if self._y_ndim == 1 else out
        if not return_lengths:
            return pred
        if lengths is None:
            T = out.shape[1] if self._y_ndim == 3 else np.asarray(X).shape[1]
            lengths = np.full(out.shape[0], T, dtype=np.int64)
        return pred, lengths

    def step(self, x_t, state, streams=None):
        """One time step of several streams (serving): x_t (n, d) (or (n,) for
        d = 1) -> (predictions, state), the predictions ``predict`` gives for the
        sequences seen so far ((n,) or (n, k); per step for sequence targets).
        ``state`` comes from ``init_state`` and is updated in place;
        ``streams`` picks its rows (default all)."""
        out = self._step_outputs(x_t, state, streams)
        return (out[:, 0] if self._y_ndim == 1 else out), state

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
        return _r2(y.reshape(n, -1), pred.reshape(n, -1), sample_weight)


class LSTMClassifier(_Streaming, _InputScaling, _LSTMBase):
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
    class_weight : None, "balanced" or dict {label: weight}, default=None
        Weight of each class in the loss: "balanced" gives class c the weight
        n_samples / (n_classes * n_samples_of_c) (scikit-learn's rule, fit
        only); a dict gives its classes their weight and the others 1. Multiplies
        ``sample_weight``.
    """ + _COMMON_DOC + """
    classes_ : ndarray of shape (n_classes,)
    """

    _estimator_type = "classifier"
    _losses = ("log_loss",)
    _parameter_constraints = {**_COMMON_CONSTRAINTS, **_EMBEDDING_CONSTRAINTS,
                              "loss": Choice(_losses), "class_weight": ClassWeight(),
                              "scale_inputs": Bool()}

    def __init__(self, hidden_sizes=(50,), cell="lstm", activation="tanh",
                 gate_activation="sigmoid", bidirectional=False, dropout=0.0,
                 embedding_dim=None, vocab_size=None, loss="log_loss", optimizer="adam",
                 learning_rate=0.001, batch_size=32, epochs=100, shuffle=True,
                 weight_decay=0.0, clip_norm=None, early_stopping=False,
                 validation_fraction=0.1, n_iter_no_change=10, tol=1e-4,
                 restore_best_weights=True, warm_start=False, random_state=None,
                 n_threads=None, verbose=0, dtype="float32", class_weight=None,
                 callbacks=None, scale_inputs=False):
        store_init_params(self, locals())

    def _sample_weights(self, sample_weight, Y, p, incremental):
        w = super()._sample_weights(sample_weight, Y, p, incremental)
        cw = p["class_weight"]
        if cw is None:
            return w
        name, k = type(self).__name__, len(self.classes_)
        idx = Y[:, 0].astype(np.int64) if k == 2 else Y
        if cw == "balanced":
            if incremental:
                raise ValueError(f"{name}: class_weight='balanced' needs all the training "
                                 "data at once (fit); with partial_fit give a dict")
            # scikit-learn's rule: n_samples / (n_classes * count of the class)
            counts = np.bincount(idx, minlength=k).astype(np.float64)
            per_class = np.where(counts > 0, idx.size / (k * np.maximum(counts, 1)), 0.0)
        else:
            per_class = np.ones(k)
            for label, weight in cw.items():
                at = np.flatnonzero(self.classes_ == label)
                if at.size != 1:
                    raise ValueError(f"{name}: class_weight names the label {label!r}, which "
                                     f"is not one of the classes {self.classes_.tolist()}")
                per_class[at[0]] = weight
        cwv = per_class[idx]
        if not cwv.sum() > 0:
            raise ValueError(f"{name}: class_weight gives every sample weight 0")
        return cwv if w is None else w * cwv

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

    def _validation_score(self, out, Y, mask, loss):
        # accuracy: Y holds 0/1 (two classes) or class indices
        pred = (out[:, 0] > 0) if out.shape[1] == 1 else np.argmax(out, axis=1)
        truth = Y[:, 0] > 0.5 if out.shape[1] == 1 else Y
        return float(np.mean(pred == truth))

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
        if spec.n_outputs != k:
            raise ValueError(f"{cls.shape[0]} classes need {k} network outputs, the config "
                             f"says {spec.n_outputs}")
        if spec.sequence_output:
            raise ValueError("a classifier network has no sequence output")

    def _set_output_info_from(self, fitted, spec, arrays):
        self.classes_ = arrays["classes"]

    def fit(self, X, y, validation_data=None, sample_weight=None):
        """Train on X, labels y; returns self. ``sample_weight`` (n,) multiplies the
        ``class_weight`` of each sample's class."""
        return self._fit(X, y, incremental=False, validation_data=validation_data,
                         sample_weight=sample_weight)

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch over X, y. ``classes`` (all labels) is required on the first call.

        As for the regressor, the last batch's activation memory is kept for the
        next call to recycle."""
        if not hasattr(self, "_network") and classes is None:
            raise ValueError(f"{type(self).__name__}: classes must be passed on the first call "
                             "to partial_fit (all labels that will ever appear)")
        return self._fit(X, y, incremental=True, classes=classes, sample_weight=sample_weight)

    def predict_proba(self, X):
        """Class probabilities (n, n_classes), columns in the order of ``classes_``."""
        out, _ = self._raw_outputs(X)
        return self._proba(out)

    def step(self, x_t, state, streams=None):
        """One time step of several streams (serving): x_t (n, d), or (n,) token
        ids with an embedding -> (probabilities (n, n_classes), state): what
        ``predict_proba`` gives for the sequences seen so far. ``state`` comes
        from ``init_state`` and is updated in place; ``streams`` picks its rows."""
        return self._proba(self._step_outputs(x_t, state, streams)), state

    def _proba(self, out):
        """Probabilities from network outputs (n, K)."""
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

    ``fit(series)`` on (n_time,) or (n_time, n_vars), a numpy array or a
    pandas Series / DataFrame: standardises every variable with the mean
    and standard deviation of the training series, cuts it into sliding
    windows (``fastlstm.sliding_windows``) and trains a recurrent network on
    them. ``predict()`` forecasts the ``horizon`` steps after the training
    series, ``predict(history)`` those after any other history of at least
    ``window`` steps.

    Covariates (exogenous variables), in darts' terms:

    - ``past_covariates`` (n_time, p): observed along the series but known
      only up to the forecast origin (a related measurement). The model reads
      them over its input window; it never forecasts them.
    - ``future_covariates`` (n_time, f): known ahead, over the forecast steps
      too (calendar features, planned prices, holidays). The forecast steps
      are appended to the input window as extra steps carrying only their
      future covariates (and an indicator), so the direct strategy sees the
      covariates of all ``horizon`` steps and the recursive one those of the
      next step.

    darts' names, not sktime's ``X``: for scikit-learn (GridSearchCV,
    cross_val_score) ``X`` is what ``fit`` gets first, here the series
    itself; and the two kinds need different data at predict time. Every
    covariate array is aligned with the series it accompanies: in ``fit``,
    one row per step of ``series``; in ``predict(history, ...)`` past
    covariates have one row per history step and future covariates one per
    history step and then one per forecast step; in ``predict()`` (no
    history: the model keeps the covariates of the end of its training
    series) only future covariates are given, one row per forecast step.
    Other lengths are refused, naming the argument and the lengths.

    Uncertainty: ``loss="quantile"`` trains on the pinball loss of
    ``quantiles`` (the network outputs every quantile of every step and
    variable; ``predict`` gives the median). ``conformal=True`` holds out the
    last ``calibration_fraction`` of the forecast origins of the training
    series, trains on the windows before them (none of whose targets reach
    into the held-out part) and keeps the absolute errors of its
    ``horizon``-step forecasts there, per step and variable: the
    split-conformal interval (the ceil((n+1)c)-th smallest error as
    half-width) covers a new value with probability at least c when the
    errors are exchangeable (stationary). ``predict_quantiles`` and
    ``predict_interval`` serve both.

    Evaluation: ``score(y)`` is the negative error (MAE by default) of the
    forecasts of ``y``, the steps that follow the training series, so
    ``GridSearchCV`` and ``cross_val_score`` with ``TimeSeriesSplit`` work on
    a series: scikit-learn calls ``fit(series[train])`` and
    ``score(series[test])``, and each test fold follows its training fold.
    ``backtest`` forecasts from rolling origins (refitting or not) and
    reports the errors per origin; ``update(y_new)`` appends observations to
    the history forecasts start from (and optionally fine-tunes).

    pandas (optional, never imported for numpy input): a Series / DataFrame
    with a DatetimeIndex (of a regular frequency), PeriodIndex or regular
    integer index gives forecasts as a Series / DataFrame labelled with the
    steps that follow and named like the input's columns.

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
        trend the network would otherwise have to extrapolate. With the
        quantile loss the network forecasts the quantiles of the change
        since the origin (quantiles of a sum are not sums of quantiles).
    loss : {"mse", "mae", "huber", "quantile"}, default="mse"
    quantiles : tuple of float, default=(0.05, 0.5, 0.95)
        The quantiles ``loss="quantile"`` learns (increasing, in (0, 1),
        including 0.5); ignored by the other losses. Needs the direct
        strategy when horizon > 1 (one-step quantiles do not compound).
    conformal : bool, default=False
        Calibrate split-conformal intervals on the end of the training series
        (see above). Not with ``loss="quantile"``.
    calibration_fraction : float in (0, 1), default=0.2
        Share of the forecast origins held out for calibration with
        ``conformal=True``; a c-interval needs at least c / (1 - c) of them
        (9 for 90%, 19 for 95%).

    With ``early_stopping`` the validation windows are the last
    ``validation_fraction`` of them (time order), not a random sample.
    """ + _COMMON_DOC + """
    mean_, scale_ : ndarray of shape (n_vars,)
        The standardisation fitted on the training series.
    last_window_ : ndarray of shape (window + difference, n_vars)
        The end of the training series, or of the last ``update`` (what
        ``predict()`` starts from).
    n_past_covariates_, n_future_covariates_ : int
        Columns of each kind of covariate the model was fitted with.
    conformal_residuals_ : ndarray of shape (n_calibration, horizon, n_vars) or None
        With ``conformal=True``: the absolute errors of the calibration forecasts.
    """

    _estimator_type = None
    _losses = ("mse", "mae", "huber", "quantile")
    _parameter_constraints = {**_COMMON_CONSTRAINTS, "loss": Choice(_losses),
                              "window": Int(1), "horizon": Int(1),
                              "strategy": Choice(("direct", "recursive")), "difference": Bool(),
                              "quantiles": Quantiles(), "conformal": Bool(),
                              "calibration_fraction": Real(0.0, 1.0, True, True)}

    def __init__(self, window, horizon=1, strategy="direct", difference=False,
                 hidden_sizes=(50,), cell="lstm",
                 activation="tanh", gate_activation="sigmoid", bidirectional=False,
                 dropout=0.0, loss="mse", quantiles=(0.05, 0.5, 0.95), conformal=False,
                 calibration_fraction=0.2, optimizer="adam", learning_rate=0.001,
                 batch_size=32, epochs=100, shuffle=True, weight_decay=0.0, clip_norm=None,
                 early_stopping=False, validation_fraction=0.1, n_iter_no_change=10,
                 tol=1e-4, restore_best_weights=True, warm_start=False, random_state=None,
                 n_threads=None, verbose=0, dtype="float32", callbacks=None):
        store_init_params(self, locals())

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = False
        return tags

    def _validate_params(self):
        p = super()._validate_params()
        est = type(self).__name__
        if p["loss"] == "quantile" and p["strategy"] == "recursive" and p["horizon"] > 1:
            raise ValueError(f"{est}: loss='quantile' needs strategy='direct' when horizon > 1 "
                             "(the quantiles of a one-step model fed its own medians are not "
                             "those of the later steps); or use conformal=True")
        if p["loss"] == "quantile" and p["conformal"]:
            raise ValueError(f"{est}: conformal=True calibrates a point forecast; with "
                             "loss='quantile' the model forecasts its quantiles itself: "
                             "choose one")
        return p

    def __setstate__(self, state):
        super().__setstate__(state)
        defaults = inspect.signature(type(self).__init__).parameters
        for name in ("quantiles", "conformal", "calibration_fraction"):   # new in 0.2.0
            self.__dict__.setdefault(name, defaults[name].default)
        if "_network" in self.__dict__ and "n_past_covariates_" not in self.__dict__:
            # pickled by fastlstm 0.1.0: a model without covariates or intervals
            self._quantiles = None
            self.n_past_covariates_ = self.n_future_covariates_ = 0
            self._cov_mean = self._cov_scale = np.zeros(0)
            self._last_covariates = np.zeros((self.last_window_.shape[0], 0))
            self.conformal_residuals_ = self._naive_sums = self._n_seen = self._index = None

    @property
    def _loss_name(self):
        return self._fit_loss

    @property
    def _loss_options(self):
        return {"quantiles": self._quantiles} if self._fit_loss == "quantile" else {}

    # the fitted layout: S steps per network call, need rows of history
    @property
    def _step(self):
        return self._fit_horizon if self._fit_strategy == "direct" else 1

    @property
    def _need(self):
        return self._fit_window + int(self._fit_difference)

    @property
    def _mid(self):
        return 0 if self._quantiles is None else self._quantiles.index(0.5)

    def _padded(self, n_steps):
        """Forecast steps whose future covariates a forecast of n_steps reads: the
        network takes S steps at a time."""
        S = self._step
        return -(-n_steps // S) * S if self.n_future_covariates_ else n_steps

    # ------------------------------------------------------------ input

    def _check_series(self, series, name, reset):
        est = type(self).__name__
        if series is None:
            raise ValueError(f"{est}: {name} is None; expected an array (n_time,) or "
                             "(n_time, n_vars)")
        if is_sparse(series):
            raise TypeError(f"{est}: sparse input is not supported for {name}")
        arr = to_numeric(np.asarray(series), name)
        if arr.ndim not in (1, 2):
            raise ValueError(f"{est}: {name} must be (n_time,) or (n_time, n_vars), got shape "
                             f"{arr.shape}")
        if arr.shape[0] == 0 or (arr.ndim == 2 and arr.shape[1] == 0):
            raise ValueError(f"{est}: {name} is empty (shape {arr.shape})")
        arr = arr.astype(np.float64)
        check_finite(arr, name)
        univariate = arr.ndim == 1
        arr2 = arr.reshape(arr.shape[0], -1)
        if reset:
            self.n_features_in_ = arr2.shape[1]
            self._univariate = univariate
        elif arr2.shape[1] != self.n_features_in_:
            raise ValueError(f"{est}: {name} has {arr2.shape[1]} variables, but the model was "
                             f"fitted on {self.n_features_in_}")
        return arr2

    def _covariates(self, obj, name, rows, count, what, at_least=False):
        """A covariate argument as float64 (rows, count); ``count`` None: any (fit).
        ``what`` says which rows are expected, for the errors."""
        est = type(self).__name__
        if obj is None:
            if count:
                raise ValueError(f"{est}: the model was fitted with {count} {name} column(s); "
                                 f"pass {name} with {what}")
            return np.zeros((rows, 0))
        if count == 0:
            raise ValueError(f"{est}: {name} was given, but the model was fitted without "
                             f"{name}")
        if is_sparse(obj):
            raise TypeError(f"{est}: sparse input is not supported for {name}")
        arr = to_numeric(np.asarray(obj), name)
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2 or arr.shape[1] == 0:
            raise ValueError(f"{est}: {name} must be (n_time,) or (n_time, n_columns), got "
                             f"shape {np.shape(obj)}")
        if count is not None and arr.shape[1] != count:
            raise ValueError(f"{est}: {name} has {arr.shape[1]} column(s), but the model was "
                             f"fitted with {count}")
        if arr.shape[0] < rows or (arr.shape[0] != rows and not at_least):
            raise ValueError(f"{est}: {name} has {arr.shape[0]} rows, expected "
                             f"{'at least ' if at_least else ''}{rows}: {what}")
        arr = arr.astype(np.float64)
        check_finite(arr, name)
        return arr

    def _check_steps(self, n_steps):
        if self.n_past_covariates_ and n_steps > self._step:
            raise ValueError(
                f"{type(self).__name__}: a forecast of {n_steps} steps would need the past "
                "covariates of the steps after the history, which are not known then: with "
                f"past_covariates this model forecasts at most {self._step} step(s) at once "
                "(give known-ahead variables as future_covariates instead)")

    # ------------------------------------------------------------ fit

    def fit(self, series, y=None, *, past_covariates=None, future_covariates=None):
        """Fit on ``series`` (n_time,) or (n_time, n_vars), the target, with optional
        ``past_covariates`` and ``future_covariates`` (n_time, k) (see the class
        docstring). Returns self."""
        if y is not None:
            raise TypeError(
                f"{type(self).__name__}.fit(series) takes no y: the series is the target "
                "(it is forecast from its own past). Exogenous variables go in "
                "past_covariates= (observed up to the forecast origin; model inputs only) "
                "or future_covariates= (known over the forecast horizon too), one row per "
                "step of the series.")
        p = self._validate_params()
        first = not (p["warm_start"] and hasattr(self, "_network"))
        return self._guarded_fit(first, lambda: self._fit_series(
            series, past_covariates, future_covariates, p, first))

    def _fit_series(self, series, past, future, p, first):
        est = type(self).__name__
        arr = self._check_series(series, "series", reset=first)
        n, v = arr.shape
        rows = f"one row per step of series ({n})"
        P = self._covariates(past, "past_covariates", n, None, rows)
        F = self._covariates(future, "future_covariates", n, None, rows)
        for cov, cname in ((past, "past_covariates"), (future, "future_covariates")):
            if cov is not None:
                _pandas.check_same_index(series, cov, "series", cname)
        n_past, n_fut = P.shape[1], F.shape[1]
        w, H, diff = p["window"], p["horizon"], int(p["difference"])
        S = H if p["strategy"] == "direct" else 1
        need = w + diff
        if n_past and S < H:
            raise ValueError(
                f"{est}: strategy='recursive' with horizon={H} would need the past covariates "
                "of the steps it forecasts, which are not known then: use strategy='direct', "
                "or give known-ahead variables as future_covariates")
        if n < need + S:
            raise ValueError(
                f"{est}: series of length {n} is too short for window={w}"
                f" and horizon={H} (strategy={p['strategy']!r}): need at least "
                f"{need + S} time steps"
            )
        index = _pandas.index_record(series, "series") if _pandas.is_pandas(series) else None
        base = np.diff(arr, axis=0) if diff else arr
        C = np.concatenate([P, F], axis=1)
        if first:
            self.mean_ = base.mean(axis=0)
            sd = base.std(axis=0)
            self.scale_ = np.where(sd > 0, sd, 1.0)
            self._cov_mean = C.mean(axis=0)
            sd = C.std(axis=0)
            self._cov_scale = np.where(sd > 0, sd, 1.0)
            self._fit_loss = p["loss"]
            self._quantiles = p["quantiles"] if p["loss"] == "quantile" else None
            self._fit_window, self._fit_horizon = w, H
            self._fit_strategy, self._fit_difference = p["strategy"], p["difference"]
            self.n_past_covariates_, self.n_future_covariates_ = n_past, n_fut
        elif (w, H, p["strategy"], p["difference"], n_past, n_fut, p["loss"],
              p["quantiles"] if p["loss"] == "quantile" else None) != (
                self._fit_window, self._fit_horizon, self._fit_strategy, self._fit_difference,
                self.n_past_covariates_, self.n_future_covariates_, self._fit_loss,
                self._quantiles):
            raise ValueError(f"{est}: warm_start needs the same window, horizon, strategy, "
                             "difference, loss, quantiles and covariate columns")
        origins = np.arange(need, n - S + 1)       # the first forecast step of each window
        cal = None
        if p["conformal"]:
            n_origins = n - need - H + 1           # origins with H observed steps after them
            n_cal = int(math.ceil(p["calibration_fraction"] * n_origins))
            cal = np.arange(n - H - n_cal + 1, n - H + 1)
            # no training target may fall on a calibration step
            origins = origins[origins <= cal[0] - S]
            if n_origins < 1 or origins.size < 1:
                raise ValueError(
                    f"{est}: conformal=True holds out the last calibration_fraction="
                    f"{p['calibration_fraction']} of the {max(n_origins, 0)} forecast origins "
                    "and trains on the windows before them; both need at least one (use a "
                    "longer series)")
        z = (base - self.mean_) / self.scale_
        cz = (C[diff:] - self._cov_mean) / self._cov_scale
        dtype = np.dtype(p["dtype"]) if first else self._network.dtype
        X, Y = self._training_windows(z, cz, origins, dtype)
        Q = 1 if self._quantiles is None else len(self._quantiles)
        self._setup(p, X.shape[2], Y.shape[1] * Q, False, first)
        self.last_window_ = arr[-need:].copy()
        self._last_covariates = C[-need:].copy()
        self._index = index
        self._n_seen = n
        self._naive_sums = np.stack([np.abs(arr[m:] - arr[:-m]).sum(axis=0) if m < n
                                     else np.zeros(v) for m in range(1, w + 1)])
        self.conformal_residuals_ = None
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
            self.validation_scores_, self.validation_loss_curve_ = [], []
        if first or not same_settings(getattr(self, "_optimizer", None), p["optimizer"],
                                      p["learning_rate"], p["weight_decay"]):
            self._optimizer = make_optimizer(p["optimizer"], p["learning_rate"], p["weight_decay"])
        self._train(X, None, Y, val, p, p["epochs"], use_stopping=True)
        if cal is not None:
            f = self._forecasts_at(arr, P, F, cal, H)[..., self._mid]
            self.conformal_residuals_ = np.abs(arr[cal[:, None] + np.arange(H)] - f)
        return self

    def _training_windows(self, z, cz, origins, dtype):
        """(X, Y) for the windows whose first forecast step is at ``origins``.

        z : (n - difference, v) the scaled (differenced) target, row r = time r + difference;
        cz : the scaled covariates on the same rows. Y is (n_windows, S * v).
        """
        w, S, diff = self._fit_window, self._step, int(self._fit_difference)
        rows = origins[:, None] - diff - w + np.arange(w)
        ahead = origins[:, None] - diff + np.arange(S)
        fut = cz[ahead][:, :, self.n_past_covariates_:] if self.n_future_covariates_ else None
        X = self._inputs(z[rows], cz[rows], fut, dtype)
        Y = z[ahead]
        if self._quantiles is not None and self._fit_difference:
            Y = np.cumsum(Y, axis=1)     # the change since the origin, step by step
        return X, np.ascontiguousarray(Y.reshape(Y.shape[0], -1), dtype=dtype)

    def _inputs(self, zwin, cwin, fut, dtype):
        """The network's input (B, T, d): the window's steps [target, past covariates,
        future covariates, 0], then (with future covariates) one step per forecast
        step [0, 0, its future covariates, 1]. Without covariates: the window."""
        if cwin.shape[2] == 0:
            return np.ascontiguousarray(zwin, dtype=dtype)
        B, w, v = zwin.shape
        c, f = cwin.shape[2], self.n_future_covariates_
        d = v + c + (1 if f else 0)
        S = fut.shape[1] if f else 0
        X = np.zeros((B, w + S, d), dtype=dtype)
        X[:, :w, :v] = zwin
        X[:, :w, v:v + c] = cwin
        if f:
            X[:, w:, v + c - f:v + c] = fut
            X[:, w:, d - 1] = 1
        return X

    # ------------------------------------------------------------ forecast

    def _forecasts_at(self, A, P, F, origins, n_steps):
        """Forecasts (B, n_steps, v, Q) from each origin t of the series A (n, v), with
        past covariates P (n, p) and future covariates F (>= t + padded steps, f)."""
        self._check_steps(n_steps)
        need = self._need
        idx = origins[:, None] - need + np.arange(need)
        C = np.concatenate([P[idx], F[idx]], axis=2)
        Fa = F[origins[:, None] + np.arange(self._padded(n_steps))] \
            if self.n_future_covariates_ else None
        return self._forecast(A[idx], C, Fa, n_steps, "history")

    def _forecast(self, Awin, Cwin, Fa, n_steps, name):
        """Forecasts (B, n_steps, v, Q) on the series' scale.

        Awin : (B, window + difference, v) raw history ends; Cwin: the
        covariates of those steps (B, ., p + f); Fa : (B, padded steps, f)
        future covariates of the forecast steps, or None.
        """
        net = self._network
        dtype = net.dtype
        w, S, diff = self._fit_window, self._step, int(self._fit_difference)
        B, _, v = Awin.shape
        Q = 1 if self._quantiles is None else len(self._quantiles)
        f = self.n_future_covariates_
        zb = self._scaled(np.diff(Awin, axis=1) if diff else Awin, dtype, name)
        cb = self._scaled_cov(Cwin[:, diff:], slice(None), name)
        fz = self._scaled_cov(Fa, slice(self.n_past_covariates_, None),
                              "future_covariates") if f else None
        chunks = []
        for k in range(0, n_steps, S):
            X = self._inputs(zb, cb, fz[:, k:k + S] if f else None, dtype)
            out = net.predict_raw(X, chunk=PREDICT_CHUNK).reshape(B, S, v, Q)
            if Q > 1:
                out = np.sort(out, axis=-1)      # rearranged: quantiles never cross
            chunks.append(out)
            if k + S < n_steps:                  # feed back the (median) forecast
                med = out[..., self._mid]
                if Q > 1 and diff:
                    med = np.diff(med, axis=1, prepend=np.zeros_like(med[:, :1]))
                zb = np.concatenate([zb, med], axis=1)[:, -w:]
                if cb.shape[2]:                  # only future covariates here (_check_steps)
                    cb = np.concatenate([cb, fz[:, k:k + S]], axis=1)[:, -w:]
        return self._unscale(chunks, Awin[:, -1], n_steps)

    def _unscale(self, chunks, last, n_steps):
        """Network outputs (chunks of (B, S, v, Q)) -> forecasts (B, n_steps, v, Q) on the
        series' scale; ``last`` (B, v): the last observed values."""
        Z = np.concatenate(chunks, axis=1)[:, :n_steps].astype(np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            if self._quantiles is None:
                f = Z[..., 0] * self.scale_ + self.mean_
                if self._fit_difference:
                    f = last[:, None, :] + np.cumsum(f, axis=1)
                f = f[..., None]
            elif not self._fit_difference:
                f = Z * self.scale_[:, None] + self.mean_[:, None]
            else:
                # each chunk holds changes since its origin: k steps add k means
                k = np.arange(1, chunks[0].shape[1] + 1)[None, :, None, None]
                parts, level = [], last
                for c in chunks:
                    lv = level[:, None, :, None] + c.astype(np.float64) * self.scale_[:, None] \
                        + k * self.mean_[:, None]
                    parts.append(lv)
                    level = lv[:, -1, :, self._mid]
                f = np.concatenate(parts, axis=1)[:, :n_steps]
        if not np.isfinite(f).all():
            raise ValueError(f"{type(self).__name__}: the forecast overflows float64 once "
                             "unscaled by the model's mean_ and scale_")
        return f

    def _scaled(self, base, dtype, name):
        """(base - mean_) / scale_ in the network's dtype; a clear error where that
        overflows (extreme history values, or extreme statistics in a model file)."""
        with np.errstate(over="ignore", invalid="ignore", under="ignore"):
            z = ((base - self.mean_) / self.scale_).astype(dtype)
        if not np.isfinite(z).all():
            raise ValueError(f"{type(self).__name__}: {name} standardised with the model's "
                             f"mean_ and scale_ overflows {np.dtype(dtype).name}")
        return z

    def _scaled_cov(self, C, cols, name):
        """Covariates standardised with the fitted statistics of columns ``cols``."""
        with np.errstate(over="ignore", invalid="ignore", under="ignore"):
            z = (C - self._cov_mean[cols]) / self._cov_scale[cols]
            bad = not np.isfinite(z.astype(self._network.dtype)).all()
        if bad:
            raise ValueError(f"{type(self).__name__}: {name} standardised with the model's "
                             "covariate statistics overflows the network's dtype")
        return z

    def _request(self, history, past, future, horizon):
        """Validate a forecast request; returns (forecasts (n, v, Q), index record)."""
        self._check_fitted()
        net = self._network
        if self.n_threads != net.n_threads:
            net.set_n_threads(NThreads().check("n_threads", self.n_threads))
        est = type(self).__name__
        n_steps = self._fit_horizon if horizon is None else Int(1).check("horizon", horizon)
        self._check_steps(n_steps)
        npast, nfut = self.n_past_covariates_, self.n_future_covariates_
        n_pad = self._padded(n_steps)
        if history is None:
            if past is not None:
                raise ValueError(
                    f"{est}: past_covariates without history: predict() continues the training "
                    "series (or the last update), whose past covariates the model keeps; "
                    "to forecast from another history pass history= with its past_covariates"
                    if npast else f"{est}: past_covariates was given, but the model was "
                    "fitted without past_covariates")
            Fa = self._covariates(future, "future_covariates", n_pad, nfut,
                                  f"one row per forecast step ({n_pad})")
            Awin, Cwin, rec = self.last_window_, self._last_covariates, self._index
        else:
            hist = self._check_series(history, "history", reset=False)
            need, nh = self._need, hist.shape[0]
            if nh < need:
                raise ValueError(
                    f"{est}: history has {nh} steps, the model needs at least window="
                    f"{self._fit_window}" + (" + 1 (difference=True)"
                                             if self._fit_difference else ""))
            P = self._covariates(past, "past_covariates", nh, npast,
                                 f"one row per step of history ({nh})")
            F = self._covariates(future, "future_covariates", nh + n_pad, nfut,
                                 f"one row per step of history and then one per forecast "
                                 f"step ({nh} + {n_pad})")
            if past is not None:
                _pandas.check_same_index(history, past, "history", "past_covariates")
            Fa = F[nh:]
            Awin = hist[-need:]
            Cwin = np.concatenate([P[-need:], F[:nh][-need:]], axis=1)
            rec = _pandas.index_record(history, "history") if _pandas.is_pandas(history) \
                else None
        f = self._forecast(Awin[None], Cwin[None], Fa[None] if nfut else None, n_steps,
                           "history")
        return f[0], rec

    def _as_output(self, values, rec):
        """(n, v) forecasts as predict returns them: (n,) for a univariate model, a
        pandas Series / DataFrame when the history was pandas."""
        out = values[:, 0] if self._univariate else values
        return out if rec is None else _pandas.wrap(out, rec, self._univariate)

    def predict(self, history=None, *, past_covariates=None, future_covariates=None,
                horizon=None):
        """Forecast the ``horizon`` steps after ``history`` (default: the training
        series, or the history after the last ``update``).

        Returns (horizon,) for a univariate model, else (horizon, n_vars); a
        pandas Series / DataFrame labelled with the following steps when the
        series (or ``history``) was pandas. ``horizon`` (default: the fitted
        one) may differ: more steps than the model forecasts at once are
        forecast by feeding back its forecasts (not with past covariates,
        unknown after the history). A quantile model returns its median.
        """
        f, rec = self._request(history, past_covariates, future_covariates, horizon)
        return self._as_output(f[..., self._mid], rec)

    def predict_quantiles(self, quantiles=None, history=None, *, past_covariates=None,
                          future_covariates=None, horizon=None):
        """Forecast quantiles: (horizon, n_q) for a univariate model, else
        (horizon, n_vars, n_q); pandas: a DataFrame whose columns are the
        quantiles (with the variables above them when multivariate).

        ``quantiles`` (default: the ``quantiles`` parameter): for a
        ``loss="quantile"`` model, some of the ones it learned; for a
        ``conformal`` one, any in (0, 1): q < 0.5 is the lower end of the
        central 1 - 2q interval, q > 0.5 the upper end of the 2q - 1 one.
        """
        qs, vals, rec = self._quantile_values(quantiles, history, past_covariates,
                                              future_covariates, horizon)
        n, v, _ = vals.shape
        if rec is None:
            return vals[:, 0] if self._univariate else vals
        if self._univariate:
            return _pandas.wrap(vals[:, 0], rec, False, columns=list(qs))
        import pandas as pd

        names = rec["columns"] if rec["columns"] is not None else list(range(v))
        cols = pd.MultiIndex.from_product([names, list(qs)])
        return _pandas.wrap(vals.reshape(n, -1), rec, False, columns=cols)

    def predict_interval(self, coverage=0.9, history=None, *, past_covariates=None,
                         future_covariates=None, horizon=None):
        """The central ``coverage`` interval of each forecast step: (lower, upper),
        each shaped like ``predict``'s output. A quantile model must have learned
        the quantiles (1 - coverage) / 2 and (1 + coverage) / 2."""
        c = forecasting._coverage(coverage)
        _, vals, rec = self._quantile_values(((1 - c) / 2, (1 + c) / 2), history,
                                             past_covariates, future_covariates, horizon)
        return self._as_output(vals[..., 0], rec), self._as_output(vals[..., 1], rec)

    def _quantile_values(self, quantiles, history, past, future, horizon):
        est = type(self).__name__
        self._check_fitted()
        if self._quantiles is None and self.conformal_residuals_ is None:
            raise ValueError(f"{est} has no forecast distribution: fit it with "
                             "loss='quantile' or conformal=True")
        qs = self.quantiles if quantiles is None else quantiles
        if is_real(qs):
            qs = (qs,)
        if not isinstance(qs, (tuple, list, np.ndarray)) or len(qs) == 0 or not all(
                is_real(q) and 0.0 < float(q) < 1.0 for q in qs):
            raise ValueError(f"{est}: quantiles must be numbers in (0, 1), got {qs!r}")
        qs = tuple(float(q) for q in qs)
        n_steps = self._fit_horizon if horizon is None else Int(1).check("horizon", horizon)
        if n_steps > self._fit_horizon:
            raise ValueError(f"{est}: quantiles and intervals exist for the {self._fit_horizon} "
                             f"steps the model was fitted to forecast, not for {n_steps}")
        f, rec = self._request(history, past, future, horizon)
        if self._quantiles is not None:
            idx = []
            for q in qs:
                hit = [j for j, fq in enumerate(self._quantiles) if abs(fq - q) < 1e-9]
                if not hit:
                    raise ValueError(f"{est}: the model learned the quantiles "
                                     f"{self._quantiles}; {q:g} is not one of them")
                idx.append(hit[0])
            return qs, f[..., idx], rec
        point = f[..., 0]
        res = self.conformal_residuals_[:, :n_steps]
        cols = [point if q == 0.5 else point + np.sign(q - 0.5) * forecasting.conformal_width(
            res, abs(2 * q - 1)) for q in qs]
        return qs, np.stack(cols, axis=-1), rec

    # ------------------------------------------------------------ evaluate

    def score(self, y, history=None, *, past_covariates=None, future_covariates=None,
              metric="mae", seasonal_period=1):
        """Negative forecast error on ``y``, the steps that follow ``history``
        (default: the training series, or the history after the last update).

        Forecasts start from every ``horizon``-th step of y (rolling origins,
        no refit), each seeing the observed values before it, so every value
        of y is forecast once, 1 to ``horizon`` steps ahead. ``metric``: "mae"
        (default), "rmse", "mape", "smape" or "mase" (``seasonal_period`` m;
        scaled by the in-sample seasonal naive MAE of the history, which
        without ``history`` the model keeps for m <= window), computed over
        all values (see fastlstm.forecasting). Returned negated so that
        higher is better, as scikit-learn's model selection expects.

        Covariates as for predict, covering y too: past covariates one row per
        step of y (per history step and then per step of y with ``history``),
        future covariates likewise, and also past the end of y where the
        last forecast needs them.
        """
        self._check_fitted()
        est = type(self).__name__
        metric = forecasting.check_metric(metric)
        Y = self._check_series(y, "y", reset=False)
        m, H, npast = Y.shape[0], self._fit_horizon, self.n_past_covariates_
        if history is None:
            A0, C0 = self.last_window_, self._last_covariates
            rows, what = m, f"one row per step of y ({m})"
        else:
            A0 = self._check_series(history, "history", reset=False)
            if A0.shape[0] < self._need:
                raise ValueError(f"{est}: history has {A0.shape[0]} steps, the model needs at "
                                 f"least {self._need}")
            C0 = np.zeros((0, npast + self.n_future_covariates_))
            rows = A0.shape[0] + m
            what = f"one row per step of history and of y ({A0.shape[0]} + {m})"
        n0 = A0.shape[0]
        A = np.concatenate([A0, Y])
        origins = n0 + np.arange(0, m, H)
        P = np.concatenate([C0[:, :npast], self._covariates(
            past_covariates, "past_covariates", rows, npast, what)])
        F = np.concatenate([C0[:, npast:], self._covariates(
            future_covariates, "future_covariates", rows, self.n_future_covariates_,
            what + " (and more where the last forecast runs past y)", at_least=True)])
        need_f = origins[-1] + self._padded(H)
        if self.n_future_covariates_ and F.shape[0] < need_f:
            raise ValueError(f"{est}: the last forecast (from step {origins[-1] - n0} of y) "
                             f"needs future_covariates for {need_f - A.shape[0]} step(s) after "
                             "the end of y: pass them, or trim y to a multiple of horizon")
        f = self._forecasts_at(A, P, F, origins, H)[..., self._mid]
        pred = f.reshape(-1, Y.shape[1])[:m]
        scale = None
        if metric == "mase":
            scale = self._stored_naive_scale(seasonal_period) if history is None \
                else forecasting.naive_scale(A0, seasonal_period)
        return -forecasting.error(metric, Y, pred, scale)

    def _stored_naive_scale(self, seasonal_period):
        m = Int(1).check("seasonal_period", seasonal_period)
        est = type(self).__name__
        if self._naive_sums is None or m > self._fit_window or self._n_seen <= m:
            raise ValueError(
                f"{est}: MASE without history= needs the in-sample seasonal naive error, "
                f"which the model keeps for seasonal_period <= window ({self._fit_window})"
                + ("" if self._naive_sums is not None else
                   " (not in model files of fastlstm 0.1.0)")
                + f"; pass history= (the in-sample series) for seasonal_period={m}")
        return self._naive_sums[m - 1] / (self._n_seen - m)

    def backtest(self, y, start=None, stride=None, horizon=None, refit=False, *,
                 past_covariates=None, future_covariates=None, metrics=("mae", "rmse"),
                 seasonal_period=1):
        """Forecast ``horizon`` steps from rolling origins of ``y`` and score each.

        Origins are ``start``, ``start + stride``, ... (each the position of a
        forecast's first step; the forecast sees y[:origin]) while the
        forecast fits in y. ``start``: a position (negative: from the end), a
        fraction in (0, 1) of y, or a label of y's pandas index; default, the
        first origin with ``window`` (+1) steps before it. ``stride``
        defaults to ``horizon``, which defaults to the model's.

        ``refit``: False forecasts every origin with this fitted model; True
        fits a fresh copy (same parameters) on y[:origin] at every origin;
        an int k refits at every k-th origin and forecasts from the others
        with the last copy. This estimator is left unchanged.

        ``metrics``: names from fastlstm.forecasting.METRICS (MASE scaled by
        the seasonal naive error of y[:origin], ``seasonal_period`` m).
        Covariates: one row per step of y (future covariates may run past it).
        Returns a ``fastlstm.forecasting.BacktestResult``: origins, forecasts,
        actuals, errors per origin and their means; ``.to_frame()`` gives a
        pandas table with y's index labels.
        """
        est = type(self).__name__
        if isinstance(refit, (bool, np.bool_)):
            every = int(refit)
        elif is_int(refit) and refit >= 1:
            every = int(refit)
        else:
            raise ValueError(f"{est}: refit must be False, True or an int >= 1, got {refit!r}")
        if every:
            model = self._fresh()
            model._validate_params()
            Y = model._check_series(y, "y", reset=True)
            npast = nfut = None
            need = self.window + int(self.difference)
            H = self.horizon
        else:
            self._check_fitted()
            Y = self._check_series(y, "y", reset=False)
            npast, nfut = self.n_past_covariates_, self.n_future_covariates_
            need, H = self._need, self._fit_horizon
        n = Y.shape[0]
        h = H if horizon is None else Int(1).check("horizon", horizon)
        origins = forecasting.rolling_origins(y, n, start, stride, h, min_start=need)
        what = f"one row per step of y ({n})"
        P = self._covariates(past_covariates, "past_covariates", n, npast, what)
        F = self._covariates(future_covariates, "future_covariates", n, nfut,
                             what + ", or more", at_least=True)
        if every:
            out = []
            for i, t in enumerate(origins):
                if i % every == 0:
                    model = self._fresh()
                    model.fit(Y[:t, 0] if Y.shape[1] == 1 and np.ndim(y) == 1 else Y[:t],
                              past_covariates=P[:t] if P.shape[1] else None,
                              future_covariates=F[:t] if F.shape[1] else None)
                out.append(model._backtest_forecasts(Y, P, F, origins[i:i + 1], h))
            f = np.concatenate(out)
        else:
            f = self._backtest_forecasts(Y, P, F, origins, h)
        Yout = Y[:, 0] if np.ndim(y) == 1 else Y
        return forecasting.evaluate_origins(y, Yout, f, origins, metrics, seasonal_period)

    def _backtest_forecasts(self, Y, P, F, origins, h):
        need_f = origins[-1] + self._padded(h)
        if self.n_future_covariates_ and F.shape[0] < need_f:
            raise ValueError(f"{type(self).__name__}: the last forecast needs "
                             f"future_covariates up to step {need_f} of y, given "
                             f"{F.shape[0]} rows")
        return self._forecasts_at(Y, P, F, origins, h)[..., self._mid]

    def _fresh(self):
        """An unfitted copy with the same parameters (scikit-learn's clone)."""
        return type(self)(**{k: copy.deepcopy(v) for k, v in
                             self.get_params(deep=False).items()})

    def update(self, y_new, *, past_covariates=None, future_covariates=None,
               fine_tune_epochs=0):
        """Append new observations ``y_new`` (n_new,) or (n_new, n_vars) to the history
        that ``predict()`` and ``score`` start from, with their covariates (one row per
        new step). ``fine_tune_epochs`` > 0 also trains that many epochs on the windows
        whose targets are new (the scaling and the conformal calibration stay as
        fitted). Returns self."""
        self._check_fitted()
        epochs = Int(0).check("fine_tune_epochs", fine_tune_epochs)
        Yn = self._check_series(y_new, "y_new", reset=False)
        if self._index is not None:
            _pandas.check_continues(self._index, y_new, "y_new")
        m = Yn.shape[0]
        what = f"one row per step of y_new ({m})"
        Pn = self._covariates(past_covariates, "past_covariates", m, self.n_past_covariates_,
                              what)
        Fn = self._covariates(future_covariates, "future_covariates", m,
                              self.n_future_covariates_, what)
        A = np.concatenate([self.last_window_, Yn])
        C = np.concatenate([self._last_covariates, np.concatenate([Pn, Fn], axis=1)])
        if epochs:
            self._guarded_fit(False, lambda: self._fine_tune(A, C, m, epochs))
        need = self._need
        if self._naive_sums is not None:
            w = self._fit_window
            self._naive_sums = self._naive_sums + np.stack(
                [np.abs(A[-m:] - A[-m - k:A.shape[0] - k]).sum(axis=0) for k in range(1, w + 1)])
            self._n_seen += m
        self.last_window_ = A[-need:].copy()
        self._last_covariates = C[-need:].copy()
        if self._index is not None:
            self._index = _pandas.advance(self._index, y_new, m)
        return self

    def _fine_tune(self, A, C, m, epochs):
        est = type(self).__name__
        p = self._validate_params()
        if (p["window"], p["horizon"], p["strategy"], p["difference"]) != (
                self._fit_window, self._fit_horizon, self._fit_strategy, self._fit_difference):
            raise ValueError(f"{est}: fine-tuning needs the fitted window, horizon, strategy "
                             "and difference")
        S, diff = self._step, int(self._fit_difference)
        origins = np.arange(self._need, A.shape[0] - S + 1)
        if origins.size == 0:
            raise ValueError(f"{est}: fine-tuning learns from windows whose {S} target step(s) "
                             f"are new; y_new has {m} step(s)")
        base = np.diff(A, axis=0) if diff else A
        z = (base - self.mean_) / self.scale_
        cz = (C[diff:] - self._cov_mean) / self._cov_scale
        X, Y = self._training_windows(z, cz, origins, self._network.dtype)
        self._network.set_n_threads(p["n_threads"])
        if getattr(self, "_optimizer", None) is None:
            self._optimizer = make_optimizer(p["optimizer"], p["learning_rate"],
                                             p["weight_decay"])
        self._train(X, None, Y, None, p, epochs, use_stopping=False)

    # ------------------------------------------------------------ io

    _extra_fitted_keys = ("univariate", "loss", "quantiles", "n_past_covariates",
                          "n_future_covariates", "n_calibration", "n_seen", "index")

    def _extra_fitted(self):
        res = self.conformal_residuals_
        return {"univariate": bool(self._univariate), "loss": self._fit_loss,
                "quantiles": None if self._quantiles is None else list(self._quantiles),
                "n_past_covariates": int(self.n_past_covariates_),
                "n_future_covariates": int(self.n_future_covariates_),
                "n_calibration": 0 if res is None else int(res.shape[0]),
                "n_seen": None if self._n_seen is None else int(self._n_seen),
                "index": self._index}

    @staticmethod
    def _fitted_counts(fitted):
        """(past, future covariate columns, calibration forecasts) of a file's fitted
        values (0 in files of fastlstm 0.1.0)."""
        out = []
        for key in ("n_past_covariates", "n_future_covariates", "n_calibration"):
            c = fitted.get(key, 0)
            if not is_int(c) or not 0 <= c <= MAX_WIDTH:
                raise ValueError(f"fitted {key} must be an int in [0, {MAX_WIDTH}]")
            out.append(int(c))
        return out

    def _network_input_size(self, fitted):
        p, f, _ = self._fitted_counts(fitted)
        return fitted["n_features_in_"] + p + f + (1 if f else 0)

    def _extra_array_names(self, fitted):
        p, f, n_cal = self._fitted_counts(fitted)
        names = ["mean", "scale", "last_window"]
        if p + f:
            names += ["covariate_stats", "last_covariates"]
        if n_cal:
            names.append("conformal_residuals")
        if fitted.get("n_seen") is not None:
            names.append("naive_abs_sum")
        return names

    def _extra_arrays(self):
        out = {"mean": self.mean_, "scale": self.scale_, "last_window": self.last_window_}
        if self.n_past_covariates_ + self.n_future_covariates_:
            out["covariate_stats"] = np.stack([self._cov_mean, self._cov_scale])
            out["last_covariates"] = self._last_covariates
        if self.conformal_residuals_ is not None:
            out["conformal_residuals"] = self.conformal_residuals_
        if self._naive_sums is not None:
            out["naive_abs_sum"] = self._naive_sums
        return out

    def _check_extra_fitted(self, fitted, spec, arrays):
        v = fitted["n_features_in_"]
        if not isinstance(fitted.get("univariate"), bool) or (fitted["univariate"] and v != 1):
            raise ValueError("fitted univariate flag is invalid")
        loss = fitted.get("loss")
        if loss not in self._losses:
            raise ValueError("fitted loss is invalid")
        q = fitted.get("quantiles")
        if loss == "quantile":
            try:
                q = Quantiles().check("fitted quantiles", q)
            except TypeError as e:
                raise ValueError(str(e)) from None
        elif q is not None:
            raise ValueError("fitted quantiles must be null unless the loss is 'quantile'")
        Q = 1 if q is None else len(q)
        p, f, n_cal = self._fitted_counts(fitted)

        def check(key, shape, positive=False):
            a = arrays[key]
            if a.shape != shape or a.dtype != np.float64:
                raise ValueError(f"{key} must be float64 of shape {shape}")
            if positive and not np.all(a > 0):
                raise ValueError(f"{key} must be positive")
            if not np.all(a >= 0) and key in ("conformal_residuals", "naive_abs_sum"):
                raise ValueError(f"{key} must be >= 0")

        check("mean", (v,))
        check("scale", (v,), positive=True)
        w = self.window + int(self.difference)
        check("last_window", (w, v))
        if p + f:
            check("covariate_stats", (2, p + f))
            check("last_covariates", (w, p + f))
            if not np.all(arrays["covariate_stats"][1] > 0):
                raise ValueError("covariate_stats: the scales (row 1) must be positive")
        if self.strategy == "recursive" and self.horizon > _MAX_FILE_HORIZON:
            raise ValueError(f"horizon={self.horizon} in the model file is implausible for "
                             f"the recursive strategy (more than {_MAX_FILE_HORIZON} steps)")
        step = self.horizon if self.strategy == "direct" else 1
        if spec.n_outputs != step * v * Q or spec.sequence_output:
            raise ValueError("network outputs do not match window/horizon/strategy/quantiles")
        if p and step < self.horizon:
            raise ValueError("past covariates need the direct strategy")
        if n_cal:
            check("conformal_residuals", (n_cal, self.horizon, v))
        seen = fitted.get("n_seen")
        if seen is not None:
            if not is_int(seen) or not w <= seen < 2**62:
                raise ValueError("fitted n_seen must be an int >= window + difference")
            check("naive_abs_sum", (self.window, v))
        index = fitted.get("index")
        if index is not None:
            _pandas.check_record(index)

    def _set_output_info_from(self, fitted, spec, arrays):
        self._univariate = fitted["univariate"]
        self._fit_loss = fitted["loss"]
        q = fitted.get("quantiles")
        self._quantiles = None if q is None else tuple(float(x) for x in q)
        self._fit_window, self._fit_horizon = self.window, self.horizon
        self._fit_strategy, self._fit_difference = self.strategy, self.difference
        p, f, n_cal = self._fitted_counts(fitted)
        self.n_past_covariates_, self.n_future_covariates_ = p, f
        self.mean_ = arrays["mean"]
        self.scale_ = arrays["scale"]
        self.last_window_ = arrays["last_window"]
        if p + f:
            self._cov_mean, self._cov_scale = arrays["covariate_stats"]
            self._last_covariates = arrays["last_covariates"]
        else:
            self._cov_mean = self._cov_scale = np.zeros(0)
            self._last_covariates = np.zeros((self.last_window_.shape[0], 0))
        self.conformal_residuals_ = arrays["conformal_residuals"] if n_cal else None
        self._n_seen = fitted.get("n_seen")
        self._naive_sums = arrays.get("naive_abs_sum") if self._n_seen is not None else None
        self._index = fitted.get("index")
        # what predict() feeds the network first must be representable
        base = np.diff(self.last_window_, axis=0) if self.difference else self.last_window_
        self._scaled(base, spec.dtype, "the stored last_window")
        if p + f:
            self._scaled_cov(self._last_covariates, slice(None), "the stored last_covariates")


_REGISTRY = {cls.__name__: cls for cls in (LSTMRegressor, LSTMClassifier, LSTMForecaster)}


def load(path):
    """Load an estimator saved with ``.save(path)``. Safe on untrusted files: it
    never unpickles, checks everything against the config before use, and
    raises ValueError on anything truncated, inconsistent or hostile."""
    return io.read_model(path, _REGISTRY)
