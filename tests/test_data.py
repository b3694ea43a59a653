"""Tests for fastlstm.data: sliding windows, Keras-style padding, airline data, tokenizer."""

import numpy as np
import pytest

from fastlstm.data import (
    Tokenizer,
    _compact_token_ids,
    load_airline,
    pad_sequences,
    sliding_windows,
)


# ---------------------------------------------------------------- sliding_windows


@pytest.mark.parametrize("window,horizon", [(1, 1), (3, 2), (5, 1), (4, 6)])
def test_sliding_windows_univariate_definition(window, horizon):
    rng = np.random.default_rng(0)
    s = rng.normal(size=20)
    X, Y = sliding_windows(s, window, horizon)
    n = 20 - window - horizon + 1
    assert X.shape == (n, window, 1)
    assert Y.shape == (n, horizon)
    for i in range(n):
        # exact equality: windows are copies of the series values
        np.testing.assert_array_equal(X[i, :, 0], s[i : i + window])
        np.testing.assert_array_equal(Y[i], s[i + window : i + window + horizon])
    assert X.flags.c_contiguous and Y.flags.c_contiguous


def test_sliding_windows_multivariate_definition():
    rng = np.random.default_rng(1)
    s = rng.normal(size=(15, 3)).astype(np.float32)
    X, Y = sliding_windows(s, 4, 2)
    assert X.shape == (10, 4, 3) and Y.shape == (10, 2, 3)
    assert X.dtype == np.float32 and Y.dtype == np.float32
    for i in range(10):
        np.testing.assert_array_equal(X[i], s[i : i + 4])
        np.testing.assert_array_equal(Y[i], s[i + 4 : i + 6])


def test_sliding_windows_outputs_are_copies():
    s = np.arange(10.0)
    X, Y = sliding_windows(s, 3, 1)
    X[:] = -1
    Y[:] = -1
    np.testing.assert_array_equal(s, np.arange(10.0))


def test_sliding_windows_int_series_becomes_float64():
    X, Y = sliding_windows([1, 2, 3, 4, 5], 2, 1)
    assert X.dtype == np.float64 and Y.dtype == np.float64
    # the last window ends right before the last value, which is its target
    assert X[-1, -1, 0] == 4 and Y[-1, 0] == 5


def test_sliding_windows_exact_fit_gives_one_window():
    X, Y = sliding_windows(np.arange(5.0), 3, 2)
    assert X.shape == (1, 3, 1) and Y.shape == (1, 2)


@pytest.mark.parametrize(
    "series,window,horizon,exc,match",
    [
        (np.arange(4.0), 3, 2, ValueError, "too short"),
        (np.arange(10.0), 0, 1, ValueError, "window"),
        (np.arange(10.0), 2, 0, ValueError, "horizon"),
        (np.arange(10.0), 2.5, 1, TypeError, "window"),
        (np.zeros((3, 3, 3)), 1, 1, ValueError, "1-D"),
        (np.array(["a", "b", "c"]), 1, 1, TypeError, "numeric"),
    ],
)
def test_sliding_windows_errors(series, window, horizon, exc, match):
    with pytest.raises(exc, match=match):
        sliding_windows(series, window, horizon)


# ---------------------------------------------------------------- pad_sequences


def _reference_pad(seqs, maxlen, padding, truncating, value):
    """Keras' documented semantics, written out the slow way."""
    if maxlen is None:
        maxlen = max((len(s) for s in seqs), default=0)
    out = []
    for s in seqs:
        s = list(s)
        if len(s) > maxlen:
            s = s[len(s) - maxlen :] if truncating == "pre" else s[:maxlen]
        pad = [value] * (maxlen - len(s))
        out.append(pad + s if padding == "pre" else s + pad)
    return np.array(out, dtype="int32").reshape(len(seqs), maxlen)


def test_pad_sequences_keras_docstring_example():
    # the example from the Keras documentation of pad_sequences
    seqs = [[1], [2, 3], [4, 5, 6]]
    np.testing.assert_array_equal(
        pad_sequences(seqs), [[0, 0, 1], [0, 2, 3], [4, 5, 6]]
    )
    np.testing.assert_array_equal(
        pad_sequences(seqs, value=-1), [[-1, -1, 1], [-1, 2, 3], [4, 5, 6]]
    )
    np.testing.assert_array_equal(
        pad_sequences(seqs, padding="post"), [[1, 0, 0], [2, 3, 0], [4, 5, 6]]
    )
    np.testing.assert_array_equal(
        pad_sequences(seqs, maxlen=2), [[0, 1], [2, 3], [5, 6]]
    )


@pytest.mark.parametrize("padding", ["pre", "post"])
@pytest.mark.parametrize("truncating", ["pre", "post"])
@pytest.mark.parametrize("maxlen", [None, 0, 1, 3, 7, 12])
def test_pad_sequences_matches_reference(padding, truncating, maxlen):
    rng = np.random.default_rng(42)
    seqs = [list(rng.integers(1, 50, size=rng.integers(0, 10))) for _ in range(25)]
    got = pad_sequences(
        seqs, maxlen=maxlen, padding=padding, truncating=truncating, value=0
    )
    want = _reference_pad(seqs, maxlen, padding, truncating, 0)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, want)


def test_pad_sequences_dtype_and_trailing_dims():
    seqs = [np.ones((2, 3)), np.full((4, 3), 2.0)]
    out = pad_sequences(seqs, dtype="float32", padding="post", value=-1.0)
    assert out.shape == (2, 4, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out[0, :2], 1.0)
    np.testing.assert_array_equal(out[0, 2:], -1.0)
    np.testing.assert_array_equal(out[1], 2.0)


def test_pad_sequences_empty_inputs():
    assert pad_sequences([]).shape == (0, 0)
    out = pad_sequences([[], [1, 2]])
    np.testing.assert_array_equal(out, [[0, 0], [1, 2]])


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        ({"padding": "middle"}, ValueError, "padding"),
        ({"truncating": "both"}, ValueError, "truncating"),
        ({"maxlen": -1}, ValueError, "maxlen"),
        ({"maxlen": 2.0}, TypeError, "maxlen"),
    ],
)
def test_pad_sequences_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        pad_sequences([[1, 2]], **kwargs)


def test_pad_sequences_rejects_non_sequences():
    with pytest.raises(ValueError, match="seqs"):
        pad_sequences(5)
    with pytest.raises(ValueError, match=r"seqs\[1\]"):
        pad_sequences([[1], 3])
    with pytest.raises(ValueError, match="trailing shape"):
        pad_sequences([np.ones((2, 3)), np.ones((2, 4))])


# ---------------------------------------------------------------- compact token ids


def test_compact_token_ids_moves_padding_to_the_end():
    rng = np.random.default_rng(3)
    ids = rng.integers(0, 5, size=(30, 9))
    compact, lengths = _compact_token_ids(ids)
    for row, crow, n in zip(ids, compact, lengths):
        real = row[row != 0]
        assert n == len(real)
        np.testing.assert_array_equal(crow[:n], real)
        np.testing.assert_array_equal(crow[n:], 0)


# ---------------------------------------------------------------- airline


def test_airline_classic_values():
    s, months = load_airline(return_months=True)
    assert s.shape == (144,) and s.dtype == np.float64
    # Box & Jenkins Series G: first and last year, and the total
    np.testing.assert_array_equal(
        s[:12], [112, 118, 132, 129, 121, 135, 148, 148, 136, 119, 104, 118]
    )
    np.testing.assert_array_equal(
        s[-12:], [417, 391, 419, 461, 472, 535, 622, 606, 508, 461, 390, 432]
    )
    assert s.sum() == 40363
    assert months[0] == "1949-01" and months[-1] == "1960-12"
    # months are consecutive
    ym = [(int(m[:4]), int(m[5:])) for m in months]
    assert all(
        (y2 * 12 + m2) - (y1 * 12 + m1) == 1 for (y1, m1), (y2, m2) in zip(ym, ym[1:])
    )


def test_airline_default_returns_array_only():
    s = load_airline()
    assert isinstance(s, np.ndarray) and s.shape == (144,)


# ---------------------------------------------------------------- tokenizer


def test_tokenizer_ids_frequency_order_and_oov():
    texts = ["The cat sat.", "the dog SAT on the mat!", "a cat"]
    tok = Tokenizer().fit(texts)
    seqs = tok.transform(texts)
    # ids start at 2, 0 (padding) and 1 (oov) are never given to a word
    assert min(min(s) for s in seqs) >= 2
    # "the" is the most frequent word -> smallest id
    assert tok.word_index_["the"] == 2
    assert seqs[0] == [tok.word_index_[w] for w in ["the", "cat", "sat"]]
    assert tok.transform(["unseen words the"]) == [[1, 1, 2]]
    assert tok.vocab_size_ == len(tok.word_index_) + 2


def test_tokenizer_num_words_limits_vocabulary():
    texts = ["a a a b b c d"]
    tok = Tokenizer(num_words=4).fit(texts)
    assert tok.vocab_size_ == 4
    assert tok.transform(["a b c d"]) == [[2, 3, 1, 1]]


def test_tokenizer_errors():
    with pytest.raises(ValueError, match="not fitted"):
        Tokenizer().transform(["x"])
    with pytest.raises(TypeError, match="strings"):
        Tokenizer().fit([1, 2])
