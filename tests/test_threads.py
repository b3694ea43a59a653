"""Determinism across thread counts, GIL release and thread safety.

* The design promises bitwise-identical results for any n_threads: work is split
  over outputs (unit blocks x batch chunks, or batch rows, GEMM tiles), never over
  a reduction.
  Outputs, final states and ALL gradients are compared with exact equality for
  n_threads = 1, 2 and 3, float32 and float64, every cell, on shapes that give
  several unit blocks (H = 40: 3 blocks of 16; H = 130: 3 of 64 on avx512) and batch
  chunks (B = 37: 2 chunks of 24), and GEMMs of several tiles (T*B = 148 > 72 rows; 3*4*16 = 192 gate rows in
  the weight-gradient GEMMs).
* The default thread count follows the CPUs a process may use and OMP_NUM_THREADS,
  checked in child processes whose CPUs and environment the test sets.
* Every kernel call releases the GIL: a pure-Python thread keeps running while
  another thread is inside one long kernel call.
* A layer is safe to call from several Python threads at once (inference, and
  training forward/backward without dropout): the results equal the serial ones.
"""
import contextlib
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import fastlstm
from fastlstm import _kernels
import helpers

CELLS = helpers.CELLS


@contextlib.contextmanager
def forced_thread_split(mode):
    """Inside the block, every time loop runs on all of a layer's n_threads
    (mode "model": split as the cost model picks, by batch rows where W_hh is
    small, else by unit blocks; "blocks": by unit blocks), however small its
    steps; the cost model is back afterwards, whatever happens inside. The
    setting is process-wide (src_c/testing.h)."""
    previous = _kernels.set_thread_split_for_tests(mode)
    try:
        yield
    finally:
        _kernels.set_thread_split_for_tests(previous)


def _all_results(layer, case):
    """Inference outputs and the full training forward/backward, as a flat dict."""
    yi, hi, ci = helpers.kernel_infer(layer, case["x"], case["h0"], case["c0"], case["lengths"])
    y, h, c, grads, _ = helpers.kernel_train(layer, case)
    out = {"infer_y": yi, "infer_h_n": hi, "y": y, "h_n": h}
    if c is not None:
        out["infer_c_n"], out["c_n"] = ci, c
    out.update({"grad_" + k: v for k, v in grads.items()})
    return out


CONFIGS = {
    # B, T, I, H, L, bidirectional, lengths, initial state
    "B37T4I7H40-L1uni": (37, 4, 7, 40, 1, False, False, False),
    # split by batch rows, each share on tiles of its own: 7 + 7 rows on 2 threads,
    # 4 + 5 + 5 on 3, so tile slots and rows differ, and on 2 threads rows 6 and 13
    # take the lone-row path that one thread runs inside a tile
    "B14T4I7H40-L1uni-init": (14, 4, 7, 40, 1, False, False, True),
    "B37T3I5H40-L2bi-len-init": (37, 3, 5, 40, 2, True, True, True),
    # batch 1: backward's recurrent gradient takes several unit blocks per work
    # item (7 blocks: 4 + 3 in float32, 2 + 2 + 2 + 1 in float64); one row tile
    # cannot be split by rows, so "model" and "units" run the same path here
    "B1T6I5H100-L2bi-len": (1, 6, 5, 100, 2, True, True, False),
    # the avx512 level's unit block is 64: H = 130 gives it 3 blocks (the last of
    # 2 units), and batch 1 groups them in backward as on the narrower levels
    "B13T3I6H130-L1uni-len": (13, 3, 6, 130, 1, False, True, False),
    "B1T4I6H130-L1uni": (1, 4, 6, 130, 1, False, False, False),
}


@pytest.mark.parametrize("split", ["model", "blocks"])
@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cell", CELLS)
def test_bitwise_identical_for_any_thread_count(cell, dtype, config, split):
    b, t, i, h, L, bi, use_len, use_init = CONFIGS[config]
    case = helpers.make_case(cell, b, t, i, h, L, bi, use_len, use_init,
                        helpers.seed_of("threads", cell, dtype, config), dtype=np.dtype(dtype))
    results = {}
    for nt in (1, 2, 3):
        layer = helpers.make_layer(cell, i, h, L, bi, dtype=dtype, params=case["params"], n_threads=nt)
        # these steps are small enough that the kernels' cost model would run them on
        # one thread; force every thread to take part so the partitioning is exercised
        # ("model" splits the forward time loop by batch rows here, W_hh being small)
        with forced_thread_split(split):
            results[nt] = _all_results(layer, case)
            peak = _kernels.thread_split_peak_for_tests()
        # the split took place: some time loop was planned for several threads,
        # wherever there are several work items to share out (unit blocks times
        # 24-row chunks, or for "model" more than one 6-row tile); on avx512, whose
        # unit block is 64, H = 40 with B = 14 is one block and one chunk
        items = -(-h // _kernels.level_layout()[1]) * -(-b // 24)
        if nt == 1:
            assert peak == 1
        elif items > 1 or (split == "model" and b > 6):
            assert peak >= 2, (nt, peak)
    for nt in (2, 3):
        assert set(results[nt]) == set(results[1])
        for k, v in results[1].items():
            assert np.isfinite(v).all(), k
            # exact equality, not closeness: determinism is a stated property
            np.testing.assert_array_equal(results[nt][k], v, err_msg=f"{k}, n_threads={nt}")


def test_forced_thread_split_takes_only_its_modes():
    """An unknown mode is refused and leaves the one in force as it was."""
    with forced_thread_split("blocks"):
        with pytest.raises(ValueError, match="thread split"):
            _kernels.set_thread_split_for_tests("fast")
        assert _kernels.set_thread_split_for_tests("blocks") == "blocks"
    assert _kernels.set_thread_split_for_tests("auto") == "auto"


_FEWER_THREADS_SCRIPT = """
import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import helpers
import test_threads as tt
from fastlstm import _kernels
_kernels.set_thread_split_for_tests("model")   # this process only
for cell in tt.CELLS:
    for config in ("B37T4I7H40-L1uni", "B14T4I7H40-L1uni-init", "B37T3I5H40-L2bi-len-init"):
        b, t, i, h, L, bi, use_len, use_init = tt.CONFIGS[config]
        case = helpers.make_case(cell, b, t, i, h, L, bi, use_len, use_init, helpers.seed_of("few", cell, config),
                            dtype=np.float32)
        out = []
        for nt in (1, 3):
            layer = helpers.make_layer(cell, i, h, L, bi, dtype="float32", params=case["params"], n_threads=nt)
            out.append(tt._all_results(layer, case))
        for k, v in out[0].items():
            np.testing.assert_array_equal(out[1][k], v, err_msg=f"{cell} {config} {k}")
print("ok")
"""


@pytest.mark.skipif(not _kernels.openmp_enabled(), reason="needs the OpenMP build")
def test_regions_granted_fewer_threads_than_planned():
    """With OMP_THREAD_LIMIT=1 every parallel region gets one thread although the kernels
    plan their work for n_threads = 3 (a split by batch rows lays each share out on tiles
    of its own): the one thread must run every share, and the results must equal
    n_threads = 1 bitwise."""
    here = os.path.dirname(os.path.abspath(__file__))
    env = helpers.child_env(OMP_THREAD_LIMIT="1")
    env.pop("OMP_NUM_THREADS", None)
    r = subprocess.run([sys.executable, "-c", _FEWER_THREADS_SCRIPT, here], env=env,
                       cwd=helpers.CHILD_CWD, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stdout + r.stderr


_RESOLVE_SCRIPT = r"""
import json, os, sys
cpus = json.loads(sys.argv[2])
os.sched_setaffinity(0, cpus)          # before OpenMP starts, as a container or taskset would
sys.path.insert(0, sys.argv[1])
import fastlstm
from fastlstm import _kernels
from fastlstm._config import config
print(json.dumps({"file": fastlstm.__file__, "config": config()["n_threads"],
                  "layer": fastlstm.LSTM(2, 3).n_threads,
                  "openmp": _kernels.openmp_enabled(), "omp_max": _kernels.openmp_max_threads()}))
"""


def _threads_in_child(cpus, env_extra):
    """What a fresh process restricted to ``cpus``, with OMP_NUM_THREADS and the
    like as in ``env_extra`` only, resolves the default thread count to."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_"))}
    env.update(env_extra)
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastlstm.__file__)))
    r = subprocess.run([sys.executable, "-c", _RESOLVE_SCRIPT, root, json.dumps(cpus)], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert os.path.samefile(out["file"], fastlstm.__file__)   # the build under test
    return out


_ALLOWED = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
THREAD_DEFAULTS = {
    # name: (CPUs the child may use, its OpenMP environment, threads expected)
    "one-cpu": (_ALLOWED[:1], {}, 1),
    "all-cpus": (_ALLOWED, {}, len(_ALLOWED)),
    "omp-num-threads-1": (_ALLOWED, {"OMP_NUM_THREADS": "1"}, 1),
    "omp-num-threads-above-cpus": (_ALLOWED[:1], {"OMP_NUM_THREADS": "64"}, 1),
    "omp-num-threads-nested-list": (_ALLOWED, {"OMP_NUM_THREADS": "2,1"}, min(2, len(_ALLOWED))),
}


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"),
                    reason="needs os.sched_setaffinity (Linux) to choose a child's CPUs")
@pytest.mark.parametrize("name", list(THREAD_DEFAULTS))
def test_default_threads_follow_cpus_and_omp_num_threads(name):
    """n_threads=None means all the cores this process may use, capped by
    OMP_NUM_THREADS (its first entry). Checked against what the test set up in a
    child process, not against fastlstm's own helpers: the default a layer takes,
    what show_config reports (1 in a build without OpenMP), and, with
    OMP_NUM_THREADS unset, OpenMP's own default for the same process."""
    cpus, env, expected = THREAD_DEFAULTS[name]
    out = _threads_in_child(cpus, env)
    assert out["layer"] == expected, out
    assert out["config"] == (expected if out["openmp"] else 1), out
    if out["openmp"] and "OMP_NUM_THREADS" not in env:
        assert out["omp_max"] == expected, out


# ---------------------------------------------------------------- GIL release

def _python_spin(n):
    s = 0
    for k in range(n):
        s += k
    return s


def _gil_released_during(call):
    """Run ``call`` (one long kernel call) in thread A and a fixed amount of pure-Python
    work in thread B, started just as A enters the call. If the kernel holds the GIL,
    B cannot run until A's call returns, so B finishes after A; if the GIL is
    released, B finishes well before A. Returns (t_A, t_B, call duration)."""
    started = threading.Event()
    done = {}

    def a():
        started.set()
        t0 = time.perf_counter()
        call()
        done["a"] = time.perf_counter()
        done["dur"] = done["a"] - t0

    def b():
        started.wait()
        _python_spin(done["n"])
        done["b"] = time.perf_counter()

    # calibrate B's work to ~1/8 of one kernel call
    t0 = time.perf_counter()
    call()
    dur = time.perf_counter() - t0
    t0 = time.perf_counter()
    _python_spin(20000)
    per = (time.perf_counter() - t0) / 20000
    done["n"] = max(1000, int(dur / 8 / per))
    ta, tb = threading.Thread(target=a), threading.Thread(target=b)
    ta.start()
    tb.start()
    ta.join()
    tb.join()
    return done["a"], done["b"], done["dur"]


@pytest.mark.parametrize("what", ["lstm_forward", "gru_forward", "lstm_backward"])
def test_kernels_release_the_gil(what):
    cell = "gru" if what.startswith("gru") else "lstm"
    b, t, i, h = 32, 1000, 8, 48
    case = helpers.make_case(cell, b, t, i, h, 1, False, False, False, 1, dtype=np.float32)
    layer = helpers.make_layer(cell, i, h, dtype="float32", params=case["params"], n_threads=1)
    if what.endswith("forward"):
        def call():
            helpers.kernel_infer(layer, case["x"])
    else:
        y, _, cache = layer.forward(case["x"])

        def call():
            layer.backward(cache, case["dy"])
    # one retry absorbs a scheduler hiccup on a loaded machine
    for _ in range(2):
        ta, tb, dur = _gil_released_during(call)
        if tb < ta:
            break
    assert tb < ta, f"a pure-Python thread made no progress during a {dur:.3f} s kernel call"


def test_gil_probe_detects_a_held_gil():
    """Negative control: sorting a list of floats is one C call that keeps the GIL;
    there the probe sees the Python thread finish only after the call. The list is
    long enough that the probe thread's work (1/8 of the call) outlasts the
    interpreter's 5 ms switch interval, so it cannot finish before the sort starts."""
    data = list(np.random.default_rng(0).random(1_000_000))
    ta, tb, _ = _gil_released_during(lambda: sorted(data))
    assert tb > ta


# ---------------------------------------------------------------- thread safety

@pytest.mark.parametrize("cell", ["peephole", "gru"])
def test_concurrent_calls_equal_serial(cell):
    """4 Python threads share one layer (n_threads=2, so OpenMP teams run side by side),
    each running inference and training forward/backward on its own inputs twice; every result equals the serial one bitwise."""
    b, t, i, h, L = 9, 4, 4, 20, 2
    base = helpers.make_case(cell, b, t, i, h, L, True, True, True, helpers.seed_of("conc", cell),
                        dtype=np.float32)
    layer = helpers.make_layer(cell, i, h, L, True, dtype="float32", params=base["params"],
                          n_threads=2)
    rng = np.random.default_rng(0)
    cases = []
    for _ in range(4):
        c = dict(base)
        c["x"] = rng.standard_normal((b, t, i)).astype(np.float32)
        c["dy"] = rng.standard_normal(base["dy"].shape).astype(np.float32)
        c["lengths"] = helpers.random_lengths(rng, b, t)
        cases.append(c)
    serial = [_all_results(layer, c) for c in cases]
    # drop any weights packed by the serial runs, so the threads also race to repack
    getattr(layer, "params_updated", lambda: None)()
    errors, outputs = [], [[] for _ in cases]
    barrier = threading.Barrier(len(cases))

    def worker(k):
        try:
            barrier.wait()
            for _ in range(2):
                outputs[k].append(_all_results(layer, cases[k]))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(len(cases))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    for k, runs in enumerate(outputs):
        assert len(runs) == 2
        for run in runs:
            for name, v in serial[k].items():
                np.testing.assert_array_equal(run[name], v, err_msg=f"thread {k}: {name}")
