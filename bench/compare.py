"""Side-by-side timing of fastlstm, PyTorch, ONNX Runtime and Keras 3 (TensorFlow).

    python bench/compare.py --threads 2                 # one thread count, this process
    python bench/compare.py --all                       # 1 and 2 threads (one subprocess each)
    python bench/compare.py --all --markdown bench/RESULTS.md --plot bench/results.png
    python bench/compare.py --quick --shapes a,e,f      # a fast smoke run
    python bench/compare.py --threads 1 --modes infer --shapes e,f --precision float32,bfloat16,int8

For every shape, inference and training step are timed with the frameworks'
repetitions INTERLEAVED (pass 1: fastlstm, torch, ort, keras; pass 2 rotated;
...) so machine noise hits all of them equally; each pass calls one framework
enough times to last --min-pass seconds and the per-call time of a pass is
one sample; median and min over --reps passes are reported. Before timing,
every framework runs inference on the same weights and input and the outputs
must agree with PyTorch to 1e-4 (AssertionError otherwise; --no-check skips).

All frameworks use the same thread count (see benchlib.fix_threads): fastlstm
n_threads=N; torch.set_num_threads(N) + set_num_interop_threads(1); ORT
intra_op_num_threads=N, inter_op_num_threads=1, ORT_SEQUENTIAL, graph
optimisations on; TF set_intra_op_parallelism_threads(N) +
set_inter_op_parallelism_threads(1) before any TF op; numpy's BLAS limited to
N with threadpoolctl. TF fixes its threads once per process, hence one
process per thread count (--all spawns them and merges the JSON).

GFLOP/s counts forward FLOPs T*(2*B*I*4H + 2*B*H*4H) per layer and direction
(variable lengths: sum of lengths instead of B*T), 3x for a training step.
"% peak" is against the best numpy (OpenBLAS) float32 2048^3 GEMM measured in
the same run at the same thread count. "x torch" is torch's median time
divided by fastlstm's: above 1 means fastlstm is faster.

--precision adds reduced-precision inference to the same interleaved passes:
bfloat16 (fastlstm ``layer.quantize("bfloat16")``, PyTorch's nn.LSTM in
bfloat16) and int8 (fastlstm ``layer.quantize("int8")``, PyTorch's and ONNX
Runtime's dynamic int8 LSTMs; see benchlib). float32 is always timed: it is
the reference of the ratios and of the output check, which requires every
reduced form within --qtol of PyTorch's float32 output (and not equal to it:
an unquantized peer would pass unnoticed otherwise).
"""
import argparse
import datetime
import glob
import json
import os
import shlex
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import benchlib as bl  # noqa: E402

SHORT = {"fastlstm": "fastlstm", "torch": "torch", "onnxruntime": "ORT", "keras": "Keras"}


def label(name, precision):
    """name (a framework, a mode) with the precision appended when it is reduced."""
    return name if precision == "float32" else f"{name} {precision}"


def precision_of(r):
    return r.get("precision", "float32")        # JSON of runs before --precision existed


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- one thread count

def run_one(args, nt):
    frameworks = [f for f in args.frameworks if f in bl.FRAMEWORKS]
    skipped = []
    active = []
    for fw in frameworks:
        msg = bl.skip_message(fw)
        if msg:
            skipped.append(msg)
            log(msg)
        else:
            active.append(fw)
    if "fastlstm" not in active:
        raise SystemExit("fastlstm is not importable: nothing to compare")
    bl.fix_threads(nt, active)
    res = {"threads": nt, "frameworks": active, "skipped": skipped,
           "fastlstm_train": bl.fastlstm_train_label(), "results": [], "checks": {},
           "qchecks": {}, "torch_ops": {},
           "settings": {"reps": args.reps, "min_pass_s": args.min_pass, "gap_s": args.gap_ms / 1e3,
                        "warmup": args.warmup}}
    meter = bl.LoadMeter()
    log(f"== {nt} thread(s); frameworks: {', '.join(active)}; fastlstm training step: "
        f"{res['fastlstm_train']}")
    log(f"-- GEMM peak, float32 {args.gemm_size}^3 ...")
    res["gemm"] = bl.gemm_peaks(nt, args.gemm_size, args.gemm_reps)
    print(gemm_text(res["gemm"]), flush=True)
    peak = res["gemm"].get("peak_gflops")

    for case in args.cases:
        for mode in args.modes:
            precisions = args.precisions if mode == "infer" else ["float32"]
            entries, getters, what = {}, {}, {}
            for prec in precisions:
                for fw in active:
                    if fw not in bl.timed_frameworks(mode, prec):
                        continue
                    key = label(fw, prec)
                    try:
                        entries[key], getters[key] = bl.make(fw, mode, case, nt, precision=prec)
                        what[key] = (fw, prec)
                    except Exception as e:
                        msg = (f"{key} {mode} on shape {case.name} failed to build: "
                               f"{type(e).__name__}: {e}")
                        log("   " + msg)
                        res["skipped"].append(msg)
            if mode == "infer" and case.T == 1 and case.B == 1 and case.num_layers == 1 \
                    and not case.bidirectional:
                entries[bl.GEMV] = bl.make_gemv_bound(case)
                what[bl.GEMV] = (bl.GEMV, "float32")
            if len(precisions) > 1 and "torch" in active:
                record_torch_ops(res["torch_ops"], entries, what)
            if mode == "infer" and not args.no_check:
                outs = {key: get() for key, get in getters.items()}
                f32 = {key: y for key, y in outs.items() if what[key][1] == "float32"}
                diffs = bl.check_outputs(case, f32, tol=args.tol)     # raises if broken
                res["checks"][case.name] = diffs
                log(f"-- shape {case.name}: inference outputs agree with torch: "
                    + ", ".join(f"{fw} {d:.1e}" for fw, d in diffs.items()))
                reduced = {key: y for key, y in outs.items() if key not in f32}
                if reduced:
                    res["qchecks"][case.name] = check_reduced(case, f32, reduced, args.qtol)
            log(f"-- shape {case.name} ({case.dims()}) {mode}: timing "
                f"{', '.join(entries)} interleaved, {args.reps} passes")
            times = bl.interleaved(entries, args.reps, args.min_pass, args.gap_ms / 1e3,
                                   args.warmup, log=log if args.verbose else None)
            flops = case.flops(mode)
            by_prec = {}
            for key, t in times.items():
                fw, prec = what[key]
                s = bl.summarize(t)
                s["gflops"] = flops / (s["ms_median"] * 1e-3) / 1e9
                # the peak is a float32 GEMM's: no yardstick for bfloat16 or int8
                s["pct_peak"] = None if not peak or prec != "float32" else \
                    100.0 * s["gflops"] / peak
                by_prec.setdefault(prec, {})[fw] = s
            for prec, rows in by_prec.items():
                base = rows.get("fastlstm")
                for fw, s in rows.items():
                    s["fastlstm_speedup"] = None if base is None else \
                        s["ms_median"] / base["ms_median"]
                    if prec != "float32":
                        # the float32 times of the same passes over this one (above 1: faster)
                        for ref in ("fastlstm", "onnxruntime"):
                            r32 = by_prec["float32"].get(ref)
                            s[f"x_{ref}_float32"] = r32 and r32["ms_median"] / s["ms_median"]
                    res["results"].append(dict(shape=case.name, dims=case.dims(), mode=mode,
                                               framework=fw, precision=prec, gflop=flops / 1e9,
                                               threads=nt, **s))
                print(case_text(case, mode, rows, prec), flush=True)
    res["load"] = meter.stop()
    oc = res["load"].get("other_cores")
    if oc is not None:
        msg = (f"background load during the {nt}-thread run: {oc:.2f} of {bl.usable_cpus()} "
               "cores busy with other processes")
        if oc > 0.1 * bl.usable_cpus():
            msg += " -- WARNING: timings are unreliable; rerun on an idle machine"
        log(msg)
    return res


def record_torch_ops(ops, entries, what):
    """Add to ops[precision] the LSTM operators each torch entry ran (is it oneDNN?)."""
    for key, fn in entries.items():
        fw, prec = what[key]
        if fw == "torch":
            for name in bl.torch_lstm_ops(fn):
                if name not in ops.setdefault(prec, []):
                    ops[prec].append(name)


def check_reduced(case, f32, reduced, tol):
    """Max abs diffs of the reduced-precision outputs from PyTorch's float32 (fastlstm's
    without torch). Raises when one is over tol, or 0: it did not run reduced."""
    ref = "torch" if "torch" in f32 else "fastlstm"
    diffs = bl.check_outputs(case, {ref: f32[ref], **reduced}, ref=ref, tol=tol)
    log(f"-- shape {case.name}: reduced-precision outputs against {ref} float32: "
        + ", ".join(f"{key} {d:.1e}" for key, d in diffs.items()))
    same = [key for key, d in diffs.items() if d == 0.0]
    if same:
        raise AssertionError(f"shape {case.name}: {', '.join(same)} equal {ref} float32 "
                             "exactly: not run in reduced precision")
    return diffs


def gemm_text(g):
    def one(d):
        if "error" in d:
            return f"error ({d['error']})"
        k = f", kernel {d['kernel']}" if d.get("kernel") else ""
        return f"{d['gflops']:.1f} GFLOP/s{k}"
    nd, nb = g["numpy_default"], g["numpy_best"]
    env = f" (OPENBLAS_CORETYPE={nd.get('OPENBLAS_CORETYPE')})" if nd.get("OPENBLAS_CORETYPE") else ""
    return (f"GEMM float32 {g['n']}^3 at {g['threads']} thread(s): numpy default{env} {one(nd)}; "
            f"numpy best (OPENBLAS_CORETYPE/L2_SIZE unset) {one(nb)}; "
            f"fastlstm gemm {one(g['fastlstm'])}")


def case_text(case, mode, rows, precision="float32"):
    lines = [f"shape {case.name} ({case.dims()}, {case.desc}) {label(mode, precision)}, "
             f"{case.flops(mode) / 1e9:.3f} GFLOP per call:"]
    for fw, s in rows.items():
        pct = "" if s["pct_peak"] is None else f" {s['pct_peak']:5.1f}% peak"
        ratio = "" if fw == "fastlstm" or s["fastlstm_speedup"] is None else \
            f"  fastlstm x{s['fastlstm_speedup']:.2f}"
        if fw == "fastlstm" and precision != "float32":
            ratio = "".join(f"  x{s[f'x_{ref}_float32']:.2f} {ref} float32"
                            for ref in ("fastlstm", "onnxruntime") if s[f"x_{ref}_float32"])
        lines.append(f"  {fw:12s} {s['ms_median']:10.3f} ms median {s['ms_min']:10.3f} min "
                     f"{s['gflops']:8.2f} GFLOP/s{pct}{ratio}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- --all

def passthrough(args):
    out = ["--shapes", ",".join(c.name for c in args.cases), "--reps", str(args.reps),
           "--min-pass", str(args.min_pass), "--gap-ms", str(args.gap_ms),
           "--warmup", str(args.warmup), "--modes", ",".join(args.modes),
           "--frameworks", ",".join(args.frameworks), "--gemm-size", str(args.gemm_size),
           "--gemm-reps", str(args.gemm_reps), "--tol", str(args.tol),
           "--precision", ",".join(args.precisions), "--qtol", str(args.qtol)]
    if args.no_check:
        out.append("--no-check")
    if args.verbose:
        out.append("--verbose")
    return out


def run_all(args):
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for nt in args.thread_list:
            path = os.path.join(tmp, f"t{nt}.json")
            cmd = [sys.executable, os.path.abspath(__file__), "--threads", str(nt),
                   "--json", path, "--no-footprint"] + passthrough(args)
            log(f"== spawning: {' '.join(shlex.quote(c) for c in cmd)}")
            r = subprocess.run(cmd)
            if r.returncode:
                raise SystemExit(f"compare.py --threads {nt} failed (exit {r.returncode})")
            with open(path) as f:
                runs.append(json.load(f)["runs"][0])
    return runs


# ---------------------------------------------------------------------------- markdown

def _fmt(v, spec=".2f", none="–"):
    return none if v is None else format(v, spec)


def _table_head(head):
    """A markdown table's first two lines: two text columns, then numbers."""
    return ["| " + " | ".join(head) + " |",
            "|" + "|".join(["---"] * 2 + ["---:"] * (len(head) - 2)) + "|"]


def _ms(v):
    if v is None:
        return "–"
    return f"{v:.3f}" if v < 1 else f"{v:.2f}" if v < 100 else f"{v:.0f}"


# Sections after this line in RESULTS.md come from other scripts (each names
# its command) and are kept when compare.py rewrites the report above it.
KEPT_MARKER = "<!-- sections below are kept as they are by compare.py -->"


def write_markdown(path, text):
    """Write the report to ``path``, keeping what follows KEPT_MARKER there."""
    kept = ""
    try:
        with open(path) as f:
            old = f.read()
        if KEPT_MARKER in old:
            kept = old[old.index(KEPT_MARKER):]
    except FileNotFoundError:
        pass
    with open(path, "w") as f:
        f.write(text.rstrip("\n") + "\n\n" + (kept or KEPT_MARKER + "\n"))
    log(f"wrote {path}")


def markdown(doc):
    m = doc["machine"]
    v = m["versions"]
    L = ["# fastlstm benchmark results", "",
         f"Generated {doc['date']} by:", "", "```", doc["command"], "```", ""]
    if doc.get("quick"):
        L += ["> **Quick run (--quick): few, short passes. Indicative only; regenerate with the "
              "command above without --quick for real figures.**", ""]
    L += ["## Machine", "",
          f"- CPU: {m['cpu']}; {m['logical_cpus']} logical CPUs"
          + (f" ({m['physical_cores']} physical cores)" if m.get("physical_cores") else "")
          + f", {m['usable_cpus']} usable by this process",
          f"- CPU flags: {' '.join(m['flags']) or 'n/a'}",
          f"- fastlstm kernels: the {m.get('fastlstm_isa', 'n/a')} level",
          f"- memory: {m.get('memory_gib')} GiB; {m['os']} {m['machine']}",
          "- versions: " + ", ".join(f"{k} {val}" for k, val in v.items() if val),
          "- threading environment: " + (", ".join(f"{k}={val}" for k, val in m["env"].items())
                                         or "none of OMP_*/OPENBLAS_*/MKL_*/GOMP_*/KMP_* set"),
          f"- fastlstm training step timed as: {m['fastlstm_train']}",
          "", "`fastlstm.show_config()`:", "", "```", m["fastlstm_config"], "```", ""]
    older = sorted(glob.glob(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                          "results", "*.md")))
    if older:
        L += ["Runs on other machine kinds (kept as they were): "
              + ", ".join(f"[{os.path.basename(p)}](results/{os.path.basename(p)})"
                          for p in older), ""]
    L += ["## Method", "",
          "- **Inference**: `fastlstm.LSTM(I, H, ...)(x)` (batch-first x, returns y, (h, c)) vs "
          "`nn.LSTM(batch_first=True)(x)` under `torch.inference_mode()`, ONNX Runtime "
          "`session.run` of an ONNX `LSTM` node (opset 17, graph optimisations on; input given "
          "**time-major** (T, B, I), transposed once outside the timed region; outputs Y, Y_h, Y_c "
          "left time-major) and Keras `predict_on_batch` on `Sequential([Input((T, I)), "
          "LSTM(H, return_sequences=True)])` (the whole sequence, like fastlstm's y; Keras returns "
          "no states). Variable lengths: fastlstm `lengths=`, torch `pack_padded_sequence` -> "
          "LSTM -> `pad_packed_sequence` inside the timed call, ORT `sequence_lens`, Keras "
          "`Masking(0.0)`.",
          "- **Training step** (one batch): fastlstm " + m["fastlstm_train"] + "; PyTorch "
          "`zero_grad` -> LSTM -> `Linear(D*H, 1)` on the last step -> MSE -> `backward` -> "
          "`Adam.step`; Keras `train_on_batch` on LSTM(H) -> Dense(1), Adam, MSE (default "
          "`compile`, which on a CPU-only machine means no XLA).",
          "- Before timing, every framework's inference output on the same weights and input is "
          "checked against PyTorch (max abs diff <= 1e-4, else the run aborts); see the diffs "
          "below each table.",
          "- **Same threads for all**: fastlstm `n_threads=N`; `torch.set_num_threads(N)` + "
          "`torch.set_num_interop_threads(1)`; ORT `intra_op_num_threads=N`, "
          "`inter_op_num_threads=1`, `ORT_SEQUENTIAL`; TF "
          "`tf.config.threading.set_intra_op_parallelism_threads(N)` + "
          "`set_inter_op_parallelism_threads(1)` before any TF op (so one process per thread "
          "count); numpy's BLAS limited to N by threadpoolctl.",
          "- **Interleaved**: in each pass every framework runs once (order rotated between "
          "passes, a short idle gap before each so the previous framework's spinning worker "
          "threads sleep); a pass repeats the call to last at least "
          f"{doc['settings']['min_pass_s']} s and gives one per-call sample; "
          f"{doc['settings']['reps']} passes; median and min reported; after "
          f"{doc['settings']['warmup']} warm-up call(s).",
          "- **GFLOP/s**: forward FLOPs = T*(2*B*I*4H + 2*B*H*4H) per layer and direction "
          "(variable lengths: sum of lengths in place of B*T, i.e. useful FLOPs), a training step "
          "counts 3x forward; divided by the median time. **% peak**: of the best float32 "
          "2048x2048 numpy (OpenBLAS) GEMM measured in this run at the same thread count.",
          "- **x peer** = peer median time / fastlstm median time (above 1: fastlstm is faster).",
          ""]
    L += ["## GEMM peak (float32, 2048 x 2048 x 2048)", "",
          "| threads | numpy, environment as is | numpy, OPENBLAS_CORETYPE/L2_SIZE unset | "
          "fastlstm `_kernels.gemm` |", "|---:|---|---|---|"]

    def g1(d):
        if not d or "error" in d:
            return f"error: {d.get('error') if d else 'n/a'}"
        k = f" ({d['kernel']})" if d.get("kernel") else ""
        return f"{d['gflops']:.1f} GFLOP/s{k}"
    for run in doc["runs"]:
        g = run["gemm"]
        L.append(f"| {run['threads']} | {g1(g['numpy_default'])} | {g1(g['numpy_best'])} | "
                 f"{g1(g['fastlstm'])} |")
    L.append("")
    ct = doc["runs"][0]["gemm"]["numpy_default"].get("OPENBLAS_CORETYPE")
    L.append(f"OPENBLAS_CORETYPE in the environment: {ct or 'not set'}; kernels as reported "
             "by threadpoolctl. Each product runs alone in a fresh process (best of "
             "the reps), so no other library's worker threads share its cores.")
    L.append("")

    for run in doc["runs"]:
        nt = run["threads"]
        fws = run["frameworks"]
        peers = [f for f in fws if f != "fastlstm"]
        results = [r for r in run["results"] if precision_of(r) == "float32"]
        L += [f"## {nt} thread{'s' if nt > 1 else ''}", ""]
        head = ["shape", "mode", "GFLOP"] + [f"{SHORT[f]} ms" for f in fws] + \
            [f"x {SHORT[p]}" for p in peers] + ["fastlstm GFLOP/s", "% peak"]
        L += _table_head(head)
        by = {}
        for r in results:
            by.setdefault((r["shape"], r["mode"]), {})[r["framework"]] = r
        order = []
        for r in results:
            if (r["shape"], r["mode"]) not in order:
                order.append((r["shape"], r["mode"]))
        for shape, mode in order:
            rows = by[(shape, mode)]
            any_r = next(iter(rows.values()))
            cells = [f"{shape}", mode, f"{any_r['gflop']:.3g}"]
            cells += [_ms(rows[f]["ms_median"]) if f in rows else "–" for f in fws]
            cells += [(_fmt(rows[p]["fastlstm_speedup"]) + "x") if p in rows and
                      rows[p].get("fastlstm_speedup") else "–" for p in peers]
            fl = rows.get("fastlstm")
            cells += [_fmt(fl and fl["gflops"], ".1f"), _fmt(fl and fl["pct_peak"], ".1f")]
            L.append("| " + " | ".join(cells) + " |")
        for shape, mode in order:
            rows = by[(shape, mode)]
            if bl.GEMV in rows and "fastlstm" in rows:
                fl, gv = rows["fastlstm"], rows[bl.GEMV]
                L += ["", f"Shape {shape} against its memory-bound floor, a bare numpy GEMV of the "
                      f"same [W_ih, W_hh] ({gv['ms_median'] * 1e3:.1f} us median, same passes): "
                      f"fastlstm {fl['ms_median'] * 1e3:.1f} us = "
                      f"{fl['ms_median'] / gv['ms_median']:.2f}x it (the issue's bound: 1.5x)."]
        L += ["", "Shapes: " + "; ".join(f"{c.name} = {c.dims()} ({c.desc})" for c in bl.CASES.values()
                                         if any(r["shape"] == c.name for r in results)) + ".",
              ""]
        L += reduced_markdown(run)
        L += ["<details><summary>all figures (median / min ms, GFLOP/s, % peak)</summary>", "",
              "| shape | mode | framework | median ms | min ms | GFLOP/s | % peak | x (peer/fastlstm) |",
              "|---|---|---|---:|---:|---:|---:|---:|"]
        for r in results:
            L.append(f"| {r['shape']} | {r['mode']} | {r['framework']} | {_ms(r['ms_median'])} | "
                     f"{_ms(r['ms_min'])} | {_fmt(r['gflops'], '.2f')} | {_fmt(r['pct_peak'], '.1f')} | "
                     f"{'' if r['framework'] == 'fastlstm' else _fmt(r['fastlstm_speedup']) + 'x'} |")
        if run["checks"]:
            L += ["", "Inference output max abs diff vs PyTorch: " + "; ".join(
                f"{s}: " + ", ".join(f"{SHORT[f]} {d:.1e}" for f, d in dd.items())
                for s, dd in run["checks"].items()) + "."]
        L += ["", "</details>", ""]
        oc = run.get("load", {}).get("other_cores")
        if oc is not None:
            warn = " **(too busy: these figures are unreliable)**" if oc > 0.1 * m["usable_cpus"] else ""
            L += [f"Background load during this run: {oc:.2f} cores busy with other processes "
                  f"on average{warn}; run took {run['load']['wall_s']:.0f} s.", ""]
        if run.get("fastlstm_train") and run["fastlstm_train"] != m["fastlstm_train"]:
            L += [f"_fastlstm training step in this run: {run['fastlstm_train']}_", ""]
        for s in run["skipped"]:
            L += [f"_{s}_", ""]
    if doc.get("footprint"):
        import footprint
        L += ["## Import time and memory", "", footprint.markdown(doc["footprint"]), ""]
    if doc.get("plot"):
        L += ["## Chart", "", f"![fastlstm speedup over each peer]({doc['plot']})", "",
              "Bars: peer median time / fastlstm median time per shape (log scale; above 1 "
              "fastlstm is faster).", ""]
    return "\n".join(L) + "\n"


def reduced_markdown(run):
    """The run's "Reduced precision" subsection: per shape and precision, fastlstm's
    time, its peers' at that precision, and the ratios; nothing for a float32-only run."""
    qrows = [r for r in run["results"] if precision_of(r) != "float32"]
    if not qrows:
        return []
    peers = [f for f in bl.PEERS if any(r["framework"] == f for r in qrows)]
    head = (["shape", "precision", "fastlstm ms"] + [f"{SHORT[p]} ms" for p in peers]
            + [f"x {SHORT[p]}" for p in peers] + ["x fastlstm float32", "x ORT float32"])
    L = ["### Reduced precision (inference)", ""] + _table_head(head)
    by = {}
    for r in qrows:
        by.setdefault((r["shape"], r["precision"]), {})[r["framework"]] = r
    for (shape, prec), rows in by.items():
        fl = rows.get("fastlstm", {})
        cells = [shape, prec, _ms(fl.get("ms_median"))]
        cells += [_ms(rows[p]["ms_median"]) if p in rows else "–" for p in peers]
        cells += [_fmt(rows[p]["fastlstm_speedup"]) + "x" if p in rows and fl else "–"
                  for p in peers]
        cells += [_fmt(fl.get(f"x_{ref}_float32")) + "x" if fl.get(f"x_{ref}_float32") else "–"
                  for ref in ("fastlstm", "onnxruntime")]
        L.append("| " + " | ".join(cells) + " |")
    L += ["", "fastlstm: `layer.quantize(precision)`; torch bfloat16: the nn.LSTM and x "
          "`.to(torch.bfloat16)`; torch int8: `torch.ao.quantization.quantize_dynamic(..., "
          "{nn.LSTM}, dtype=torch.qint8)`; ORT int8: `onnxruntime.quantization.quantize_dynamic"
          "(..., op_types_to_quantize=[\"LSTM\"])` of the float32 ONNX graph above (its LSTM "
          "becomes a `DynamicQuantizeLSTM`). Timed in the same interleaved passes as the float32 "
          "table. **x peer** = peer time / fastlstm time at the same precision; **x fastlstm "
          "float32**, **x ORT float32** = their float32 time / fastlstm's reduced-precision time "
          "(above 1: the reduced form is faster)."]
    if run.get("torch_ops"):
        L += ["", "PyTorch's LSTM ran as (profiler; `aten::mkldnn_rnn_layer` is oneDNN's RNN "
              "primitive): " + "; ".join(f"{p} `{', '.join(ops)}`"
                                          for p, ops in run["torch_ops"].items()) + "."]
    if run.get("qchecks"):
        L += ["", "Reduced-precision output max abs diff vs PyTorch float32: " + "; ".join(
            f"{s}: " + ", ".join(f"{k} {d:.1e}" for k, d in dd.items())
            for s, dd in run["qchecks"].items()) + "."]
    return L + [""]


def plot(doc, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter, LogLocator
    except ImportError:
        log("matplotlib is not installed: no chart (pip install matplotlib)")
        return False
    runs = [dict(run, results=[r for r in run["results"] if precision_of(r) == "float32"])
            for run in doc["runs"]]
    modes = [m for m in bl.MODES if any(r["mode"] == m for run in runs for r in run["results"])]
    fig, axes = plt.subplots(len(modes), len(runs), figsize=(5.8 * len(runs), 3.8 * len(modes)),
                             squeeze=False)
    colors = {"torch": "#d62728", "onnxruntime": "#7f7f7f", "keras": "#ff7f0e"}
    vals = [r["fastlstm_speedup"] for run in runs for r in run["results"]
            if r["framework"] in bl.PEERS and r.get("fastlstm_speedup")]
    lo = min(vals + [1.0]) / 1.6
    hi = max(vals + [1.0]) * 1.6
    fmt = FuncFormatter(lambda v, _: f"{v:g}x")
    for j, run in enumerate(runs):
        for i, mode in enumerate(modes):
            ax = axes[i][j]
            rs = [r for r in run["results"] if r["mode"] == mode]
            shapes = []
            for r in rs:
                if r["shape"] not in shapes:
                    shapes.append(r["shape"])
            peers = [p for p in bl.PEERS if any(r["framework"] == p for r in rs)]
            width = 0.8 / max(1, len(peers))
            for k, p in enumerate(peers):
                xs, ys = [], []
                for si, s in enumerate(shapes):
                    for r in rs:
                        if r["shape"] == s and r["framework"] == p and r.get("fastlstm_speedup"):
                            xs.append(si + (k - (len(peers) - 1) / 2) * width)
                            ys.append(r["fastlstm_speedup"])
                ax.bar(xs, ys, width, label=f"vs {SHORT[p]}", color=colors.get(p))
                for x, y in zip(xs, ys):
                    ax.text(x, y, f"{y:.2g}", ha="center", va="bottom" if y >= 1 else "top",
                            fontsize=6)
            ax.axhline(1.0, color="black", lw=0.8)
            ax.set_yscale("log")
            ax.set_ylim(lo, hi)
            ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(fmt)
            ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
            ax.set_xticks(range(len(shapes)))
            ax.set_xticklabels(shapes)
            nt = run["threads"]
            ax.set_title(f"{'inference' if mode == 'infer' else 'training step'}, "
                         f"{nt} thread{'s' if nt > 1 else ''}", fontsize=10)
            if j == 0:
                ax.set_ylabel("peer time / fastlstm time")
            ax.grid(axis="y", which="major", alpha=0.3)
            if i == 0 and j == 0:
                ax.legend(fontsize=8)
    fig.suptitle(f"fastlstm speedup over each peer (above 1: fastlstm faster), "
                 f"{doc['machine']['cpu']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# ---------------------------------------------------------------------------- main

def parse(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="See the module docstring for what is timed and how.")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--threads", type=int, help="thread count for every framework "
                   "(default: all usable CPUs)")
    g.add_argument("--all", action="store_true",
                   help="one subprocess per thread count (--thread-list), merged")
    ap.add_argument("--thread-list", default=None,
                    help="thread counts for --all (default: 1,2 and all usable CPUs, capped)")
    ap.add_argument("--shapes", default=None,
                    help=f"comma list from {','.join(bl.CASES)} (default: all)")
    ap.add_argument("--modes", default="infer,train", help="infer,train (default both)")
    ap.add_argument("--frameworks", default=",".join(bl.FRAMEWORKS),
                    help="subset of fastlstm,torch,onnxruntime,keras (default all installed)")
    ap.add_argument("--reps", type=int, default=None, help="interleaved passes (default 7, quick 3)")
    ap.add_argument("--min-pass", type=float, default=None,
                    help="seconds per pass and framework (default 0.2, quick 0.03)")
    ap.add_argument("--warmup", type=int, default=None, help="warm-up calls (default 2, quick 1)")
    ap.add_argument("--gap-ms", type=float, default=20.0,
                    help="idle ms before each pass (lets other runtimes' spinning threads sleep)")
    ap.add_argument("--quick", action="store_true", help="few short passes, for smoke tests")
    ap.add_argument("--json", help="write all results to this JSON file")
    ap.add_argument("--markdown", help="write the RESULTS.md report to this path")
    ap.add_argument("--plot", help="write the speedup chart (PNG) to this path")
    ap.add_argument("--no-footprint", action="store_true",
                    help="skip import-time / RSS measurements")
    ap.add_argument("--no-check", action="store_true", help="skip the output agreement check")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--precision", default="float32",
                    help="inference precisions, comma list from float32,bfloat16,int8 "
                         "(default float32; float32 is always timed, as the reference)")
    ap.add_argument("--qtol", type=float, default=5e-2,
                    help="max abs diff of bfloat16 and int8 outputs from float32")
    ap.add_argument("--gemm-size", type=int, default=2048)
    ap.add_argument("--gemm-reps", type=int, default=None)
    ap.add_argument("--from-json", metavar="PATH",
                    help="measure nothing: re-render --markdown/--plot from a --json of an "
                         "earlier run")
    ap.add_argument("--verbose", action="store_true")
    a = ap.parse_args(argv)
    a.cases = bl.parse_shapes(a.shapes)
    a.modes = [m for m in a.modes.split(",") if m]
    if any(m not in bl.MODES for m in a.modes):
        ap.error(f"--modes must be from {bl.MODES}")
    a.frameworks = [f for f in a.frameworks.split(",") if f]
    if any(f not in bl.FRAMEWORKS for f in a.frameworks):
        ap.error(f"--frameworks must be from {bl.FRAMEWORKS}")
    if "fastlstm" not in a.frameworks:
        a.frameworks.insert(0, "fastlstm")
    a.precisions = [p for p in a.precision.split(",") if p]
    if any(p not in bl.PRECISIONS for p in a.precisions):
        ap.error(f"--precision must be from {bl.PRECISIONS}")
    a.precisions = [p for p in bl.PRECISIONS if p == "float32" or p in a.precisions]
    q = a.quick
    a.reps = a.reps or (3 if q else 7)
    a.min_pass = a.min_pass if a.min_pass is not None else (0.03 if q else 0.2)
    a.warmup = a.warmup if a.warmup is not None else (1 if q else 2)
    a.gemm_reps = a.gemm_reps or (2 if q else 5)
    ncpu = bl.usable_cpus()
    if a.thread_list:
        a.thread_list = [int(t) for t in a.thread_list.split(",")]
    else:
        a.thread_list = sorted({t for t in (1, 2, ncpu) if t <= ncpu})
    if a.threads is None and not a.all:
        a.threads = ncpu
    return a


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    cmd = "python bench/compare.py " + " ".join(shlex.quote(x) for x in argv)
    if args.from_json:                   # re-render a saved run (no measuring)
        with open(args.from_json) as f:
            doc = json.load(f)
        doc.pop("plot", None)
        if args.plot and plot(doc, args.plot):
            doc["plot"] = os.path.relpath(args.plot, os.path.dirname(os.path.abspath(
                args.markdown)) if args.markdown else os.getcwd())
            log(f"wrote {args.plot}")
        if args.markdown:
            write_markdown(args.markdown, markdown(doc))
        print(summary_text(doc))
        return
    if args.all:
        runs = run_all(args)
    else:
        runs = [run_one(args, args.threads)]
    doc = {"command": cmd, "date": datetime.datetime.now().isoformat(timespec="seconds"),
           "quick": args.quick, "machine": bl.machine_info(), "runs": runs,
           "settings": {"reps": args.reps, "min_pass_s": args.min_pass, "warmup": args.warmup,
                        "gap_s": args.gap_ms / 1e3}}
    if not args.no_footprint:
        import footprint
        nt = max(args.thread_list) if args.all else args.threads
        log(f"-- import time and memory footprint ({nt} thread(s), fresh subprocesses)")
        doc["footprint"] = footprint.measure(nt, 2 if args.quick else 5,
                                             1 if args.quick else 3, args.frameworks, log=log)
        print(footprint.markdown(doc["footprint"]), flush=True)
    if args.plot:
        if plot(doc, args.plot):
            doc["plot"] = os.path.relpath(args.plot, os.path.dirname(os.path.abspath(
                args.markdown)) if args.markdown else os.getcwd())
            log(f"wrote {args.plot}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)
        log(f"wrote {args.json}")
    if args.markdown:
        write_markdown(args.markdown, markdown(doc))
    # the final summary table(s) on stdout
    if len(runs) > 1 or args.markdown:
        print()
        print(summary_text(doc))


def summary_text(doc):
    """The headline tables only (what RESULTS.md shows first), for the console."""
    md = markdown(dict(doc, footprint=None, plot=None))
    out, keep = [], False
    for line in md.splitlines():
        if line.startswith("## ") and "thread" in line and "GEMM" not in line:
            keep = True
        elif line.startswith("<details>"):
            keep = False
        if keep:
            out.append(line)
    return "\n".join(out)


if __name__ == "__main__":
    main()
