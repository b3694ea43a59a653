"""The C kernels (float32 inference) against ONNX Runtime's LSTM and GRU operators:
peephole (input P), cifg (attribute input_forget=1), plain lstm and gru
(linear_before_reset=1), uni and bidirectional, with and without initial state and
sequence_lens, and the relu / hard_sigmoid activations ORT supports. The graphs and
the weight layout conversion are fastlstm.export's (validated against the numpy
reference in tests/test_reference.py, including negative controls showing the
permutations matter). Here a 2-layer stack is compared with two chained one-layer
ORT runs; tests/test_export.py runs whole exported stacks and models.
"""
import numpy as np
import pytest

import helpers
from helpers import (CELLS, ONNX_ACTS, ONNX_ATOL, ONNX_RTOL, assert_cifg_forget_rows_zero,
                     assert_close_all, compare_with_onnx, kernel_infer, kernel_train, make_case,
                     make_layer, onnx_grid, random_lengths, record_error, seed_of)

pytest.importorskip("onnxruntime")

# Tolerance: helpers.ONNX_ATOL / ONNX_RTOL (atol 5e-6 + rtol 1e-5; see there). Both
# sides in float32 on identical inputs, with different vectorised sigmoid/tanh and
# summation orders; measured differences are a few 1e-7, a layout or formula error
# is ~1e-1.


def _case(cell, bidirectional, use_init, use_lengths, seed, L=1, sizes=(3, 5, 3, 7)):
    b, t, i, h = sizes
    return make_case(cell, b, t, i, h, L, bidirectional, use_lengths, use_init, seed,
                     dtype=np.float32, lengths=[5, 2, 1][:b] if use_lengths else None)


def _compare(case, cell, bidirectional, activation="tanh", gate_activation="sigmoid"):
    """One layer, kernel vs ORT; returns the max abs difference."""
    i, h = case["x"].shape[2], case["params"]["weight_hh_l0"].shape[1]
    layer = make_layer(cell, i, h, 1, bidirectional, activation, gate_activation,
                       dtype="float32", params=case["params"])
    ours = kernel_infer(layer, case["x"], case["h0"], case["c0"], case["lengths"])
    return compare_with_onnx(ours, case, cell, bidirectional, activation, gate_activation)


@onnx_grid
def test_onnx_parity(cell, bidirectional, use_init, use_lengths):
    case = _case(cell, bidirectional, use_init, use_lengths,
                 seed_of("onnx-kernel", cell, bidirectional, use_init, use_lengths))
    record_error(f"ONNX Runtime vs kernel {cell} float32 (abs)",
                 _compare(case, cell, bidirectional))


@pytest.mark.parametrize("activation,gate_activation", ONNX_ACTS)
@pytest.mark.parametrize("cell", CELLS)
def test_onnx_parity_activations(cell, activation, gate_activation):
    """ORT's Relu / HardSigmoid (alpha 0.2, beta 0.5) activations; bidirectional with
    lengths and initial state."""
    case = _case(cell, True, True, True,
                 seed_of("onnx-kernel-act", cell, activation, gate_activation))
    record_error(f"ONNX Runtime vs kernel {activation}/{gate_activation} float32 (abs)",
                 _compare(case, cell, True, activation, gate_activation))


@pytest.mark.parametrize("cell", CELLS)
def test_onnx_block_edges(cell):
    """H = 17 and B = 17: two unit blocks, two batch chunks."""
    rng = np.random.default_rng(seed_of("onnx-edges", cell))
    case = make_case(cell, 17, 4, 2, 17, 1, True, True, True, seed_of("onnx-e", cell),
                     dtype=np.float32, lengths=random_lengths(rng, 17, 4))
    record_error(f"ONNX Runtime vs kernel {cell} float32 (abs)", _compare(case, cell, True))


@pytest.mark.parametrize("cell", CELLS)
def test_onnx_two_layer_stack(cell):
    """A bidirectional 2-layer stack equals two chained ORT layers (layer 1 reads the
    concatenated [forward, reverse] output of layer 0)."""
    D, L = 2, 2
    case = _case(cell, True, True, True, seed_of("onnx-stack", cell), L=L)
    i, h = case["x"].shape[2], case["params"]["weight_hh_l0"].shape[1]
    layer = make_layer(cell, i, h, L, True, dtype="float32", params=case["params"])
    ours = kernel_infer(layer, case["x"], case["h0"], case["c0"], case["lengths"])
    inp = np.transpose(case["x"], (1, 0, 2))
    hs, cs = [], []
    for k in range(L):
        sl = slice(k * D, (k + 1) * D)
        inp, Y_h, Y_c = helpers.onnx_lstm_run(
            case["params"], inp, case["h0"][sl], None if case["c0"] is None else case["c0"][sl],
            case["lengths"], cell, True, layer=k)
        hs.append(Y_h)
        cs.append(Y_c)
    theirs = (np.transpose(inp, (1, 0, 2)), np.concatenate(hs),
              None if cell == "gru" else np.concatenate(cs))
    err = assert_close_all(ours, theirs, ONNX_RTOL, ONNX_ATOL)
    record_error(f"ONNX Runtime vs kernel {cell} float32 (abs)", err)


def test_cifg_ignores_forget_rows_like_onnx():
    """input_forget=1: ORT ignores the forget-gate rows of W, R and B; so does the cifg
    kernel (bitwise identical outputs when those rows change), and its forget-row
    gradients are exactly zero; while plain lstm with the same weights differs."""
    case = _case("cifg", True, True, True, seed_of("onnx-cifg-kernel"))
    i, h = case["x"].shape[2], case["params"]["weight_hh_l0"].shape[1]
    layer = make_layer("cifg", i, h, 1, True, dtype="float32", params=case["params"])
    base = kernel_infer(layer, case["x"], case["h0"], case["c0"], case["lengths"])
    changed = {k: v.copy() for k, v in case["params"].items()}
    for v in changed.values():
        v[h:2 * h] += 5.0
    layer.load_state_dict(changed)
    moved = kernel_infer(layer, case["x"], case["h0"], case["c0"], case["lengths"])
    for a, b in zip(base, moved):
        np.testing.assert_array_equal(a, b)
    assert_cifg_forget_rows_zero(kernel_train(layer, case)[3], h)
    record_error("ONNX Runtime vs kernel cifg float32 (abs)",
                 _compare(dict(case, params=changed), "cifg", True))
    plain = make_layer("lstm", i, h, 1, True, dtype="float32", params=case["params"])
    y_plain = kernel_infer(plain, case["x"], case["h0"], case["c0"], case["lengths"])[0]
    assert helpers.max_abs_diff(y_plain, base[0]) > 1e-2
