"""Optimizers that update one flat parameter buffer from one flat gradient buffer.

The network keeps every parameter as a view into a single 1-D array and
every gradient in a mirror of it, so an optimizer step is one fused C pass
(Adam) or a handful of whole-array numpy operations (SGD). The optimizer
does not hold the parameter buffer (``step(params, grad)`` takes it), which
keeps it picklable on its own and lets the estimator swap buffers without
rebinding anything.

Semantics follow ``torch.optim`` exactly (weight decay is the coupled L2
form: ``grad += weight_decay * params``), so a test can compare step by step.
All state arrays are allocated once, on the first step; a step allocates
nothing beyond numpy scalar temporaries. SGD's ``step`` uses ``grad`` as
scratch when ``weight_decay`` is non-zero (it adds the decay term in place);
Adam's leaves ``grad`` as it is.
"""

import math

import numpy as np

from . import _kernels
from ._validation import Int, Real

__all__ = ["Adam", "SGD", "clip_grad_norm", "make_optimizer"]


def _check_buffers(params, grad):
    if not (isinstance(params, np.ndarray) and isinstance(grad, np.ndarray)):
        raise TypeError("params and grad must be numpy arrays")
    if params.ndim != 1 or grad.ndim != 1:
        raise ValueError(
            f"params and grad must be 1-D, got shapes {params.shape} and {grad.shape}"
        )
    if params.shape != grad.shape:
        raise ValueError(
            f"params and grad must have the same shape, got {params.shape} and {grad.shape}"
        )
    if params.dtype != grad.dtype or params.dtype not in (np.float32, np.float64):
        raise TypeError(
            "params and grad must share a float32 or float64 dtype, got "
            f"{params.dtype} and {grad.dtype}"
        )


_THREADS = Int(1)


def _check_threads(n_threads):
    return _THREADS.check("n_threads", n_threads)


def _check_float(value, name, low=0.0, high=None, low_open=False, high_open=False):
    return Real(low, high, low_open, high_open).check(name, value)


class Adam:
    """Adam (Kingma & Ba 2015) with torch.optim.Adam's update formula.

    ``p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)``
    """

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
        self.lr = _check_float(lr, "learning_rate", 0.0, low_open=True)
        self.beta1 = _check_float(beta1, "beta1", 0.0, 1.0, high_open=True)
        self.beta2 = _check_float(beta2, "beta2", 0.0, 1.0, high_open=True)
        self.eps = _check_float(eps, "eps", 0.0, low_open=True)
        self.weight_decay = _check_float(weight_decay, "weight_decay", 0.0)
        self.t = 0
        self.m = None
        self.v = None

    def _init_state(self, params):
        if self.m is None or self.m.shape != params.shape or self.m.dtype != params.dtype:
            self.m = np.zeros_like(params)
            self.v = np.zeros_like(params)
            self.t = 0

    def step(self, params, grad, n_threads=1):
        """One step, in place on ``params``, in one fused pass over the buffers
        (``_kernels.adam``; the same result for any ``n_threads``)."""
        _check_buffers(params, grad)
        n_threads = _check_threads(n_threads)
        self._init_state(params)
        t = self.t + 1   # counted only once the kernel has taken the buffers
        step_size = self.lr / (1.0 - self.beta1 ** t)
        bc2_sqrt = math.sqrt(1.0 - self.beta2 ** t)
        _kernels.adam(params, grad, self.m, self.v, step_size, self.beta1, self.beta2,
                      self.eps, bc2_sqrt, self.weight_decay, n_threads)
        self.t = t


class SGD:
    """Stochastic gradient descent with optional (Nesterov) momentum.

    torch.optim.SGD's formula with dampening 0: ``b = mu * b + g`` (``b = g``
    on the first step), ``g = g + mu * b`` if nesterov else ``b``,
    ``p -= lr * g``.
    """

    def __init__(self, lr=1e-2, momentum=0.0, nesterov=False, weight_decay=0.0):
        self.lr = _check_float(lr, "learning_rate", 0.0, low_open=True)
        self.momentum = _check_float(momentum, "momentum", 0.0, 1.0, high_open=True)
        self.nesterov = bool(nesterov)
        if self.nesterov and self.momentum == 0.0:
            raise ValueError("nesterov=True needs momentum > 0")
        self.weight_decay = _check_float(weight_decay, "weight_decay", 0.0)
        self.t = 0
        self.buf = None
        self._tmp = None

    def step(self, params, grad, n_threads=1):
        """One step, in place on ``params`` (``n_threads`` is checked but
        unused: a few numpy passes)."""
        _check_buffers(params, grad)
        _check_threads(n_threads)
        if self._tmp is None or self._tmp.shape != params.shape or self._tmp.dtype != params.dtype:
            self._tmp = np.empty_like(params)
        tmp = self._tmp
        if self.weight_decay:
            np.multiply(params, self.weight_decay, out=tmp)
            grad += tmp
        self.t += 1
        direction = grad
        if self.momentum:
            if self.buf is None or self.buf.shape != params.shape or self.buf.dtype != params.dtype:
                self.buf = np.array(grad, copy=True)
            else:
                self.buf *= self.momentum
                self.buf += grad
            if self.nesterov:
                np.multiply(self.buf, self.momentum, out=tmp)
                grad += tmp
            else:
                direction = self.buf
        np.multiply(direction, self.lr, out=tmp)
        params -= tmp

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_tmp"] = None  # scratch, rebuilt on the next step
        return state


def grad_norm(flat_grad):
    """Global L2 norm of a 1-D gradient, summed in double in a fixed order: the
    same for any thread count (a BLAS dot is not), and no BLAS worker threads
    left spinning beside the kernels' own."""
    g = flat_grad
    if g.dtype not in (np.float32, np.float64) or not g.flags.c_contiguous:
        g = np.ascontiguousarray(g, dtype=np.float64)
    return math.sqrt(_kernels.sum_squares(g))


def clip_grad_norm(flat_grad, max_norm):
    """Scale ``flat_grad`` in place so its global L2 norm is at most ``max_norm``.

    Same rule as ``torch.nn.utils.clip_grad_norm_``: the scale is
    ``max_norm / (norm + 1e-6)`` when that is below 1. Returns the norm before
    clipping (a Python float; NaN or inf is returned as is and nothing is
    scaled, so the caller can report divergence).
    """
    if not isinstance(flat_grad, np.ndarray) or flat_grad.ndim != 1:
        raise ValueError("flat_grad must be a 1-D numpy array")
    max_norm = _check_float(max_norm, "clip_norm", 0.0, low_open=True)
    norm = grad_norm(flat_grad)
    if not math.isfinite(norm):
        return norm
    coef = max_norm / (norm + 1e-6)
    if coef < 1.0:
        flat_grad *= coef
    return norm


def same_settings(opt, name, learning_rate, weight_decay=0.0, momentum=0.9):
    """Whether ``opt`` is what make_optimizer(name, ...) would build (its state aside)."""
    if name == "adam":
        return isinstance(opt, Adam) and (opt.lr, opt.weight_decay) == (learning_rate,
                                                                         weight_decay)
    return isinstance(opt, SGD) and (opt.lr, opt.weight_decay, opt.momentum) == (
        learning_rate, weight_decay, momentum)


def make_optimizer(name, learning_rate, weight_decay=0.0, momentum=0.9):
    """Build an optimizer from the estimator's ``optimizer`` string."""
    if name == "adam":
        return Adam(lr=learning_rate, weight_decay=weight_decay)
    if name == "sgd":
        return SGD(lr=learning_rate, momentum=momentum, weight_decay=weight_decay)
    raise ValueError(f'optimizer must be "adam" or "sgd", got {name!r}')
