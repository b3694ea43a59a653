"""fastlstm: LSTM and GRU training and inference on the CPU, in C with OpenMP.

The layers load eagerly; the estimators, data helpers and model files load on
first use, so a server that only runs ``fastlstm.LSTM`` imports little more
than numpy and the kernels.
"""
import importlib

from ._version import __version__
from .layers import LSTM, GRU, StreamState
from ._config import show_config
from ._threads import get_num_threads, num_threads, set_num_threads

_LAZY = {
    "LSTMRegressor": "estimators", "LSTMClassifier": "estimators", "LSTMForecaster": "estimators",
    "sliding_windows": "data", "pad_sequences": "data", "load_airline": "data",
    "load": "estimators", "NotFittedError": "exceptions", "SequenceScaler": "preprocessing",
    "get_include": "_capi", "get_lib": "_capi",
}

__all__ = ["__version__", "LSTM", "GRU", "StreamState", "show_config", "set_num_threads", "get_num_threads",
           "num_threads"] + list(_LAZY)


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fastlstm' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
