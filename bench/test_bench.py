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

The smoke tests of compare.py at the end time nothing worth reading; run them
without --benchmark-only (which skips them): ``pytest bench/test_bench.py -k compare``.
"""
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import benchlib as bl
import compare

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


def test_compare_reduced_precision_quick(tmp_path):
    """--precision on shape f: every reduced form is built, checked and timed next to
    float32, and the report gets its "Reduced precision" table."""
    for fw in ("torch", "onnxruntime"):
        msg = bl.skip_message(fw)
        if msg:
            pytest.skip(msg)
    out, md = tmp_path / "run.json", tmp_path / "run.md"
    # a subprocess: compare.py pins every framework's threads for the whole process
    subprocess.run([sys.executable, os.path.join(bl.HERE, "compare.py"), "--quick",
                    "--threads", "1", "--modes", "infer", "--shapes", "f",
                    "--precision", "float32,bfloat16,int8",
                    "--frameworks", "fastlstm,torch,onnxruntime", "--no-footprint",
                    "--gemm-size", "128", "--json", str(out), "--markdown", str(md)],
                   check=True, timeout=300)
    run = json.loads(out.read_text())["runs"][0]
    timed = {(r["framework"], r["precision"]) for r in run["results"]}
    assert timed >= {("fastlstm", "float32"), ("torch", "float32"), ("onnxruntime", "float32"),
                     ("fastlstm", "bfloat16"), ("torch", "bfloat16"), ("fastlstm", "int8"),
                     ("torch", "int8"), ("onnxruntime", "int8")}, run["skipped"]
    assert set(run["qchecks"]["f"]) == {"fastlstm bfloat16", "torch bfloat16", "fastlstm int8",
                                        "torch int8", "onnxruntime int8"}
    text = md.read_text()
    assert "### Reduced precision (inference)" in text
    assert "| f | int8 |" in text and "| f | bfloat16 |" in text


def test_check_reduced_refuses_a_float32_peer():
    """A "quantized" peer whose output equals float32's exactly was never quantized
    (as quantize_dynamic does to a bare nn.LSTM): the check must fail."""
    case = bl.CASES["f"]
    y = np.random.default_rng(0).standard_normal((case.B, case.T, case.H)).astype(np.float32)
    with pytest.raises(AssertionError, match="not run in reduced precision"):
        compare.check_reduced(case, {"torch": y}, {"torch int8": y.copy()}, tol=5e-2)
    with pytest.raises(AssertionError, match="differs"):
        compare.check_reduced(case, {"torch": y}, {"torch int8": y + 0.1}, tol=5e-2)
