"""Results stay what the recorded commit computed (tests/fixtures/baseline.npz):
bitwise on the CPU model and kernel level that recorded them, within float
tolerances elsewhere; and the model files that commit saved still load and
predict the same."""
import json
import os
import sys

import numpy as np
import pytest

import fastlstm
from fastlstm import _kernels

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
sys.path.insert(0, FIXTURES)
import make_baseline  # noqa: E402

BASE = np.load(os.path.join(FIXTURES, "baseline.npz"))
META = json.loads(str(BASE["meta"]))
# Bitwise only where the same instructions ran: same CPU model, same level.
SAME_MACHINE = META["level"] == _kernels.isa() and META["cpu"] == make_baseline.cpu_model()


def assert_matches(name, got, dtype):
    want = BASE[name]
    assert got.shape == want.shape, name
    if SAME_MACHINE:
        np.testing.assert_array_equal(got, want, err_msg=name)
    else:
        tol = 1e-4 if np.dtype(dtype) == np.float32 else 1e-10
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol, err_msg=name)


@pytest.mark.parametrize("case", list(make_baseline.layer_cases()), ids=lambda c: c[0])
def test_layer_outputs_and_gradients(case):
    name, kw, cell = case
    got = make_baseline.run_layer(make_baseline.make_layer(kw, cell), cell, kw["dtype"])
    recorded = {k.split("/", 1)[1] for k in BASE.files if k.startswith(name + "/")}
    assert set(got) == recorded
    for key, value in got.items():
        assert_matches(f"{name}/{key}", value, kw["dtype"])


@pytest.mark.parametrize("case", list(make_baseline.estimator_cases()), ids=lambda c: c[0])
def test_estimator_fit_and_saved_file(case):
    name, est, fit_args, X = case
    est.fit(*fit_args)
    # training curves agree to float32 rounding anywhere, bitwise on the recording machine
    assert_matches(f"{name}/loss_curve", np.asarray(est.loss_curve_), "float32")
    assert_matches(f"{name}/predict", make_baseline.predictions(est, X), "float32")
    loaded = fastlstm.load(os.path.join(FIXTURES, f"{name}.npz"))
    assert type(loaded) is type(est)
    assert_matches(f"{name}/predict", make_baseline.predictions(loaded, X), "float32")
