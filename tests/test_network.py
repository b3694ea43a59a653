"""Tests for fastlstm.network: flat buffers, gradients, masking, losses."""

import pickle

import numpy as np
import pytest

from helpers import record_error

from fastlstm.network import Network, loss_and_grad
from fastlstm.spec import NetworkSpec

# Central differences in float64 with eps = 1e-6: truncation error ~eps^2 and
# rounding error ~1e-16 / eps = 1e-10 relative, so 1e-6 relative to the
# largest gradient leaves a wide margin while catching any real mistake
# (a wrong term is O(1) relative).
FD_EPS = 1e-6
FD_RTOL = 1e-6


def _net(cell="lstm", hs=(3,), bidirectional=False, seq=False, ids=False, K=2, p=0.0,
         activation="tanh"):
    if ids:
        spec = NetworkSpec(None, hs, K, vocab_size=7, embedding_dim=3, cell=cell,
                          bidirectional=bidirectional, sequence_output=seq, dropout=p,
                          activation=activation, dtype="float64")
    else:
        spec = NetworkSpec(3, hs, K, cell=cell, bidirectional=bidirectional,
                          sequence_output=seq, dropout=p, activation=activation,
                          dtype="float64")
    return Network(spec, seed=1, n_threads=1)


def _inputs(net, rng, B=4, T=5, lengths=None):
    if net.spec.embedding_dim is not None:
        X = rng.integers(1, net.spec.vocab_size, size=(B, T))
        if lengths is not None:  # compacted form: real tokens first, zeros after
            X[np.arange(T)[None, :] >= lengths[:, None]] = 0
        return X
    return rng.normal(size=(B, T, 3))


QUANTILES = (0.1, 0.5, 0.9)


def _targets(loss, K, shape_lead, rng):
    if loss == "log_loss":
        return rng.integers(0, K, size=shape_lead)
    if loss == "binary_log_loss":
        return rng.integers(0, 2, size=shape_lead + (K,)).astype(float)
    if loss == "quantile":  # one target per len(QUANTILES) outputs
        return rng.normal(size=shape_lead + (K // len(QUANTILES),))
    return rng.normal(size=shape_lead + (K,))


def _loss_kw(loss):
    return {"quantiles": QUANTILES} if loss == "quantile" else {}


CASES = [
    # cell, hidden, bidir, seq, ids, loss, lengths, dropout
    ("lstm", (4,), False, False, False, "mse", None, 0.0),
    ("gru", (3, 4), True, False, False, "huber", [5, 3, 1, 4], 0.0),
    ("gru", (3, 2), False, True, False, "mae", [5, 3, 1, 4], 0.0),
    ("peephole", (3,), False, False, True, "binary_log_loss", [5, 3, 0, 2], 0.0),
    ("cifg", (3, 3), True, False, True, "log_loss", [5, 3, 0, 2], 0.3),
    ("lstm", (3,), True, True, False, "mse", [5, 3, 1, 4], 0.5),
    # pinball loss: piecewise linear; a kink crossed by an FD_EPS nudge would
    # show as an O(1) error, and none lies that close to an output here
    ("lstm", (4,), False, False, False, "quantile", None, 0.0),
    ("gru", (3,), False, True, False, "quantile", [5, 3, 1, 4], 0.0),
]


@pytest.mark.parametrize("cell,hs,bidir,seq,ids,loss,lengths,p", CASES)
def test_gradient_matches_finite_differences(cell, hs, bidir, seq, ids, loss, lengths, p):
    rng = np.random.default_rng(0)
    K = 1 if loss == "binary_log_loss" else 2 * (len(QUANTILES) if loss == "quantile" else 1)
    net = _net(cell, hs, bidir, seq, ids, K, p)
    lengths = None if lengths is None else np.array(lengths)
    X = _inputs(net, rng, lengths=lengths)
    B, T = X.shape[:2]
    tgt = _targets(loss, K, (B, T) if seq else (B,), rng)
    mask = None if (not seq or lengths is None) else np.arange(T)[None, :] < lengths[:, None]

    def f():
        # the same dropout masks on every call: a fresh Generator with one seed
        out, cache = net.forward(X, lengths, train=True, rng=np.random.default_rng(5))
        value, dout = loss_and_grad(loss, out, tgt, mask, **_loss_kw(loss))
        return value, dout, cache

    _, dout, cache = f()
    g = net.backward(cache, dout).copy()
    num = np.zeros_like(g)
    for i in range(net.params.size):
        old = net.params[i]
        net.params[i] = old + FD_EPS
        lp = f()[0]
        net.params[i] = old - FD_EPS
        lm = f()[0]
        net.params[i] = old
        num[i] = (lp - lm) / (2 * FD_EPS)
    if ids:  # the padding row is held at zero and gets no gradient by design
        a = net.slices["embedding"][0]
        assert np.all(g[a:a + net.spec.embedding_dim] == 0)
        num[a:a + net.spec.embedding_dim] = 0
    err = np.max(np.abs(num - g)) / np.max(np.abs(num))
    record_error("network grad vs finite differences (rel)", err)
    assert err < FD_RTOL, f"{cell} {loss}: relative gradient error {err:.2e}"


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("seq", [False, True])
def test_padding_is_never_trained_on(cell, seq):
    """The batch gradient with lengths equals the mean of per-sequence gradients
    computed on the unpadded sequences alone, whatever sits in the padding."""
    rng = np.random.default_rng(1)
    net = _net(cell, (4,), bidirectional=True, seq=seq, K=2)
    lengths = np.array([5, 2, 4])
    X = rng.normal(size=(3, 5, 3))
    X[np.arange(5)[None, :] >= lengths[:, None]] = 1e3  # garbage in the padding
    tgt = rng.normal(size=(3, 5, 2) if seq else (3, 2))

    def grad(Xb, lb, tb):
        out, cache = net.forward(Xb, lb, train=True)
        mask = None if (not seq or lb is None) else np.arange(Xb.shape[1])[None, :] < lb[:, None]
        _, dout = loss_and_grad("mse", out, tb, mask)
        return net.backward(cache, dout).copy(), out

    g_batch, out_batch = grad(X, lengths, tgt)
    per_seq = []
    for i, n in enumerate(lengths):
        gi, oi = grad(X[i:i + 1, :n], None, tgt[i:i + 1, :n] if seq else tgt[i:i + 1])
        per_seq.append(gi * (n if seq else 1))
        # outputs agree too (float64, same arithmetic up to GEMM blocking)
        want = oi[0]
        got = out_batch[i, :n] if seq else out_batch[i]
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    total = lengths.sum() if seq else len(lengths)
    g_ref = np.sum(per_seq, axis=0) / total
    err = np.max(np.abs(g_batch - g_ref))
    record_error("padded batch grad vs per-sequence grads (abs)", err)
    # float64; sums of a few hundred terms of size <= 1: 1e-12 is ~1e4 ulps
    np.testing.assert_allclose(g_batch, g_ref, rtol=1e-10, atol=1e-12)


def test_token_padding_position_does_not_matter():
    """id 0 is masked wherever it is: pre-, post- or interior padding give the same
    output (Keras mask_zero semantics), after the estimator's compaction."""
    from fastlstm.data import _compact_token_ids

    rng = np.random.default_rng(2)
    net = _net("lstm", (4,), ids=True, K=3)
    seqs = [rng.integers(1, 7, size=n) for n in (4, 1, 3)]
    pre = np.zeros((3, 6), dtype=np.int64)
    post = np.zeros((3, 6), dtype=np.int64)
    mid = np.zeros((3, 6), dtype=np.int64)
    for i, s in enumerate(seqs):
        pre[i, 6 - len(s):] = s
        post[i, :len(s)] = s
        mid[i, np.sort(rng.choice(6, len(s), replace=False))] = s
    outs = []
    for arr in (pre, post, mid):
        c, lengths = _compact_token_ids(arr)
        outs.append(net.forward(c, lengths)[0])
    # identical inputs after compaction -> identical arithmetic -> equal bits
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], outs[2])
    # and the result is the sequence run alone without any padding
    for i, s in enumerate(seqs):
        alone = net.forward(np.asarray(s)[None], None)[0]
        np.testing.assert_allclose(outs[0][i], alone[0], rtol=1e-12, atol=1e-14)


def test_parameters_are_views_of_one_flat_buffer():
    net = _net("peephole", (3, 4), bidirectional=True, ids=True)
    assert np.shares_memory(net.recurrent.flat_params, net.params)
    assert np.shares_memory(net.head_weight, net.params)
    assert np.shares_memory(net.embedding, net.params)
    # an in-place update of the flat buffer is what every layer computes with
    X = np.array([[1, 2, 3, 0]])
    before = net.forward(X, np.array([3]))[0].copy()
    with net.updating():  # inference packs weights once per change
        net.params *= 0.5
    after = net.forward(X, np.array([3]))[0]
    assert not np.allclose(before, after)
    a = net.slices["weight_ih_l0"][0]
    b = net.slices["head.weight"][0]
    np.testing.assert_array_equal(net.recurrent.flat_params, net.params[a:b])


def test_total_size_matches_hand_count():
    """param_count (what the loader checks a file's array against before building
    anything) equals the buffer's size and PyTorch's count written out by hand."""
    for kw in [dict(), dict(cell="gru", hs=(3, 5), bidirectional=True), dict(ids=True),
               dict(cell="peephole", hs=(4, 2))]:
        net = _net(**kw)
        s = net.spec
        G, D = (3 if s.cell == "gru" else 4), (2 if s.bidirectional else 1)
        inp = s.embedding_dim or s.input_size
        n = s.vocab_size * s.embedding_dim if s.embedding_dim else 0
        for h in s.hidden_sizes:
            n += D * (G * h * (inp + h) + 2 * G * h + (3 * h if s.cell == "peephole" else 0))
            inp = D * h
        n += s.n_outputs * (inp + 1)
        assert s.param_count() == net.params.size == n
        assert net.params.size == sum(b - a for a, b, _ in net.slices.values())


def test_pickle_rebinds_views():
    net = _net("lstm", (4,))
    X = np.random.default_rng(3).normal(size=(2, 4, 3))
    net2 = pickle.loads(pickle.dumps(net))
    np.testing.assert_array_equal(net.forward(X)[0], net2.forward(X)[0])
    net2.params[:] = 0.0
    assert np.shares_memory(net2.recurrent.flat_params, net2.params)
    assert not net2.recurrent.flat_params.any()


def test_same_seed_same_network_and_different_seed_differs():
    spec = NetworkSpec(3, (4,), 1, dtype="float32")
    a, b, c = Network(spec, seed=7), Network(spec, seed=7), Network(spec, seed=8)
    np.testing.assert_array_equal(a.params, b.params)
    assert not np.array_equal(a.params, c.params)


def test_dropout_only_in_train_mode():
    net = _net("gru", (6, 6), p=0.5)
    X = np.random.default_rng(4).normal(size=(8, 5, 3))
    e1, e2 = net.forward(X)[0], net.forward(X)[0]
    np.testing.assert_array_equal(e1, e2)
    t1 = net.forward(X, train=True, rng=np.random.default_rng(0))[0]
    t2 = net.forward(X, train=True, rng=np.random.default_rng(1))[0]
    t3 = net.forward(X, train=True, rng=np.random.default_rng(0))[0]
    assert not np.allclose(t1, t2)
    np.testing.assert_array_equal(t1, t3)


# ---------------------------------------------------------------- losses vs torch


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("loss", ["mse", "mae", "huber", "binary_log_loss", "log_loss"])
def test_losses_match_torch(loss, masked):
    torch = pytest.importorskip("torch")  # in the test extra; only this comparison needs it
    rng = np.random.default_rng(5)
    B, T, K = 4, 3, 3 if loss == "log_loss" else 2
    out = rng.normal(size=(B, T, K)) * 3
    mask = (rng.random((B, T)) < 0.7) if masked else None
    if mask is not None:
        mask[:, 0] = True
    tgt = _targets(loss, K, (B, T), rng)
    value, dout = loss_and_grad(loss, out, tgt, mask)

    o = torch.tensor(out, requires_grad=True)
    sel = torch.ones(B, T, dtype=torch.bool) if mask is None else torch.tensor(mask)
    if loss == "log_loss":
        ref = torch.nn.functional.cross_entropy(o[sel], torch.tensor(tgt)[sel])
    else:
        fn = {"mse": torch.nn.functional.mse_loss, "mae": torch.nn.functional.l1_loss,
              "huber": torch.nn.functional.huber_loss,
              "binary_log_loss": torch.nn.functional.binary_cross_entropy_with_logits}[loss]
        ref = fn(o[sel], torch.tensor(tgt)[sel])
    ref.backward()
    # float64 on both sides, same formulas up to summation order
    assert value == pytest.approx(ref.item(), rel=1e-12)
    np.testing.assert_allclose(dout, o.grad.numpy(), rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("masked", [False, True])
def test_quantile_loss_is_the_pinball_loss_with_its_gradient(masked):
    """Value against the definition mean(max(q r, (q - 1) r)), r = target - output,
    over real steps, targets and quantiles; gradient against central differences
    in float64 (the loss is linear between kinks, none of which is within eps
    of an output here, so they agree to rounding: rtol 1e-7)."""
    rng = np.random.default_rng(7)
    B, T, k = 4, 3, 2
    Q = len(QUANTILES)
    out = rng.normal(size=(B, T, k * Q))
    tgt = rng.normal(size=(B, T, k))
    mask = (rng.random((B, T)) < 0.7) if masked else None
    if mask is not None:
        mask[:, 0] = True
    value, dout = loss_and_grad("quantile", out, tgt, mask, quantiles=QUANTILES)
    q = np.array(QUANTILES)
    r = tgt[..., None] - out.reshape(B, T, k, Q)
    el = np.maximum(q * r, (q - 1) * r)
    w = np.ones((B, T)) if mask is None else mask.astype(float)
    want = (el * w[..., None, None]).sum() / (w.sum() * k * Q)
    assert value == pytest.approx(want, rel=1e-12)
    eps = 1e-6
    assert np.abs(r).min() > 10 * eps
    num = np.zeros_like(out)
    for idx in np.ndindex(out.shape):
        e = np.zeros_like(out)
        e[idx] = eps
        num[idx] = (loss_and_grad("quantile", out + e, tgt, mask, quantiles=QUANTILES)[0]
                    - loss_and_grad("quantile", out - e, tgt, mask, quantiles=QUANTILES)[0]) \
            / (2 * eps)
    np.testing.assert_allclose(dout, num, rtol=1e-7, atol=1e-12)
    # the gradient's two values: -q / n where the target is above, (1 - q) / n below
    n = w.sum() * k * Q
    g = dout.reshape(B, T, k, Q) * n
    above = (r > 0) & (w[..., None, None] > 0)
    np.testing.assert_allclose(g[above], np.broadcast_to(-q, r.shape)[above], rtol=1e-12)


def test_quantile_loss_needs_quantiles_dividing_the_outputs():
    with pytest.raises(ValueError, match="needs quantiles"):
        loss_and_grad("quantile", np.zeros((2, 3)), np.zeros((2, 1)))
    with pytest.raises(ValueError, match="multiple"):
        loss_and_grad("quantile", np.zeros((2, 4)), np.zeros((2, 1)), quantiles=QUANTILES)


def test_loss_rejects_unknown_name():
    with pytest.raises(ValueError, match="loss"):
        loss_and_grad("hinge", np.zeros((2, 1)), np.zeros((2, 1)))
