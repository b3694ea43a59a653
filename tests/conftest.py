import os
import sys

# Tests import the shared helpers as a plain module: `import helpers`.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# Keras 3 (a test extra) runs on TensorFlow by default, which the test extras
# leave out (it is large); PyTorch, which they have, is one of its backends,
# so the Keras parity tests run wherever torch is installed.
if "KERAS_BACKEND" not in os.environ:
    import importlib.util
    if importlib.util.find_spec("tensorflow") is None and importlib.util.find_spec("torch"):
        os.environ["KERAS_BACKEND"] = "torch"


def pytest_report_header(config):
    """Which fastlstm runs: a checkout's (editable or in-place build) or an installed one."""
    import fastlstm
    return f"fastlstm {fastlstm.__version__} from {os.path.dirname(fastlstm.__file__)}"


def pytest_terminal_summary(terminalreporter):
    """Print the largest error each numerical comparison measured (see helpers.record_error)."""
    import helpers
    if not helpers.MAX_ERRORS:
        return
    terminalreporter.section("max measured errors")
    width = max(len(k) for k in helpers.MAX_ERRORS)
    for name in sorted(helpers.MAX_ERRORS):
        terminalreporter.write_line(f"{name:<{width}}  {helpers.MAX_ERRORS[name]:.3e}")
