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

import dataclasses
import math
import threading
import warnings

import numpy as np

from . import exceptions as _exc
from . import io
from ._estimator_base import (EstimatorBase, check_finite, is_sparse, reshape_hint,
                              split_ragged, store_init_params, to_numeric)
from ._limits import MAX_INFERRED_VOCAB, MAX_WIDTH
from ._training import PREDICT_CHUNK, TrainingMixin
from ._validation import (Bool, Callbacks, Choice, ClassWeight, DType, Int, NThreads,
                          RandomState, Real, Verbose, is_int, seed_from, validate_params)
from .data import _compact_token_ids, sliding_windows
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
            self.validation_scores_ = None
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
            self.validation_scores_ = []
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
        from . import export
        return export.estimator_to_onnx(self, path, opset, with_lengths)

    def to_torch(self):
        """A torch ``nn.Module`` computing what ``to_onnx``'s model does; ValueError
        for a cell or activation PyTorch lacks."""
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
        ``logs = {"epoch": n, "loss": ..., "val_loss": ... or None}``; a true
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
        Validation loss of each epoch (lower is better), when a validation
        set is used.
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
    _parameter_constraints = {**_COMMON_CONSTRAINTS, "loss": Choice(_losses),
                              "window": Int(1), "horizon": Int(1),
                              "strategy": Choice(("direct", "recursive")), "difference": Bool()}

    def __init__(self, window, horizon=1, strategy="direct", difference=False,
                 hidden_sizes=(50,), cell="lstm",
                 activation="tanh", gate_activation="sigmoid", bidirectional=False,
                 dropout=0.0, loss="mse", optimizer="adam", learning_rate=0.001,
                 batch_size=32, epochs=100, shuffle=True, weight_decay=0.0, clip_norm=None,
                 early_stopping=False, validation_fraction=0.1, n_iter_no_change=10,
                 tol=1e-4, restore_best_weights=True, warm_start=False, random_state=None,
                 n_threads=None, verbose=0, dtype="float32", callbacks=None):
        store_init_params(self, locals())

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = False
        return tags

    @property
    def _loss_name(self):
        return self._fit_loss


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
        if first or not same_settings(getattr(self, "_optimizer", None), p["optimizer"],
                                      p["learning_rate"], p["weight_decay"]):
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
            net.set_n_threads(NThreads().check("n_threads", self.n_threads))
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

    _extra_fitted_keys = ("univariate", "loss")

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
        if spec.n_outputs != step * v or spec.sequence_output:
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
        self._scaled(base, spec.dtype, "the stored last_window")


_REGISTRY = {cls.__name__: cls for cls in (LSTMRegressor, LSTMClassifier, LSTMForecaster)}


def load(path):
    """Load an estimator saved with ``.save(path)``. Safe on untrusted files: it
    never unpickles, checks everything against the config before use, and
    raises ValueError on anything truncated, inconsistent or hostile."""
    return io.read_model(path, _REGISTRY)
