"""Where the C API lives: the public header and the shared library that run
saved models without Python (fastlstm/include/fastlstm_model.h, built from
src_c/ and src_c/api/ by setup.py). Nothing here loads the library."""
import os
import sys

__all__ = ["get_include", "get_lib"]

_HERE = os.path.dirname(os.path.abspath(__file__))
_LIB_FILE = "libfastlstm.dylib" if sys.platform == "darwin" else "libfastlstm.so"


def get_include():
    """The directory holding ``fastlstm_model.h``, for ``cc -I``."""
    return os.path.join(_HERE, "include")


def get_lib():
    """The path of the C API's shared library (``libfastlstm.so``), for
    ``cc -L<its directory> -lfastlstm -Wl,-rpath,<its directory>``."""
    path = os.path.join(_HERE, _LIB_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"fastlstm's C library {path} is missing: it is built with the package "
            "(pip install ., or python setup.py build_ext --inplace in a checkout)")
    return path
