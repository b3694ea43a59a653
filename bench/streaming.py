"""Cost of one streaming step through the serving API against the bare layer call.

    python bench/streaming.py [--threads 1] [--reps 15]

Shape f (I=32, H=256, batch 1), float32: ``layer.step(x_t, state)`` and an
estimator's ``step`` (checks, head, output mapping) against the bare
``layer(x_t[:, None], (h, c))`` that computes the same step. Calls are timed
in interleaved passes of back-to-back calls; each figure is the median over
the passes of the mean time a call took.
"""
import argparse
import statistics
import time

import numpy as np

import fastlstm

I, H = 32, 256


def per_call(fn, calls):
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--calls", type=int, default=2000)
    a = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    layer = fastlstm.LSTM(I, H, n_threads=a.threads, random_state=0)
    x = rng.standard_normal((1, I)).astype(np.float32)
    x3 = x[:, None, :]
    h = np.zeros((1, 1, H), np.float32)
    c = np.zeros((1, 1, H), np.float32)
    state = layer.init_state(1)
    X = rng.standard_normal((64, 10, I)).astype(np.float32)
    est = fastlstm.LSTMRegressor(hidden_sizes=(H,), epochs=1, batch_size=64, random_state=0,
                                 n_threads=a.threads).fit(X, X[:, -1, 0])
    est_state = est.init_state(1)
    cases = {
        "bare layer call  layer(x_t[:, None], (h, c))": lambda: layer(x3, (h, c)),
        "layer.step(x_t, state)": lambda: layer.step(x, state),
        "LSTMRegressor.step(x_t, state)": lambda: est.step(x, est_state),
    }
    for fn in cases.values():        # warm up: packing, workspaces
        fn()
    times = {name: [] for name in cases}
    for _ in range(a.reps):
        for name, fn in cases.items():
            times[name].append(per_call(fn, a.calls))
    med = {name: statistics.median(v) for name, v in times.items()}
    base = med[next(iter(cases))]
    print(f"shape f (I={I}, H={H}, batch 1), float32, n_threads={a.threads}, "
          f"kernels: {fastlstm._kernels.isa()}")
    print("| call | us per call | x bare call |")
    print("|---|---|---|")
    for name, t in med.items():
        print(f"| `{name}` | {t * 1e6:.1f} | {t / base:.2f} |")


if __name__ == "__main__":
    main()
