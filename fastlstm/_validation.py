"""Argument checks, each written once: ints, reals, bools, choices, dtypes,
seeds and thread counts. Layers, the architecture spec, the optimizers and
the estimators all check their arguments with these.

A constraint checks one value and returns it normalised (a Python int,
float, bool, str or tuple); a bad value raises TypeError (wrong kind of
value) or ValueError (right kind, out of range), naming the argument.
Estimators declare theirs once per class in ``_parameter_constraints``, as
scikit-learn's estimators do, and ``validate_params`` applies them.
"""
import math
import numbers

import numpy as np

from ._limits import MAX_LAYERS, MAX_THREADS, MAX_WIDTH

DTYPES = ("float32", "float64")


def is_int(v):
    """An integer that is not a bool (numpy integers included)."""
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def is_real(v):
    """A real number that is not a bool (numpy scalars included)."""
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))


def _fail(name, what, value, exc=ValueError):
    raise exc(f"{name} must be {what}, got {value!r}")


class Int:
    """An int in [low, high] (either bound may be None), or None when ``none_ok``."""

    def __init__(self, low=None, high=None, none_ok=False):
        self.low, self.high, self.none_ok = low, high, none_ok

    def describe(self):
        if self.low is not None and self.high is not None:
            what = f"an int in [{self.low}, {self.high}]"
        elif self.low is not None:
            what = f"an int >= {self.low}"
        elif self.high is not None:
            what = f"an int <= {self.high}"
        else:
            what = "an int"
        return what + (" or None" if self.none_ok else "")

    def check(self, name, v):
        if v is None and self.none_ok:
            return None
        if not is_int(v):
            _fail(name, self.describe(), v, TypeError)
        if (self.low is not None and v < self.low) or (self.high is not None and v > self.high):
            _fail(name, self.describe(), v)
        return int(v)


class Real:
    """A finite real number within the given bounds, or None when ``none_ok``."""

    def __init__(self, low=None, high=None, low_open=False, high_open=False, none_ok=False):
        self.low, self.high = low, high
        self.low_open, self.high_open, self.none_ok = low_open, high_open, none_ok

    def describe(self):
        lo = "" if self.low is None else f"{'>' if self.low_open else '>='} {self.low}"
        hi = "" if self.high is None else f"{'<' if self.high_open else '<='} {self.high}"
        bounds = " and ".join(x for x in (lo, hi) if x)
        return "a finite number" + (f" {bounds}" if bounds else "") + (
            " or None" if self.none_ok else "")

    def check(self, name, v):
        if v is None and self.none_ok:
            return None
        if not is_real(v):
            _fail(name, "a real number" + (" or None" if self.none_ok else ""), v, TypeError)
        v = float(v)
        lo_bad = self.low is not None and (v < self.low or (self.low_open and v == self.low))
        hi_bad = self.high is not None and (v > self.high or (self.high_open and v == self.high))
        if not math.isfinite(v) or lo_bad or hi_bad:
            _fail(name, self.describe(), v)
        return v


class Bool:
    def check(self, name, v):
        if not isinstance(v, (bool, np.bool_)):
            _fail(name, "True or False", v, TypeError)
        return bool(v)


class Choice:
    """One of a set of strings: a tuple, or a table (dict) whose keys are read at
    each check, so a row added to the table is a valid choice at once."""

    def __init__(self, options):
        self.options = options

    def check(self, name, v):
        if not isinstance(v, str) or v not in self.options:
            _fail(name, f"one of {tuple(self.options)}", v)
        return v


class Quantiles:
    """Distinct probabilities in (0, 1), increasing, one of them 0.5 (the median
    is the point forecast); a tuple of floats."""

    def check(self, name, v):
        what = ("an increasing tuple of distinct floats in (0, 1) that includes 0.5, "
                "e.g. (0.05, 0.5, 0.95)")
        if isinstance(v, np.ndarray):
            v = tuple(v.tolist())
        if not isinstance(v, (tuple, list)) or not v or not all(is_real(q) for q in v):
            _fail(name, what, v, TypeError)
        q = tuple(float(x) for x in v)
        if not all(0.0 < x < 1.0 for x in q) or any(b <= a for a, b in zip(q, q[1:])) \
                or 0.5 not in q or len(q) > 99:
            _fail(name, what, v)
        return q


class Verbose:
    """An int >= 0 (True and False count as 1 and 0)."""

    def check(self, name, v):
        if isinstance(v, (bool, np.bool_)):
            v = int(v)
        if not is_int(v) or v < 0:
            _fail(name, "an int >= 0", v)
        return int(v)


class DType:
    """"float32" or "float64", given as a name, a numpy dtype or a type; returns the name."""

    def check(self, name, v):
        try:
            dname = np.dtype(v).name if v is not None else None
        except TypeError:
            dname = None
        if dname not in DTYPES:
            _fail(name, "'float32' or 'float64'", v)
        return dname


class HiddenSizes:
    """One int or a non-empty sequence of ints (units of each stacked layer); a tuple."""

    def check(self, name, v):
        if is_int(v):
            v = (v,)
        if isinstance(v, np.ndarray):
            v = tuple(v.tolist())
        if not isinstance(v, (tuple, list)) or not 1 <= len(v) <= MAX_LAYERS or not all(
                is_int(h) and 1 <= h <= MAX_WIDTH for h in v):
            _fail(name, f"a non-empty tuple of at most {MAX_LAYERS} ints in [1, {MAX_WIDTH}], "
                  "e.g. (50,) or (50, 50)", v)
        return tuple(int(h) for h in v)


class ClassWeight:
    """None, "balanced", or a dict {label: weight >= 0} (also given as (label,
    weight) pairs, as a model file stores it); returns None, "balanced" or a dict."""

    def check(self, name, v):
        if v is None or (isinstance(v, str) and v == "balanced"):
            return v
        if isinstance(v, (list, tuple)) and all(isinstance(x, (list, tuple)) and len(x) == 2
                                                for x in v):
            v = {(tuple(k) if isinstance(k, list) else k): w for k, w in v}
        if not isinstance(v, dict):
            _fail(name, "None, 'balanced' or a dict {label: weight}", v, TypeError)
        for w in v.values():
            if not is_real(w) or not math.isfinite(w) or w < 0:
                _fail(name, "a dict of finite weights >= 0", v)
        return {k: float(w) for k, w in v.items()}


class Callbacks:
    """None or a list of callables ``callback(estimator, logs)``; returns a tuple."""

    def check(self, name, v):
        if v is None:
            return ()
        if callable(v):
            v = [v]
        if not isinstance(v, (list, tuple)) or not all(callable(c) for c in v):
            _fail(name, "None or a list of callables callback(estimator, logs)", v, TypeError)
        return tuple(v)


class RandomState:
    """None, an int in [0, 2**32), or a numpy RandomState / Generator (returned as is)."""

    def check(self, name, v):
        if v is None or isinstance(v, (np.random.RandomState, np.random.Generator)):
            return v
        if is_int(v):
            if not 0 <= v < 2**32:
                _fail(name, "None, an int in [0, 2**32) or a numpy random generator", v)
            return int(v)
        _fail(name, "None, an int or a numpy random generator", v, TypeError)


class NThreads:
    """None (all cores) or a non-zero int; negative counts from the number of cores."""

    def check(self, name, v):
        if v is None:
            return None
        if not is_int(v) or v == 0 or abs(v) > MAX_THREADS:
            _fail(name, f"None (all cores) or a non-zero int of at most {MAX_THREADS} in "
                  "absolute value", v, ValueError if is_int(v) else TypeError)
        return int(v)


def validate_params(owner, constraints, prefix=None):
    """{name: checked value} for every entry of ``constraints`` read from ``owner``'s
    attributes; errors start with ``prefix`` (the owner's class name)."""
    prefix = type(owner).__name__ if prefix is None else prefix
    out = {}
    for name, constraint in constraints.items():
        try:
            out[name] = constraint.check(name, getattr(owner, name))
        except (TypeError, ValueError) as e:
            raise type(e)(f"{prefix}: {e}") from None
    return out


def seed_from(random_state):
    """An int seed from None / int / RandomState / Generator (consumes one draw)."""
    if random_state is None:
        return int(np.random.SeedSequence().generate_state(1)[0])
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, 2**31 - 1))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(0, 2**31 - 1))
    return int(random_state)
