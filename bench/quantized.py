"""Batch-1 inference with bfloat16 and int8 weights against fastlstm's float32.

    python bench/quantized.py [--threads 1] [--reps 21]

Shapes e (I=32, H=128, T=100) and f (I=32, H=256, T = 1, 10, 50), batch 1,
one LSTM layer: ``layer(x)`` for the float32 layer and for
``layer.quantize("bfloat16")`` and ``layer.quantize("int8")`` (and ONNX
Runtime float32 when onnx and onnxruntime are installed). The forms are
timed in interleaved passes of back-to-back calls; each figure is the median
over the passes of the mean time a call took; ratios are float32 time over
the quantized time.
"""
import argparse
import statistics
import time

import numpy as np

import fastlstm
from fastlstm import _kernels

SHAPES = [("e", 32, 128, 100), ("f", 32, 256, 1), ("f", 32, 256, 10), ("f", 32, 256, 50)]


def per_call(fn, calls):
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls


def _ort(layer, x, threads):
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(layer.to_onnx().SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return lambda: sess.run(None, {name: x})


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=21)
    ap.add_argument("--budget", type=float, default=0.02, help="seconds per timed pass")
    a = ap.parse_args(argv)
    c = fastlstm.show_config()
    print()
    print(f"| shape | T | float32 us | bf16 us | int8 us | onnxruntime f32 us "
          f"| x bf16 | x int8 |")
    print("|---|---|---|---|---|---|---|---|")
    for name, I, H, T in SHAPES:
        layer = fastlstm.LSTM(I, H, n_threads=a.threads, random_state=0)
        x = np.random.default_rng(0).standard_normal((1, T, I)).astype(np.float32)
        forms = {"float32": layer, "bfloat16": layer.quantize("bfloat16"),
                 "int8": layer.quantize("int8")}
        fns = {k: (lambda m=m: m(x)) for k, m in forms.items()}
        ort_fn = _ort(layer, x, a.threads)
        if ort_fn is not None:
            fns["ort"] = ort_fn
        calls = {}
        for k, fn in fns.items():
            fn()
            calls[k] = max(1, int(a.budget / max(per_call(fn, 3), 1e-7)))
        times = {k: [] for k in fns}
        for _ in range(a.reps):
            for k, fn in fns.items():
                times[k].append(per_call(fn, calls[k]))
        med = {k: statistics.median(v) * 1e6 for k, v in times.items()}
        ort_txt = f"{med['ort']:.1f}" if "ort" in med else "-"
        print(f"| {name} | {T} | {med['float32']:.1f} | {med['bfloat16']:.1f} | "
              f"{med['int8']:.1f} | {ort_txt} | {med['float32'] / med['bfloat16']:.2f} | "
              f"{med['float32'] / med['int8']:.2f} |")
    print(f"\nkernels: {_kernels.isa()}, n_threads={a.threads}, quantized paths: {c['quantized']}")


if __name__ == "__main__":
    main()
