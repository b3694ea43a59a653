"""LSTMForecaster as a forecasting tool: covariates, quantile and conformal
intervals, score / backtest / update, scikit-learn model selection, pandas in
and out, and the model file of all of it (fastlstm.forecasting holds the
metrics, the conformal width and the backtest bookkeeping).

Models are small (8 units, a few to 30 epochs, n_threads=1): the file runs in
well under a minute on 2 cores.
"""

import math
import subprocess
import sys

import numpy as np
import pytest

import fastlstm

import helpers
from fastlstm import forecasting
from fastlstm.estimators import LSTMForecaster

FAST = dict(hidden_sizes=(8,), epochs=3, batch_size=16, n_threads=1, random_state=0)
LEARN = dict(hidden_sizes=(8,), epochs=30, learning_rate=0.01, n_threads=1, random_state=0)


def _seasonal(n, seed=0, noise=0.5):
    """3 sin(2 pi t / 12) + N(0, noise^2): stationary, so forecast errors are exchangeable."""
    t = np.arange(n)
    return 3 * np.sin(2 * np.pi * t / 12) + np.random.default_rng(seed).normal(0, noise, n)


def _driven(n=400, seed=0):
    """x iid N(0, 1); y = x + noise (x known ahead) and y_lag = x[t-1] + noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    y = x + 0.1 * rng.normal(size=n)
    y_lag = np.r_[0.0, x[:-1]] + 0.1 * rng.normal(size=n)
    return x, y, y_lag


# ---------------------------------------------------------------- covariates


def test_fit_refuses_y_and_names_the_covariate_arguments():
    s = _seasonal(60)
    with pytest.raises(TypeError, match="past_covariates=.*future_covariates="):
        LSTMForecaster(window=6, **FAST).fit(s, s)
    with pytest.raises(TypeError, match="takes no y"):
        LSTMForecaster(window=6, **FAST).fit(s, y=np.ones((60, 2)))


@pytest.mark.parametrize("strategy", ["direct", "recursive"])
def test_future_covariates_are_used_over_the_horizon(strategy):
    """y = x + noise with x unpredictable but known ahead: only a model that sees the
    covariates of the forecast steps can forecast it (RMSE of noise 0.1 vs about
    1, the sd of x)."""
    x, y, _ = _driven()
    fc = LSTMForecaster(window=8, horizon=3, strategy=strategy, **LEARN)
    fc.fit(y[:300], future_covariates=x[:300, None])
    blind = LSTMForecaster(window=8, horizon=3, strategy=strategy, **LEARN).fit(y[:300])
    assert fc.n_future_covariates_ == 1 and fc.n_past_covariates_ == 0
    with_cov = fc.backtest(y, start=300, future_covariates=x[:, None]).mean["rmse"]
    without = blind.backtest(y, start=300).mean["rmse"]
    assert with_cov < 0.3 and without > 0.6, (with_cov, without)
    # predict() continues the training series with the horizon's covariates
    f = fc.predict(future_covariates=x[300:303])
    np.testing.assert_allclose(f, fc.predict(y[:300], future_covariates=x[:303]), rtol=1e-6)
    assert np.sqrt(np.mean((f - y[300:303]) ** 2)) < 0.5


def test_past_covariates_are_inputs_only():
    """y[t] = x[t-1] + noise: the previous covariate value is the forecast."""
    x, _, y = _driven()
    fc = LSTMForecaster(window=8, horizon=1, **LEARN).fit(y[:300], past_covariates=x[:300])
    assert fc.predict().shape == (1,)            # the covariate is not forecast
    err = fc.backtest(y, start=300, past_covariates=x).mean["mae"]
    assert err < 0.3, err
    np.testing.assert_allclose(fc.predict(y[:250], past_covariates=x[:250]),
                               fc.backtest(y, start=250, past_covariates=x).forecasts[0],
                               rtol=1e-5)


def test_covariates_with_a_multivariate_target():
    x, y, y_lag = _driven(120)
    Y = np.c_[y, y_lag]
    fc = LSTMForecaster(window=6, horizon=2, **FAST).fit(
        Y, past_covariates=x, future_covariates=np.c_[x, -x])
    f = fc.predict(future_covariates=np.c_[x[:2], -x[:2]])
    assert f.shape == (2, 2) and np.isfinite(f).all()
    assert fc._network.spec.input_size == 2 + 1 + 2 + 1   # target, past, future, indicator


def test_misaligned_covariates_are_refused_with_names_and_lengths():
    x, y, _ = _driven(100)
    F = np.c_[x, x ** 2]
    with pytest.raises(ValueError, match=r"past_covariates has 99 rows, expected 100"):
        LSTMForecaster(window=6, **FAST).fit(y, past_covariates=x[:99])
    fc = LSTMForecaster(window=6, horizon=3, **FAST).fit(y, future_covariates=F)
    with pytest.raises(ValueError, match=r"future_covariates has 4 rows, expected 3: one row "
                                         r"per forecast step"):
        fc.predict(future_covariates=F[:4])
    with pytest.raises(ValueError, match=r"future_covariates has 50 rows, expected 53: .*"
                                         r"\(50 \+ 3\)"):
        fc.predict(y[:50], future_covariates=F[:50])
    with pytest.raises(ValueError, match="fitted with 2 future_covariates column"):
        fc.predict()
    with pytest.raises(ValueError, match="1 column.*fitted with 2"):
        fc.predict(future_covariates=x[:3])
    with pytest.raises(ValueError, match="fitted without past_covariates"):
        fc.predict(past_covariates=x[:3], future_covariates=F[:3])
    plain = LSTMForecaster(window=6, **FAST).fit(y)
    with pytest.raises(ValueError, match="future_covariates was given, but the model was "
                                         "fitted without"):
        plain.predict(future_covariates=F[:1])


def test_past_covariates_are_never_assumed_known_ahead():
    x, y, _ = _driven(100)
    with pytest.raises(ValueError, match="recursive.*past covariates of the steps it forecasts"):
        LSTMForecaster(window=6, horizon=3, strategy="recursive", **FAST).fit(
            y, past_covariates=x)
    fc = LSTMForecaster(window=6, horizon=2, **FAST).fit(y, past_covariates=x)
    with pytest.raises(ValueError, match="at most 2 step"):
        fc.predict(horizon=3)
    with pytest.raises(ValueError, match="without history.*pass history="):
        fc.predict(past_covariates=x[-6:])
    np.testing.assert_array_equal(fc.predict(), fc.predict(y, past_covariates=x))


def test_horizon_beyond_the_model_feeds_back_its_forecasts():
    s = _seasonal(120)
    fc = LSTMForecaster(window=12, horizon=4, **FAST).fit(s)
    long = fc.predict(horizon=10)
    assert long.shape == (10,)
    np.testing.assert_array_equal(long[:4], fc.predict())
    np.testing.assert_array_equal(fc.predict(horizon=2), fc.predict()[:2])
    # the second block starts from the history extended by the first block
    # (fed back as float32 network outputs, not rescaled float64 values: rounding)
    np.testing.assert_allclose(long[4:8], fc.predict(np.r_[s, long[:4]]), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- intervals


def _empirical_coverage(fc, s, start, coverage=0.9):
    """Share of held-out values inside the interval, origins every horizon steps."""
    H = fc.horizon
    inside = []
    for o in range(start, len(s) - H + 1, H):
        lo, hi = fc.predict_interval(coverage, history=s[o - fc.window:o])
        inside.append((s[o:o + H] >= lo) & (s[o:o + H] <= hi))
    return float(np.mean(inside)), len(inside) * H


def test_conformal_interval_covers_held_out_data():
    """Split-conformal 90% intervals on a stationary series with N(0, 0.5^2) noise.

    Coverage on 1500 held-out values must lie in [0.84, 0.96]. Its spread has
    two sources: the calibration (n = 446 forecasts: coverage is then
    Beta-distributed with sd sqrt(0.9 * 0.1 / (n + 2)) = 0.014) and the test
    sample (1500 values: binomial sd sqrt(0.09 / 1500) = 0.008), so sd 0.016
    together and the band is +-3.7 sd. Measured over seeds 0-7: 0.862 to 0.920,
    mean 0.895; this seed gives 0.904.
    """
    s = _seasonal(3000)
    fc = LSTMForecaster(window=12, horizon=3, conformal=True, calibration_fraction=0.3,
                        **dict(LEARN, epochs=20)).fit(s[:1500])
    assert fc.conformal_residuals_.shape == (446, 3, 1)
    cov, n = _empirical_coverage(fc, s, 1500)
    assert n == 1500
    assert 0.84 <= cov <= 0.96, cov
    # the half-width estimates the noise's 95% quantile, 1.645 * 0.5 = 0.82
    lo, hi = fc.predict_interval(0.9)
    assert np.all((hi - lo) / 2 > 0.6) and np.all((hi - lo) / 2 < 1.2)


def test_conformal_calibration_is_held_out_and_recomputable():
    """The residuals are those of predict(history=s[:t]) at the last
    ceil(calibration_fraction * n_origins) origins, and no training window's
    target reaches them."""
    s = _seasonal(100)
    W, H = 12, 3
    fc = LSTMForecaster(window=W, horizon=H, conformal=True, calibration_fraction=0.25,
                        **FAST).fit(s)
    n_origins = 100 - W - H + 1
    n_cal = math.ceil(0.25 * n_origins)
    res = fc.conformal_residuals_[:, :, 0]
    assert res.shape == (n_cal, H)
    first = 100 - H - n_cal + 1
    want = [np.abs(s[t:t + H] - fc.predict(s[:t])) for t in range(first, 100 - H + 1)]
    np.testing.assert_allclose(res, want, rtol=1e-5, atol=1e-6)   # batch vs single forward



def test_conformal_training_windows_end_before_the_calibration(monkeypatch):
    s = _seasonal(100)
    W, H = 12, 3
    seen = {}
    real = LSTMForecaster._train

    def spy(self, X, lengths, Y, *args, **kwargs):
        seen["X"], seen["Y"] = X, Y
        return real(self, X, lengths, Y, *args, **kwargs)

    monkeypatch.setattr(LSTMForecaster, "_train", spy)
    fc = LSTMForecaster(window=W, horizon=H, conformal=True, calibration_fraction=0.25,
                        **FAST).fit(s)
    first = 100 - H - fc.conformal_residuals_.shape[0] + 1
    # windows from origin W (the first with a whole window) to first - H, whose
    # targets end at step first - 1
    assert seen["X"].shape[0] == first - H - W + 1
    last_target = seen["Y"][-1] * fc.scale_[0] + fc.mean_[0]
    np.testing.assert_allclose(last_target, s[first - H:first], rtol=1e-5)


def test_conformal_width_is_the_corrected_order_statistic():
    scores = np.arange(1.0, 20.0)      # n = 19
    assert forecasting.conformal_width(scores, 0.9) == 18.0   # ceil(20 * 0.9) = 18th
    assert forecasting.conformal_width(scores, 0.5) == 10.0   # ceil(20 * 0.5) = 10th
    with pytest.raises(ValueError, match="at least 19 calibration"):
        forecasting.conformal_width(scores[:10], 0.95)


def test_conformal_quantiles_and_intervals_agree():
    s = _seasonal(150)
    fc = LSTMForecaster(window=12, horizon=2, conformal=True, **FAST).fit(s)
    point = fc.predict()
    q = fc.predict_quantiles((0.05, 0.25, 0.5, 0.75, 0.95))
    assert q.shape == (2, 5)
    np.testing.assert_array_equal(q[:, 2], point)
    assert np.all(np.diff(q, axis=1) >= 0)
    lo, hi = fc.predict_interval(0.9)
    np.testing.assert_array_equal(lo, q[:, 0])
    np.testing.assert_allclose(hi - point, point - lo, rtol=1e-12)
    with pytest.raises(ValueError, match="for the 2 steps"):
        fc.predict_interval(0.9, horizon=3)
    with pytest.raises(ValueError, match="no forecast distribution"):
        LSTMForecaster(window=12, horizon=2, **FAST).fit(s).predict_interval()


def test_quantile_loss_trains_ordered_quantiles_that_cover():
    """Pinball-loss model on the same kind of series: the loss decreases, the
    quantiles are ordered, and the 5%-95% band covers held-out values about 90%
    of the time. No finite-sample guarantee here (the quantiles are estimates);
    measured over seeds 0-3: 0.879 to 0.907 at 20 epochs, so the band of the
    conformal test, [0.84, 0.96], holds with margin."""
    s = _seasonal(3000)
    fc = LSTMForecaster(window=12, horizon=3, loss="quantile", quantiles=(0.05, 0.5, 0.95),
                        **dict(LEARN, epochs=20)).fit(s[:1500])
    assert fc.loss_curve_[-1] < 0.5 * fc.loss_curve_[0]
    q = fc.predict_quantiles()
    assert q.shape == (3, 3) and np.all(np.diff(q, axis=1) > 0)
    np.testing.assert_array_equal(q[:, 1], fc.predict())
    cov, _ = _empirical_coverage(fc, s, 1500)
    assert 0.84 <= cov <= 0.96, cov
    with pytest.raises(ValueError, match="0.3 is not one of them"):
        fc.predict_quantiles((0.3,))
    with pytest.raises(ValueError, match="0.1 is not one of them"):
        fc.predict_interval(0.8)


def test_quantile_loss_with_differences_forecasts_levels():
    t = np.arange(200.0)
    s = 0.5 * t + _seasonal(200, noise=0.3)
    fc = LSTMForecaster(window=12, horizon=4, loss="quantile", difference=True,
                        **dict(LEARN, epochs=100)).fit(s[:-4])
    q = fc.predict_quantiles()
    assert np.all(np.diff(q, axis=1) > 0)
    np.testing.assert_array_equal(q[:, 1], fc.predict())
    # the medians follow trend and season (values ~ 100): MAE 0.31 over origins from
    # step 100 (30 epochs: 1.8, undertrained; a flat or trend-only forecast: ~2)
    assert fc.backtest(s, start=100).mean["mae"] < 1.0
    # beyond the horizon the medians are fed back (point forecasts only)
    assert fc.predict(horizon=9).shape == (9,)


def test_uncertainty_parameters_are_checked():
    s = _seasonal(80)
    with pytest.raises(ValueError, match="strategy='direct'"):
        LSTMForecaster(window=6, horizon=2, strategy="recursive", loss="quantile",
                       **FAST).fit(s)
    with pytest.raises(ValueError, match="choose one"):
        LSTMForecaster(window=6, loss="quantile", conformal=True, **FAST).fit(s)
    with pytest.raises(ValueError, match="includes 0.5"):
        LSTMForecaster(window=6, loss="quantile", quantiles=(0.1, 0.9), **FAST).fit(s)
    with pytest.raises(ValueError, match="calibration_fraction"):
        LSTMForecaster(window=6, conformal=True, calibration_fraction=1.0, **FAST).fit(s)
    with pytest.raises(ValueError, match="conformal=True holds out"):
        LSTMForecaster(window=6, horizon=3, conformal=True, **FAST).fit(s[:10])
    # a one-step recursive model may learn quantiles
    LSTMForecaster(window=6, strategy="recursive", loss="quantile", **FAST).fit(s)


# ---------------------------------------------------------------- evaluation


def test_metrics_by_hand():
    a = np.array([1.0, 2.0, 4.0, 0.0])
    f = np.array([2.0, 2.0, 1.0, 0.0])
    assert forecasting.mae(a, f) == pytest.approx(1.0)
    assert forecasting.rmse(a, f) == pytest.approx(math.sqrt(10 / 4))
    assert forecasting.smape(a, f) == pytest.approx((2 / 3 + 0 + 6 / 5 + 0) / 4)
    assert forecasting.mape(a[:3], f[:3]) == pytest.approx((1 + 0 + 0.75) / 3)
    insample = np.array([1.0, 3.0, 2.0, 6.0])          # |diffs| 2, 1, 4: scale 7/3
    assert forecasting.mase(a, f, insample) == pytest.approx(1.0 / (7 / 3))
    assert forecasting.mase(a, f, insample, seasonal_period=2) == pytest.approx(1.0 / 2.0)
    with pytest.raises(ValueError, match="metric must be one of"):
        forecasting.error("r2", a, f)


def test_seasonal_naive_backtest_by_hand():
    y = np.array([1.0, 2.0, 3.0, 4.0, 2.0, 3.0, 5.0, 5.0, 3.0, 2.0])
    bt = forecasting.SeasonalNaive(seasonal_period=2, horizon=3).backtest(
        y, start=4, stride=2, metrics=("mae", "rmse", "mase"), seasonal_period=2)
    # origins 4, 6: forecasts repeat the last season (y[2:4], then y[4:6])
    np.testing.assert_array_equal(bt.origins, [4, 6])
    np.testing.assert_array_equal(bt.forecasts, [[3, 4, 3], [2, 3, 2]])
    np.testing.assert_array_equal(bt.actuals, [[2, 3, 5], [5, 5, 3]])
    np.testing.assert_allclose(bt.errors["mae"], [(1 + 1 + 2) / 3, (3 + 2 + 1) / 3])
    np.testing.assert_allclose(bt.errors["rmse"], [math.sqrt(6 / 3), math.sqrt(14 / 3)])
    # MASE scale: the seasonal naive MAE (lag 2) of y[:origin]: 2 at origin 4, 1.5 at 6
    s4 = np.mean(np.abs(y[2:4] - y[:2]))
    s6 = np.mean(np.abs(y[2:6] - y[:4]))
    np.testing.assert_allclose(bt.errors["mase"], [(4 / 3) / s4, 2.0 / s6])
    assert bt.mean["mae"] == pytest.approx((4 / 3 + 2) / 2)
    np.testing.assert_array_equal(forecasting.seasonal_naive(y, 5, 2), [3, 2, 3, 2, 3])


def test_backtest_matches_predict_from_each_origin():
    s = _seasonal(150)
    fc = LSTMForecaster(window=12, horizon=4, **FAST).fit(s[:100])
    bt = fc.backtest(s, start=100, stride=10, metrics=("mae", "mase"), seasonal_period=12)
    np.testing.assert_array_equal(bt.origins, [100, 110, 120, 130, 140])
    for i, t in enumerate(bt.origins):
        # one batched forward against one forward per origin: float32 rounding
        np.testing.assert_allclose(bt.forecasts[i], fc.predict(s[:t]), rtol=1e-5, atol=1e-6)
        assert bt.errors["mae"][i] == pytest.approx(
            np.mean(np.abs(bt.forecasts[i] - s[t:t + 4])), rel=1e-12)
        assert bt.errors["mase"][i] == pytest.approx(
            forecasting.mase(s[t:t + 4], bt.forecasts[i], s[:t], 12), rel=1e-12)
    assert fc.backtest(s, start=0.8).origins[0] == 120
    with pytest.raises(ValueError, match="at least 12"):
        fc.backtest(s, start=5)
    with pytest.raises(ValueError, match="no forecast origin"):
        fc.backtest(s[:110], start=108)


def test_backtest_refit_trains_a_fresh_model_per_origin():
    s = _seasonal(90)
    fc = LSTMForecaster(window=8, horizon=3, **FAST)
    bt = fc.backtest(s, start=70, stride=6, refit=True)
    assert not hasattr(fc, "n_iter_")          # the estimator itself is untouched
    for i, t in enumerate(bt.origins):
        ref = LSTMForecaster(window=8, horizon=3, **FAST).fit(s[:t]).predict()
        np.testing.assert_array_equal(bt.forecasts[i], ref)
    every2 = fc.backtest(s, start=70, stride=6, refit=2)
    np.testing.assert_array_equal(every2.forecasts[0], bt.forecasts[0])
    model = LSTMForecaster(window=8, horizon=3, **FAST).fit(s[:70])
    np.testing.assert_allclose(every2.forecasts[1], model.predict(s[:76]), rtol=1e-6)
    with pytest.raises(ValueError, match="refit must be"):
        fc.backtest(s, refit=-1)


def test_score_is_negative_error_of_rolling_forecasts():
    s = _seasonal(130)
    fc = LSTMForecaster(window=12, horizon=4, **FAST).fit(s[:100])
    y = s[100:130]                                   # 30 steps: origins every 4, last one partial
    f = np.concatenate([fc.predict(s[:100 + k]) for k in range(0, 30, 4)])[:30]
    assert fc.score(y) == pytest.approx(-np.mean(np.abs(f - y)), rel=1e-5)
    assert fc.score(y, metric="rmse") == pytest.approx(-np.sqrt(np.mean((f - y) ** 2)),
                                                       rel=1e-5)
    assert fc.score(y[:8], history=s[50:100]) == pytest.approx(fc.score(y[:8]), rel=1e-6)
    # MASE without history: the seasonal naive error of all data seen, kept by the model
    assert fc.score(y, metric="mase", seasonal_period=12) == pytest.approx(
        -forecasting.mase(y, f, s[:100], 12), rel=1e-5)
    with pytest.raises(ValueError, match="seasonal_period <= window"):
        fc.score(y, metric="mase", seasonal_period=13)
    assert forecasting.SeasonalNaive(12, 4).fit(s[:100]).score(y) == pytest.approx(
        -forecasting.mae(y, np.concatenate([forecasting.seasonal_naive(s[:100 + k], 4, 12)
                                            for k in range(0, 30, 4)])[:30]))


def test_model_selection_with_time_series_split():
    """scikit-learn sees the series as X: TimeSeriesSplit cuts it into a training
    prefix and the test block that follows; fit(X[train]), score(X[test])."""
    pytest.importorskip("sklearn")
    from sklearn.model_selection import GridSearchCV, TimeSeriesSplit, cross_val_score

    s = _seasonal(200)
    fc = LSTMForecaster(window=12, horizon=6, **FAST)
    cv = TimeSeriesSplit(n_splits=3)
    scores = cross_val_score(fc, s, cv=cv, error_score="raise")
    assert scores.shape == (3,) and np.all(scores < 0)
    train, test = list(cv.split(s))[0]
    assert scores[0] == pytest.approx(
        LSTMForecaster(window=12, horizon=6, **FAST).fit(s[train]).score(s[test]))
    gs = GridSearchCV(fc, {"window": [6, 12]}, cv=cv, error_score="raise").fit(s)
    assert gs.best_params_["window"] in (6, 12)
    assert gs.best_estimator_.predict().shape == (6,)


def test_update_extends_the_history():
    s = _seasonal(140)
    fc = LSTMForecaster(window=12, horizon=3, **FAST).fit(s[:100])
    params = fc._network.params.copy()
    fc.update(s[100:110])
    np.testing.assert_array_equal(fc.last_window_[:, 0], s[98:110])
    np.testing.assert_array_equal(fc.predict(), fc.predict(s[:110]))
    np.testing.assert_array_equal(fc._network.params, params)
    assert fc.score(s[110:122], metric="mase", seasonal_period=12) == pytest.approx(
        fc.score(s[110:122], history=s[:110], metric="mase", seasonal_period=12), rel=1e-6)
    n_iter = fc.n_iter_
    fc.update(s[110:120], fine_tune_epochs=2)
    assert fc.n_iter_ == n_iter + 2 and not np.array_equal(fc._network.params, params)
    np.testing.assert_array_equal(fc.last_window_[:, 0], s[108:120])
    with pytest.raises(ValueError, match="y_new has 2 step"):
        fc.update(s[120:122], fine_tune_epochs=1)
    with pytest.raises(ValueError, match="variables"):
        fc.update(np.c_[s, s][:3])


def test_update_with_covariates():
    x, y, _ = _driven(120)
    fc = LSTMForecaster(window=6, horizon=2, **FAST).fit(y[:100], future_covariates=x[:100])
    with pytest.raises(ValueError, match="future_covariates has 9 rows, expected 10"):
        fc.update(y[100:110], future_covariates=x[100:109])
    fc.update(y[100:110], future_covariates=x[100:110])
    np.testing.assert_array_equal(fc.predict(future_covariates=x[110:112]),
                                  fc.predict(y[:110], future_covariates=x[:112]))


# ---------------------------------------------------------------- pandas


def test_pandas_series_in_labelled_forecasts_out():
    pd = pytest.importorskip("pandas")
    s = _seasonal(120)
    idx = pd.date_range("2001-01-01", periods=120, freq="MS")
    ys = pd.Series(s, index=idx, name="sales")
    fc = LSTMForecaster(window=12, horizon=3, conformal=True, **FAST).fit(ys)
    f = fc.predict()
    assert isinstance(f, pd.Series) and f.name == "sales"
    assert list(f.index) == list(pd.date_range("2011-01-01", periods=3, freq="MS"))
    np.testing.assert_array_equal(f.to_numpy(), LSTMForecaster(
        window=12, horizon=3, conformal=True, **FAST).fit(s).predict())   # numpy unchanged
    lo, hi = fc.predict_interval(0.8)
    assert lo.index.equals(f.index) and np.all(lo < f) and np.all(f < hi)
    q = fc.predict_quantiles((0.1, 0.5, 0.9))
    assert list(q.columns) == [0.1, 0.5, 0.9] and q.index.equals(f.index)
    # a pandas history labels its own continuation; a numpy one gives numpy
    g = fc.predict(ys.iloc[:60])
    assert g.index[0] == pd.Timestamp("2006-01-01")
    assert isinstance(fc.predict(s[:60]), np.ndarray)
    fc.update(pd.Series([0.5, 0.1], index=pd.date_range("2011-01-01", periods=2, freq="MS")))
    assert fc.predict().index[0] == pd.Timestamp("2011-03-01")
    fc.update(np.array([0.2]))                       # numpy steps advance the index too
    assert fc.predict().index[0] == pd.Timestamp("2011-04-01")
    with pytest.raises(ValueError, match="next step is"):
        fc.update(ys.iloc[-2:])
    bt = fc.backtest(ys, start="2009-01-01", stride=6)
    frame = bt.to_frame()
    assert list(frame.index) == list(pd.to_datetime(["2009-01-01", "2009-07-01",
                                                     "2010-01-01", "2010-07-01"]))
    assert list(frame.columns) == ["mae", "rmse"]


def test_pandas_dataframe_period_index_and_covariates():
    pd = pytest.importorskip("pandas")
    x, y, y_lag = _driven(80)
    idx = pd.period_range("1990Q1", periods=80, freq="Q")
    df = pd.DataFrame({"a": y, "b": y_lag}, index=idx)
    cal = pd.DataFrame({"x": x}, index=idx)
    fc = LSTMForecaster(window=6, horizon=2, **FAST).fit(df, future_covariates=cal)
    f = fc.predict(future_covariates=np.zeros((2, 1)))
    assert isinstance(f, pd.DataFrame) and list(f.columns) == ["a", "b"]
    assert [str(p) for p in f.index] == ["2010Q1", "2010Q2"]
    with pytest.raises(ValueError, match="indexes differ"):
        LSTMForecaster(window=6, **FAST).fit(df, past_covariates=cal.shift(1, freq="Q"))
    irregular = pd.Series(y[:5], index=pd.to_datetime(
        ["2020-01-01", "2020-01-02", "2020-01-04", "2020-01-07", "2020-01-08"]))
    with pytest.raises(ValueError, match="regular frequency"):
        LSTMForecaster(window=2, **FAST).fit(irregular)


def test_numpy_use_never_imports_pandas():
    code = (
        "import sys, numpy as np\n"
        "from fastlstm import LSTMForecaster\n"
        "s = np.sin(np.arange(80) / 3)\n"
        "fc = LSTMForecaster(window=6, horizon=2, conformal=True, epochs=1, n_threads=1)\n"
        "fc.fit(s[:60]).predict(); fc.predict_interval(); fc.score(s[60:])\n"
        "fc.backtest(s, start=60); fc.update(s[60:64])\n"
        "assert 'pandas' not in sys.modules, 'pandas was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=helpers.child_env(),
                   cwd=helpers.CHILD_CWD)


# ---------------------------------------------------------------- model files


def test_model_files_keep_everything(tmp_path):
    pd = pytest.importorskip("pandas")
    x, y, y_lag = _driven(120)
    idx = pd.date_range("2000-01-03", periods=120, freq="W-MON")
    models = {
        "covariates": (LSTMForecaster(window=6, horizon=2, **FAST).fit(
            y, past_covariates=y_lag, future_covariates=np.c_[x, x ** 2]),
            dict(future_covariates=np.zeros((2, 2)))),
        "quantile": (LSTMForecaster(window=6, horizon=2, loss="quantile", difference=True,
                                    quantiles=(0.1, 0.5, 0.9), **FAST).fit(y), {}),
        "conformal": (LSTMForecaster(window=6, horizon=2, strategy="recursive",
                                     conformal=True, **FAST).fit(pd.Series(y, index=idx)), {}),
    }
    for name, (fc, kw) in models.items():
        loaded = fastlstm.load(fc.save(tmp_path / f"{name}.npz"))
        calls = [("predict", ())] + ([] if name == "covariates" else [
            ("predict_quantiles", ((0.1, 0.5, 0.9),)), ("predict_interval", (0.8,))])
        for method, args in calls:
            a, b = getattr(fc, method)(*args, **kw), getattr(loaded, method)(*args, **kw)
            for u, v in zip(a if isinstance(a, tuple) else (a,),
                            b if isinstance(b, tuple) else (b,)):
                if isinstance(u, (pd.Series, pd.DataFrame)):
                    assert u.index.equals(v.index)
                np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
        if name != "covariates":
            assert loaded.score(y[-10:], history=y[:-10]) == fc.score(y[-10:],
                                                                      history=y[:-10])
        assert loaded.n_past_covariates_ == fc.n_past_covariates_
        assert loaded._index == fc._index
    loaded = fastlstm.load(tmp_path / "conformal.npz")
    assert loaded.predict().index[0] == idx[-1] + pd.offsets.Week(weekday=0)


def test_new_model_files_name_the_reader_they_need(tmp_path):
    import json
    import zipfile

    def config(path):
        with zipfile.ZipFile(path) as zf:
            return json.loads(np.lib.format.read_array(zf.open("config.npy")).tobytes())

    x, y, _ = _driven(60)
    plain = LSTMForecaster(window=6, **FAST).fit(y).save(tmp_path / "plain.npz")
    cov = LSTMForecaster(window=6, **FAST).fit(y, future_covariates=x).save(tmp_path / "c.npz")
    q = LSTMForecaster(window=6, loss="quantile", **FAST).fit(y).save(tmp_path / "q.npz")
    conf = LSTMForecaster(window=6, conformal=True, **FAST).fit(y).save(tmp_path / "cf.npz")
    # an older reader computes the plain and conformal models' predictions (the
    # calibration is extra); covariates and quantiles change the network
    assert config(plain)["min_reader_version"] == "0.1.0"
    assert config(conf)["min_reader_version"] == "0.1.0"
    assert config(cov)["min_reader_version"] == "0.2.0"
    assert config(q)["min_reader_version"] == "0.2.0"


def test_a_first_release_forecaster_file_still_works():
    import os

    path = os.path.join(os.path.dirname(__file__), "fixtures", "forecaster_cifg_recursive.npz")
    fc = fastlstm.load(path)
    assert fc.n_past_covariates_ == fc.n_future_covariates_ == 0
    f = fc.predict()
    assert f.shape == (5,)
    with pytest.raises(ValueError, match="not in model files of fastlstm 0.1.0"):
        fc.score(f, metric="mase")
    fc.update(f[:2])
    assert fc.predict().shape == (5,)


@pytest.mark.parametrize("edit,match", [
    (lambda m, c: m.update(conformal_residuals=-m["conformal_residuals"] - 1), ">= 0"),
    (lambda m, c: m.update(covariate_stats=np.zeros_like(m["covariate_stats"])), "positive"),
    (lambda m, c: c["fitted"].update(index={"kind": "datetime"}), "index"),
    (lambda m, c: c["fitted"].update(n_future_covariates=3), "network spec|must be float64"),
    (lambda m, c: c["fitted"].update(n_calibration=-1), "n_calibration"),
])
def test_damaged_forecaster_files_are_refused(tmp_path, edit, match):
    import json
    import zipfile

    x, y, _ = _driven(80)
    fc = LSTMForecaster(window=6, horizon=2, conformal=True, **FAST).fit(
        y, future_covariates=x)
    path = fc.save(tmp_path / "m.npz")
    with zipfile.ZipFile(path) as zf:
        members = {n[:-4]: np.lib.format.read_array(zf.open(n)) for n in zf.namelist()}
    config = json.loads(members["config"].tobytes())
    edit(members, config)
    members["config"] = np.frombuffer(json.dumps(config).encode(), np.uint8)
    bad = tmp_path / "bad.npz"
    with zipfile.ZipFile(bad, "w") as zf:
        for name, arr in members.items():
            with zf.open(name + ".npy", "w") as f:
                np.lib.format.write_array(f, arr, allow_pickle=False)
    with pytest.raises(ValueError, match=match):
        fastlstm.load(bad)


def test_a_forecaster_pickled_by_the_first_release_still_predicts():
    """A 0.1.0 pickle lacks the new parameters and fitted attributes: they take
    the values of a model without covariates or intervals."""
    import pickle
    import warnings

    s = _seasonal(80)
    fc = LSTMForecaster(window=6, horizon=2, **FAST).fit(s)
    state = fc.__getstate__()
    for key in ("quantiles", "conformal", "calibration_fraction", "_quantiles",
                "n_past_covariates_", "n_future_covariates_", "_cov_mean", "_cov_scale",
                "_last_covariates", "conformal_residuals_", "_naive_sums", "_n_seen", "_index"):
        del state[key]
    state["_fastlstm_version"] = "0.1.0"
    old = LSTMForecaster.__new__(LSTMForecaster)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        old.__setstate__(state)
    np.testing.assert_array_equal(old.predict(), fc.predict())
    assert old.get_params() == fc.get_params()
    old.update(s[:3])
    assert pickle.loads(pickle.dumps(old)).predict().shape == (2,)
