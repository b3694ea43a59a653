"""How many OpenMP threads the kernels use: settled once in Python, passed to C as an int."""
import os



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
    from ._validation import NThreads

    n = NThreads().check("n_threads", n_threads)
    if n is None:
        return usable_cpus()
    if n < 0:
        return max(1, usable_cpus() + 1 + n)
    return n
