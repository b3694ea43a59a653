"""Build and run-time facts: what show_config() prints."""
from . import _kernels
from ._threads import effective_n_threads


def config():
    return {
        "openmp": _kernels.openmp_enabled(),
        "n_threads": effective_n_threads(None) if _kernels.openmp_enabled() else 1,
        "isa": _kernels.isa(),
        "isa_reason": _kernels.SELECTED_BECAUSE,
        "isa_supported": _kernels.levels_supported(),
        "isa_built": _kernels.levels_built(),
        # reduced-precision dot products on the active level (fastlstm.quantize)
        "quantized": {name: _kernels.quant_path(code) for name, code in _kernels.QTYPES.items()},
    }


def show_config():
    """Print whether OpenMP is on, the threads the kernels would use, and the dispatched ISA."""
    from ._version import __version__
    c = config()
    print(f"fastlstm {__version__}")
    print(f"  OpenMP:           {'on' if c['openmp'] else 'off (single-threaded build)'}")
    print(f"  threads (default): {c['n_threads']}")
    print(f"  kernels:          {c['isa']} ({c['isa_reason']})")
    print(f"  levels:           this CPU runs {', '.join(c['isa_supported'])}; "
          f"built: {', '.join(c['isa_built'])} (FASTLSTM_MAX_ISA caps the choice)")
    paths = [f"{name} {how}" for name, how in c["quantized"].items()]
    print(f"  quantized:        {'; '.join(paths)}")
    return c
