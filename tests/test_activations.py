"""The kernels' own activations (fastlstm._kernels.activation, the very inline
vector functions the LSTM/GRU epilogues call) against float64 numpy references.

The design's target: sigmoid and tanh within 1e-6 absolute in float32 against a
float64 reference; float64 within 1e-14. hard_sigmoid and relu have no
approximation at all, so they must be exact, and no input may give NaN or inf.
"""
import numpy as np
import pytest

from helpers import record_error
from fastlstm import _kernels

SIGMOID, TANH, HARD_SIGMOID, RELU = 0, 1, 2, 3

F32_TOL = 1e-6     # the design's stated accuracy target for float32
F64_TOL = 1e-14    # a few ulp of 1: the degree-12 exp polynomial is good to ~2e-16


def _grid(dtype):
    """A dense grid over [-20, 20] (step 1e-5: the whole interesting range of both
    functions, 4e6 points), the points where the exp argument reduction switches
    (multiples of ln2 / 2), and extremes."""
    g = np.linspace(-20.0, 20.0, 4_000_001)
    ln2 = np.log(2.0)
    k = np.arange(-60, 61) * ln2 / 2
    kinks = np.concatenate([k, np.nextafter(k, -np.inf), np.nextafter(k, np.inf)])
    ext = [0.0, -0.0, 88.0, -88.0, 87.0, -87.0, 89.0, -89.0, 1e4, -1e4, 1e-30, -1e-30,
           44.0, -44.0, 100.0, -100.0, 700.0, -700.0, 710.0, -710.0]
    if dtype == np.float32:
        ext += [3.4e38, -3.4e38, float(np.finfo(np.float32).tiny)]
    else:
        ext += [1e300, -1e300, 1.7e308, -1.7e308, 5e-324]
    return np.concatenate([g, kinks, ext]).astype(dtype)


def _sigmoid64(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _run(which, x, order="forward"):
    """Whole vectors of x go straight through the vector functions; a tail
    shorter than a vector goes through a zero-padded vector (as a partial unit
    block does). order "reversed" evaluates x back to front, so the extremes at
    the end of the grid take both routes."""
    if order == "reversed":
        return _run(which, np.ascontiguousarray(x[::-1]))[::-1]
    y = np.empty_like(x)
    _kernels.activation(which, x, y)
    return y


ORDERS = pytest.mark.parametrize("order", ["forward", "reversed"])


@pytest.mark.parametrize("dtype,tol", [(np.float32, F32_TOL), (np.float64, F64_TOL)],
                         ids=["float32", "float64"])
@pytest.mark.parametrize("which,name", [(SIGMOID, "sigmoid"), (TANH, "tanh")])
@ORDERS
def test_sigmoid_tanh_accuracy(which, name, dtype, tol, order):
    x = _grid(dtype)
    y = _run(which, x, order)
    assert y.dtype == dtype
    assert np.isfinite(y).all()
    x64 = x.astype(np.float64)       # the reference at exactly the same inputs
    want = _sigmoid64(x64) if which == SIGMOID else np.tanh(x64)
    err = np.abs(y.astype(np.float64) - want)
    worst = float(err.max())
    record_error(f"activation {name} {np.dtype(dtype).name} (abs)", worst)
    assert worst < tol, (worst, float(x64[err.argmax()]))
    # range and the symmetries the kernels rely on
    if which == SIGMOID:
        assert np.all((y >= 0) & (y <= 1))
    else:
        assert np.all((y >= -1) & (y <= 1))
        np.testing.assert_array_equal(_run(TANH, -x, order), -y)   # tanh is computed odd
    # saturation: far tails are the limits to within rounding
    big = np.array([50, 88, 1e4], dtype)    # 1 - sigmoid(50) ~ 2e-22: below any ulp of 1
    assert np.all(np.abs(_run(which, big) - 1) <= np.finfo(dtype).eps)
    lo = _run(which, -big)
    assert np.all(np.abs(lo - (0 if which == SIGMOID else -1)) <= np.finfo(dtype).eps)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@ORDERS
def test_hard_sigmoid_exact(dtype, order):
    """max(0, min(1, 0.2 x + 0.5)) with no approximation: every value equals the
    formula evaluated in the same dtype with either one rounding (fused multiply-add,
    which the dispatched AVX2/AVX-512 code may use) or two (plain); saturated parts
    and the midpoint are exact."""
    x = _grid(dtype)
    y = _run(HARD_SIGMOID, x, order)
    two = np.clip(dtype(0.2) * x + dtype(0.5), 0, 1).astype(dtype)
    if dtype == np.float32:
        # a float32 FMA = the exact product (exact in float64) + 0.5, rounded once
        fused = np.clip((np.float64(dtype(0.2)) * x.astype(np.float64) + 0.5)
                        .astype(np.float32), 0, 1)
        ok = (y == two) | (y == fused)
        assert ok.all(), x[~ok][:5]
    else:
        # The fused and plain results differ by at most the rounding of the product
        # 0.2 x (< one ulp of 0.5 where the clip is not active): check that bound on
        # the whole grid, and the strict either-or on a sample, with the fused value
        # computed exactly in rationals (Python's int / int division rounds correctly).
        assert np.all(np.abs(y - two) <= np.spacing(0.5)), x[np.abs(y - two) > np.spacing(0.5)][:5]
        from fractions import Fraction
        edge = np.array([-2.5, 2.5, 0.0, -2.4999999, 2.4999999, 1e-300, -1e-17, 1e-17])
        edge = np.concatenate([edge, np.nextafter(edge, np.inf), np.nextafter(edge, -np.inf)])
        sample = np.concatenate([x[::1999], edge])
        ys = _run(HARD_SIGMOID, sample, order)
        twos = np.clip(0.2 * sample + 0.5, 0, 1)
        a = Fraction(0.2)
        for xv, yv, tv in zip(sample.tolist(), ys.tolist(), twos.tolist()):
            exact = a * Fraction(xv) + Fraction(1, 2)
            fused = min(1.0, max(0.0, exact.numerator / exact.denominator))
            assert yv == tv or yv == fused, (xv, yv, tv, fused)
    assert np.all(y[x <= -2.5] == 0) and np.all(y[x >= 2.5] == 1)
    assert _run(HARD_SIGMOID, np.zeros(1, dtype))[0] == 0.5
    assert np.isfinite(y).all()
    record_error(f"activation hard_sigmoid {np.dtype(dtype).name} (abs)",
                 float(np.max(np.abs(y.astype(np.float64) - np.clip(0.2 * x.astype(np.float64)
                                                                     + 0.5, 0, 1)))))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@ORDERS
def test_relu_exact(dtype, order):
    x = _grid(dtype)
    y = _run(RELU, x, order)
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    assert not np.signbit(y).any()           # relu(-0.0) is +0, never -0
    assert np.isfinite(y).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_every_activation_finite_for_huge_inputs(dtype):
    fi = np.finfo(dtype)
    x = np.array([fi.max, -fi.max, fi.max / 2, -fi.max / 2, fi.tiny, -fi.tiny, 0], dtype)
    for which in (SIGMOID, TANH, HARD_SIGMOID):
        y = _run(which, x)
        assert np.isfinite(y).all(), which
        assert np.all(np.abs(y) <= 1)
    assert np.isfinite(_run(RELU, x)).all()


def test_lengths_do_not_matter():
    """The vectorised loop has a remainder part: results do not depend on the array
    length or on where an element sits in it."""
    x = np.linspace(-9, 9, 1001).astype(np.float32)
    for which in (SIGMOID, TANH):
        full = _run(which, x)
        for n in (1, 3, 7, 8, 15, 16, 17, 31):
            for start in (0, 1, 5):
                np.testing.assert_array_equal(_run(which, x[start:start + n].copy()),
                                              full[start:start + n])
