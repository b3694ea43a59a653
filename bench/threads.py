"""Thread scaling: fastlstm, PyTorch and ONNX Runtime inference, fastlstm and PyTorch
training step, at 1, 2, 4, 8, 16 threads (those up to the usable CPUs), shapes c and d.

    python bench/threads.py                        # markdown table on stdout
    python bench/threads.py --shapes c --quick --threads 1,2 --json scaling.json

Everything runs in one process: fastlstm takes n_threads per layer/estimator,
torch.set_num_threads(N) is switched before each of torch's passes (interop
fixed at 1), ORT gets one session per N (intra_op_num_threads=N, inter_op 1,
sequential), numpy's BLAS is limited to N with threadpoolctl before each pass.
Keras is left out: TF fixes its thread count once per process (compare.py
--all covers it at 1 and 2 threads). All (framework, N) combinations of a
shape and mode are timed interleaved, as in compare.py. The table gives the
median ms per call and, in brackets, the speedup over the same framework at 1
thread; the last column is peer time / fastlstm time at the most threads (above 1: fastlstm faster).
"""
import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import benchlib as bl  # noqa: E402

FW_MODES = {"infer": ("fastlstm", "torch", "onnxruntime"), "train": ("fastlstm", "torch")}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shapes", default="c,d")
    ap.add_argument("--threads", default=None,
                    help="comma list (default: 1,2,4,8,16 up to the usable CPUs)")
    ap.add_argument("--modes", default="infer,train")
    ap.add_argument("--reps", type=int, default=None, help="passes (default 5, quick 3)")
    ap.add_argument("--min-pass", type=float, default=None, help="s per pass (default 0.2)")
    ap.add_argument("--gap-ms", type=float, default=20.0)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    ncpu = bl.usable_cpus()
    counts = [int(t) for t in a.threads.split(",")] if a.threads else \
        [t for t in (1, 2, 4, 8, 16) if t <= ncpu] or [1]
    if ncpu not in counts and not a.threads and ncpu < 16:
        counts.append(ncpu)
    reps = a.reps or (3 if a.quick else 5)
    min_pass = a.min_pass if a.min_pass is not None else (0.03 if a.quick else 0.2)
    cases = bl.parse_shapes(a.shapes)
    modes = [m for m in a.modes.split(",") if m]

    fws = []
    for fw in ("fastlstm", "torch", "onnxruntime"):
        msg = bl.skip_message(fw)
        if msg:
            print(msg, file=sys.stderr)
        else:
            fws.append(fw)
    bl.fix_threads(max(counts), [f for f in fws if f != "keras"])
    if "torch" in fws:
        import torch

    def prep(nt, fw):
        def f():
            bl.set_blas_threads(nt)
            if fw == "torch":
                torch.set_num_threads(nt)
        return f

    print(f"CPU: {bl.cpu_model()}, {ncpu} usable CPUs; threads {counts}; "
          f"fastlstm training step: {bl.fastlstm_train_label()}", file=sys.stderr)
    results = []
    meter = bl.LoadMeter()
    for case in cases:
        for mode in modes:
            entries = {}
            for fw in FW_MODES[mode]:
                if fw not in fws:
                    continue
                for nt in counts:
                    prep(nt, fw)()
                    fn, _ = bl.make(fw, mode, case, nt)
                    entries[(fw, nt)] = (fn, prep(nt, fw))
            print(f"-- shape {case.name} ({case.dims()}) {mode}: {len(entries)} configurations",
                  file=sys.stderr, flush=True)
            times = bl.interleaved(entries, reps, min_pass, a.gap_ms / 1e3, warmup=1)
            for (fw, nt), t in times.items():
                s = bl.summarize(t)
                s["gflops"] = case.flops(mode) / (s["ms_median"] * 1e-3) / 1e9
                results.append(dict(shape=case.name, mode=mode, framework=fw, threads=nt, **s))
    load = meter.stop()
    print(table(results, counts))
    oc = load.get("other_cores")
    if oc is not None:
        print(f"\nBackground load: {oc:.2f} of {ncpu} cores busy with other processes"
              + (" -- WARNING: unreliable, rerun on an idle machine" if oc > 0.1 * ncpu else ""))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"cpu": bl.cpu_model(), "counts": counts, "load": load,
                       "results": results}, f, indent=1)


def table(results, counts):
    def get(shape, mode, fw, nt):
        for r in results:
            if (r["shape"], r["mode"], r["framework"], r["threads"]) == (shape, mode, fw, nt):
                return r
        return None

    top = max(counts)
    head = ["shape", "mode", "framework"] + [f"{n} thr ms" for n in counts] + \
        [f"GFLOP/s at {top}", f"peer/fastlstm time at {top}"]
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join(["---"] * 3 + ["---:"] * (len(head) - 3)) + "|"]
    seen = []
    for r in results:
        k = (r["shape"], r["mode"], r["framework"])
        if k in seen:
            continue
        seen.append(k)
        shape, mode, fw = k
        one = get(shape, mode, fw, counts[0])
        cells = [shape, mode, fw]
        for n in counts:
            x = get(shape, mode, fw, n)
            if x is None:
                cells.append("–")
            elif n == counts[0] or one is None:
                cells.append(f"{x['ms_median']:.2f}")
            else:
                cells.append(f"{x['ms_median']:.2f} ({one['ms_median'] / x['ms_median']:.2f}x)")
        t = get(shape, mode, fw, top)
        cells.append(f"{t['gflops']:.1f}" if t else "–")
        f = get(shape, mode, "fastlstm", top)
        cells.append("" if fw == "fastlstm" or not (t and f) else
                     f"{t['ms_median'] / f['ms_median']:.2f}x")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
