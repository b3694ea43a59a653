"""The packed, cache-blocked GEMM (fastlstm._kernels.gemm: C = beta*C + op(A) @ B)
against the naive triple loop and numpy, float32 / float64, trans_a 0 / 1,
beta 0 / 1 / 0.5, with M, N, K around the blocking edges (micro-tile MR = 6 rows,
NR = 16 (float32) / 8 (float64) columns on avx2, 64 / 32 on avx512; tiles MC = 72,
NC = 4096; KC from the L1 size, a multiple of 16 in [64, 512]: K = 600 and 1100
give every KC two or more blocks, the last one partial).
Results must be bitwise identical for any n_threads, and beta = 0 must ignore
whatever C held (NaN included).
"""
import itertools

import numpy as np
import pytest

from helpers import record_error
from fastlstm import _kernels

MS = [1, 5, 6, 7, 71, 72, 73, 150]
NS = [1, 15, 16, 17, 255, 256, 257]
KS = [0, 1, 255, 256, 257]

# Every (M, N) pair once with a small K (0, 1 or 17, cycling), then the K-block edges
# 255, 256, 257 (and 0, 1) for (M, N) pairs that straddle the M / N tile edges:
# 56 + 17 = 73 shapes per (dtype, trans_a, beta), each edge hit without the full
# 280-shape product (which would take most of the suite's time budget).
SHAPES = [(m, n, [0, 1, 17][k % 3]) for k, (m, n) in enumerate(itertools.product(MS, NS))]
SHAPES += [(m, n, k) for (m, n) in [(7, 17), (150, 16), (6, 256)] for k in KS]
SHAPES += [(73, 257, 1), (73, 257, 257)]   # both tile edges, one and two K blocks
SHAPES += [(13, 70, 600), (8, 130, 1100)]   # several K blocks for any KC
SHAPES += [(1100, 1, 300), (1100, 2, 9)]    # N <= 2: matrix-vector path, 3 row blocks of 512


def _multi_tile(m, n):
    return m > 72 or n > 256


def _gemm(trans_a, A, B, beta, C0, **kw):
    C = C0.copy()
    _kernels.gemm(trans_a, A, B, beta, C, **kw)
    return C


def _operands(rng, dtype, trans_a, m, n, k):
    A = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    Bm = rng.standard_normal((k, n)).astype(dtype)
    C0 = rng.standard_normal((m, n)).astype(dtype)
    return A, Bm, C0


@pytest.mark.parametrize("beta", [0.0, 1.0, 0.5])
@pytest.mark.parametrize("trans_a", [False, True], ids=["N", "T"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_gemm_against_naive_and_numpy(dtype, trans_a, beta):
    rng = np.random.default_rng(int(beta * 10) + 100 * trans_a + (dtype == np.float64))
    eps = np.finfo(dtype).eps
    worst_frac = 0.0
    for m, n, k in SHAPES:
        A, Bm, C0 = _operands(rng, dtype, trans_a, m, n, k)
        opA = (A.T if trans_a else A).astype(np.float64)
        exact = beta * C0.astype(np.float64) + opA @ Bm.astype(np.float64)
        # Standard forward error bound of a K-term dot product plus the beta*C update,
        # |fl(C) - C| <= (K+2) u (|op(A)| |B| + |beta C|), with u = eps (a factor 2 over
        # the unit roundoff eps/2 covers numpy's own float64 rounding in `exact`).
        bound = (k + 2) * eps * (np.abs(opA) @ np.abs(Bm.astype(np.float64))
                                 + abs(beta) * np.abs(C0.astype(np.float64))) + 1e-300
        packed = _gemm(trans_a, A, Bm, dtype(beta), C0, n_threads=1)
        naive = _gemm(trans_a, A, Bm, dtype(beta), C0, naive=True)
        for name, got in (("packed", packed), ("naive", naive)):
            assert got.dtype == dtype
            frac = float(np.max(np.abs(got - exact) / bound))
            worst_frac = max(worst_frac, frac)
            assert frac <= 1.0, (name, m, n, k, frac)
        if k == 0:   # nothing to sum: exactly beta * C
            np.testing.assert_array_equal(packed, (dtype(beta) * C0) if beta != 0 else 0 * C0)
            np.testing.assert_array_equal(naive, packed)
    record_error("GEMM error / (K+2) eps |A||B| bound", worst_frac)


# Shapes of several output tiles (with one tile every thread count runs the same
# single-thread code anyway), including ragged last tiles and two K blocks.
# (The GEMM runs products under 4e6 flops per thread on fewer threads, so the larger
# shapes are the ones that really split work.)
MULTI_TILE = [(73, 16, 17), (150, 257, 1), (6, 513, 257), (145, 300, 300), (216, 17, 0),
              (400, 300, 300), (300, 520, 260), (1100, 1, 300), (1100, 2, 9)]


@pytest.mark.parametrize("trans_a", [False, True], ids=["N", "T"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_gemm_bitwise_identical_across_threads(dtype, trans_a):
    """Tiles are fixed and no sum is split between threads: any n_threads gives the
    same bits."""
    rng = np.random.default_rng(11)
    for m, n, k in MULTI_TILE:
        assert _multi_tile(m, n)
        A, Bm, C0 = _operands(rng, dtype, trans_a, m, n, k)
        for beta in (0.0, 0.5):
            one = _gemm(trans_a, A, Bm, dtype(beta), C0, n_threads=1)
            for nt in (2, 3, 4):
                np.testing.assert_array_equal(_gemm(trans_a, A, Bm, dtype(beta), C0, n_threads=nt),
                                              one, err_msg=f"{(m, n, k)} n_threads={nt}")


@pytest.mark.parametrize("trans_a", [False, True], ids=["N", "T"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_gemm_beta_zero_ignores_nan_in_c(dtype, trans_a):
    rng = np.random.default_rng(5)
    for m, n, k in [(73, 257, 257), (5, 17, 1), (6, 16, 0), (150, 15, 300)]:
        A, Bm, _ = _operands(rng, dtype, trans_a, m, n, k)
        zeros = np.zeros((m, n), dtype)
        junk = np.full((m, n), np.nan, dtype)
        junk[::3] = np.inf
        for kw in ({"n_threads": 1}, {"n_threads": 2}, {"naive": True}):
            clean = _gemm(trans_a, A, Bm, dtype(0), zeros, **kw)
            dirty = _gemm(trans_a, A, Bm, dtype(0), junk, **kw)
            assert np.isfinite(dirty).all(), (m, n, k, kw)
            np.testing.assert_array_equal(dirty, clean)


def test_gemm_large_k_accumulates_all_blocks():
    """K = 3 * KC + 5 (four K blocks): a dropped or doubled block would be off by
    ~1/4 of the result, far outside the rounding bound checked elsewhere."""
    rng = np.random.default_rng(9)
    A = np.ones((7, 773))
    Bm = np.ones((773, 19))
    C = np.zeros((7, 19))
    _kernels.gemm(False, A, Bm, 0.0, C, n_threads=2)
    np.testing.assert_array_equal(C, np.full((7, 19), 773.0))
    A = rng.standard_normal((773, 80))
    Bm = rng.standard_normal((773, 300))
    C = np.zeros((80, 300))
    _kernels.gemm(True, A, Bm, 0.0, C, n_threads=2)
    err = np.max(np.abs(C - A.T @ Bm))
    record_error("GEMM float64 K=773 vs numpy (abs)", err)
    assert err < 1e-11   # sums of 773 O(1) products: rounding ~ 773 * 1e-16 * 30
