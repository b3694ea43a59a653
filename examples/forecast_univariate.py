"""Forecast the airline passengers series one year ahead with LSTM(50) + dense.

The classic Box & Jenkins series (144 months, 1949-1960, bundled with
fastlstm). The last 12 months are held out; the model sees the 12 months
before each target window and predicts the whole next year at once
(``strategy="direct"``). Adam, MSE, 100 epochs, batch 32.

Two runs: on the raw series, and on its first differences
(``difference=True``), which removes the trend the network would otherwise
have to extrapolate. Both are compared with the seasonal naive forecast
(each month = the same month a year earlier), the baseline any monthly
forecast has to beat.

    python examples/forecast_univariate.py [--epochs N]

``FASTLSTM_EXAMPLE_EPOCHS`` overrides the default number of epochs.
"""

import argparse
import os
import time

import numpy as np

from fastlstm import LSTMForecaster, load_airline


def rmse(forecast, actual):
    return float(np.sqrt(np.mean((np.asarray(forecast) - actual) ** 2)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int,
                        default=int(os.environ.get("FASTLSTM_EXAMPLE_EPOCHS", 100)))
    args = parser.parse_args(argv)

    series = load_airline()
    train, test = series[:-12], series[-12:]
    results = {"seasonal naive": rmse(train[-12:], test)}
    for label, difference in (("LSTM(50), raw series", False),
                              ("LSTM(50), first differences", True)):
        model = LSTMForecaster(window=12, horizon=12, difference=difference,
                               hidden_sizes=(50,), optimizer="adam", loss="mse",
                               epochs=args.epochs, batch_size=32, random_state=0)
        t0 = time.perf_counter()
        model.fit(train)
        seconds = time.perf_counter() - t0
        results[label] = rmse(model.predict(), test)
        print(f"{label:30s} fit {seconds:5.2f}s ({model.n_iter_} epochs)")
    print("test RMSE on 1960 (thousands of passengers):")
    for label, value in results.items():
        print(f"  {label:30s} {value:7.2f}")
    return results


if __name__ == "__main__":
    main()
