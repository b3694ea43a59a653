"""How many threads a kernel call gets: explicit counts as given; the default
follows set_num_threads / num_threads, OpenMP's limit in the calling thread
(OMP_NUM_THREADS, threadpoolctl) and is shared between calls running at the
same time. Results never depend on it (test_threads.py proves the kernels
bitwise thread-invariant); here the counts themselves are checked, by
recording what the layer passes to the kernels."""
import subprocess
import sys
import threading

import numpy as np
import pytest

import fastlstm
from fastlstm import _kernels, _threads
from fastlstm._threads import claim, usable_cpus

import helpers

X = np.random.default_rng(0).standard_normal((3, 4, 2)).astype(np.float32)


@pytest.fixture
def recorded(monkeypatch):
    """The n_threads of every rnn_forward call, in order."""
    seen = []
    real = _kernels.rnn_forward

    def spy(cell, act, gate, reverse, n_threads, *args):
        seen.append(n_threads)
        return real(cell, act, gate, reverse, n_threads, *args)
    monkeypatch.setattr(_kernels, "rnn_forward", spy)
    return seen


def _omp_max():
    return _kernels.openmp_max_threads()


def test_explicit_count_is_used_as_given(recorded):
    fastlstm.LSTM(2, 3, n_threads=3)(X)
    assert recorded == [3]


def test_default_follows_set_num_threads_and_the_context_manager(recorded):
    layer = fastlstm.LSTM(2, 3)
    full = min(usable_cpus(), _omp_max())
    assert fastlstm.get_num_threads() == full
    base = layer(X)[0]
    with fastlstm.num_threads(1):
        assert fastlstm.get_num_threads() == 1
        one = layer(X)[0]
    previous = fastlstm.set_num_threads(1)
    try:
        assert previous is None
        layer(X)
    finally:
        fastlstm.set_num_threads(previous)
    layer(X)
    assert recorded == [full, 1, 1, full]
    np.testing.assert_array_equal(one, base)


def test_concurrent_default_calls_share_the_cores():
    full = min(usable_cpus(), _omp_max())
    with claim(None) as a:
        assert a == full
        with claim(None) as b:           # a second call while the first runs
            assert b == max(1, usable_cpus() - a)
        with claim(2) as c:              # explicit: as given, whatever runs
            assert c == 2
    with claim(None) as d:               # all released
        assert d == full


def test_threads_running_at_once_take_what_is_free(recorded):
    layer = fastlstm.LSTM(2, 3)
    start = threading.Barrier(2)
    held = threading.Event()
    done = threading.Event()

    def holder():
        with claim(None):
            held.set()
            start.wait()
            done.wait(30)

    t = threading.Thread(target=holder)
    t.start()
    held.wait(30)
    start.wait()
    try:
        layer(X)
    finally:
        done.set()
        t.join()
    assert recorded == [max(1, usable_cpus() - min(usable_cpus(), _omp_max()))]


def test_threadpoolctl_limits_the_default(recorded):
    layer = fastlstm.LSTM(2, 3)
    if not _kernels.openmp_enabled():
        # a single-threaded build has no pool to limit: its default is one thread
        assert fastlstm.get_num_threads() == 1
        layer(X)
        assert recorded == [1]
        return
    threadpoolctl = pytest.importorskip("threadpoolctl")
    info = threadpoolctl.threadpool_info()
    assert any(m["user_api"] == "openmp" for m in info), info
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        assert fastlstm.get_num_threads() == 1
        layer(X)
    assert recorded == [1]


def test_omp_num_threads_caps_the_default():
    code = ("import fastlstm; print(fastlstm.get_num_threads(), "
            "fastlstm._threads.usable_cpus())")
    out = subprocess.run([sys.executable, "-c", code], env=helpers.child_env(OMP_NUM_THREADS="1"),
                         cwd=helpers.CHILD_CWD, capture_output=True, text=True, timeout=120,
                         check=True).stdout.split()
    assert out == ["1", "1"]


def test_container_cpu_quota_is_read(tmp_path):
    path = tmp_path / "cpu.max"
    for text, want in (("max 100000\n", None), ("150000 100000\n", 2), ("50000 100000", 1),
                       ("garbage", None)):
        path.write_text(text)
        assert _threads._cgroup_cpus(str(path)) == want
    assert _threads._cgroup_cpus(str(tmp_path / "absent")) is None


@pytest.mark.parametrize("bad", [0, 1.5, "2", True])
def test_set_num_threads_checks_its_argument(bad):
    with pytest.raises((TypeError, ValueError), match="n_threads"):
        fastlstm.set_num_threads(bad)
