"""How many OpenMP threads the kernels use: settled once in Python, passed to C as an int."""
import os

from ._limits import MAX_THREADS


def usable_cpus():
    """Cores this process may run on, capped by OMP_NUM_THREADS when it is set."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if env.isdigit() and int(env) > 0:
        n = min(n, int(env))
    return max(1, n)


def effective_n_threads(n_threads=None):
    """None: all usable cores; k > 0: k; k < 0: usable + 1 + k (so -1 is all); 0 is an error."""
    if n_threads is None:
        return usable_cpus()
    if isinstance(n_threads, bool) or not isinstance(n_threads, int) and not hasattr(n_threads, "__index__"):
        raise TypeError(f"n_threads must be an int or None, got {type(n_threads).__name__}")
    n = int(n_threads)
    if n == 0:
        raise ValueError("n_threads=0 is invalid: use None for all cores, or a positive or negative int")
    if abs(n) > MAX_THREADS:
        raise ValueError(f"n_threads={n} is out of range: at most {MAX_THREADS} in absolute value")
    if n < 0:
        return max(1, usable_cpus() + 1 + n)
    return n
