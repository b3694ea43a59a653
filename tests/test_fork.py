"""A process forked after the kernels ran threads works in the child.

GNU libgomp cannot start threads in a fork()ed child of a process whose
thread pool exists (the child waited forever at its first parallel region);
gunicorn --preload, joblib and Celery prefork workers fork exactly so. The
child now runs the kernels on one thread and, since results are bitwise the
same for any thread count, gets the parent's numbers. Each check runs in a
subprocess with a timeout, so a regression fails instead of hanging.
"""
import subprocess
import sys
import textwrap

import pytest

import helpers
from fastlstm import _kernels

pytestmark = pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")

_SCRIPT = textwrap.dedent("""
    import multiprocessing as mp
    import numpy as np
    import fastlstm
    from fastlstm import _kernels

    layer = fastlstm.LSTM(8, 128, num_layers=2, n_threads=2, random_state=0)
    x = np.random.default_rng(0).standard_normal((16, 30, 8)).astype(np.float32)
    X = np.random.default_rng(1).standard_normal((64, 12, 3))
    y = X.sum(axis=(1, 2))

    def fit_predict():
        reg = fastlstm.LSTMRegressor(hidden_sizes=(32,), epochs=2, random_state=0, n_threads=2)
        return reg.fit(X, y).predict(X)

    def child(_):
        out, _ = layer(x)
        y_fwd, _, cache = layer.forward(x)
        grads = layer.backward(cache, np.ones_like(y_fwd))
        return out, grads["weight_hh_l0"], fit_predict(), _kernels.single_after_fork()

    if __name__ == "__main__":
        parent = child(0)      # starts libgomp's thread pool in the parent
        assert parent[3] is False
        with mp.get_context("fork").Pool(2) as pool:
            results = pool.map_async(child, range(2)).get(60)
        for res in results:
            assert res[3] is True, "the child did not cap its kernels at one thread"
            for a, b in zip(parent[:3], res[:3]):
                assert np.array_equal(a, b), "the forked child computed different numbers"
        print("ok")
""")


@pytest.mark.skipif(not _kernels.openmp_enabled(), reason="the hang is libgomp's; no OpenMP, no pool")
def test_forked_child_runs_kernels(tmp_path):
    script = tmp_path / "fork_child.py"
    script.write_text(_SCRIPT)
    try:
        proc = subprocess.run([sys.executable, str(script)], cwd=helpers.CHILD_CWD,
                              env=helpers.child_env(), capture_output=True, text=True,
                              timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("a forked child hung in the kernels (libgomp thread pool)")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().endswith("ok")
