"""Run every example and the ``python -m fastlstm`` demo end to end, with few epochs.

Each runs in a fresh interpreter exactly as a user would start it
(``python examples/x.py``), with ``FASTLSTM_EXAMPLE_EPOCHS=2`` to keep the
suite fast and ``OMP_NUM_THREADS=1`` so a loaded 2-core machine does not
oversubscribe. The metrics they print must be finite numbers; their
quality at full length is reported by running them by hand.

The examples are found in the source tree (a checkout or the unpacked sdist)
that holds this tests/ directory; a tests/ copied on its own skips them and
still runs the demo, which is part of the installed package.
"""

import importlib.util
import math
import os
import re
import subprocess
import sys

import pytest

import helpers

EXAMPLES = os.path.join(helpers.SOURCE_ROOT, "examples")
needs_examples = pytest.mark.skipif(not os.path.isdir(EXAMPLES),
                                    reason="needs the source tree's examples/")

# example -> lines (regexes) its output must contain, each with a number
EXPECTED = {
    "forecast_univariate.py": [r"seasonal naive\s+(\S+)", r"raw series\s+(\S+)$",
                               r"first differences\s+(\S+)$"],
    "forecast_covariates.py": [r"seasonal naive\s+(\S+)", r"no covariate\s+(\S+)$",
                               r"month covariate\s+(\S+)$",
                               r"90% interval: \d+/12 months inside, coverage (\S+),",
                               r"mean width (\S+)$"],
    "forecast_backtest.py": [r"^1956-01\s+(\S+)", r"^1960-01\s+\S+\s+(\S+)",
                             r"^mean\s+(\S+)", r"^mean\s+\S+\s+(\S+)",
                             r"^mean\s+\S+\s+\S+\s+(\S+)"],
    "text_classification.py": [r"test accuracy (\S+)", r"val_loss (\S+),"],
    "tiny_regression.py": [r"cell='lstm'.*training MSE (\S+),", r"cell='cifg'.*training MSE (\S+),"],
    "relu_peephole.py": [r"persistence\s+(\S+)", r"cell='lstm'\s+(\S+)$",
                         r"cell='peephole'\s+(\S+)$"],
    "stacked_dropout.py": [r"persistence\s+(\S+)", r"LSTM\(50\), dropout 0.2\s+(\S+)",
                           r"GRU\(50\), dropout 0.2\s+(\S+)"],
}


def _run(args, timeout=120):
    env = helpers.child_env(FASTLSTM_EXAMPLE_EPOCHS="2", OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    return subprocess.run([sys.executable] + args, cwd=helpers.CHILD_CWD, env=env,
                          capture_output=True, text=True, timeout=timeout)


# examples that keep running (servers): tested by test_serve_example
SERVERS = ("serve.py",)


@needs_examples
def test_every_example_is_tested():
    assert sorted(f for f in os.listdir(EXAMPLES) if f.endswith(".py")) == \
        sorted(list(EXPECTED) + list(SERVERS))


@needs_examples
def test_serve_example_answers_as_predict(tmp_path):
    import http.client
    import json
    import socket
    import time

    import numpy as np

    import fastlstm

    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 6, 3)).astype(np.float32)
    est = fastlstm.LSTMRegressor(hidden_sizes=(8,), epochs=1, random_state=0, n_threads=1)
    path = est.fit(X, X[:, -1, 0]).save(tmp_path / "m.npz")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, os.path.join(EXAMPLES, "serve.py"), str(path),
                             "--port", str(port)], cwd=helpers.CHILD_CWD,
                            env=helpers.child_env(OMP_NUM_THREADS="1"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for _ in range(300):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.request("GET", "/health")
                if conn.getresponse().read() == b'{"ok": true}':
                    break
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
                time.sleep(0.1)
        for rows in (X[:1], X[3:7]):          # two requests on one keep-alive connection
            conn.request("POST", "/predict", body=json.dumps({"x": rows.tolist()}))
            r = conn.getresponse()
            assert r.status == 200
            np.testing.assert_allclose(json.loads(r.read())["y"], est.predict(rows),
                                       rtol=1e-6, atol=1e-7)
        conn.request("POST", "/predict", body=b'{"x": [[1, 2]]}')
        r = conn.getresponse()
        assert r.status == 400 and "features" in json.loads(r.read())["error"]
    finally:
        proc.terminate()
        proc.wait(30)


@needs_examples
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs_end_to_end(name):
    proc = _run([os.path.join(EXAMPLES, name)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    for pattern in EXPECTED[name]:
        m = re.search(pattern, proc.stdout, flags=re.MULTILINE)
        assert m, f"{name}: no line matching {pattern!r} in:\n{proc.stdout}"
        assert math.isfinite(float(m.group(1))), m.group(0)


@needs_examples
def test_example_epochs_argument_overrides_env():
    proc = _run([os.path.join(EXAMPLES, "tiny_regression.py"), "--epochs", "1"])
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_demo_prints_a_forecast_against_seasonal_naive():
    proc = _run(["-m", "fastlstm", "--epochs", "2"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    lstm = float(re.search(r"LSTMForecaster\s+(\S+)", out).group(1))
    naive = float(re.search(r"seasonal naive\s+(\S+)", out).group(1))
    assert math.isfinite(lstm)
    from fastlstm.data import load_airline

    s = load_airline()
    want = math.sqrt(sum((a - b) ** 2 for a, b in zip(s[-24:-12], s[-12:])) / 12)
    assert naive == pytest.approx(want, abs=0.005)  # printed with 2 decimals
    assert re.search(r"fit time: \S+ s \(2 epochs", out)


@pytest.mark.parametrize("command", [
    ["-m", "fastlstm", "--epochs", "1"],
    pytest.param([os.path.join(EXAMPLES, "forecast_covariates.py")], marks=needs_examples)],
    ids=["demo", "forecast_covariates"])
def test_plot(tmp_path, command):
    target = tmp_path / "forecast.png"
    proc = _run(command + ["--plot", str(target)])
    if importlib.util.find_spec("matplotlib") is None:
        # the optional extra is missing: a clear message and a non-zero exit
        assert proc.returncode == 2
        assert "pip install" in proc.stderr and "plot" in proc.stderr
        assert not target.exists()
    else:
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
