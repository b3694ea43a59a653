"""Data helpers: sliding windows, Keras-style padding, the airline series, a tokenizer.

Everything here is plain numpy and pure Python; nothing calls into the kernels.
"""

import os
import re
from collections import Counter

import numpy as np

from ._validation import Int

__all__ = [
    "sliding_windows",
    "pad_sequences",
    "load_airline",
    "Tokenizer",
]


def sliding_windows(series, window, horizon=1):
    """Cut a time series into (input window, target horizon) pairs.

    Parameters
    ----------
    series : array-like of shape (n_time,) or (n_time, n_vars)
    window : int >= 1, number of past steps in each input.
    horizon : int >= 1, number of future steps in each target.

    Returns
    -------
    X : ndarray of shape (n, window, n_vars), n = n_time - window - horizon + 1.
        ``X[i] = series[i : i + window]``.
    Y : ndarray of shape (n, horizon, n_vars), or (n, horizon) when ``series``
        is 1-D. ``Y[i] = series[i + window : i + window + horizon]``.

    Floating-point series keep their dtype; anything else becomes float64.
    Both outputs are C-contiguous copies, safe to modify.
    """
    window = Int(1).check("window", window)
    horizon = Int(1).check("horizon", horizon)
    arr = np.asarray(series)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or arr.dtype == bool
    ):
        raise TypeError(
            f"series must be numeric, got an array of dtype {arr.dtype}"
        )
    if np.iscomplexobj(arr):
        raise ValueError("series must be real; complex data is not supported")
    if arr.ndim not in (1, 2):
        raise ValueError(
            "series must be 1-D (n_time,) or 2-D (n_time, n_vars); "
            f"got shape {arr.shape}"
        )
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    univariate = arr.ndim == 1
    arr2 = arr.reshape(arr.shape[0], -1)
    n_time, n_vars = arr2.shape
    if n_vars == 0:
        raise ValueError(f"series has no variables: shape {arr.shape}")
    n = n_time - window - horizon + 1
    if n < 1:
        raise ValueError(
            f"series of length {n_time} is too short for window={window} and "
            f"horizon={horizon}: need at least window + horizon = "
            f"{window + horizon} time steps"
        )
    view = np.lib.stride_tricks.sliding_window_view(
        arr2, window + horizon, axis=0
    )  # (n, n_vars, window + horizon)
    view = np.moveaxis(view, 2, 1)  # (n, window + horizon, n_vars)
    X = np.array(view[:, :window, :], order="C", copy=True)
    Y = view[:, window:, 0] if univariate else view[:, window:, :]
    Y = np.array(Y, order="C", copy=True)
    return X, Y


def pad_sequences(
    seqs,
    maxlen=None,
    dtype="int32",
    padding="pre",
    truncating="pre",
    value=0,
):
    """Pad (and truncate) a list of sequences to one length, as Keras does.

    Parameters
    ----------
    seqs : list of sequences (lists or arrays). Each element may itself have
        trailing dimensions (all elements must share them).
    maxlen : int >= 0 or None. None pads to the longest sequence.
    dtype : output dtype (default "int32", as Keras).
    padding : "pre" (default) or "post": where the padding values go.
    truncating : "pre" (default) or "post": which end of a longer sequence
        is dropped.
    value : the padding value (default 0).

    Returns
    -------
    ndarray of shape (len(seqs), maxlen) + trailing dimensions.
    """
    if padding not in ("pre", "post"):
        raise ValueError(f'padding must be "pre" or "post", got {padding!r}')
    if truncating not in ("pre", "post"):
        raise ValueError(
            f'truncating must be "pre" or "post", got {truncating!r}'
        )
    if isinstance(seqs, np.ndarray) and seqs.dtype != object:
        if seqs.ndim < 1:
            raise ValueError("seqs must be a list of sequences, got a scalar")
        items = list(seqs)
    else:
        if isinstance(seqs, (str, bytes)) or not hasattr(seqs, "__len__"):
            raise ValueError(
                "seqs must be a list of sequences (lists or arrays), "
                f"got {type(seqs).__name__}"
            )
        items = list(seqs)
    arrays = []
    for i, s in enumerate(items):
        if isinstance(s, (str, bytes)) or not hasattr(s, "__len__"):
            raise ValueError(
                f"seqs[{i}] must be a sequence (list or array), "
                f"got {type(s).__name__}"
            )
        arrays.append(np.asarray(s))
    sample_shape = ()
    for a in arrays:
        if a.shape[0] > 0:
            sample_shape = a.shape[1:]
            break
    lengths = [a.shape[0] if a.ndim > 0 else 0 for a in arrays]
    if maxlen is None:
        maxlen = max(lengths) if lengths else 0
    else:
        if isinstance(maxlen, bool) or not isinstance(
            maxlen, (int, np.integer)
        ):
            raise TypeError(
                f"maxlen must be an int or None, got {type(maxlen).__name__}"
            )
        if maxlen < 0:
            raise ValueError(f"maxlen must be >= 0, got {maxlen}")
        maxlen = int(maxlen)
    out = np.full((len(arrays), maxlen) + tuple(sample_shape), value, dtype=dtype)
    for i, a in enumerate(arrays):
        if a.ndim == 0 or a.shape[0] == 0 or maxlen == 0:
            continue
        if a.shape[1:] != tuple(sample_shape):
            raise ValueError(
                f"seqs[{i}] has trailing shape {a.shape[1:]}, expected "
                f"{tuple(sample_shape)} like the other sequences"
            )
        trunc = a[-maxlen:] if truncating == "pre" else a[:maxlen]
        if padding == "post":
            out[i, : len(trunc)] = trunc
        else:
            out[i, maxlen - len(trunc):] = trunc
    return out


def _pad_float_sequences(seqs, dtype):
    """Post-pad a list of 2-D float arrays (T_i, d) with zeros.

    Returns (X (n, max T_i, d), lengths (n,) int64). Internal: callers have
    validated every element already.
    """
    lengths = np.array([s.shape[0] for s in seqs], dtype=np.int64)
    d = seqs[0].shape[1]
    X = np.zeros((len(seqs), int(lengths.max()), d), dtype=dtype)
    for i, s in enumerate(seqs):
        X[i, : s.shape[0]] = s
    return X, lengths


def _compact_token_ids(ids):
    """Move the non-zero ids of each row to the front, keeping their order.

    Token id 0 is padding wherever it appears (pre-, post-, or interior
    padding); skipping a masked step is what Keras' ``mask_zero=True`` does
    to a recurrent layer, so dropping the zeros and running each row over its
    real tokens only computes the same function.

    Returns (compact (n, T) with zeros at the end, lengths (n,) int64).
    """
    ids = np.asarray(ids)
    mask = ids != 0
    lengths = mask.sum(axis=1).astype(np.int64)
    # stable argsort of ~mask puts the real tokens first in their order
    order = np.argsort(~mask, axis=1, kind="stable")
    compact = np.take_along_axis(ids, order, axis=1)
    compact = np.where(np.arange(ids.shape[1])[None, :] < lengths[:, None], compact, 0)
    return np.ascontiguousarray(compact), lengths


def _airline_path():
    return os.path.join(os.path.dirname(__file__), "datasets", "airline.csv")


def load_airline(return_months=False):
    """Box & Jenkins' monthly international airline passengers, 1949-1960.

    Returns the 144 monthly totals (thousands of passengers) as a float64
    array; with ``return_months=True`` also the list of "YYYY-MM" labels.
    Source: Box, Jenkins & Reinsel, *Time Series Analysis*, Series G.
    """
    months = []
    values = []
    with open(_airline_path(), "r", encoding="ascii") as f:
        header = f.readline().strip()
        if header != "month,passengers":
            raise ValueError(f"unexpected header in airline.csv: {header!r}")
        for line in f:
            line = line.strip()
            if not line:
                continue
            month, value = line.split(",")
            months.append(month)
            values.append(float(value))
    series = np.asarray(values, dtype=np.float64)
    if return_months:
        return series, months
    return series


_TOKEN_RE = re.compile(r"[a-z0-9']+")


class Tokenizer:
    """A small word tokenizer mapping texts to integer ids (0 is padding).

    Words are lower-cased runs of letters, digits and apostrophes. Ids are
    given by decreasing frequency in ``fit`` (ties broken by first
    appearance), starting at 2; id 1 is the out-of-vocabulary token and 0 is
    never produced, so it stays free for padding.

    Parameters
    ----------
    num_words : int or None. Keep only the ``num_words - 2`` most frequent
        words (``vocab_size`` is then at most ``num_words``).
    """

    PAD = 0
    OOV = 1

    def __init__(self, num_words=None):
        self.num_words = num_words

    @staticmethod
    def split(text):
        if not isinstance(text, str):
            raise TypeError(f"texts must be strings, got {type(text).__name__}")
        return _TOKEN_RE.findall(text.lower())

    def fit(self, texts):
        counts = Counter()
        first = {}
        for text in texts:
            for w in self.split(text):
                counts[w] += 1
                first.setdefault(w, len(first))
        words = sorted(counts, key=lambda w: (-counts[w], first[w]))
        if self.num_words is not None:
            if self.num_words < 3:
                raise ValueError(f"num_words must be >= 3, got {self.num_words}")
            words = words[: self.num_words - 2]
        self.word_index_ = {w: i + 2 for i, w in enumerate(words)}
        self.vocab_size_ = len(words) + 2
        return self

    def transform(self, texts):
        """Texts -> list of lists of ids (different lengths)."""
        if not hasattr(self, "word_index_"):
            raise ValueError("Tokenizer is not fitted; call fit(texts) first")
        index = self.word_index_
        return [[index.get(w, self.OOV) for w in self.split(t)] for t in texts]

    def fit_transform(self, texts):
        texts = list(texts)
        return self.fit(texts).transform(texts)
