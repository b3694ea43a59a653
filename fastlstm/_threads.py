"""How many OpenMP threads a kernel call uses: settled in Python, passed to C as an int.

An explicit ``n_threads=k`` runs on k threads. The default, None, is the
process default (``set_num_threads``; otherwise every core this process may
use), capped by OpenMP's own limit in the calling thread (OMP_NUM_THREADS,
or ``threadpoolctl.threadpool_limits`` acting on the libgomp the kernels
use), and shared: calls running at the same time from several Python
threads each take what the others leave free (at least one), so a server
with several worker threads, or a thread-pool grid search, does not run
cores x callers threads. Results are bitwise the same for any thread count,
so none of this changes a number, only the speed.
"""
import contextlib
import math
import os
import threading

from ._validation import NThreads

__all__ = ["set_num_threads", "get_num_threads", "num_threads", "usable_cpus"]

_N_THREADS = NThreads()
_default = None            # set_num_threads' value: None, or an int as n_threads takes
_lock = threading.Lock()
_in_use = 0                # threads held by calls running now


def _cgroup_cpus(path="/sys/fs/cgroup/cpu.max"):
    """CPUs the cgroup v2 quota allows (containers), or None where unlimited."""
    try:
        with open(path) as f:
            quota, period = f.read().split()[:2]
        if quota == "max":
            return None
        return max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        return None


_usable = None


def usable_cpus(refresh=False):
    """Cores this process may run on: its CPU affinity, the container's CPU quota,
    and OMP_NUM_THREADS when it is set, whichever is least. Read once (a kernel
    call must not pay for system calls); ``refresh`` reads them again."""
    global _usable
    if _usable is None or refresh:
        _usable = _read_usable_cpus()
    return _usable


def _read_usable_cpus():
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    quota = _cgroup_cpus()
    if quota is not None:
        n = min(n, quota)
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if env.isdigit() and int(env) > 0:
        n = min(n, int(env))
    return max(1, n)


def effective_n_threads(n_threads=None):
    """The threads ``n_threads`` asks for: None: the process default (see
    ``set_num_threads``); k > 0: k; k < 0: usable + 1 + k (so -1 is all); 0 is
    an error."""
    n = _N_THREADS.check("n_threads", n_threads)
    if n is None:
        n = _default
        if n is None:
            return usable_cpus()
    if n < 0:
        return max(1, usable_cpus() + 1 + n)
    return n


def set_num_threads(n_threads):
    """Set the threads of every kernel call whose ``n_threads`` is None, process-wide
    (None goes back to all usable cores; negative counts back from them). Returns
    the previous setting."""
    global _default
    n = _N_THREADS.check("n_threads", n_threads)
    previous, _default = _default, n
    return previous


def get_num_threads():
    """The threads a call with ``n_threads=None`` would use now, in this thread,
    if no other call were running (OpenMP's limit included)."""
    return _omp_capped(effective_n_threads(None))


@contextlib.contextmanager
def num_threads(n_threads):
    """``with fastlstm.num_threads(2): ...``: set_num_threads for the block (process-wide)."""
    previous = set_num_threads(n_threads)
    try:
        yield
    finally:
        set_num_threads(previous)


_omp_max_threads = None


def _omp_capped(n):
    global _omp_max_threads
    if _omp_max_threads is None:
        from ._kernels import openmp_max_threads
        _omp_max_threads = openmp_max_threads
    return max(1, min(n, _omp_max_threads()))


def take(n_threads):
    """Hold threads for one kernel call asked to run on ``n_threads`` (a layer's
    argument, already checked) and return the count to pass to the kernels;
    ``give`` it back when the call ends. An explicit count is used as given;
    None (or a negative count) gets what OpenMP's limit in this thread allows
    and the calls running now leave free, at least one."""
    global _in_use
    if n_threads is not None and n_threads > 0:
        k = n_threads
        with _lock:
            _in_use += k
        return k
    if n_threads is None and _default is None:
        n = _usable if _usable is not None else usable_cpus()
    else:
        n = effective_n_threads(n_threads)
    n = _omp_capped(n)
    with _lock:
        k = max(1, min(n, _usable - _in_use))
        _in_use += k
    return k


def give(k):
    global _in_use
    with _lock:
        _in_use -= k


@contextlib.contextmanager
def claim(n_threads):
    """``with claim(n_threads) as k``: take and give around a block."""
    k = take(n_threads)
    try:
        yield k
    finally:
        give(k)
