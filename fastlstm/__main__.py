"""``python -m fastlstm``: a real forecast on the bundled airline series.

Fits ``LSTMForecaster(window=12, horizon=12, difference=True)`` (LSTM(50) +
dense, Adam, MSE, 100 epochs) on 1949-1959 of Box & Jenkins' monthly airline
passengers and forecasts 1960. Prints the test RMSE next to the seasonal
naive forecast's (each month = the same month of 1959) and the fit time.
``--plot out.png`` also draws the series and both forecasts (needs
matplotlib: ``pip install fastlstm[plot]``).
"""

import argparse
import sys
import time

import numpy as np


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m fastlstm",
        description="Forecast 1960 of the airline passengers series with an LSTM.",
    )
    parser.add_argument("--plot", metavar="PATH", help="save a plot of the forecast (PNG)")
    parser.add_argument("--epochs", type=int, default=100, help="training epochs (default 100)")
    parser.add_argument("--threads", type=int, default=None,
                        help="OpenMP threads (default: all cores)")
    parser.add_argument("--seed", type=int, default=0, help="random_state (default 0)")
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

    from . import __version__
    from .data import load_airline
    from .estimators import LSTMForecaster

    series, months = load_airline(return_months=True)
    train, test = series[:-12], series[-12:]
    model = LSTMForecaster(window=12, horizon=12, difference=True, hidden_sizes=(50,),
                           epochs=args.epochs, batch_size=32, random_state=args.seed,
                           n_threads=args.threads)
    t0 = time.perf_counter()
    model.fit(train)
    fit_seconds = time.perf_counter() - t0
    forecast = model.predict()
    naive = train[-12:]

    def rmse(f):
        return float(np.sqrt(np.mean((f - test) ** 2)))

    threads = model._network.recurrent.n_threads
    print(f"fastlstm {__version__}: airline passengers (Box & Jenkins), monthly 1949-1960")
    print(f"model: {model!r}")
    print(f"trained on {months[0]}..{months[-13]} ({len(train)} months), "
          f"forecast {months[-12]}..{months[-1]}")
    print(f"fit time: {fit_seconds:.2f} s ({model.n_iter_} epochs, {threads} thread(s))")
    print("test RMSE (thousands of passengers):")
    print(f"  LSTMForecaster   {rmse(forecast):8.2f}")
    print(f"  seasonal naive   {rmse(naive):8.2f}")

    if plt is not None:
        fig, ax = plt.subplots(figsize=(9, 4))
        t = np.arange(len(series))
        ax.plot(t, series, color="black", label="observed")
        ax.plot(t[-12:], forecast, color="tab:red", label=f"LSTM (RMSE {rmse(forecast):.1f})")
        ax.plot(t[-12:], naive, color="tab:blue", linestyle="--",
                label=f"seasonal naive (RMSE {rmse(naive):.1f})")
        ticks = t[::12]
        ax.set_xticks(ticks)
        ax.set_xticklabels([months[i][:4] for i in ticks])
        ax.set_ylabel("passengers (thousands)")
        ax.set_title("Airline passengers: 1960 forecast")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=100)
        print(f"plot saved to {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
