"""LSTMForecaster: windows of a series' past -> its next ``horizon`` steps, with
covariates, intervals, backtests and pandas (helpers in ``forecasting.py``)."""

import copy
import inspect
import math

import numpy as np

from . import _pandas, forecasting
from ._estimator_base import check_finite, is_sparse, store_init_params, to_numeric
from ._limits import MAX_WIDTH
from ._training import PREDICT_CHUNK
from ._validation import Bool, Choice, Int, NThreads, Quantiles, Real, is_int, is_real
from ._lstm_base import _COMMON_CONSTRAINTS, _COMMON_DOC, _MAX_FILE_HORIZON, _LSTMBase
from .optim import make_optimizer, same_settings

__all__ = ["LSTMForecaster"]


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
