"""Tests for fastlstm.optim: Adam, SGD and global-norm clipping on flat buffers."""

import pickle

import numpy as np
import pytest

from fastlstm.optim import SGD, Adam, clip_grad_norm, make_optimizer


def _torch():
    return pytest.importorskip("torch")  # in the test extra; only these comparisons need it


def _quadratic_grads(p, A, b):
    # gradient of 0.5 p^T A p - b^T p, a deterministic non-trivial field
    return A @ p - b


def _run_ours(opt, p0, A, b, steps, dtype):
    p = p0.astype(dtype).copy()
    buf_id = id(p)
    g = np.empty_like(p)
    for _ in range(steps):
        g[:] = _quadratic_grads(p.astype(np.float64), A, b).astype(dtype)
        opt.step(p, g)
    assert id(p) == buf_id  # updated in place
    return p


def _run_torch(make, p0, A, b, steps, dtype):
    torch = _torch()
    tdtype = torch.float32 if dtype == np.float32 else torch.float64
    p = torch.tensor(p0, dtype=tdtype, requires_grad=True)
    opt = make([p])
    for _ in range(steps):
        with torch.no_grad():
            g = _quadratic_grads(p.detach().numpy().astype(np.float64), A, b)
        p.grad = torch.tensor(g, dtype=tdtype)
        opt.step()
    return p.detach().numpy()


def _problem(n=37, seed=0):
    rng = np.random.default_rng(seed)
    M = rng.normal(size=(n, n))
    A = M @ M.T / n + np.eye(n)
    b = rng.normal(size=n)
    p0 = rng.normal(size=n)
    return p0, A, b


# float64: same formula, same operation order up to fused ops -> agree to ~1e-12;
# float32: rounding differs per operation; after 50 steps agreement to 1e-5
TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=1e-4, atol=1e-5)}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_adam_matches_torch(dtype, weight_decay):
    p0, A, b = _problem()
    ours = _run_ours(Adam(lr=0.01, weight_decay=weight_decay), p0, A, b, 50, dtype)
    torch = _torch()
    ref = _run_torch(
        lambda ps: torch.optim.Adam(ps, lr=0.01, weight_decay=weight_decay),
        p0, A, b, 50, dtype,
    )
    assert ours.dtype == dtype
    np.testing.assert_allclose(ours, ref, **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "momentum,nesterov,weight_decay",
    [(0.0, False, 0.0), (0.9, False, 0.0), (0.9, True, 0.0), (0.5, False, 0.05), (0.0, False, 0.05)],
)
def test_sgd_matches_torch(dtype, momentum, nesterov, weight_decay):
    p0, A, b = _problem(seed=1)
    ours = _run_ours(
        SGD(lr=0.05, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay),
        p0, A, b, 50, dtype,
    )
    torch = _torch()
    ref = _run_torch(
        lambda ps: torch.optim.SGD(
            ps, lr=0.05, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay
        ),
        p0, A, b, 50, dtype,
    )
    np.testing.assert_allclose(ours, ref, **TOL[dtype])


@pytest.mark.parametrize("make", [lambda: Adam(lr=0.05), lambda: SGD(lr=0.05, momentum=0.9)])
def test_optimizers_decrease_a_quadratic(make):
    p0, A, b = _problem(seed=2)
    f = lambda p: 0.5 * p @ A @ p - b @ p  # noqa: E731
    p = _run_ours(make(), p0, A, b, 200, np.float64)
    assert f(p) < f(p0) - 1.0


def test_state_is_allocated_once():
    p0, A, b = _problem()
    opt = Adam(lr=0.01)
    p = p0.copy()
    g = np.ones_like(p)
    opt.step(p, g)
    ids = (id(opt.m), id(opt.v))
    for _ in range(5):
        opt.step(p, g)
    assert (id(opt.m), id(opt.v)) == ids
    assert opt.t == 6


@pytest.mark.parametrize("make", [lambda: Adam(lr=0.01), lambda: SGD(lr=0.01, momentum=0.9)])
def test_pickle_round_trip_continues_identically(make):
    p0, A, b = _problem()
    opt = make()
    p = p0.copy()
    for _ in range(3):
        opt.step(p, _quadratic_grads(p, A, b))
    opt2 = pickle.loads(pickle.dumps(opt))
    q = p.copy()
    for _ in range(3):
        opt.step(p, _quadratic_grads(p, A, b))
        opt2.step(q, _quadratic_grads(q, A, b))
    np.testing.assert_array_equal(p, q)  # same arithmetic -> bitwise equal


def test_step_validates_buffers():
    opt = Adam()
    with pytest.raises(ValueError, match="same shape"):
        opt.step(np.zeros(3), np.zeros(4))
    with pytest.raises(TypeError, match="dtype"):
        opt.step(np.zeros(3), np.zeros(3, dtype=np.float32))
    with pytest.raises(ValueError, match="1-D"):
        opt.step(np.zeros((3, 1)), np.zeros((3, 1)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_same_for_any_thread_count(dtype):
    # 200k elements: the fused kernel splits them between up to 3 threads
    rng = np.random.default_rng(3)
    p0 = rng.normal(size=200_003).astype(dtype)
    grads = [rng.normal(size=p0.size).astype(dtype) for _ in range(3)]
    results = []
    for nt in (1, 2, 3):
        opt, p = Adam(lr=0.01, weight_decay=0.01), p0.copy()
        for g in grads:
            opt.step(p, g.copy(), n_threads=nt)
        results.append((p, opt.m, opt.v))
    for p, m, v in results[1:]:
        np.testing.assert_array_equal(p, results[0][0])
        np.testing.assert_array_equal(m, results[0][1])
        np.testing.assert_array_equal(v, results[0][2])


def test_adam_matches_numpy_formula_on_a_large_buffer():
    # the threaded path against the formula in float64, one step from non-zero moments
    rng = np.random.default_rng(4)
    n = 150_000
    p, g = rng.normal(size=n), rng.normal(size=n)
    opt = Adam(lr=0.003, weight_decay=0.02)
    opt.step(p.copy(), np.zeros(n))  # t = 1; the moments are overwritten next
    m0, v0 = rng.normal(size=n), rng.random(n)
    opt.m[:], opt.v[:] = m0, v0
    q = p.copy()
    opt.step(q, g, n_threads=2)
    ge = g + 0.02 * p
    m = 0.9 * m0 + 0.1 * ge
    v = 0.999 * v0 + 0.001 * ge * ge
    want = p - 0.003 / (1 - 0.9**2) * m / (np.sqrt(v) / np.sqrt(1 - 0.999**2) + 1e-8)
    np.testing.assert_allclose(opt.m, m, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(opt.v, v, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(q, want, rtol=1e-12, atol=1e-14)


def test_adam_kernel_names_bad_buffers():
    from fastlstm import _kernels

    z = np.zeros(5, np.float32)
    with pytest.raises(ValueError, match="m has the wrong dtype"):
        _kernels.adam(z, z, np.zeros(5), z, 0.1, 0.9, 0.999, 1e-8, 1.0, 0.0, 1)
    with pytest.raises(ValueError, match="v length"):
        _kernels.adam(z, z, z, np.zeros(4, np.float32), 0.1, 0.9, 0.999, 1e-8, 1.0, 0.0, 1)
    with pytest.raises(ValueError, match="params is read-only"):
        r = np.zeros(5, np.float32)
        r.flags.writeable = False
        _kernels.adam(r, z, z.copy(), z.copy(), 0.1, 0.9, 0.999, 1e-8, 1.0, 0.0, 1)
    with pytest.raises(ValueError, match="rejected"):
        _kernels.adam(z, z, z.copy(), z.copy(), 0.1, 0.9, 0.999, 1e-8, 1.0, 0.0, 0)


@pytest.mark.parametrize("bad", [0, -1, None, 1.5])
def test_adam_step_names_a_bad_thread_count_and_keeps_its_step(bad):
    opt, p = Adam(), np.zeros(4)
    with pytest.raises((TypeError, ValueError), match="n_threads"):
        opt.step(p, np.ones(4), n_threads=bad)
    assert opt.t == 0 and opt.m is None
    opt.step(p, np.ones(4))
    assert opt.t == 1


@pytest.mark.parametrize(
    "kwargs,match",
    [({"lr": 0.0}, "learning_rate"), ({"lr": float("nan")}, "learning_rate"),
     ({"weight_decay": -1.0}, "weight_decay"), ({"beta1": 1.0}, "beta1")],
)
def test_adam_bad_hyperparameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Adam(**kwargs)


def test_make_optimizer():
    assert isinstance(make_optimizer("adam", 0.1), Adam)
    assert isinstance(make_optimizer("sgd", 0.1), SGD)
    with pytest.raises(ValueError, match="optimizer"):
        make_optimizer("rmsprop", 0.1)


# ---------------------------------------------------------------- clipping


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("max_norm", [0.1, 1.0, 1e3])
def test_clip_grad_norm_matches_torch(dtype, max_norm):
    torch = _torch()
    rng = np.random.default_rng(5)
    g = rng.normal(size=1000).astype(dtype)
    t = torch.tensor(g.copy(), requires_grad=False)
    p = torch.zeros_like(t, requires_grad=True)
    p.grad = t
    ref_norm = float(torch.nn.utils.clip_grad_norm_([p], max_norm))
    norm = clip_grad_norm(g, max_norm)
    rtol = 1e-5 if dtype == np.float32 else 1e-12  # one reduction, summation order may differ
    assert norm == pytest.approx(ref_norm, rel=rtol)
    np.testing.assert_allclose(g, p.grad.numpy(), rtol=rtol, atol=0)
    assert np.linalg.norm(g.astype(np.float64)) <= max_norm * (1 + rtol)


def test_clip_grad_norm_leaves_small_gradients_alone_and_reports_nan():
    g = np.array([3.0, 4.0])
    assert clip_grad_norm(g, 10.0) == 5.0
    np.testing.assert_array_equal(g, [3.0, 4.0])
    g = np.array([np.nan, 1.0])
    assert np.isnan(clip_grad_norm(g, 1.0))
    with pytest.raises(ValueError, match="clip_norm"):
        clip_grad_norm(np.ones(2), 0.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_grad_norm_is_the_float64_norm(dtype):
    """grad_norm sums squares in double in a fixed order (C, no BLAS): it matches
    numpy's float64 norm to 1e-13 relative at lengths around its 8-lane blocks, on a
    long vector and on a strided view, and a NaN or infinity comes back as such."""
    from fastlstm.optim import grad_norm
    rng = np.random.default_rng(3)
    for n in (1, 7, 8, 9, 17, 1_000_003):
        g = rng.standard_normal(n).astype(dtype)
        want = float(np.sqrt(np.sum(g.astype(np.float64) ** 2)))
        assert abs(grad_norm(g) - want) <= 1e-13 * want, n
    g = rng.standard_normal(101).astype(dtype)
    want = float(np.sqrt(np.sum(g[::3].astype(np.float64) ** 2)))
    assert abs(grad_norm(g[::3]) - want) <= 1e-13 * want
    g[50] = np.nan
    assert np.isnan(grad_norm(g))
    g[50] = np.inf
    assert grad_norm(g) == np.inf
