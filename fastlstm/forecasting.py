"""Forecast evaluation and intervals: error metrics, split-conformal widths,
rolling-origin backtests and the seasonal naive baseline.

Plain numpy; ``LSTMForecaster`` (fastlstm.estimators) uses these, and they
work on any forecasts.

Metrics take ``actual`` and ``forecast`` of one shape, time first ((n,) or
(n, n_vars)), and average over every element (time steps and variables):

========  =====================================================================
mae       mean |a - f|
rmse      sqrt(mean (a - f)^2)
mape      mean |a - f| / |a|, a fraction (0.05 = 5%), as scikit-learn's
          ``mean_absolute_percentage_error`` (|a| below machine epsilon counts
          as epsilon)
smape     mean 2 |a - f| / (|a| + |f|), a fraction in [0, 2] (0 where a = f = 0)
mase      mean |a - f| / s, s = the in-sample MAE of the seasonal naive
          forecast y[t] = y[t - m] (per variable), Hyndman & Koehler (2006)
========  =====================================================================

All are lower-is-better; the estimators' ``score`` returns their negative
(scikit-learn's higher-is-better convention).
"""

import dataclasses
import math

import numpy as np

from . import _pandas
from ._validation import Int, is_int, is_real

__all__ = ["METRICS", "mae", "rmse", "mape", "smape", "mase", "naive_scale", "error",
           "conformal_width", "seasonal_naive", "SeasonalNaive", "BacktestResult"]


# ---------------------------------------------------------------- metrics


def _pair(actual, forecast):
    a = np.asarray(actual, dtype=np.float64)
    f = np.asarray(forecast, dtype=np.float64)
    if a.shape != f.shape:
        raise ValueError(f"actual has shape {a.shape}, forecast has shape {f.shape}")
    if a.size == 0:
        raise ValueError("actual and forecast are empty")
    return a, f


def mae(actual, forecast):
    a, f = _pair(actual, forecast)
    return float(np.mean(np.abs(a - f)))


def rmse(actual, forecast):
    a, f = _pair(actual, forecast)
    return float(np.sqrt(np.mean((a - f) ** 2)))


def mape(actual, forecast):
    a, f = _pair(actual, forecast)
    return float(np.mean(np.abs(a - f) / np.maximum(np.abs(a), np.finfo(np.float64).eps)))


def smape(actual, forecast):
    a, f = _pair(actual, forecast)
    den = np.abs(a) + np.abs(f)
    ratio = np.divide(2.0 * np.abs(a - f), den, out=np.zeros_like(den), where=den > 0)
    return float(np.mean(ratio))


def naive_scale(insample, seasonal_period=1):
    """The MAE of the in-sample seasonal naive forecast y[t] = y[t - m], per
    variable ((n_vars,), or a float for a 1-D series): MASE's denominator."""
    m = Int(1).check("seasonal_period", seasonal_period)
    y = np.asarray(insample, dtype=np.float64)
    if y.ndim not in (1, 2) or y.shape[0] <= m:
        raise ValueError(f"MASE needs an in-sample series longer than seasonal_period={m}, "
                         f"got shape {y.shape}")
    s = np.mean(np.abs(y[m:] - y[:-m]), axis=0)
    return s


def mase(actual, forecast, insample=None, seasonal_period=1, scale=None):
    """Mean absolute scaled error: errors divided by ``naive_scale(insample,
    seasonal_period)`` (or by ``scale``, that value computed beforehand)."""
    a, f = _pair(actual, forecast)
    if scale is None:
        if insample is None:
            raise ValueError("mase needs the in-sample series (insample=) or its scale")
        scale = naive_scale(insample, seasonal_period)
    scale = np.asarray(scale, dtype=np.float64)
    if not np.all(scale > 0):
        raise ValueError("MASE is undefined: the in-sample seasonal naive forecast is exact "
                         "(its MAE is 0); use another metric")
    return float(np.mean(np.abs(a - f) / scale))


METRICS = {"mae": mae, "rmse": rmse, "mape": mape, "smape": smape, "mase": mase}


def check_metric(metric, name="metric"):
    if not isinstance(metric, str) or metric not in METRICS:
        raise ValueError(f"{name} must be one of {tuple(METRICS)}, got {metric!r}")
    return metric


def error(metric, actual, forecast, scale=None):
    """``metric`` of a forecast; ``scale`` is MASE's denominator (ignored otherwise)."""
    if check_metric(metric) == "mase":
        return mase(actual, forecast, scale=scale)
    return METRICS[metric](actual, forecast)


# ---------------------------------------------------------------- conformal


def conformal_width(scores, coverage):
    """Split-conformal half-width from calibration scores (n, ...) (absolute
    residuals): the ceil((n + 1) * coverage)-th smallest along axis 0, which
    covers a new exchangeable residual with probability >= coverage
    (Vovk et al.; Lei et al. 2018). ValueError when n is too small for it."""
    c = _coverage(coverage)
    s = np.asarray(scores, dtype=np.float64)
    n = s.shape[0]
    k = math.ceil((n + 1) * c - 1e-9)
    if k > n:
        raise ValueError(
            f"a {c:.0%} conformal interval needs at least {math.ceil(c / (1 - c) - 1e-9)} "
            f"calibration forecasts, the model has {n}: fit on a longer series or raise "
            "calibration_fraction")
    return np.sort(s, axis=0)[k - 1]


def _coverage(coverage):
    if not is_real(coverage) or not 0.0 < float(coverage) < 1.0:
        raise ValueError(f"coverage must be a number in (0, 1), got {coverage!r}")
    return float(coverage)


# ---------------------------------------------------------------- baselines


def seasonal_naive(history, horizon, seasonal_period=1):
    """Forecast y[T + k] = y[T + k - m * (k // m + 1)] (k = 0..horizon-1): the same
    season's last observation. ``history`` (n,) or (n, n_vars), n >= m."""
    y = np.asarray(history, dtype=np.float64)
    m = Int(1).check("seasonal_period", seasonal_period)
    h = Int(1).check("horizon", horizon)
    if y.ndim not in (1, 2) or y.shape[0] < m:
        raise ValueError(f"seasonal_naive needs at least seasonal_period={m} observations, "
                         f"got shape {y.shape}")
    k = np.arange(h)
    return y[y.shape[0] + k - m * (k // m + 1)]


class SeasonalNaive:
    """The seasonal naive forecaster with the forecaster's evaluation methods:
    ``predict(history=None, horizon=None)``, ``score`` and ``backtest``.

    ``fit(series)`` only remembers the last season of the series.
    """

    def __init__(self, seasonal_period=1, horizon=1):
        self.seasonal_period = seasonal_period
        self.horizon = horizon

    def get_params(self, deep=True):
        return {"seasonal_period": self.seasonal_period, "horizon": self.horizon}

    def set_params(self, **params):
        for k, v in params.items():
            if k not in self.get_params():
                raise ValueError(f"Invalid parameter {k!r} for SeasonalNaive")
            setattr(self, k, v)
        return self

    def __repr__(self):
        return f"SeasonalNaive(seasonal_period={self.seasonal_period}, horizon={self.horizon})"

    def _series(self, y, name):
        arr = np.asarray(y.to_numpy() if _pandas.is_pandas(y) else y, dtype=np.float64)
        if arr.ndim not in (1, 2) or arr.shape[0] == 0:
            raise ValueError(f"SeasonalNaive: {name} must be (n_time,) or (n_time, n_vars), "
                             f"got shape {arr.shape}")
        if not np.isfinite(arr).all():
            raise ValueError(f"Input {name} contains NaN or infinity.")
        return arr

    def fit(self, series, y=None):
        arr = self._series(series, "series")
        m = Int(1).check("seasonal_period", self.seasonal_period)
        if arr.shape[0] < m:
            raise ValueError(f"SeasonalNaive: series of length {arr.shape[0]} is shorter than "
                             f"seasonal_period={m}")
        self.last_season_ = arr[-m:].copy()
        return self

    def predict(self, history=None, horizon=None):
        h = self.horizon if horizon is None else horizon
        if history is None:
            if not hasattr(self, "last_season_"):
                raise ValueError("SeasonalNaive is not fitted: call fit or pass history")
            return seasonal_naive(self.last_season_, h, self.seasonal_period)
        return seasonal_naive(self._series(history, "history"), h, self.seasonal_period)

    def score(self, y, history=None, metric="mae", seasonal_period=1):
        """Negative ``metric`` of the forecasts of y (rolling origins every
        ``horizon`` steps, as LSTMForecaster.score)."""
        Y = self._series(y, "y")
        H = Int(1).check("horizon", self.horizon)
        hist = self.last_season_ if history is None else self._series(history, "history")
        full = np.concatenate([hist, Y.reshape((Y.shape[0],) + hist.shape[1:])])
        n0 = hist.shape[0]
        f = np.concatenate([seasonal_naive(full[:t], H, self.seasonal_period)
                            for t in range(n0, full.shape[0], H)])[:Y.shape[0]]
        scale = naive_scale(hist, seasonal_period) if metric == "mase" else None
        return -error(metric, full[n0:], f, scale)

    def backtest(self, y, start=None, stride=None, horizon=None, refit=False,
                 metrics=("mae", "rmse"), seasonal_period=1):
        """Rolling-origin evaluation, as ``LSTMForecaster.backtest`` (``refit`` changes
        nothing: the forecast only reads the history)."""
        Y = self._series(y, "y")
        h = Int(1).check("horizon", self.horizon if horizon is None else horizon)
        m = Int(1).check("seasonal_period", self.seasonal_period)
        origins = rolling_origins(y, Y.shape[0], start, stride, h, min_start=m)
        f = np.stack([seasonal_naive(Y[:t], h, m) for t in origins])
        return evaluate_origins(y, Y, f, origins, metrics, seasonal_period)


# ---------------------------------------------------------------- backtests


@dataclasses.dataclass(repr=False)
class BacktestResult:
    """Forecasts from rolling origins and their errors.

    origins : (n_origins,) int, the position in y of each forecast's first step
        (the model saw y[:origin]).
    labels : the index labels of those steps when y was pandas, else None.
    forecasts, actuals : (n_origins, horizon) or (n_origins, horizon, n_vars).
    errors : {metric: (n_origins,) array}, one error per origin (lower is better).
    mean : {metric: float}, the mean over origins.
    """
    origins: np.ndarray
    labels: object
    forecasts: np.ndarray
    actuals: np.ndarray
    errors: dict
    mean: dict

    def __repr__(self):
        means = ", ".join(f"{k}={v:.4g}" for k, v in self.mean.items())
        return (f"BacktestResult({len(self.origins)} origins at {self.origins.tolist()}, "
                f"horizon {self.forecasts.shape[1]}; mean {means})")

    def to_frame(self):
        """A pandas DataFrame, one row per origin (index: the origins' labels or
        positions): a column per metric (needs pandas)."""
        import pandas as pd

        index = self.labels if self.labels is not None else pd.Index(self.origins)
        frame = pd.DataFrame({k: v for k, v in self.errors.items()}, index=index)
        frame.index.name = "origin"
        return frame


def resolve_start(y, n, start, default):
    """A start given as a position (negative: from the end), a fraction in (0, 1)
    of the series, or a label of a pandas series' index -> a position."""
    if start is None:
        return default
    if is_int(start):
        pos = int(start) + (n if start < 0 else 0)
    elif is_real(start) and 0.0 < float(start) < 1.0:
        pos = int(math.floor(float(start) * n))
    elif _pandas.is_pandas(y):
        try:
            pos = y.index.get_loc(start)
        except KeyError:
            raise ValueError(f"start={start!r} is not in the index of y") from None
        if not is_int(pos):
            raise ValueError(f"start={start!r} does not name one step of y")
        pos = int(pos)
    else:
        raise ValueError(f"start must be a position (int), a fraction in (0, 1) or, for a "
                         f"pandas series, one of its index labels; got {start!r}")
    if not 0 <= pos <= n:
        raise ValueError(f"start={start!r} is outside the series (length {n})")
    return pos


def rolling_origins(y, n, start, stride, horizon, min_start):
    """Origins start, start + stride, ... whose ``horizon`` steps lie inside y."""
    stride = Int(1).check("stride", horizon if stride is None else stride)
    t0 = resolve_start(y, n, start, min_start)
    if t0 < min_start:
        raise ValueError(f"start={start!r} leaves {t0} steps of history before the first "
                         f"origin; at least {min_start} are needed")
    origins = np.arange(t0, n - horizon + 1, stride, dtype=np.int64)
    if origins.size == 0:
        raise ValueError(f"no forecast origin: a series of length {n} starting at {t0} has "
                         f"no room for horizon={horizon} steps")
    return origins


def evaluate_origins(y, Y, forecasts, origins, metrics, seasonal_period):
    """The BacktestResult of forecasts (n_origins, horizon, n_vars) or
    (n_origins, horizon) from ``origins`` of the series Y (n, n_vars) or (n,)
    (``y``: what the user passed, for its pandas index)."""
    if isinstance(metrics, str):
        metrics = (metrics,)
    metrics = tuple(check_metric(m, "metrics") for m in metrics)
    h = forecasts.shape[1]
    actuals = Y[origins[:, None] + np.arange(h)]
    forecasts = forecasts.reshape(actuals.shape)
    errors = {}
    for name in metrics:
        errs = []
        for i, t in enumerate(origins):
            scale = naive_scale(Y[:t], seasonal_period) if name == "mase" else None
            errs.append(error(name, actuals[i], forecasts[i], scale))
        errors[name] = np.asarray(errs)
    labels = y.index[origins] if _pandas.is_pandas(y) else None
    return BacktestResult(origins=origins, labels=labels, forecasts=forecasts, actuals=actuals,
                          errors=errors, mean={k: float(np.mean(v)) for k, v in errors.items()})
