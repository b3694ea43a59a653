"""scikit-learn-style estimators: LSTMRegressor, LSTMClassifier (and
LSTMForecaster, defined in ``forecaster``), and ``load``.

Their conventions and input checks are in ``_estimator_base``, what they
share in ``_lstm_base``, the training loop in ``_training``, the model file
in ``io``; this module holds what the regressor and classifier mean: their
parameters, targets, outputs and file state.

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

import warnings

import numpy as np

from . import io
from . import exceptions as _exc
from ._estimator_base import check_finite, split_ragged, store_init_params, to_numeric
from ._lstm_base import _COMMON_CONSTRAINTS, _COMMON_DOC, _EMBEDDING_CONSTRAINTS, _LSTMBase, _r2
from ._validation import Bool, Choice, ClassWeight, NThreads, is_int
from .forecaster import LSTMForecaster

__all__ = ["LSTMRegressor", "LSTMClassifier", "LSTMForecaster", "load"]


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


_REGISTRY = {cls.__name__: cls for cls in (LSTMRegressor, LSTMClassifier, LSTMForecaster)}


def load(path):
    """Load an estimator saved with ``.save(path)``. Safe on untrusted files: it
    never unpickles, checks everything against the config before use, and
    raises ValueError on anything truncated, inconsistent or hostile."""
    return io.read_model(path, _REGISTRY)
