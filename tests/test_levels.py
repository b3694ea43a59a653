"""Every instruction-set level this CPU runs passes the numerical tests.

The kernels are compiled once per level (src_c/kernels_<level>.c) with that
level's vector width and blocking, and FASTLSTM_MAX_ISA picks one at import.
The rest of the suite runs on the level chosen by default; here the
numerical test files run again, in a subprocess, under each other level
the CPU supports. Which levels that is depends on the machine: the README
says which ones CI exercised.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

import helpers
from fastlstm import _kernels

TESTS = Path(__file__).resolve().parent
NUMERICAL = ["test_kernels_vs_reference.py", "test_gradcheck.py", "test_torch_parity.py",
             "test_onnx_parity.py", "test_threads.py", "test_gemm.py", "test_activations.py", "test_quantize.py"]
OTHER_LEVELS = [lv for lv in _kernels.levels_supported() if lv != _kernels.isa()]
UNSUPPORTED = [lv for lv in _kernels.LEVELS if lv not in _kernels.levels_supported()]


def _python(code, level):
    return subprocess.run([sys.executable, "-c", code], cwd=helpers.CHILD_CWD,
                          env=helpers.child_env(FASTLSTM_MAX_ISA=level),
                          capture_output=True, text=True, timeout=120)


def test_numerical_suite_on_other_levels():
    """(Where the CPU runs only one level, the rest of the suite has covered it.)"""
    failures = []
    for level in OTHER_LEVELS:
        proc = _python("import fastlstm._kernels as k; print(k.isa())", level)
        assert proc.stdout.strip() == level, proc.stdout + proc.stderr
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                               *[str(TESTS / f) for f in NUMERICAL]],
                              env=helpers.child_env(FASTLSTM_MAX_ISA=level), cwd=helpers.CHILD_CWD,
                              capture_output=True, text=True, timeout=1800)
        if proc.returncode != 0:
            failures.append(f"--- {level}:\n{proc.stdout[-3000:]}{proc.stderr[-1000:]}")
    assert not failures, "\n".join(failures)


def test_default_level_is_the_best_supported():
    assert _kernels.isa() == _kernels.levels_supported()[0] or os.environ.get("FASTLSTM_MAX_ISA")
    assert "baseline" in _kernels.levels_supported()


@pytest.mark.parametrize("value", ["avx1024", "sse9", "AVX2 please"])
def test_unknown_level_is_refused(value):
    proc = _python("import fastlstm", value)
    assert proc.returncode != 0
    assert "FASTLSTM_MAX_ISA" in proc.stderr and "not a level" in proc.stderr


def test_level_the_cpu_lacks_is_refused():
    """The choice itself, against a CPU that runs only AVX2 and the baseline."""
    supported = ["avx2", "baseline"]
    assert _kernels._choose_level(None, supported)[0] == "avx2"
    assert _kernels._choose_level("baseline", supported)[0] == "baseline"
    with pytest.raises(ImportError, match="lacks; it has: avx2, baseline"):
        _kernels._choose_level("avx512", supported)
    for level in UNSUPPORTED:       # and for real, where this CPU lacks one
        proc = _python("import fastlstm", level)
        assert proc.returncode != 0 and "lacks" in proc.stderr


@pytest.mark.parametrize("level", _kernels.levels_supported())
def test_cap_selects_that_level_and_layout(level):
    proc = _python("import fastlstm; c = fastlstm.show_config(); "
                   "import fastlstm._kernels as k; print(k.level_layout())", level)
    assert proc.returncode == 0, proc.stderr
    assert f"kernels:          {level} (capped by FASTLSTM_MAX_ISA={level})" in proc.stdout
