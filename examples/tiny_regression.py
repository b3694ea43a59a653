"""The smallest possible sequence regression: three sequences, three targets.

    X = [[1, 2, 3], [4, 5, 6], [7, 8, 9]]   (3 univariate sequences of length 3)
    y = [8, 9, 10]

An LSTM(10) + dense output learns to map each sequence to its target, once
with the standard cell and once with the coupled input-forget gate
(``cell="cifg"``, f = 1 - i), which has one gate fewer to learn.

    python examples/tiny_regression.py [--epochs N]

``FASTLSTM_EXAMPLE_EPOCHS`` overrides the default number of epochs.
"""

import argparse
import os
import time

import numpy as np

from fastlstm import LSTMRegressor


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int,
                        default=int(os.environ.get("FASTLSTM_EXAMPLE_EPOCHS", 1000)))
    args = parser.parse_args(argv)

    X = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]], dtype=float)
    y = np.array([8, 9, 10], dtype=float)
    results = {}
    for cell in ("lstm", "cifg"):
        model = LSTMRegressor(hidden_sizes=(10,), cell=cell, epochs=args.epochs,
                              learning_rate=0.01, batch_size=3, random_state=0,
                              tol=0.0, n_iter_no_change=args.epochs)
        t0 = time.perf_counter()
        model.fit(X, y)
        seconds = time.perf_counter() - t0
        pred = model.predict(X)
        mse = float(np.mean((pred - y) ** 2))
        results[cell] = mse
        print(f"cell={cell!r:7s} predictions {np.round(pred, 3)} (targets {y}), "
              f"training MSE {mse:.5f}, next [10, 11, 12] -> "
              f"{model.predict([[10, 11, 12]])[0]:.2f}, fit {seconds:.2f}s")
    return results


if __name__ == "__main__":
    main()
