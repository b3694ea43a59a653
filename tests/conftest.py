import os
import sys

# Tests import the shared helpers as a plain module: `import helpers`.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


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
