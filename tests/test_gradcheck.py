"""Finite-difference gradient checks of the C kernels (fastlstm.LSTM / GRU, float64).

For every cell x activation x {uni, bidirectional} x {1, 2 layers} x {with, without
lengths} x {with, without initial state} (plus hard_sigmoid gates), the analytic
gradients returned by ``layer.backward`` are compared with central differences of
the loss  sum(dy*y) + sum(dh_n*h_n) + sum(dc_n*c_n)  computed by the kernels' own
forward pass. To stay fast each gradient tensor (x, h0, c0 and every parameter) is
checked along one random direction v: fd = (L(p + eps v) - L(p - eps v)) / 2 eps
against <grad, v>; a small case is also checked element by element.

Sizes are small (B=3, T=4, I=3, H=5): H=5 is not a multiple of the kernels' block
of 16 units, so the padding units of the packed weights are exercised; one group
uses H=17, B=17 (two unit blocks, two batch chunks).
"""
import numpy as np
import pytest

from helpers import FD_CELL_ACTS, record_error
import kernel_util as ku

B, T, I, H = 3, 4, 3, 18   # H = 18: one full unit block (vector epilogues) and a partial one
LENGTHS = np.array([4, 1, 3])  # full length, length 1 and one in between

# Central differences in float64 with eps = 1e-6: truncation error ~ eps^2 f''' ~ 1e-12,
# rounding error ~ 1e-16 |loss| / eps ~ 1e-9 for |loss| ~ 10 (the kernels' float64
# exp is accurate to ~2e-16, so it adds nothing visible). Measured errors are ~1e-9
# and below; a wrong formula gives errors of order 1e-2 .. 1. The error is relative,
# |fd - an| / max(|fd|, |an|, 1), i.e. absolute below magnitude 1.
# relu and hard_sigmoid have kinks; random data lands within eps of one with
# probability ~1e-6 per element and the seeds are fixed, so there is no flakiness.
FD_EPS = 1e-6
FD_RTOL = 1e-6


def _fd_error(fd, an):
    return abs(fd - an) / max(abs(fd), abs(an), 1.0)


class _Probe:
    """Evaluates the projected loss of a float64 layer with one input perturbed."""

    def __init__(self, layer, case):
        self.layer, self.case = layer, case
        LD = layer.num_layers * layer.num_directions
        b = case["x"].shape[0]
        zeros = np.zeros((LD, b, layer.hidden_size))
        self.base = {"x": case["x"],
                     "h0": case["h0"] if case["h0"] is not None else zeros}
        if layer.cell != "gru":
            self.base["c0"] = case["c0"] if case["c0"] is not None else zeros
        # Perturb parameters in a buffer of our own (flat_params is a read-only view):
        # bind_parameters makes the layer use it, params_updated makes inference repack.
        self.flat0 = np.array(layer.flat_params)
        self.buf = self.flat0.copy()
        layer.bind_parameters(self.buf)
        self.slices = {}
        off = 0
        for name, shape in layer.param_shapes:
            n = int(np.prod(shape))
            self.slices[name] = (slice(off, off + n), shape)
            off += n

    def shapes(self):
        out = {k: v.shape for k, v in self.base.items()}
        out.update({k: s for k, (_, s) in self.slices.items()})
        return out

    def loss(self, key, delta):
        inputs = dict(self.base)
        if key in self.slices:
            sl, _ = self.slices[key]
            self.buf[sl] = self.flat0[sl] + delta.ravel()
            self.layer.params_updated()
        else:
            inputs[key] = self.base[key] + delta
        try:
            y, h_n, c_n = ku.kernel_infer(self.layer, inputs["x"], inputs["h0"],
                                          inputs.get("c0"), self.case["lengths"])
        finally:
            if key in self.slices:
                self.buf[...] = self.flat0
                self.layer.params_updated()
        return ku.projected_loss(self.case, y, h_n, c_n)


def check_directional(layer, case, seed, skip=()):
    """Every gradient tensor (except ``skip``) along one random direction; returns the
    worst error and the analytic gradients."""
    _, _, _, grads, _ = ku.kernel_train(layer, case)
    probe = _Probe(layer, case)
    shapes = probe.shapes()
    assert set(grads) == set(shapes), set(grads) ^ set(shapes)
    rng = np.random.default_rng(seed + 1)
    worst = 0.0
    for key in sorted(shapes):
        assert grads[key].shape == shapes[key], key
        if key in skip:
            continue
        v = rng.standard_normal(shapes[key])
        fd = (probe.loss(key, FD_EPS * v) - probe.loss(key, -FD_EPS * v)) / (2 * FD_EPS)
        an = float(np.sum(grads[key] * v))
        err = _fd_error(fd, an)
        worst = max(worst, err)
        assert err < FD_RTOL, (key, fd, an, err)
    return worst, grads


CELL_ACTS = FD_CELL_ACTS


@pytest.mark.parametrize("use_init", [False, True], ids=["zero_state", "init_state"])
@pytest.mark.parametrize("use_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("num_layers", [1, 2], ids=["L1", "L2"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("cell,activation,gate_activation", CELL_ACTS,
                         ids=["-".join(c) for c in CELL_ACTS])
def test_fd_directional(cell, activation, gate_activation, bidirectional, num_layers,
                        use_lengths, use_init):
    seed = ku.seed_of("gradcheck", cell, activation, gate_activation, bidirectional,
                      num_layers, use_lengths, use_init)
    # scale=1.0 (larger than PyTorch's init) puts some pre-activations in the saturated
    # and dead regions of hard_sigmoid / relu, so those backward branches run too.
    case = ku.make_case(cell, B, T, I, H, num_layers, bidirectional, use_lengths, use_init,
                        seed, scale=1.0, lengths=LENGTHS)
    layer = ku.make_layer(cell, I, H, num_layers, bidirectional, activation, gate_activation,
                          params=case["params"])
    # With c0 = 0 and a dead relu candidate (g = 0), c_1 = f*c0 + i*g is exactly 0 and
    # h_1 = o*relu(c_1) sits on relu's kink for perturbations of c0: the derivative there
    # is one-sided (relu'(0) = 0, like PyTorch). c0 is checked by the init_state cases.
    skip = ("c0",) if (activation == "relu" and not use_init) else ()
    worst, grads = check_directional(layer, case, seed, skip)
    record_error("kernel finite differences, directional (rel)", worst)
    if cell == "cifg":
        # f = 1 - i: the forget-gate rows never enter the computation -> exactly zero.
        for name, g in grads.items():
            if name.startswith(("weight_ih", "weight_hh", "bias")):
                assert np.all(g[H:2 * H] == 0), name


@pytest.mark.parametrize("cell,activation,gate_activation",
                         [("lstm", "tanh", "sigmoid"), ("peephole", "tanh", "sigmoid"),
                          ("cifg", "relu", "hard_sigmoid"), ("gru", "tanh", "sigmoid"),
                          ("peephole", "relu", "hard_sigmoid"), ("gru", "relu", "sigmoid")])
def test_fd_directional_two_blocks(cell, activation, gate_activation):
    """H=17, B=17: two unit blocks (one nearly all padding) and two batch chunks,
    bidirectional, 2 layers, lengths and initial state."""
    b, h = 17, 17
    seed = ku.seed_of("gradcheck-blocks", cell, activation, gate_activation)
    rng = np.random.default_rng(seed)
    case = ku.make_case(cell, b, T, I, h, 2, True, True, True, seed, scale=0.5,
                        lengths=ku.random_lengths(rng, b, T))
    layer = ku.make_layer(cell, I, h, 2, True, activation, gate_activation,
                          params=case["params"])
    worst, _ = check_directional(layer, case, seed)
    record_error("kernel finite differences, directional (rel)", worst)


@pytest.mark.parametrize("cell,activation,gate_activation",
                         [("lstm", "tanh", "sigmoid"), ("peephole", "relu", "hard_sigmoid"),
                          ("cifg", "tanh", "sigmoid"), ("gru", "relu", "sigmoid")])
def test_fd_elementwise(cell, activation, gate_activation):
    """Every scalar gradient (each element of x, h0, c0 and every parameter) of a
    bidirectional 2-layer stack with lengths and initial state, tiny sizes."""
    b, t, i, h = 2, 3, 2, 2
    case = ku.make_case(cell, b, t, i, h, 2, True, True, True,
                        ku.seed_of("gradcheck-elementwise", cell), scale=1.0, lengths=[3, 2])
    layer = ku.make_layer(cell, i, h, 2, True, activation, gate_activation,
                          params=case["params"])
    _, _, _, grads, _ = ku.kernel_train(layer, case)
    probe = _Probe(layer, case)
    worst = 0.0
    for key, shape in sorted(probe.shapes().items()):
        for idx in np.ndindex(shape):
            e = np.zeros(shape)
            e[idx] = FD_EPS
            fd = (probe.loss(key, e) - probe.loss(key, -e)) / (2 * FD_EPS)
            err = _fd_error(fd, grads[key][idx])
            worst = max(worst, err)
            assert err < FD_RTOL, (key, idx, fd, grads[key][idx], err)
    record_error("kernel finite differences, elementwise (rel)", worst)


def test_fd_detects_a_wrong_gradient():
    """Negative control: the check is sharp enough to see a gradient that is off by
    1% in one tensor (so passing it means something)."""
    case = ku.make_case("lstm", B, T, I, H, 1, False, False, True, 7, scale=1.0)
    layer = ku.make_layer("lstm", I, H, params=case["params"])
    _, _, _, grads, _ = ku.kernel_train(layer, case)
    probe = _Probe(layer, case)
    v = np.random.default_rng(0).standard_normal(grads["weight_hh_l0"].shape)
    fd = (probe.loss("weight_hh_l0", FD_EPS * v)
          - probe.loss("weight_hh_l0", -FD_EPS * v)) / (2 * FD_EPS)
    assert _fd_error(fd, float(np.sum(grads["weight_hh_l0"] * v))) < FD_RTOL
    assert _fd_error(fd, float(np.sum(1.01 * grads["weight_hh_l0"] * v))) > 100 * FD_RTOL
