"""pytest-benchmark suite settings. Run: ``pytest bench/ --benchmark-only``.

Environment:
  FASTLSTM_BENCH_THREADS   threads for every framework (default: all usable CPUs)
  FASTLSTM_BENCH_PEERS     comma list of peers to time next to fastlstm
                           (default "torch,onnxruntime"; add "keras" for Keras 3 / TF,
                           which costs ~10 s of import and slow warm-ups)
  FASTLSTM_BENCH_BUDGET    target seconds of timing per benchmark (default 0.8)

This directory is not collected by ``pytest tests/`` (nor by a bare ``pytest``:
pyproject's testpaths is ``tests``).
"""
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import benchlib as bl  # noqa: E402

THREADS, PEERS, BUDGET = bl.suite_settings()


def pytest_configure(config):
    active = ["fastlstm"] + [p for p in PEERS if bl.available(p)[0]]
    bl.fix_threads(THREADS, active)


def pytest_report_header(config):
    return (f"fastlstm bench: {THREADS} thread(s) for every framework; peers {PEERS}; "
            f"fastlstm training step: {bl.fastlstm_train_label()}")


@pytest.fixture(scope="session")
def n_threads():
    return THREADS
