"""PyTorch modules of fitted fastlstm models, made by ``fastlstm.export``.

Imported only by ``to_torch`` (it imports torch); module-level classes, so
that the modules pickle (``torch.save``). Each computes what the estimator's
ONNX model does (see fastlstm.export); ``Network`` is the embedding ->
recurrent layers -> dense head of fastlstm.network, raw outputs.
"""
import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .spec import layer_param_shapes

__all__ = ["Network", "Regressor", "Classifier", "Forecaster", "rnn_module", "load",
           "compact_token_ids"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def rnn_module(layer, input_size, hidden_size, num_layers, bidirectional, dropout, dtype,
               batch_first=True):
    """nn.LSTM or nn.GRU (``layer``) of dtype "float32"/"float64"."""
    cls = {"LSTM": nn.LSTM, "GRU": nn.GRU}[layer]
    return cls(input_size, hidden_size, num_layers=num_layers, bidirectional=bidirectional,
               batch_first=batch_first, dropout=dropout if num_layers > 1 else 0.0,
               dtype=_DTYPES[dtype])


def load(module, arrays):
    """``module.load_state_dict`` (strict) from numpy arrays."""
    module.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v))
                            for k, v in arrays.items()}, strict=True)


def compact_token_ids(ids):
    """fastlstm.data._compact_token_ids in torch: (ids with each row's non-zero ids
    first in their order, zeros after; lengths (B,) int64)."""
    ids = torch.as_tensor(ids)
    real = ids != 0
    lengths = real.sum(dim=1)
    order = torch.argsort((~real).to(torch.int8), dim=1, stable=True)
    compact = torch.gather(ids, 1, order)
    steps = torch.arange(ids.shape[1], device=ids.device)
    return torch.where(steps[None, :] < lengths[:, None], compact, 0), lengths


class Network(nn.Module):
    """Embedding (token ids) -> recurrent layers -> dense head, fastlstm.network's.

    Submodules: ``embedding`` (nn.Embedding, padding_idx=0; token ids only),
    ``rnn`` (one nn.LSTM/nn.GRU when every layer has the same width, else an
    nn.ModuleList of one-layer ones), ``dropout`` (training mode only: between
    layers and before the head, as fastlstm trains) and ``head`` (nn.Linear).
    """

    def __init__(self, spec, layer):
        super().__init__()
        dt = _DTYPES[spec.dtype]
        self.num_directions = spec.num_directions
        self.sequence_output = spec.sequence_output
        self.embedding = None
        if spec.embedding_dim is not None:
            self.embedding = nn.Embedding(spec.vocab_size, spec.embedding_dim, padding_idx=0,
                                          dtype=dt)
        sizes, in_size = spec.hidden_sizes, spec.recurrent_input_size
        # our flat-buffer names -> this module's state_dict names
        self._names = {"embedding": "embedding.weight", "head.weight": "head.weight",
                       "head.bias": "head.bias"}
        if len(set(sizes)) == 1:
            self.rnn = rnn_module(layer, in_size, sizes[0], len(sizes), spec.bidirectional,
                                  spec.dropout, spec.dtype)
            self._names.update({n: "rnn." + n for n, _ in spec.layer_param_shapes()})
        else:
            stack = iter(spec.layer_param_shapes())      # layer by layer, as below
            mods = []
            for k, H in enumerate(sizes):
                mods.append(rnn_module(layer, in_size, H, 1, spec.bidirectional, 0.0,
                                       spec.dtype))
                for name, _ in layer_param_shapes(spec.cell, in_size, (H,), spec.bidirectional):
                    self._names[next(stack)[0]] = f"rnn.{k}.{name}"
                in_size = spec.num_directions * H
            self.rnn = nn.ModuleList(mods)
        self.dropout = nn.Dropout(spec.dropout)
        self.head = nn.Linear(spec.feature_size, spec.n_outputs, dtype=dt)

    def param_name(self, name):
        """This module's state_dict name of the flat-buffer parameter ``name``."""
        return self._names[name]

    def forward(self, x, lengths=None):
        """x (B, T, I) features, or (B, T) int64 token ids (0 = padding wherever it
        stands, skipped); lengths (B,) of feature sequences padded at the end, or
        None (all T). Returns (B, K), or (B, T, K) zero past each length."""
        if self.embedding is not None:
            x, lengths = compact_token_ids(x)
            x = self.embedding(x)
        B, T = x.shape[0], x.shape[1]
        klen = None
        if lengths is not None:
            lengths = torch.as_tensor(lengths, dtype=torch.int64).cpu()
            klen = lengths.clamp(min=1)     # length 0: one step, then a zero head input
        y, h_last = self._recurrent(x, klen, T)
        if self.sequence_output:
            out = self.head(self.dropout(y))
            if lengths is not None:
                real = torch.arange(T)[None, :] < lengths[:, None]
                out = out * real[..., None].to(out.dtype)
            return out
        feat = h_last.transpose(0, 1).reshape(B, -1)      # [forward h_n, reverse h_n]
        if lengths is not None:
            feat = feat * (lengths > 0)[:, None].to(feat.dtype)
        return self.head(self.dropout(feat))

    def _recurrent(self, x, klen, T):
        """(output of the last layer (B, T, D*H), its h_n (D, B, H))."""
        if isinstance(self.rnn, nn.ModuleList):
            for k, mod in enumerate(self.rnn):
                x, h = _run(mod, self.dropout(x) if k else x, klen, T)
        else:
            x, h = _run(self.rnn, x, klen, T)
        return x, h[-self.num_directions:]


def _run(mod, x, klen, T):
    if klen is None:
        y, state = mod(x)
    else:
        packed = pack_padded_sequence(x, klen, batch_first=True, enforce_sorted=False)
        y, state = mod(packed)
        y, _ = pad_packed_sequence(y, batch_first=True, total_length=T)
    return y, state[0] if isinstance(state, tuple) else state


class Regressor(nn.Module):
    """``LSTMRegressor.predict``: (B,) for 1-D y, (B, k), or (B, T, k)."""

    def __init__(self, network, squeeze):
        super().__init__()
        self.network = network
        self.squeeze = bool(squeeze)

    def forward(self, X, lengths=None):
        out = self.network(X, lengths)
        return out[:, 0] if self.squeeze else out


class Classifier(nn.Module):
    """``LSTMClassifier.predict_proba``: (B, n_classes), columns as ``classes_``."""

    def __init__(self, network):
        super().__init__()
        self.network = network

    def forward(self, X, lengths=None):
        out = self.network(X, lengths)
        if out.shape[1] == 1:               # two classes: one logit
            p1 = torch.sigmoid(out)
            return torch.cat([1 - p1, p1], dim=1)
        return torch.softmax(out, dim=1)


class Forecaster(nn.Module):
    """``LSTMForecaster.predict(history)`` per row: history (B, n_time) (univariate)
    or (B, n_time, n_vars), float64, n_time >= window (+1 with difference) ->
    (B, horizon) or (B, horizon, n_vars) float64."""

    def __init__(self, network, mean, scale, window, horizon, strategy, difference, univariate):
        super().__init__()
        self.network = network
        self.register_buffer("mean", torch.as_tensor(np.asarray(mean, np.float64)))
        self.register_buffer("scale", torch.as_tensor(np.asarray(scale, np.float64)))
        self.window, self.horizon = int(window), int(horizon)
        self.strategy, self.difference = strategy, bool(difference)
        self.univariate = bool(univariate)

    def forward(self, history):
        hist = torch.as_tensor(history, dtype=torch.float64)
        if self.univariate:
            hist = hist.unsqueeze(-1)
        need = self.window + int(self.difference)
        if hist.ndim != 3 or hist.shape[1] < need or hist.shape[2] != self.mean.shape[0]:
            raise ValueError(f"history must be (batch, n_time{'' if self.univariate else ', '}"
                             f"{'' if self.univariate else self.mean.shape[0]}) with n_time >= "
                             f"{need}, got shape {tuple(torch.as_tensor(history).shape)}")
        hist = hist[:, -need:]
        base = hist[:, 1:] - hist[:, :-1] if self.difference else hist
        z = ((base - self.mean) / self.scale).to(self.network.head.weight.dtype)
        B, v = z.shape[0], z.shape[2]
        if self.strategy == "direct":
            fz = self.network(z).reshape(B, self.horizon, v)
        else:
            steps = []
            for _ in range(self.horizon):
                nxt = self.network(z)
                steps.append(nxt)
                z = torch.cat([z[:, 1:], nxt[:, None]], dim=1)
            fz = torch.stack(steps, dim=1)
        f = fz.to(torch.float64) * self.scale + self.mean
        if self.difference:
            f = hist[:, -1:] + torch.cumsum(f, dim=1)
        return f[..., 0] if self.univariate else f
