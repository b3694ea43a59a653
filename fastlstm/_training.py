"""The training loop of the estimators: epochs over mini-batches, early
stopping, divergence checks, and fits that never leave a half-fitted
estimator behind."""

import copy
import logging
import math
import threading
import time
import warnings

import numpy as np

from . import exceptions as _exc
from ._threads import claim
from .network import loss_and_grad
from .optim import clip_grad_norm, grad_norm

PREDICT_CHUNK = 2048   # rows per forward when predicting or validating
_log = logging.getLogger("fastlstm")


class TrainingMixin:
    """Training for an estimator that holds ``_network`` and ``_optimizer`` and
    defines ``_loss_name`` (and, for a loss that takes arguments, such as the
    quantile loss, ``_loss_options``: keywords of ``loss_and_grad``); ``p`` is
    its validated parameters (a dict)."""

    _loss_options = {}   # read only

    def _guarded_fit(self, first, body):
        """Run body(), a fit (first: one that builds a new model), so that it never
        leaves a half-fitted estimator (_after_failed_fit). One fit at a time per
        estimator; predict() in another thread meanwhile sees either a clear error
        (a new model is being built) or the weights after some whole optimizer
        step (training continues in place)."""
        token = {"new_model": first, "thread": threading.get_ident()}
        if self.__dict__.setdefault("_fit_in_progress", token) is not token:
            raise RuntimeError(f"{type(self).__name__}: fit or partial_fit is already running on "
                               "this estimator in another thread")
        # what the estimator was before this fit, to go back to if it fails
        # before finishing an epoch (a new model replaces attributes, it does
        # not write into the old ones)
        before = dict(self.__dict__) if first else None
        try:
            return body()
        except BaseException as e:
            self._after_failed_fit(e, first, before)
            raise
        finally:
            del self.__dict__["_fit_in_progress"]

    def _after_failed_fit(self, exc, first, before):
        """Never leave a half-fitted estimator: _train has put back the weights of
        the last whole epoch; a new model with no whole epoch is dropped and the
        estimator is what it was before the fit. Says which."""
        name = type(self).__name__
        if first and self.__dict__.get("n_iter_", 0) == 0:
            self.__dict__.clear()
            self.__dict__.update(before)
            if not isinstance(exc, (_exc.DivergenceError, KeyboardInterrupt)):
                return           # bad input and the like: nothing was trained
            outcome = (f"{name} was left as it was before this fit ("
                       + ("its previous model" if hasattr(self, "_network") else "unfitted")
                       + "): no epoch finished.")
        elif isinstance(exc, (_exc.DivergenceError, KeyboardInterrupt)):
            outcome = (f"{name} keeps the weights from the end of epoch {self.n_iter_}, "
                       "its last whole epoch.")
        else:
            return
        if isinstance(exc, KeyboardInterrupt):
            warnings.warn(f"fit interrupted; {outcome}", RuntimeWarning, stacklevel=4)
        else:
            exc.args = (f"{exc.args[0]} {outcome}",) + exc.args[1:]

    def _split_validation(self, Xa, lengths, Y, p, weights=None):
        """(X, lengths, Y, weights) of the training part and (X, lengths, Y) of a
        random validation part (validation losses are unweighted)."""
        n = Xa.shape[0]
        n_val = int(math.ceil(p["validation_fraction"] * n))
        if n_val < 1 or n - n_val < 1:
            raise ValueError(
                f"{type(self).__name__}: early_stopping holds out validation_fraction="
                f"{p['validation_fraction']} of the {n} samples, which leaves "
                f"{n - n_val} for training and {n_val} for validation; both need at least 1"
            )
        perm = self._split_rng.permutation(n)
        vi, ti = np.sort(perm[:n_val]), np.sort(perm[n_val:])
        lv = None if lengths is None else lengths[vi]
        lt = None if lengths is None else lengths[ti]
        wt = None if weights is None else weights[ti]
        return Xa[ti], lt, Y[ti], wt, (Xa[vi], lv, Y[vi])

    def _batch(self, Xa, lengths, Y, idx):
        Xb, Yb = Xa[idx], Y[idx]
        lb, mask = None, None
        if lengths is not None:
            lb = lengths[idx]
            Tb = max(int(lb.max()), 1)
            Xb = Xb[:, :Tb]
            if self._network.spec.sequence_output:
                Yb = Yb[:, :Tb]
                mask = np.arange(Tb)[None, :] < lb[:, None]
            if np.all(lb == Tb):
                lb = None
        return Xb, lb, Yb, mask

    def _train(self, Xa, lengths, Y, val, p, epochs, use_stopping, cache=None, weights=None):
        """Train for ``epochs`` epochs. ``cache``: a spent training cache of this
        network whose memory the first batch may recycle. Returns the last
        batch's cache (spent)."""
        net = self._network
        opt = self._optimizer
        n_threads = net.n_threads     # claimed per step (None: shared with other calls)
        bs = min(p["batch_size"], Xa.shape[0])
        name = type(self).__name__
        restore = use_stopping and val is not None and p["restore_best_weights"]
        best_params = None
        for epoch in range(epochs):
            # the weights and optimizer state after the last whole epoch: a
            # diverged or interrupted epoch leaves nothing of itself behind
            checkpoint = (net.params.copy(), copy.deepcopy(opt))
            try:
                epoch_loss, val_loss, val_score, cache = self._train_epoch(
                    epoch, epochs, Xa, lengths, Y, val, p, cache, net, opt, n_threads, bs,
                    weights)
            except BaseException:
                with net.updating():
                    net.params[...] = checkpoint[0]
                self._optimizer = opt = checkpoint[1]
                raise
            del checkpoint
            self.loss_curve_.append(epoch_loss)
            self.n_iter_ += 1
            if val_loss is not None:
                self.validation_loss_curve_.append(val_loss)
                self.validation_scores_.append(val_score)
            monitored = epoch_loss if val_loss is None else val_loss
            if monitored > self.best_loss_ - p["tol"]:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if monitored < self.best_loss_:
                self.best_loss_ = monitored
                if restore:
                    best_params = net.params.copy()
            logs = {"epoch": self.n_iter_, "loss": epoch_loss, "val_loss": val_loss,
                    "val_score": val_score}
            # every callback sees every epoch, even once one has asked to stop
            stop = [cb for cb in p["callbacks"] if cb(self, logs)]
            if stop:
                self._report(p, f"{name}: stopped after epoch {self.n_iter_} by the callback "
                             f"{stop[0]!r}.")
                break
            if use_stopping and self._no_improvement_count >= p["n_iter_no_change"]:
                what = "Validation loss" if val_loss is not None else "Training loss"
                self._report(p, f"{name}: {what} did not improve more than tol={p['tol']} for "
                             f"{p['n_iter_no_change']} consecutive epochs. Stopping.")
                break
        if restore and best_params is not None:
            with net.updating():
                net.params[...] = best_params
        self._no_improvement_count = 0 if use_stopping else self._no_improvement_count
        return cache

    def _train_epoch(self, epoch, epochs, Xa, lengths, Y, val, p, cache, net, opt, n_threads, bs,
                     weights):
        """One pass over the data; returns (mean loss (weighted by ``weights``, (n,) or
        None), validation loss or None, spent cache)."""
        n = Xa.shape[0]
        t0 = time.perf_counter()
        order = self._shuffle_rng.permutation(n) if p["shuffle"] else np.arange(n)
        total = 0.0
        for b, start in enumerate(range(0, n, bs)):
            idx = order[start:start + bs]
            Xb, lb, Yb, mask = self._batch(Xa, lengths, Y, idx)
            # the previous batch's cache is spent: recycle its activation memory
            out, cache = net.forward(Xb, lb, train=True, rng=self._dropout_rng, reuse=cache)
            wb = None if weights is None else weights[idx]
            loss, dout = loss_and_grad(self._loss_name, out, Yb, mask, wb, **self._loss_options)
            if not math.isfinite(loss):
                self._diverged(epoch, b, "loss", loss, p)
            net.backward(cache, dout)
            if p["clip_norm"] is not None:
                norm = clip_grad_norm(net.grad, p["clip_norm"])
            else:
                norm = grad_norm(net.grad)
            if not math.isfinite(norm):
                self._diverged(epoch, b, "gradient norm", norm, p)
            with net.updating(), claim(n_threads) as nt:
                opt.step(net.params, net.grad, nt)
            total += loss * (len(idx) if wb is None else float(wb.sum()))
        epoch_loss = total / (n if weights is None else float(weights.sum()))
        if not math.isfinite(epoch_loss):
            self._diverged(epoch, None, "mean loss", epoch_loss, p)
        val_loss = val_score = None
        if val is not None:
            val_loss, val_score = self._eval(*val)
            if not math.isfinite(val_loss):
                self._diverged(epoch, None, "validation loss", val_loss, p)
        vl = "" if val_loss is None else f", val_loss {val_loss:.6f}, val_score {val_score:.6f}"
        self._report(p, f"{type(self).__name__} epoch {epoch + 1}/{epochs}: "
                     f"loss {epoch_loss:.6f}{vl}, {time.perf_counter() - t0:.2f}s")
        return epoch_loss, val_loss, val_score, cache

    @staticmethod
    def _report(p, line):
        """A line of training progress: always to the "fastlstm" logger (INFO), and
        to stdout as well with verbose."""
        _log.info("%s", line)
        if p["verbose"]:
            print(line, flush=True)

    def _diverged(self, epoch, batch, what, value, p):
        where = f"epoch {self.n_iter_ + 1}" + ("" if batch is None else f", batch {batch + 1}")
        hint = (f"lower learning_rate (now {p['learning_rate']}), set clip_norm "
                f"(now {p['clip_norm']}; e.g. clip_norm=1.0), or standardise X and y")
        if p["activation"] == "relu":
            hint += "; activation='relu' is unbounded and usually needs a smaller learning_rate"
        raise _exc.DivergenceError(
            f"{type(self).__name__}: training diverged at {where}: the {what} became {value}. "
            f"To fix it, {hint}."
        )

    def _eval(self, Xv, lv, Yv):
        """(validation loss, validation score): the loss training minimises, and
        the estimator's score (higher is better) of the same outputs."""
        out = self._network.predict_raw(Xv, lv, chunk=PREDICT_CHUNK)
        mask = None
        if self._network.spec.sequence_output and lv is not None:
            mask = np.arange(out.shape[1])[None, :] < lv[:, None]
        loss, _ = loss_and_grad(self._loss_name, out, Yv.astype(out.dtype, copy=False)
                                if Yv.dtype.kind == "f" else Yv, mask, **self._loss_options)
        return loss, float(self._validation_score(out, Yv, mask, loss))

    def _validation_score(self, out, Y, mask, loss):
        """The score of network outputs ``out`` on targets ``Y`` (as training sees
        them); by default the negative loss. Regressor: R^2; classifier: accuracy."""
        return -loss
