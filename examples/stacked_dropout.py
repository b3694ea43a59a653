"""Three stacked LSTM(50) layers with dropout 0.2 and a dense output.

A standardised series (two seasonalities, a trend and noise; 1500 steps) is
cut into windows of 30 steps that predict the next value; the windows are
split 80/10/10 in time order into training, validation (watched each epoch
through ``validation_data``, with early stopping) and test. The same stack
is then trained with GRU cells (``cell="gru"``). Reported: test MSE next to
the persistence baseline.

    python examples/stacked_dropout.py [--epochs N]

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
                        default=int(os.environ.get("FASTLSTM_EXAMPLE_EPOCHS", 20)))
    args = parser.parse_args(argv)

    rng = np.random.default_rng(1)
    t = np.arange(1500)
    raw = (np.sin(2 * np.pi * t / 24) + 0.5 * np.sin(2 * np.pi * t / 168) + 0.002 * t
           + 0.2 * rng.normal(size=t.size))
    n_train = int(0.8 * len(raw))
    series = (raw - raw[:n_train].mean()) / raw[:n_train].std()  # training statistics only

    X, y = sliding_windows(series, window=30, horizon=1)
    y = y[:, 0]
    n = len(X)
    i_val, i_test = int(0.8 * n), int(0.9 * n)
    X_train, y_train = X[:i_val], y[:i_val]
    X_val, y_val = X[i_val:i_test], y[i_val:i_test]
    X_test, y_test = X[i_test:], y[i_test:]

    results = {"persistence": float(np.mean((X_test[:, -1, 0] - y_test) ** 2))}
    for cell in ("lstm", "gru"):
        model = LSTMRegressor(hidden_sizes=(50, 50, 50), dropout=0.2, cell=cell,
                              epochs=args.epochs, batch_size=32, learning_rate=0.001,
                              early_stopping=True, n_iter_no_change=5, random_state=0)
        t0 = time.perf_counter()
        model.fit(X_train, y_train, validation_data=(X_val, y_val))
        seconds = time.perf_counter() - t0
        mse = float(np.mean((model.predict(X_test) - y_test) ** 2))
        results[f"3 x {cell.upper()}(50), dropout 0.2"] = mse
        print(f"cell={cell!r:6s} fit {seconds:5.2f}s ({model.n_iter_} epochs, "
              f"best validation MSE {model.best_loss_:.4f})")
    print("test MSE (standardised units):")
    for label, value in results.items():
        print(f"  {label:32s} {value:.4f}")
    return results


if __name__ == "__main__":
    main()
