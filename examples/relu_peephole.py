"""Next-value prediction on a noisy sine with LSTM(50, activation="relu").

Windows of 20 past values predict the next one. The relu activation (Keras'
``LSTM(50, activation='relu')``) replaces tanh for the candidate and cell
output; the second run adds peephole connections (``cell="peephole"``: the
gates also see the cell state, Gers & Schmidhuber 2000). Reported: test MSE
on the last 20% of the windows, next to the persistence baseline (predict
the last seen value). Inputs are standardised with the training part only.

    python examples/relu_peephole.py [--epochs N]

``FASTLSTM_EXAMPLE_EPOCHS`` overrides the default number of epochs.
"""

import argparse
import os
import time

import numpy as np

from fastlstm import LSTMRegressor, sliding_windows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int,
                        default=int(os.environ.get("FASTLSTM_EXAMPLE_EPOCHS", 30)))
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    t = np.arange(1000)
    series = np.sin(2 * np.pi * t / 50) + 0.1 * rng.normal(size=t.size)
    X, y = sliding_windows(series, window=20, horizon=1)  # X (n, 20, 1), y (n, 1)
    y = y[:, 0]
    split = int(0.8 * len(X))
    mean, sd = series[: split + 20].mean(), series[: split + 20].std()
    X, y = (X - mean) / sd, (y - mean) / sd
    X_train, y_train, X_test, y_test = X[:split], y[:split], X[split:], y[split:]

    results = {"persistence": float(np.mean((X_test[:, -1, 0] - y_test) ** 2))}
    for cell in ("lstm", "peephole"):
        model = LSTMRegressor(hidden_sizes=(50,), activation="relu", cell=cell,
                              epochs=args.epochs, batch_size=32, learning_rate=0.001,
                              clip_norm=1.0, random_state=0)
        t0 = time.perf_counter()
        model.fit(X_train, y_train)
        seconds = time.perf_counter() - t0
        mse = float(np.mean((model.predict(X_test) - y_test) ** 2))
        results[f"LSTM(50, relu), cell={cell!r}"] = mse
        print(f"cell={cell!r:11s} fit {seconds:5.2f}s ({model.n_iter_} epochs)")
    print("test MSE (standardised units):")
    for label, value in results.items():
        print(f"  {label:35s} {value:.4f}")
    return results


if __name__ == "__main__":
    main()
