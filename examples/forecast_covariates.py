"""Forecast the airline series a year ahead with a calendar covariate and a 90% interval.

The month of the year is known for any future date, so it is a *future
covariate*: the model reads it (as sin and cos of the month's angle) over
its 12-month input window and over the 12 months it forecasts. The
1949-1959 series, log-transformed (its seasonal swings grow with its
level; on the log scale they do not, so errors from different years are
comparable, which the interval assumes), trains LSTM(50) + dense (first
differences, Adam with learning rate 0.01, MSE). ``conformal=True`` holds
out the last 20% of the forecast origins of the training years, trains on
the years before them and turns its errors there into a split-conformal
90% interval per horizon step. 1960 is the test year; the seasonal naive
forecast (each month = the same month of 1959) is the baseline, and the
same model without the covariate shows what the calendar adds. (Little,
on this series: twelve months of differences already tell the model where
in the year it is. A calendar covariate matters where the window is
shorter than the season or the calendar irregular, as with holidays.)

    python examples/forecast_covariates.py [--epochs N] [--plot out.png]

``FASTLSTM_EXAMPLE_EPOCHS`` overrides the default number of epochs;
``--plot`` needs matplotlib (``pip install "fastlstm[plot]"``).
"""

import argparse
import os
import sys
import time

import numpy as np

from fastlstm import LSTMForecaster, load_airline
from fastlstm.forecasting import rmse, seasonal_naive


def month_features(months):
    """sin and cos of each month's angle on the year's circle: (n, 2)."""
    m = np.array([int(label[5:7]) - 1 for label in months])
    angle = 2 * np.pi * m / 12
    return np.c_[np.sin(angle), np.cos(angle)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int,
                        default=int(os.environ.get("FASTLSTM_EXAMPLE_EPOCHS", 100)))
    parser.add_argument("--plot", metavar="PATH", help="save a plot of the forecast (PNG)")
    args = parser.parse_args(argv)
    plt = None
    if args.plot:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            print("--plot needs matplotlib: pip install 'fastlstm[plot]'", file=sys.stderr)
            return 2

    series, months = load_airline(return_months=True)
    calendar = month_features(months)            # known for every month, 1960 included
    train, test = series[:-12], series[-12:]
    kw = dict(window=12, horizon=12, difference=True, hidden_sizes=(50,), epochs=args.epochs,
              learning_rate=0.01, batch_size=32, random_state=0, conformal=True)

    plain = LSTMForecaster(**kw).fit(np.log(train))
    t0 = time.perf_counter()
    model = LSTMForecaster(**kw).fit(np.log(train), future_covariates=calendar[:-12])
    seconds = time.perf_counter() - t0
    forecast = np.exp(model.predict(future_covariates=calendar[-12:]))
    # a monotone transform maps the interval's ends: exp of the log-scale interval
    lower, upper = np.exp(model.predict_interval(0.9, future_covariates=calendar[-12:]))
    inside = int(np.sum((test >= lower) & (test <= upper)))
    naive = seasonal_naive(train, 12, seasonal_period=12)

    print(f"fit {seconds:.2f}s ({model.n_iter_} epochs), calibrated on "
          f"{model.conformal_residuals_.shape[0]} held-out forecast origins")
    print("test RMSE on 1960 (thousands of passengers):")
    print(f"  {'seasonal naive':34s} {rmse(test, naive):7.2f}")
    print(f"  {'LSTM(50), no covariate':34s} {rmse(test, np.exp(plain.predict())):7.2f}")
    print(f"  {'LSTM(50), month covariate':34s} {rmse(test, forecast):7.2f}")
    print(f"90% interval: {inside}/12 months inside, coverage {inside / 12:.2f}, "
          f"mean width {np.mean(upper - lower):.1f}")

    if plt is not None:
        fig, ax = plt.subplots(figsize=(9, 4))
        t = np.arange(len(series))
        ax.plot(t, series, color="black", label="observed")
        ax.fill_between(t[-12:], lower, upper, color="tab:red", alpha=0.2,
                        label="90% conformal interval")
        ax.plot(t[-12:], forecast, color="tab:red", label="LSTM + month covariate")
        ax.plot(t[-12:], naive, color="tab:blue", linestyle="--", label="seasonal naive")
        ticks = t[::12]
        ax.set_xticks(ticks)
        ax.set_xticklabels([months[i][:4] for i in ticks])
        ax.set_ylabel("passengers (thousands)")
        ax.set_title("Airline passengers: 1960 forecast with a calendar covariate")
        ax.legend(loc="upper left")
        fig.tight_layout()
        fig.savefig(args.plot, dpi=100)
        print(f"plot saved to {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
