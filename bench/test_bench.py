"""pytest-benchmark suite: ``pytest bench/ --benchmark-only`` (about 2-3 minutes).

One benchmark per (shape, mode, framework), grouped by shape and mode so
pytest-benchmark's table puts fastlstm next to its peers. Shapes: the issue's
grid a-f plus "var" (B=64, lengths U[10, 100], I=8, H=128, T=100) and "bidi"
(bidirectional, 2 layers, I=8, H=128, T=100, B=64). Rounds are sized from a
warm-up call so each benchmark takes about FASTLSTM_BENCH_BUDGET seconds.
For the interleaved, peer-fair comparison with Keras, GEMM peak and
RESULTS.md, use ``python bench/compare.py``.

extra_info of each benchmark: GFLOP per call, GFLOP/s at the median, threads,
and what the fastlstm training step is (LSTMRegressor.partial_fit).
"""
import time

import pytest

import benchlib as bl

_, PEERS, BUDGET = bl.suite_settings()

SHAPES = list(bl.CASES)


def _params():
    out = []
    for shape in SHAPES:
        for mode in bl.MODES:
            for fw in ["fastlstm"] + PEERS:
                if mode == "train" and fw not in bl.TRAIN_FRAMEWORKS:
                    continue
                out.append(pytest.param(shape, mode, fw, id=f"{shape}-{mode}-{fw}"))
    return out


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


@pytest.mark.parametrize("shape,mode,fw", _params())
def test_lstm(benchmark, shape, mode, fw, n_threads):
    msg = bl.skip_message(fw)
    if msg:
        pytest.skip(msg)
    case = bl.CASES[shape]
    fn, _ = bl.make(fw, mode, case, n_threads)
    fn()                                        # warm-up (first calls build, compile, allocate)
    t = _timed(fn)                              # second warm-up, calibrates the rounds
    if t < 0.1:
        t = min([t] + [_timed(fn) for _ in range(4)])
    t = max(t, 1e-7)
    iterations = max(1, int(0.002 / t))         # tiny calls: several per round
    rounds = max(3, min(200, int(BUDGET / (t * iterations))))
    benchmark.group = f"{shape} {mode} ({case.dims()})"
    benchmark.extra_info.update(framework=fw, shape=shape, mode=mode, threads=n_threads,
                                gflop=case.flops(mode) / 1e9)
    if fw == "fastlstm" and mode == "train":
        benchmark.extra_info["fastlstm_train"] = bl.fastlstm_train_label()
    benchmark.pedantic(fn, rounds=rounds, iterations=iterations, warmup_rounds=0)
    if benchmark.stats is None:                 # --benchmark-disable: ran once, nothing timed
        return
    med = benchmark.stats.stats.median
    benchmark.extra_info["gflops"] = case.flops(mode) / med / 1e9 if med else None
