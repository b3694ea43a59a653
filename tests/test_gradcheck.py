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

from helpers import (FD_ELEMENTWISE_CELL_ACTS, FD_EPS, FD_RTOL, assert_cifg_forget_rows_zero,
                     check_directional, check_elementwise, fd_directional_grid, fd_error,
                     fd_skip, kernel_infer, kernel_train, make_case, make_layer,
                     projected_loss, random_lengths, record_error, seed_of)

B, T, I, H = 3, 4, 3, 18   # H = 18: one full unit block (vector epilogues) and a partial one
LENGTHS = np.array([4, 1, 3])  # full length, length 1 and one in between

# Step, error and tolerance: helpers.FD_EPS, helpers.fd_error and helpers.FD_RTOL
# (relative error 1e-6; measured ~1e-9, a wrong formula gives 1e-2 .. 1; see there).


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
            y, h_n, c_n = kernel_infer(self.layer, inputs["x"], inputs["h0"],
                                       inputs.get("c0"), self.case["lengths"])
        finally:
            if key in self.slices:
                self.buf[...] = self.flat0
                self.layer.params_updated()
        return projected_loss(self.case, y, h_n, c_n)


def _grads_and_probe(layer, case):
    """The kernels' analytic gradients on ``case`` and a _Probe for the same layer."""
    return kernel_train(layer, case)[3], _Probe(layer, case)


@fd_directional_grid
def test_fd_directional(cell, activation, gate_activation, bidirectional, num_layers,
                        use_lengths, use_init):
    seed = seed_of("gradcheck", cell, activation, gate_activation, bidirectional,
                   num_layers, use_lengths, use_init)
    # scale=1.0 (larger than PyTorch's init) puts some pre-activations in the saturated
    # and dead regions of hard_sigmoid / relu, so those backward branches run too.
    case = make_case(cell, B, T, I, H, num_layers, bidirectional, use_lengths, use_init,
                     seed, scale=1.0, lengths=LENGTHS)
    layer = make_layer(cell, I, H, num_layers, bidirectional, activation, gate_activation,
                       params=case["params"])
    grads, probe = _grads_and_probe(layer, case)
    worst = check_directional(grads, probe.shapes(), probe.loss, seed,
                              fd_skip(activation, use_init))
    record_error("kernel finite differences, directional (rel)", worst)
    if cell == "cifg":
        assert_cifg_forget_rows_zero(grads, H)


@pytest.mark.parametrize("cell,activation,gate_activation",
                         [("lstm", "tanh", "sigmoid"), ("peephole", "tanh", "sigmoid"),
                          ("cifg", "relu", "hard_sigmoid"), ("gru", "tanh", "sigmoid"),
                          ("peephole", "relu", "hard_sigmoid"), ("gru", "relu", "sigmoid")])
def test_fd_directional_two_blocks(cell, activation, gate_activation):
    """H=17, B=17: two unit blocks (one nearly all padding) and two batch chunks,
    bidirectional, 2 layers, lengths and initial state."""
    b, h = 17, 17
    seed = seed_of("gradcheck-blocks", cell, activation, gate_activation)
    rng = np.random.default_rng(seed)
    case = make_case(cell, b, T, I, h, 2, True, True, True, seed, scale=0.5,
                     lengths=random_lengths(rng, b, T))
    layer = make_layer(cell, I, h, 2, True, activation, gate_activation,
                       params=case["params"])
    grads, probe = _grads_and_probe(layer, case)
    worst = check_directional(grads, probe.shapes(), probe.loss, seed)
    record_error("kernel finite differences, directional (rel)", worst)


@pytest.mark.parametrize("cell,activation,gate_activation", FD_ELEMENTWISE_CELL_ACTS)
def test_fd_elementwise(cell, activation, gate_activation):
    """Every scalar gradient (each element of x, h0, c0 and every parameter) of a
    bidirectional 2-layer stack with lengths and initial state, tiny sizes."""
    b, t, i, h = 2, 3, 2, 2
    case = make_case(cell, b, t, i, h, 2, True, True, True,
                     seed_of("gradcheck-elementwise", cell), scale=1.0, lengths=[3, 2])
    layer = make_layer(cell, i, h, 2, True, activation, gate_activation,
                       params=case["params"])
    grads, probe = _grads_and_probe(layer, case)
    worst = check_elementwise(grads, probe.shapes(), probe.loss)
    record_error("kernel finite differences, elementwise (rel)", worst)


def test_fd_detects_a_wrong_gradient():
    """Negative control: the check is sharp enough to see a gradient that is off by
    1% in one tensor (so passing it means something)."""
    case = make_case("lstm", B, T, I, H, 1, False, False, True, 7, scale=1.0)
    layer = make_layer("lstm", I, H, params=case["params"])
    grads, probe = _grads_and_probe(layer, case)
    v = np.random.default_rng(0).standard_normal(grads["weight_hh_l0"].shape)
    fd = (probe.loss("weight_hh_l0", FD_EPS * v)
          - probe.loss("weight_hh_l0", -FD_EPS * v)) / (2 * FD_EPS)
    assert fd_error(fd, float(np.sum(grads["weight_hh_l0"] * v))) < FD_RTOL
    assert fd_error(fd, float(np.sum(1.01 * grads["weight_hh_l0"] * v))) > 100 * FD_RTOL
