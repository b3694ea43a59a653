"""Import time and memory footprint, each figure from fresh subprocesses (median of several).

* import time of ``import fastlstm`` / ``import torch`` / ``import onnxruntime`` /
  ``import tensorflow, keras`` (perf_counter around the import statement only;
  interpreter start-up excluded), and the max RSS of that same process after
  it has run shape e (I=32, H=128, T=100, B=1) once for inference.
  "python + numpy" is the baseline every process pays.

Max RSS is read from /proc/self/status VmHWM, the kernel's peak-RSS counter for
the running program. resource.getrusage(RUSAGE_SELF).ru_maxrss is NOT used on
Linux because it inherits the parent's peak across fork/vfork + exec (the kernel
folds the pre-exec address space into signal->maxrss), so a child started by a
benchmark process that has torch and TF loaded would report ~800 MiB whatever it
does. Elsewhere (no /proc) ru_maxrss is the fallback.
* peak RSS of one training step at shape c (I=64, H=256, T=100, B=128):
  max RSS after import and after creating the input arrays is the baseline;
  the figure is the increase of max RSS over it caused by building the model
  and running one step (fastlstm: LSTMRegressor.partial_fit; torch: LSTM -> Linear -> MSE ->
  backward -> Adam; Keras: train_on_batch).

Run alone: ``python bench/footprint.py [--threads N] [--repeats 5] [--json out.json]``.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import benchlib as bl  # noqa: E402

_PRE = r"""
import os, sys, time, resource, json
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, {here!r})
nt = {nt}
def rss():
    # Peak RSS of this program in MiB: VmHWM. Not ru_maxrss: on Linux, getrusage's
    # ru_maxrss carries the PARENT's peak across fork/vfork+exec (signal->maxrss), so a
    # child spawned by a big benchmark process would report the parent's size.
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0   # KiB on Linux
import numpy as np
rss_numpy = rss()
"""

_IMPORT_RUN = {
    "python + numpy": r"""
t0 = time.perf_counter(); import numpy; dt = time.perf_counter() - t0
x = np.random.default_rng(0).standard_normal((1, 100, 32)).astype(np.float32)
""",
    "fastlstm": r"""
t0 = time.perf_counter(); import fastlstm; dt = time.perf_counter() - t0
rss_import = rss()
x = np.random.default_rng(0).standard_normal((1, 100, 32)).astype(np.float32)
layer = fastlstm.LSTM(32, 128, n_threads=nt)
y, (h, c) = layer(x)
""",
    "torch": r"""
t0 = time.perf_counter(); import torch; dt = time.perf_counter() - t0
rss_import = rss()
torch.set_num_threads(nt)
x = np.random.default_rng(0).standard_normal((1, 100, 32)).astype(np.float32)
m = torch.nn.LSTM(32, 128, batch_first=True).eval()
with torch.inference_mode():
    y, (h, c) = m(torch.from_numpy(x))
""",
    "onnxruntime": r"""
t0 = time.perf_counter(); import onnxruntime as ort; dt = time.perf_counter() - t0
rss_import = rss()
x = np.random.default_rng(0).standard_normal((1, 100, 32)).astype(np.float32)
so = ort.SessionOptions(); so.intra_op_num_threads = nt; so.inter_op_num_threads = 1
so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
sess = ort.InferenceSession({model!r}, sess_options=so, providers=["CPUExecutionProvider"])
Y = sess.run(None, {{"X": np.ascontiguousarray(x.transpose(1, 0, 2))}})
""",
    "keras": r"""
t0 = time.perf_counter(); import tensorflow as tf, keras; dt = time.perf_counter() - t0
rss_import = rss()
tf.config.threading.set_intra_op_parallelism_threads(nt)
tf.config.threading.set_inter_op_parallelism_threads(1)
x = np.random.default_rng(0).standard_normal((1, 100, 32)).astype(np.float32)
model = keras.Sequential([keras.Input((100, 32)), keras.layers.LSTM(128, return_sequences=True)])
y = model.predict_on_batch(x)
""",
}

_POST_IMPORT = r"""
print(json.dumps({"import_s": dt, "rss_numpy": rss_numpy,
                  "rss_import": globals().get("rss_import", rss()), "rss_run": rss()}))
"""

_TRAIN = {
    "fastlstm": r"""
import fastlstm, benchlib as bl
step = None
def build_and_step():
    global step
    c = bl.CASES["c"]
    step = bl.make_fastlstm_train(c, x, y, None, nt)
    step()
""",
    "torch": r"""
import torch, benchlib as bl
torch.set_num_threads(nt)
def build_and_step():
    global step
    step = bl.make_torch_train(bl.CASES["c"], x, y, None, nt)
    step()
""",
    "keras": r"""
import tensorflow as tf, keras, benchlib as bl
tf.config.threading.set_intra_op_parallelism_threads(nt)
tf.config.threading.set_inter_op_parallelism_threads(1)
def build_and_step():
    global step
    step = bl.make_keras_train(bl.CASES["c"], x, y, None, nt)
    step()
""",
}

_TRAIN_POST = r"""
rng = np.random.default_rng(0)
x = rng.standard_normal((128, 100, 64)).astype(np.float32)
y = rng.standard_normal(128).astype(np.float32)
base = rss()
build_and_step()
print(json.dumps({"rss_base": base, "rss_peak": rss(), "delta": rss() - base}))
"""


def _child(code, timeout=600):
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=timeout, cwd=HERE)
    if r.returncode:
        tail = (r.stderr or r.stdout).strip().splitlines()
        raise RuntimeError(tail[-1] if tail else f"exit {r.returncode}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _median_dict(runs):
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def measure(nt=1, repeats=5, train_repeats=3, frameworks=bl.FRAMEWORKS, log=print):
    """{"threads", "repeats", "import": {name: {...}}, "train_c": {name: {...}}, "skipped": [...]}"""
    out = {"threads": nt, "repeats": repeats, "train_repeats": train_repeats,
           "import": {}, "train_c": {}, "skipped": [], "train_impl": bl.fastlstm_train_label()}
    with tempfile.TemporaryDirectory() as tmp:
        model_path = None
        for name in ("python + numpy",) + tuple(frameworks):
            if name != "python + numpy":
                msg = bl.skip_message(name)
                if msg:
                    out["skipped"].append(msg)
                    log(msg)
                    continue
            if name == "onnxruntime" and model_path is None:
                c = bl.CASES["e"]
                model_path = os.path.join(tmp, "lstm_e.onnx")
                with open(model_path, "wb") as f:
                    f.write(bl.build_onnx_lstm(c, c.weights()))
            code = _PRE.format(here=HERE, nt=nt) + \
                _IMPORT_RUN[name].format(model=model_path) + _POST_IMPORT
            try:
                runs = [_child(code) for _ in range(repeats)]
            except Exception as e:
                out["skipped"].append(f"{name} import/RSS failed: {e}")
                log(f"  {name}: failed: {e}")
                continue
            out["import"][name] = dict(_median_dict(runs), runs=len(runs))
            m = out["import"][name]
            log(f"  {name:15s} import {m['import_s'] * 1e3:8.1f} ms   max RSS after shape e "
                f"{m['rss_run']:7.1f} MiB")
        for name in [f for f in frameworks if f in _TRAIN]:
            if bl.skip_message(name):
                continue
            code = _PRE.format(here=HERE, nt=nt) + _TRAIN[name] + _TRAIN_POST
            try:
                runs = [_child(code) for _ in range(train_repeats)]
            except Exception as e:
                out["skipped"].append(f"{name} train RSS failed: {e}")
                log(f"  {name}: train RSS failed: {e}")
                continue
            out["train_c"][name] = dict(_median_dict(runs), runs=len(runs))
            m = out["train_c"][name]
            log(f"  {name:15s} train step at shape c: +{m['delta']:7.1f} MiB over "
                f"{m['rss_base']:.1f} MiB")
    return out


def markdown(fp):
    lines = [f"Each figure is the median of {fp['repeats']} fresh subprocesses "
             f"({fp['train_repeats']} for the training step) at {fp['threads']} thread(s). "
             "Import time is the `import` statement alone; max RSS is the peak RSS (VmHWM; "
             "getrusage's ru_maxrss would include the parent benchmark process) of the process after it ran shape e "
             "(I=32 H=128 T=100 B=1) once.", "",
             "| module | import time (ms) | max RSS after import (MiB) | "
             "max RSS after shape e (MiB) | over python+numpy (MiB) |",
             "|---|---:|---:|---:|---:|"]
    base = fp["import"].get("python + numpy", {}).get("rss_run")
    for name, m in fp["import"].items():
        over = "" if base is None or name == "python + numpy" else f"{m['rss_run'] - base:.1f}"
        imp = "" if name == "python + numpy" else f"{m['import_s'] * 1e3:.1f}"
        rimp = f"{m['rss_numpy' if name == 'python + numpy' else 'rss_import']:.1f}"
        label = {"keras": "tensorflow + keras"}.get(name, name)
        lines.append(f"| {label} | {imp} | {rimp} | {m['rss_run']:.1f} | {over} |")
    if fp["train_c"]:
        lines += ["", "One training step at shape c (I=64 H=256 T=100 B=128): increase of max "
                  "RSS over the baseline after import and after creating x (B, T, I) and y (B,). "
                  f"fastlstm: {fp.get('train_impl', '')}.", "",
                  "| framework | baseline (MiB) | peak (MiB) | delta (MiB) |", "|---|---:|---:|---:|"]
        for name, m in fp["train_c"].items():
            lines.append(f"| {name} | {m['rss_base']:.1f} | {m['rss_peak']:.1f} | "
                         f"{m['delta']:.1f} |")
    for s in fp["skipped"]:
        lines.append(f"\n_{s}_")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--train-repeats", type=int, default=3)
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    fp = measure(a.threads, a.repeats, a.train_repeats)
    print()
    print(markdown(fp))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(fp, f, indent=1)


if __name__ == "__main__":
    main()
