"""FALLBACK training step, used only while ``fastlstm.LSTMRegressor`` does not exist.

When the estimators are importable (``fastlstm.LSTMRegressor``), the benchmark
times ``LSTMRegressor(...).partial_fit(X, y)`` on one batch instead, and this
file is not used. ``benchlib.fastlstm_train_impl()`` picks automatically.

One step here is what the estimator does for one batch, written by hand on the
public layer API:

    y, (h_n, c_n), cache = layer.forward(x, lengths=lengths)     # training forward
    pred = concat(h_n[last layer, all directions]) @ w + b          # dense head, numpy
    loss = mean((pred - target)^2)                                  # MSE
    layer.backward(cache, None, dh_n=dL/dh_n, grad_out=grad)        # BPTT
    Adam over a flat_params-sized buffer bound with layer.bind_parameters
    (numpy, in place), then layer.params_updated(); Adam over the head too

The head reads the final hidden state h_n, which for full-length sequences is
the output at the last step (as PyTorch's ``out[:, -1]``) and for
variable-length batches the output at each sequence's last real step.
"""
import numpy as np

import fastlstm

LABEL = "fallback: layer.forward(train)+numpy dense head+MSE+layer.backward+numpy Adam"


class NumpyAdam:
    """torch.optim.Adam's update on one flat float32 array, in place, no allocation per step."""

    def __init__(self, params, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        self.p, self.lr, self.b1, self.b2, self.eps = params, lr, beta1, beta2, eps
        self.m = np.zeros_like(params)
        self.v = np.zeros_like(params)
        self.tmp = np.empty_like(params)
        self.t = 0

    def step(self, g):
        self.t += 1
        b1, b2 = self.b1, self.b2
        self.m *= b1
        self.m += (1 - b1) * g
        self.v *= b2
        np.multiply(g, g, out=self.tmp)
        self.tmp *= (1 - b2)
        self.v += self.tmp
        bc1 = 1 - b1 ** self.t
        bc2 = 1 - b2 ** self.t
        np.sqrt(self.v, out=self.tmp)
        self.tmp /= np.sqrt(bc2)
        self.tmp += self.eps
        np.divide(self.m, self.tmp, out=self.tmp)
        self.tmp *= self.lr / bc1
        self.p -= self.tmp


class FallbackTrainStep:
    """Callable: one training step of LSTM -> Linear(D*H, 1) on the last step -> MSE -> Adam."""

    label = LABEL

    def __init__(self, I, H, num_layers=1, bidirectional=False, n_threads=None, seed=0):
        self.layer = fastlstm.LSTM(I, H, num_layers=num_layers, bidirectional=bidirectional,
                                   dtype="float32", n_threads=n_threads, random_state=seed)
        self.D = 2 if bidirectional else 1
        self.H = H
        rng = np.random.default_rng(seed + 1)
        k = 1.0 / np.sqrt(self.D * H)
        self.head = rng.uniform(-k, k, self.D * H + 1).astype(np.float32)   # weights then bias
        # the layer's own flat_params is read-only: give it a buffer we own and update
        self.params = np.array(self.layer.flat_params, dtype=np.float32)
        self.layer.bind_parameters(self.params)
        self.grad = np.empty_like(self.params)
        self.head_grad = np.empty_like(self.head)
        self.opt = NumpyAdam(self.params)
        self.head_opt = NumpyAdam(self.head)

    def __call__(self, x, target, lengths=None):
        D, H = self.D, self.H
        _, (h_n, _), cache = self.layer.forward(x, lengths=lengths)
        B = x.shape[0]
        feats = np.concatenate([h_n[-D + d] for d in range(D)], axis=1) if D > 1 else h_n[-1]
        w, b = self.head[:-1], self.head[-1]
        pred = feats @ w + b                                     # (B,)
        diff = pred - target
        loss = float(np.mean(diff * diff))
        g = (2.0 / B) * diff                                     # dL/dpred
        self.head_grad[:-1] = feats.T @ g
        self.head_grad[-1] = g.sum()
        dfeats = np.outer(g, w).astype(np.float32, copy=False)   # (B, D*H)
        dh_n = np.zeros_like(h_n)
        for d in range(D):
            dh_n[h_n.shape[0] - D + d] = dfeats[:, d * H:(d + 1) * H]
        self.layer.backward(cache, None, dh_n=dh_n, grad_out=self.grad)
        self.opt.step(self.grad)
        if hasattr(self.layer, "params_updated"):
            self.layer.params_updated()          # inference would repack the weights
        self.head_opt.step(self.head_grad)
        return loss
