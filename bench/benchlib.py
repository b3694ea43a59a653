"""Shared machinery of the benchmarks: shapes, FLOP counts, one runner per
framework, thread pinning, the interleaved timer, the GEMM peak and the
machine description. Used by compare.py, threads.py and test_bench.py.

Every peer (torch, onnxruntime + onnx, tensorflow/keras) is imported lazily;
a missing one makes ``available(name)`` return False with a reason and the
scripts skip it with a message.

What is timed (what users call):

* fastlstm inference: ``layer(x)`` on batch-first x (B, T, I), returns y, (h, c).
* fastlstm training step: ``LSTMRegressor(...).partial_fit(X, y)`` on one batch.
* PyTorch inference: ``nn.LSTM(batch_first=True)(x)`` under
  ``torch.inference_mode()``; variable lengths: pack_padded_sequence ->
  LSTM -> pad_packed_sequence, all inside the timed call.
* PyTorch training step: zero_grad -> LSTM -> Linear(D*H, 1) on the last step
  (h_n for variable lengths) -> MSE -> backward -> Adam.step.
* ONNX Runtime inference: ``session.run`` of a model made of ONNX ``LSTM``
  nodes. ONNX is time-major: x is transposed to (T, B, I) once, OUTSIDE the
  timed region, and the outputs (Y (T, D, B, H), Y_h, Y_c) are left time-major.
* Keras 3 / TensorFlow inference: ``model.predict_on_batch(x)`` on
  ``Sequential([Input((T, I)), LSTM(H, return_sequences=True)])`` (the whole
  sequence, like the y we return; Keras does not return the states here).
  Training: ``train_on_batch`` on LSTM(H) -> Dense(1), Adam, MSE.

Reduced precision (inference only; ``make(..., precision=...)``):

* fastlstm: ``layer.quantize("bfloat16" | "int8")(x)``.
* PyTorch bfloat16: the nn.LSTM and x ``.to(torch.bfloat16)``.
* PyTorch int8: ``torch.ao.quantization.quantize_dynamic`` of the nn.LSTM with
  ``dtype=torch.qint8`` (int8 weights, activations quantized per call).
* ONNX Runtime int8: ``onnxruntime.quantization.quantize_dynamic`` of the same
  float32 graph as above with ``op_types_to_quantize=["LSTM"]``, which makes
  the LSTM node a com.microsoft ``DynamicQuantizeLSTM``.
"""
import contextlib
import gc
import io
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

from fastlstm.spec import direction_suffix, layer_param_shapes

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")     # before any TF import
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

FRAMEWORKS = ("fastlstm", "torch", "onnxruntime", "keras")
PEERS = FRAMEWORKS[1:]
MODES = ("infer", "train")
TRAIN_FRAMEWORKS = ("fastlstm", "torch", "keras")      # ORT is inference only
PRECISIONS = ("float32", "bfloat16", "int8")
# who has each reduced precision (inference only): Keras has no int8 LSTM, ORT's
# CPU LSTM no bfloat16
REDUCED_FRAMEWORKS = {"bfloat16": ("fastlstm", "torch"),
                      "int8": ("fastlstm", "torch", "onnxruntime")}


def timed_frameworks(mode, precision="float32"):
    """The frameworks that can run ``mode`` at ``precision``."""
    if precision != "float32":
        return REDUCED_FRAMEWORKS[precision] if mode == "infer" else ()
    return TRAIN_FRAMEWORKS if mode == "train" else FRAMEWORKS


# ---------------------------------------------------------------------------- shapes

class Case:
    """One benchmark shape. ``varlen``: lengths uniform in [10, T] (fixed seed)."""

    def __init__(self, name, I, H, T, B, desc, num_layers=1, bidirectional=False, varlen=False):
        self.name, self.I, self.H, self.T, self.B, self.desc = name, I, H, T, B, desc
        self.num_layers, self.bidirectional, self.varlen = num_layers, bidirectional, varlen

    @property
    def D(self):
        return 2 if self.bidirectional else 1

    def dims(self):
        s = f"I={self.I} H={self.H} T={self.T} B={self.B}"
        if self.num_layers > 1:
            s += f" L={self.num_layers}"
        if self.bidirectional:
            s += " bidir"
        if self.varlen:
            s += " len~U[10,T]"
        return s

    def data(self, seed=0):
        """x (B, T, I) float32, target (B,) float32, lengths (B,) int64 or None.
        Padded positions of variable-length x are exactly 0 (Keras' Masking needs that)."""
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((self.B, self.T, self.I)).astype(np.float32)
        target = rng.standard_normal(self.B).astype(np.float32)
        lengths = None
        if self.varlen:
            lengths = rng.integers(10, self.T + 1, self.B).astype(np.int64)
            lengths[0] = self.T          # the padded length is T
            for i, n in enumerate(lengths):
                x[i, n:] = 0.0
        return x, target, lengths

    def steps(self, lengths=None):
        """Sequence-steps actually computed: B*T, or sum(lengths) (useful FLOPs only)."""
        if self.varlen:
            if lengths is None:
                lengths = self.data()[2]
            return int(np.sum(lengths))
        return self.B * self.T

    def flops(self, mode="infer"):
        """Forward FLOPs = steps * sum over layers and directions of (2*in*4H + 2*H*4H);
        a training step counts 3x forward (the issue's convention)."""
        H, total = self.H, 0
        for layer in range(self.num_layers):
            inp = self.I if layer == 0 else self.D * H
            total += self.D * (2 * inp * 4 * H + 2 * H * 4 * H)
        f = self.steps() * total
        return 3 * f if mode == "train" else f

    def weights(self, seed=1):
        """PyTorch-named float32 weights, PyTorch's default init U(-1/sqrt(H), 1/sqrt(H))."""
        rng = np.random.default_rng(seed)
        k = 1.0 / math.sqrt(self.H)
        shapes = layer_param_shapes("lstm", self.I, (self.H,) * self.num_layers,
                                    self.bidirectional)
        w = {name: rng.uniform(-k, k, shape).astype(np.float32) for name, shape in shapes}
        return w


CASES = {c.name: c for c in [
    Case("a", 1, 50, 50, 32, "tutorial forecaster"),
    Case("b", 8, 128, 100, 64, "small"),
    Case("c", 64, 256, 100, 128, "medium"),
    Case("d", 128, 512, 50, 256, "GEMM-bound"),
    Case("e", 32, 128, 100, 1, "serving, batch 1"),
    Case("f", 32, 256, 1, 1, "one streaming step"),
    Case("var", 8, 128, 100, 64, "variable lengths U[10,100]", varlen=True),
    Case("bidi", 8, 128, 100, 64, "bidirectional, 2 layers", num_layers=2, bidirectional=True),
]}
DEFAULT_SHAPES = list(CASES)


def parse_shapes(text):
    names = [s.strip() for s in text.split(",") if s.strip()] if text else DEFAULT_SHAPES
    bad = [n for n in names if n not in CASES]
    if bad:
        raise SystemExit(f"unknown shape(s) {bad}; choose from {list(CASES)}")
    return [CASES[n] for n in names]


# ---------------------------------------------------------------------------- availability

_AVAIL = {}


def available(name):
    """(ok, reason) for a framework; imports it (TF/Keras only when asked)."""
    if name in _AVAIL:
        return _AVAIL[name]
    mods = {"fastlstm": ["fastlstm"], "torch": ["torch"], "onnxruntime": ["onnxruntime", "onnx"],
            "keras": ["tensorflow", "keras"]}[name]
    res = (True, "")
    for m in mods:
        try:
            __import__(m)
        except Exception as e:           # ImportError, or a broken install
            res = (False, f"{m} not importable ({type(e).__name__}: {e})".splitlines()[0])
            break
    if res[0] and name == "keras":
        import keras
        if keras.backend.backend() != "tensorflow":
            res = (False, f"keras backend is {keras.backend.backend()!r}, not tensorflow")
    _AVAIL[name] = res
    return res


def skip_message(name, mode=None):
    ok, why = available(name)
    return None if ok else f"skipping {name}{'' if mode is None else ' ' + mode}: {why}"


def versions():
    out = {"python": platform.python_version(), "numpy": np.__version__}
    for mod, key in [("fastlstm", "fastlstm"), ("torch", "torch"), ("onnxruntime", "onnxruntime"),
                     ("onnx", "onnx"), ("tensorflow", "tensorflow"), ("keras", "keras"),
                     ("threadpoolctl", "threadpoolctl")]:
        try:
            if mod in ("tensorflow", "keras") and mod not in sys.modules:
                # reading the version must not initialise TF before its threads are set
                from importlib.metadata import version, PackageNotFoundError
                try:
                    out[key] = version("tensorflow-cpu" if mod == "tensorflow" else mod)
                except PackageNotFoundError:
                    out[key] = version(mod)
                continue
            m = __import__(mod)
            out[key] = getattr(m, "__version__", "?")
        except Exception:
            out[key] = None
    return out


# ---------------------------------------------------------------------------- threads

_THREADS_SET = {}


def usable_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def fix_threads(nt, frameworks=FRAMEWORKS):
    """Pin every framework in this process to nt threads. Call once, before any peer op.

    * fastlstm: n_threads=nt passed to every layer / estimator (done by the runners).
    * numpy's BLAS (used by the estimator head): threadpoolctl limit to nt.
    * torch: torch.set_num_threads(nt); torch.set_num_interop_threads(1).
    * onnxruntime: per session, intra_op_num_threads=nt, inter_op_num_threads=1,
      execution_mode=ORT_SEQUENTIAL (done in make_ort_session).
    * TF: tf.config.threading.set_intra_op_parallelism_threads(nt) and
      set_inter_op_parallelism_threads(1) before any TF op -- TF cannot change
      them later, so a process serves ONE thread count (compare.py --all
      spawns one process per count).
    """
    try:
        from threadpoolctl import threadpool_limits
        _THREADS_SET["blas_limiter"] = threadpool_limits(limits=nt, user_api="blas")
    except ImportError:
        pass
    if "torch" in frameworks and available("torch")[0]:
        import torch
        torch.set_num_threads(nt)
        if not _THREADS_SET.get("torch_interop"):
            try:
                torch.set_num_interop_threads(1)
            except RuntimeError:
                pass                     # already set or pool started; intra-op is what matters
            _THREADS_SET["torch_interop"] = True
    if "keras" in frameworks and available("keras")[0]:
        import tensorflow as tf
        if "tf" not in _THREADS_SET:
            tf.config.threading.set_intra_op_parallelism_threads(nt)
            tf.config.threading.set_inter_op_parallelism_threads(1)
            _THREADS_SET["tf"] = nt
        elif _THREADS_SET["tf"] != nt:
            raise RuntimeError(f"TF threads already fixed at {_THREADS_SET['tf']} in this "
                               f"process; run one process per thread count")
    _THREADS_SET["nt"] = nt


def set_blas_threads(nt):
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(limits=nt, user_api="blas")
    except ImportError:
        pass


def suite_settings():
    """(threads, peers, budget_s) of the pytest-benchmark suite, from the environment."""
    threads = int(os.environ.get("FASTLSTM_BENCH_THREADS", "0") or 0) or usable_cpus()
    peers = [p for p in os.environ.get("FASTLSTM_BENCH_PEERS", "torch,onnxruntime").split(",")
             if p in PEERS]
    budget = float(os.environ.get("FASTLSTM_BENCH_BUDGET", "0.8"))
    return threads, peers, budget


# ---------------------------------------------------------------------------- fastlstm

def fastlstm_train_label():
    return "LSTMRegressor(...).partial_fit(X, y) on one batch"


def make_fastlstm_infer(case, w, x, lengths, nt, precision="float32"):
    import fastlstm
    layer = fastlstm.LSTM(case.I, case.H, num_layers=case.num_layers,
                          bidirectional=case.bidirectional, dtype="float32", n_threads=nt)
    layer.load_state_dict(w)
    if precision != "float32":
        layer = layer.quantize(precision)
    if lengths is None:
        fn = lambda: layer(x)                              # noqa: E731
    else:
        fn = lambda: layer(x, lengths=lengths)             # noqa: E731

    def output():
        return np.asarray(fn()[0])                         # (B, T, D*H)
    return fn, output


def make_fastlstm_train(case, x, target, lengths, nt):
    import fastlstm
    est = fastlstm.LSTMRegressor(hidden_sizes=(case.H,) * case.num_layers,
                                 bidirectional=case.bidirectional, batch_size=case.B,
                                 epochs=1, shuffle=False, n_threads=nt, random_state=0)
    X = x if lengths is None else [x[i, :n] for i, n in enumerate(lengths)]
    return lambda: est.partial_fit(X, target)              # noqa: E731


# ---------------------------------------------------------------------------- torch

def _torch_lstm(case, w=None):
    import torch
    m = torch.nn.LSTM(case.I, case.H, num_layers=case.num_layers, batch_first=True,
                      bidirectional=case.bidirectional)
    if w is not None:
        m.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in w.items()})
    return m


def _torch_quantize_int8(m):
    """PyTorch's dynamic int8 form of an nn.LSTM (raises if torch left it float)."""
    import torch
    # quantize_dynamic swaps the children of the module it is given, never the
    # module itself: a bare nn.LSTM would come back unchanged, still float32
    q = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(m), {torch.nn.LSTM},
                                               dtype=torch.qint8)[0]
    if not isinstance(q, torch.ao.nn.quantized.dynamic.LSTM):
        raise RuntimeError(f"quantize_dynamic left the LSTM as {type(q).__name__}")
    return q


def make_torch_infer(case, w, x, lengths, nt, precision="float32"):
    import torch
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    m = _torch_lstm(case, w).eval()
    xt = torch.from_numpy(x)
    if precision == "bfloat16":
        m, xt = m.to(torch.bfloat16), xt.to(torch.bfloat16)
    elif precision == "int8":
        m = _torch_quantize_int8(m)
    if lengths is None:
        def fn():
            with torch.inference_mode():
                return m(xt)
    else:
        lt = torch.from_numpy(lengths)

        def fn():
            with torch.inference_mode():
                packed = pack_padded_sequence(xt, lt, batch_first=True, enforce_sorted=False)
                out, (h, c) = m(packed)
                y, _ = pad_packed_sequence(out, batch_first=True, total_length=case.T)
                return y, (h, c)

    def output():
        return fn()[0].float().numpy()                      # bfloat16 has no numpy dtype
    return fn, output


def make_torch_train(case, x, target, lengths, nt):
    import torch
    from torch.nn.utils.rnn import pack_padded_sequence
    torch.manual_seed(0)
    lstm = _torch_lstm(case)
    head = torch.nn.Linear(case.D * case.H, 1)
    opt = torch.optim.Adam(list(lstm.parameters()) + list(head.parameters()), lr=1e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(target)
    lt = None if lengths is None else torch.from_numpy(lengths)
    D = case.D

    def step():
        opt.zero_grad(set_to_none=True)
        if lt is None:
            out, _ = lstm(xt)
            feat = out[:, -1]
        else:
            packed = pack_padded_sequence(xt, lt, batch_first=True, enforce_sorted=False)
            _, (h, _) = lstm(packed)
            feat = h[-1] if D == 1 else torch.cat([h[-2], h[-1]], dim=1)
        pred = head(feat).squeeze(-1)
        loss = torch.nn.functional.mse_loss(pred, yt)
        loss.backward()
        opt.step()
        return loss
    return step


# ---------------------------------------------------------------------------- onnxruntime

def build_onnx_lstm(case, w, opset=17):
    """Serialized ONNX model: one LSTM node per layer (direction forward or bidirectional).

    Inputs X (T, B, I) float32 [+ sequence_lens (B,) int32 when case.varlen];
    outputs Y (T, D, B, H), Y_h, Y_c (D, B, H) of the last layer. Between layers,
    Transpose+Reshape turn (T, D, B, H) into (T, B, D*H). Weights are reordered
    from PyTorch's gates (i, f, g, o) to ONNX's (i, o, f, c).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    H, D = case.H, case.D
    order = [0, 3, 1, 2]                       # ONNX i,o,f,c from torch i,f,g,o

    def reorder(a):
        blocks = np.split(a, 4, axis=0)
        return np.concatenate([blocks[i] for i in order], axis=0)

    nodes, inits = [], []
    inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, [case.T, case.B, case.I])]
    if case.varlen:
        inputs.append(helper.make_tensor_value_info("seq_lens", TensorProto.INT32, [case.B]))
    cur = "X"
    for layer in range(case.num_layers):
        sfx = [direction_suffix(layer, d) for d in range(D)]
        W = np.stack([reorder(w[f"weight_ih_{s}"]) for s in sfx])
        R = np.stack([reorder(w[f"weight_hh_{s}"]) for s in sfx])
        Bb = np.stack([np.concatenate([reorder(w[f"bias_ih_{s}"]), reorder(w[f"bias_hh_{s}"])])
                       for s in sfx])
        for nm, arr in ((f"W{layer}", W), (f"R{layer}", R), (f"B{layer}", Bb)):
            inits.append(numpy_helper.from_array(arr.astype(np.float32), nm))
        last = layer == case.num_layers - 1
        outs = ["Y", "Y_h", "Y_c"] if last else [f"Y{layer}", "", ""]
        nodes.append(helper.make_node(
            "LSTM", [cur, f"W{layer}", f"R{layer}", f"B{layer}",
                     "seq_lens" if case.varlen else ""], outs,
            hidden_size=H, direction="bidirectional" if D == 2 else "forward"))
        if not last:
            inits.append(numpy_helper.from_array(np.array([0, 0, -1], np.int64), f"shp{layer}"))
            nodes.append(helper.make_node("Transpose", [f"Y{layer}"], [f"Yt{layer}"],
                                          perm=[0, 2, 1, 3]))
            nodes.append(helper.make_node("Reshape", [f"Yt{layer}", f"shp{layer}"],
                                          [f"X{layer + 1}"]))
            cur = f"X{layer + 1}"
    outputs = [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [case.T, D, case.B, H]),
               helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, [D, case.B, H]),
               helper.make_tensor_value_info("Y_c", TensorProto.FLOAT, [D, case.B, H])]
    graph = helper.make_graph(nodes, f"lstm_{case.name}", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def make_ort_session(model_bytes, nt):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = nt
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(model_bytes, sess_options=so, providers=["CPUExecutionProvider"])


def quantize_onnx_lstm(model_bytes):
    """ONNX Runtime's dynamic int8 form of a model's LSTM nodes: DynamicQuantizeLSTM
    (int8 weights, activations quantized per call). Raises if an LSTM stays float."""
    import tempfile
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    with tempfile.TemporaryDirectory() as tmp:            # quantize_dynamic writes a file
        src, dst = os.path.join(tmp, "float32.onnx"), os.path.join(tmp, "int8.onnx")
        with open(src, "wb") as f:
            f.write(model_bytes)
        quantize_dynamic(src, dst, op_types_to_quantize=["LSTM"], weight_type=QuantType.QInt8)
        model = onnx.load(dst)
    ops = [n.op_type for n in model.graph.node]
    if "LSTM" in ops or "DynamicQuantizeLSTM" not in ops:
        raise RuntimeError(f"onnxruntime's quantize_dynamic left the LSTM float (nodes {ops})")
    return model.SerializeToString()


def make_ort_infer(case, w, x, lengths, nt, precision="float32"):
    model = build_onnx_lstm(case, w)
    if precision == "int8":
        model = quantize_onnx_lstm(model)
    sess = make_ort_session(model, nt)
    feeds = {"X": np.ascontiguousarray(x.transpose(1, 0, 2))}      # time-major, outside timing
    if lengths is not None:
        feeds["seq_lens"] = lengths.astype(np.int32)
    fn = lambda: sess.run(None, feeds)                              # noqa: E731

    def output():
        Y = fn()[0]                                                 # (T, D, B, H)
        return Y.transpose(2, 0, 1, 3).reshape(case.B, case.T, case.D * case.H)
    return fn, output


# ---------------------------------------------------------------------------- keras

def _keras_stack(case, return_sequences):
    import keras
    layers = [keras.Input((case.T, case.I), batch_size=case.B)]
    if case.varlen:
        layers.append(keras.layers.Masking(mask_value=0.0))
    for layer in range(case.num_layers):
        seq = return_sequences or layer < case.num_layers - 1
        lstm = keras.layers.LSTM(case.H, return_sequences=seq)
        layers.append(keras.layers.Bidirectional(lstm) if case.bidirectional else lstm)
    return layers


def make_keras_infer(case, w, x, lengths, nt):
    import keras
    model = keras.Sequential(_keras_stack(case, True))
    rnn_layers = [lyr for lyr in model.layers if not isinstance(lyr, keras.layers.Masking)]
    for layer, kl in enumerate(rnn_layers):
        subs = [kl.forward_layer, kl.backward_layer] if case.bidirectional else [kl]
        for d, sub in enumerate(subs):
            sfx = direction_suffix(layer, d)
            # Keras gate order (i, f, c, o) equals PyTorch's (i, f, g, o)
            sub.set_weights([w[f"weight_ih_{sfx}"].T, w[f"weight_hh_{sfx}"].T,
                             w[f"bias_ih_{sfx}"] + w[f"bias_hh_{sfx}"]])
    fn = lambda: model.predict_on_batch(x)                          # noqa: E731

    def output():
        return np.asarray(fn())
    return fn, output


def make_keras_train(case, x, target, lengths, nt):
    import keras
    keras.utils.set_random_seed(0)
    model = keras.Sequential(_keras_stack(case, False) + [keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3), loss="mse")
    y2 = target.reshape(-1, 1)
    return lambda: model.train_on_batch(x, y2)                      # noqa: E731


MAKERS = {
    ("fastlstm", "infer"): make_fastlstm_infer, ("fastlstm", "train"): make_fastlstm_train,
    ("torch", "infer"): make_torch_infer, ("torch", "train"): make_torch_train,
    ("onnxruntime", "infer"): make_ort_infer,
    ("keras", "infer"): make_keras_infer, ("keras", "train"): make_keras_train,
}


GEMV = "numpy GEMV"    # not a peer: the memory-bound floor of one streaming step


def make_gemv_bound(case):
    """One streaming step's floor: numpy's (BLAS) product of the same [W_ih, W_hh]
    (4H, I+H) with one vector, as a timed callable (BLAS threads as fix_threads set)."""
    w = case.weights()
    W = np.ascontiguousarray(np.concatenate([w["weight_ih_l0"], w["weight_hh_l0"]], axis=1))
    v = np.random.default_rng(2).standard_normal(W.shape[1]).astype(np.float32)
    out = np.empty(W.shape[0], np.float32)
    return lambda: np.dot(W, v, out=out)


def make(fw, mode, case, nt, seed=0, precision="float32"):
    """Timed callable (and, for inference, an output getter giving (B, T, D*H) numpy)."""
    x, target, lengths = case.data(seed)
    if fw not in timed_frameworks(mode, precision):
        raise ValueError(f"{fw} does not run {mode} at {precision}")
    if precision != "float32":
        return MAKERS[(fw, mode)](case, case.weights(), x, lengths, nt, precision=precision)
    if mode == "infer":
        return MAKERS[(fw, mode)](case, case.weights(), x, lengths, nt)
    return MAKERS[(fw, mode)](case, x, target, lengths, nt), None


def check_outputs(case, outs, ref="torch", tol=1e-4):
    """Max |diff| of each framework's inference output against ref (real steps only).
    Returns {fw: maxdiff}; raises AssertionError when fastlstm differs by more than tol."""
    if ref not in outs:
        ref = "fastlstm"
    _, _, lengths = case.data()
    mask = None
    if lengths is not None:
        mask = (np.arange(case.T)[None, :] < lengths[:, None])[:, :, None]
    base = outs[ref].astype(np.float64)
    diffs = {}
    for fw, y in outs.items():
        if fw == ref:
            continue
        y = np.asarray(y, np.float64)
        if y.shape != base.shape:
            raise AssertionError(f"shape {case.name}: {fw} output {y.shape} vs {ref} {base.shape}")
        d = np.abs(y - base)
        if mask is not None:
            d = d * mask
        diffs[fw] = float(d.max())
    for fw, dv in diffs.items():
        if dv > tol:
            raise AssertionError(
                f"shape {case.name}: {fw} inference output differs from {ref} by {dv:.3g} "
                f"(> {tol}); the comparison is broken")
    return diffs


def torch_lstm_ops(fn):
    """Names of the aten operators with rnn or lstm in them that one call of fn runs:
    aten::mkldnn_rnn_layer is oneDNN's RNN primitive, aten::quantized_lstm the
    dynamic int8 LSTM; aten::lstm alone is ATen's own loop of GEMMs."""
    from torch.autograd.profiler import profile
    with profile() as prof:
        fn()
    return sorted({e.name for e in prof.function_events if "rnn" in e.name or "lstm" in e.name})


# ---------------------------------------------------------------------------- timing

def interleaved(entries, reps, min_pass_s=0.1, gap_s=0.02, warmup=2, max_inner=100000,
                log=None):
    """Time several callables ALTERNATELY so machine noise hits all of them equally.

    entries: {key: fn} or {key: (fn, prepare)} where prepare() runs untimed before
    each of key's passes (e.g. to switch thread counts). Each fn is warmed up
    ``warmup`` times, then an inner count n is chosen so one pass lasts about
    min_pass_s. Each of ``reps`` passes runs every key once, in an order rotated
    from pass to pass, with gap_s idle seconds before each (lets the previous
    framework's spinning worker threads go to sleep) and gc disabled while
    timed. Returns {key: [seconds per call, one value per pass]}.
    """
    norm = {k: (v if isinstance(v, tuple) else (v, None)) for k, v in entries.items()}
    inner = {}
    for k, (fn, prep) in norm.items():
        if prep:
            prep()
        for _ in range(warmup):
            fn()
        t0 = time.perf_counter()
        fn()
        t1 = time.perf_counter() - t0
        inner[k] = int(max(1, min(max_inner, math.ceil(min_pass_s / max(t1, 1e-7)))))
        if log:
            log(f"    warm {k}: {t1 * 1e3:.3f} ms/call, {inner[k]} call(s) per pass")
    keys = list(norm)
    res = {k: [] for k in keys}
    for p in range(reps):
        order = keys[p % len(keys):] + keys[:p % len(keys)]
        for k in order:
            fn, prep = norm[k]
            if prep:
                prep()
            time.sleep(gap_s)
            n = inner[k]
            gc.collect()
            gc.disable()
            try:
                t0 = time.perf_counter()
                for _ in range(n):
                    fn()
                dt = time.perf_counter() - t0
            finally:
                gc.enable()
            res[k].append(dt / n)
    return res


def summarize(times):
    return {"ms_median": statistics.median(times) * 1e3, "ms_min": min(times) * 1e3,
            "passes_ms": [t * 1e3 for t in times]}


# ---------------------------------------------------------------------------- GEMM peak

_NUMPY_GEMM_CHILD = r"""
import json, os, sys, time
import numpy as np
import contextlib
try:
    from threadpoolctl import threadpool_limits, threadpool_info
except ImportError:                      # OPENBLAS_NUM_THREADS (set by the parent) still applies
    threadpool_limits = lambda **kw: contextlib.nullcontext()
    threadpool_info = lambda: []
nt, n, reps = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
A = rng.standard_normal((n, n)).astype(np.float32)
B = rng.standard_normal((n, n)).astype(np.float32)
with threadpool_limits(limits=nt, user_api="blas"):
    C = A @ B
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter(); np.matmul(A, B, out=C); best = min(best, time.perf_counter() - t0)
    info = [i for i in threadpool_info() if i.get("user_api") == "blas"]
print(json.dumps({"gflops": 2.0 * n ** 3 / best / 1e9, "seconds": best,
                  "kernel": info[0].get("architecture") if info else None,
                  "library": (info[0].get("internal_api"), info[0].get("version")) if info else None,
                  "num_threads": info[0].get("num_threads") if info else None,
                  "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
                  "OPENBLAS_L2_SIZE": os.environ.get("OPENBLAS_L2_SIZE")}))
"""


def numpy_gemm_peak(nt, n=2048, reps=5, best=False):
    """float32 n x n matmul GFLOP/s of numpy's BLAS at nt threads, in a fresh subprocess.
    best=False: the environment as it is; best=True: OPENBLAS_CORETYPE and
    OPENBLAS_L2_SIZE removed (OpenBLAS then picks its kernel from the CPU itself)."""
    env = dict(os.environ)
    env["OPENBLAS_NUM_THREADS"] = str(nt)
    if best:
        env.pop("OPENBLAS_CORETYPE", None)
        env.pop("OPENBLAS_L2_SIZE", None)
    try:
        r = subprocess.run([sys.executable, "-c", _NUMPY_GEMM_CHILD, str(nt), str(n), str(reps)],
                           env=env, capture_output=True, text=True, timeout=600)
        if r.returncode:
            return {"error": r.stderr.strip().splitlines()[-1] if r.stderr else "failed"}
        return json.loads(r.stdout.strip().splitlines()[-1])
    except Exception as e:
        return {"error": f"{type(e).__name__}: {e}"}


_FASTLSTM_GEMM_CHILD = r"""
import json, sys, time
import numpy as np
sys.path.insert(0, sys.argv[4])
from fastlstm import _kernels
nt, n, reps = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
A = rng.standard_normal((n, n)).astype(np.float32)
B = rng.standard_normal((n, n)).astype(np.float32)
C = np.empty((n, n), np.float32)
_kernels.gemm(False, A, B, np.float32(0.0), C, nt)
ref = A[:64].astype(np.float64) @ B.astype(np.float64)
err = float(np.abs(C[:64] - ref).max() / np.abs(ref).max())
best = float("inf")
for _ in range(reps):
    t0 = time.perf_counter()
    _kernels.gemm(False, A, B, np.float32(0.0), C, nt)
    best = min(best, time.perf_counter() - t0)
print(json.dumps({"gflops": 2.0 * n ** 3 / best / 1e9, "seconds": best, "rel_err": err}))
"""


def fastlstm_gemm_peak(nt, n=2048, reps=5):
    """fastlstm's own packed GEMM, C = A @ B via fastlstm._kernels.gemm, same sizes, in
    a fresh subprocess as numpy's: in the benchmark's own process the peers' thread
    pools (OpenBLAS's, torch's OpenMP) can still be spinning on the other cores."""
    import fastlstm
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastlstm.__file__)))
    env = dict(os.environ)
    env["OPENBLAS_NUM_THREADS"] = "1"   # the reference product's only
    r = subprocess.run([sys.executable, "-c", _FASTLSTM_GEMM_CHILD, str(nt), str(n), str(reps),
                        root], env=env, capture_output=True, text=True, timeout=600)
    if r.returncode:
        raise RuntimeError(r.stderr.strip().splitlines()[-1] if r.stderr else "failed")
    return json.loads(r.stdout.strip().splitlines()[-1])


def gemm_peaks(nt, n=2048, reps=5):
    out = {"n": n, "threads": nt,
           "numpy_default": numpy_gemm_peak(nt, n, reps, best=False),
           "numpy_best": numpy_gemm_peak(nt, n, reps, best=True)}
    try:
        out["fastlstm"] = fastlstm_gemm_peak(nt, n, reps)
    except Exception as e:
        out["fastlstm"] = {"error": f"{type(e).__name__}: {e}"}
    vals = [out[k].get("gflops", 0.0) for k in ("numpy_default", "numpy_best")]
    out["peak_gflops"] = max(vals) if max(vals) > 0 else None
    return out


# ---------------------------------------------------------------------------- background load

def _proc_stat_busy():
    """(busy, total) jiffies of all CPUs from /proc/stat, or None."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = (v + [0] * 8)[:8]
    return user + nice + system + irq + softirq + steal, sum(v[:8])


class LoadMeter:
    """How busy the machine was with OTHER work while we measured: CPU time of all
    CPUs (/proc/stat, steal included) minus this process's and its waited
    children's CPU time, divided by wall time = average number of cores taken
    by others. Anything well above 0 makes the timings (multi-threaded ones
    above all: a descheduled worker stalls every barrier) unreliable."""

    def __init__(self):
        self.t0, self.s0, self.o0 = time.perf_counter(), _proc_stat_busy(), os.times()

    def stop(self):
        wall = time.perf_counter() - self.t0
        s1, o1 = _proc_stat_busy(), os.times()
        if self.s0 is None or s1 is None or wall <= 0:
            return {"wall_s": wall, "other_cores": None}
        hz = os.sysconf("SC_CLK_TCK")
        busy = (s1[0] - self.s0[0]) / hz
        own = sum(getattr(o1, k) - getattr(self.o0, k)
                  for k in ("user", "system", "children_user", "children_system"))
        return {"wall_s": wall, "busy_cores": busy / wall, "own_cores": own / wall,
                "other_cores": max(0.0, (busy - own) / wall)}


# ---------------------------------------------------------------------------- machine

def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags():
    want = ["sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl",
            "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "asimd", "sve"]
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    have = set(line.split(":", 1)[1].split())
                    return [w for w in want if w in have]
    except OSError:
        pass
    return []


def physical_cores():
    try:
        pairs = set()
        with open("/proc/cpuinfo") as f:
            phys = core = None
            for line in f:
                if line.startswith("physical id"):
                    phys = line.split(":")[1].strip()
                elif line.startswith("core id"):
                    core = line.split(":")[1].strip()
                    pairs.add((phys, core))
        return len(pairs) or None
    except OSError:
        return None


def fastlstm_config_text():
    import fastlstm
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        fastlstm.show_config()
    return buf.getvalue().rstrip()


def fastlstm_isa():
    """The instruction-set level fastlstm's kernels run (FASTLSTM_MAX_ISA caps it)."""
    from fastlstm import _kernels
    return _kernels.isa()


def machine_info():
    env = {k: os.environ[k] for k in sorted(os.environ)
           if k.startswith(("OMP_", "OPENBLAS_", "MKL_", "GOMP_", "KMP_"))}
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        mem = None
    return {"cpu": cpu_model(), "logical_cpus": os.cpu_count(), "usable_cpus": usable_cpus(),
            "physical_cores": physical_cores(), "flags": cpu_flags(),
            "memory_gib": None if mem is None else round(mem, 1),
            "os": f"{platform.system()} {platform.release()}", "machine": platform.machine(),
            "versions": versions(), "env": env, "fastlstm_config": fastlstm_config_text(),
            "fastlstm_isa": fastlstm_isa(),
            "fastlstm_train": fastlstm_train_label()}
