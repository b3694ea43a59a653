"""fastlstm: LSTM and GRU training and inference on the CPU, in C with OpenMP."""
from ._version import __version__
from .layers import LSTM, GRU
from ._config import show_config

__all__ = ["__version__", "LSTM", "GRU", "show_config"]
