"""The recurrent estimators' shared core: their common parameters and the
``_LSTMBase`` class (parameters, data checks, network set-up, prediction and
the model-file hooks), which LSTMRegressor, LSTMClassifier
(``estimators.py``) and LSTMForecaster (``forecaster.py``) build on.
"""

import dataclasses
import threading

import numpy as np

from . import io
from . import exceptions as _exc
from ._estimator_base import (EstimatorBase, check_finite, is_sparse, reshape_hint, split_ragged,
                              to_numeric)
from ._limits import MAX_INFERRED_VOCAB, MAX_WIDTH
from ._training import PREDICT_CHUNK, TrainingMixin
from ._validation import (Bool, Callbacks, Choice, DType, Int, NThreads, RandomState, Real,
                          Verbose, seed_from, validate_params)
from .data import _compact_token_ids
from .network import Network
from .optim import make_optimizer, same_settings
from .spec import FIELD_CONSTRAINTS, NetworkSpec

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
        values per parameter).

        A quantized model (``quantize()``) is stored with its recurrent weights
        as it computes with them (int8 with row scales, or bfloat16), so its
        file is smaller and loads as the same quantized model; it has no
        optimizer state, and the file needs fastlstm >= 0.2.0 (the C API
        refuses it)."""
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
