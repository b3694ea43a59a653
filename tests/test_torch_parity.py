"""The C kernels against PyTorch (torch.nn.LSTM / nn.GRU, batch_first, autograd):
outputs, h_n, c_n and every gradient (x, h0, c0 and each parameter), float32 and
float64, over randomized shapes (B=1, T=1, I=1, H not a multiple of 8 or 16, up to
3 layers, bidirectional) and variable lengths (PyTorch side:
pack_padded_sequence(enforce_sorted=False) / pad_packed_sequence(total_length=T),
see helpers.torch_forward_backward). Weights reach the layer through
``layer.load_state_dict(torch_module.state_dict())``; the other direction
(``layer.state_dict()`` into PyTorch) is tested too.

Errors are helpers.rel_err: max |ours - torch| / max(1, max |torch|) per array.
"""
import numpy as np
import pytest

import helpers
from helpers import (check_all, kernel_infer, kernel_train, make_case, make_layer, record_error,
                     rel_err, seed_of)

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True, scope="module")
def _torch_single_thread():
    """These cases are tiny: torch's intra-op threads only add contention (the
    kernels' thread determinism is tested in test_threads.py)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)

# float64: both sides compute the same formulas in float64 with different summation
# orders and exp implementations; measured ~1e-15. 1e-10 (as in test_reference) leaves
# room for longer accumulations while a formula or layout error shows at >= 1e-3.
# float32: two float32 implementations (different GEMM orders, MKL/Sleef vs our
# sigmoid/tanh, each ~1e-7 absolute) over <= 8 steps, 3 layers and weight gradients
# summing <= 51 rows; measured <= 5e-7 relative to magnitude, tolerance 1e-5.
TOL = {"float64": 1e-10, "float32": 1e-5}

# (B, T, I, H, L, bidirectional, lengths, initial state, project h_n/c_n)
EDGE_CASES = [
    (1, 1, 1, 3, 1, False, None, False, True),        # the smallest everything
    (1, 1, 1, 1, 3, True, [1], True, True),           # H = 1, 3 layers, bi, T = 1
    (1, 6, 1, 13, 3, True, [4], True, True),          # B = 1 with a short length
    (17, 3, 2, 17, 2, True, "random", True, True),    # two batch chunks, two unit blocks
    (4, 5, 3, 10, 3, False, [5, 2, 4, 1], False, False),
    (3, 4, 1, 6, 2, True, [3, 2, 1], True, False),    # max(lengths) < T: total_length pads
]


def _random_cases(n, seed):
    """n random configurations; H avoids multiples of 8 (and 16)."""
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(n):
        b = int(rng.choice([1, 2, 3, 5, 8]))
        t = int(rng.choice([1, 2, 4, 7]))
        i = int(rng.choice([1, 2, 3, 5]))
        h = int(rng.choice([1, 3, 5, 7, 9, 12, 15, 17, 20, 23]))
        L = int(rng.integers(1, 4))
        bi = bool(rng.integers(2))
        lengths = "random" if rng.integers(2) else None
        cases.append((b, t, i, h, L, bi, lengths, bool(rng.integers(2)), bool(rng.integers(2))))
    return cases


CASES = EDGE_CASES + _random_cases(10, 2024)
CASE_IDS = [f"B{c[0]}T{c[1]}I{c[2]}H{c[3]}L{c[4]}{'bi' if c[5] else 'uni'}"
            f"{'-len' if c[6] else ''}{'-init' if c[7] else ''}{'-dstate' if c[8] else ''}"
            for c in CASES]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case_args", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_torch_parity(cell, case_args, dtype):
    b, t, i, h, L, bi, lengths, use_init, project_state = case_args
    seed = seed_of("torch", cell, case_args, dtype)
    rng = np.random.default_rng(seed)
    if lengths == "random":
        lengths = rng.integers(1, t + 1, b)
    np_dtype = np.dtype(dtype)
    # PyTorch's own initialisation scale (1/sqrt(H)), drawn in float64 and rounded to
    # the tested dtype so both sides hold the same numbers.
    case = make_case(cell, b, t, i, h, L, bi, lengths is not None, use_init, seed,
                     dtype=np_dtype, lengths=lengths)
    if not project_state:
        case["dh_n"] = None
        case["dc_n"] = None
    mod = helpers.torch_module_from_params(case["params"], cell, i, h, L, bi, dtype=np_dtype)
    layer = make_layer(cell, i, h, L, bi, dtype=dtype)
    layer.load_state_dict(mod.state_dict())          # torch tensors straight in
    got = kernel_train(layer, case)[:4]
    want = helpers.torch_forward_backward(
        case["params"], case["x"], case["h0"], case["c0"], case["lengths"], case["dy"],
        case["dh_n"], case["dc_n"], cell, L, bi, dtype=np_dtype)
    assert got[0].dtype == np_dtype
    check_all(got, want, TOL[dtype], f"PyTorch {cell} {dtype} kernel")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_state_dict_into_torch(cell, dtype):
    """layer.state_dict() loaded into PyTorch (strict) computes the same function,
    whatever the layer keeps in bias_ih / bias_hh; x may also be a torch tensor."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    b, t, i, h, L = 4, 5, 3, 11, 2
    layer = make_layer(cell, i, h, L, True, dtype=dtype, random_state=0)
    sd = layer.state_dict()
    assert set(sd) == set(helpers.param_names(cell, L, True))
    cls = torch.nn.LSTM if cell == "lstm" else torch.nn.GRU
    tdt = torch.float64 if dtype == "float64" else torch.float32
    mod = cls(i, h, num_layers=L, bidirectional=True, batch_first=True, dtype=tdt)
    mod.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()},
                        strict=True)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((b, t, i)).astype(dtype)
    lengths = np.array([5, 2, 4, 1])
    y, h_n, c_n = kernel_infer(layer, torch.from_numpy(x), lengths=lengths)
    with torch.no_grad():
        packed = pack_padded_sequence(torch.from_numpy(x), torch.as_tensor(lengths),
                                      batch_first=True, enforce_sorted=False)
        yp, st = mod(packed)
        ty, _ = pad_packed_sequence(yp, batch_first=True, total_length=t)
    th, tc = st if cell == "lstm" else (st, None)
    err = max(rel_err(y, ty.numpy()), rel_err(h_n, th.numpy()))
    if cell == "lstm":
        err = max(err, rel_err(c_n, tc.numpy()))
    record_error(f"PyTorch {cell} {dtype} state_dict round trip (rel)", err)
    assert err < TOL[dtype]
    # and back: loading the torch module's state_dict reproduces the layer exactly
    layer2 = make_layer(cell, i, h, L, True, dtype=dtype, random_state=99)
    layer2.load_state_dict(mod.state_dict())
    np.testing.assert_array_equal(layer2.flat_params, layer.flat_params)


def test_parity_detects_a_wrong_layout():
    """Negative control: swapping two gate blocks of one weight makes the comparison
    fail by far more than the tolerance, so the parity test pins the layout down."""
    b, t, i, h = 3, 4, 2, 5
    case = make_case("lstm", b, t, i, h, 1, False, False, False, 3)
    layer = make_layer("lstm", i, h, params=case["params"])
    w = case["params"]["weight_ih_l0"]
    swapped = dict(case["params"], weight_ih_l0=np.concatenate([w[h:2 * h], w[:h], w[2 * h:]]))
    y_ok = kernel_infer(layer, case["x"])[0]
    ty = helpers.torch_forward_backward(swapped, case["x"], None, None, None, case["dy"],
                                        None, None, "lstm")[0]
    assert rel_err(y_ok, ty) > 1e3 * TOL["float64"]
