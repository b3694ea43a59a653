"""Backtest a year-ahead airline forecast over rolling origins against seasonal naive.

One test year says little; a backtest asks the same question at several
forecast origins. From each January of 1956-1960 (the origins), the
forecaster is refitted on everything before it (``refit=True``: a fresh
LSTM(50) + dense on the first differences, Adam, MSE, per origin) and
forecasts the next 12 months; the seasonal naive forecast (each month =
the same month a year earlier) answers the same questions. Errors per
origin: MAE (thousands of passengers) and MASE (the MAE divided by the
mean absolute error the seasonal naive forecast makes one season ahead
within the data before the origin, so below 1 is better than that). The
mean over origins is the backtest's verdict.

    python examples/forecast_backtest.py [--epochs N]

``FASTLSTM_EXAMPLE_EPOCHS`` overrides the default number of epochs.
"""

import argparse
import os
import time

from fastlstm import LSTMForecaster, load_airline
from fastlstm.forecasting import SeasonalNaive


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int,
                        default=int(os.environ.get("FASTLSTM_EXAMPLE_EPOCHS", 100)))
    args = parser.parse_args(argv)

    series, months = load_airline(return_months=True)
    start = months.index("1956-01")
    common = dict(start=start, stride=12, horizon=12, metrics=("mae", "mase"),
                  seasonal_period=12)
    model = LSTMForecaster(window=12, horizon=12, difference=True, hidden_sizes=(50,),
                           epochs=args.epochs, batch_size=32, random_state=0)
    t0 = time.perf_counter()
    lstm = model.backtest(series, refit=True, **common)
    seconds = time.perf_counter() - t0
    naive = SeasonalNaive(seasonal_period=12, horizon=12).backtest(series, **common)

    print(f"{len(lstm.origins)} origins, a refit at each: {seconds:.1f}s")
    print(f"{'origin':8s} {'LSTM MAE':>9s} {'naive MAE':>10s} {'LSTM MASE':>10s} "
          f"{'naive MASE':>11s}")
    for i, t in enumerate(lstm.origins):
        print(f"{months[t]:8s} {lstm.errors['mae'][i]:9.2f} {naive.errors['mae'][i]:10.2f} "
              f"{lstm.errors['mase'][i]:10.3f} {naive.errors['mase'][i]:11.3f}")
    print(f"{'mean':8s} {lstm.mean['mae']:9.2f} {naive.mean['mae']:10.2f} "
          f"{lstm.mean['mase']:10.3f} {naive.mean['mase']:11.3f}")
    return lstm, naive


if __name__ == "__main__":
    main()
