"""fastlstm: LSTM and GRU training and inference on the CPU, in C with OpenMP."""
from ._version import __version__
from .layers import LSTM, GRU
from ._config import show_config
from .estimators import LSTMRegressor, LSTMClassifier, LSTMForecaster
from .data import sliding_windows, pad_sequences, load_airline
from .io import load
from .exceptions import NotFittedError

__all__ = ["__version__", "LSTM", "GRU", "show_config", "LSTMRegressor", "LSTMClassifier",
           "LSTMForecaster", "sliding_windows", "pad_sequences", "load_airline", "load",
           "NotFittedError"]
