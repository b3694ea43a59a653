"""Bounded mutation fuzzer for ``fastlstm.load``.

Mutates the valid model files of a seed corpus (see mutate.py for the
mutations) and loads each mutated file in a worker process that runs under
an address-space limit (RLIMIT_AS) and a per-case timeout. ``fastlstm.load``
must refuse a bad file with ValueError (or a subclass). A case is a FINDING
when

* load raises anything that is not a ValueError (MemoryError included: under
  the limit it means the loader allocated before it checked),
* the worker dies (a signal such as SIGSEGV or SIGABRT, or an exit),
* the case runs longer than --timeout seconds,
* the case raises the worker's peak resident memory by more than
  --max-case-mb (the loader read or allocated far more than a model file of
  a few KB needs).

Each finding is saved in --findings (default fuzz/findings/) as NAME.npz
(the file) and NAME.txt (what happened, the mutations that made it, the
traceback). Every case is a function of (--seed, case number, corpus), so
a run is reproducible; ``--replay FILE...`` loads given files the same way.

Run from the repository root, with fastlstm importable:

    python fuzz/fuzz_load.py --seconds 120 --seed 1

Prints one summary line (cases, cases/second, findings by kind) and exits 1
if there were findings, 2 if the fuzzer could not run.
"""

import argparse
import faulthandler
import glob
import json
import os
import random
import re
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

import mutate

HERE = os.path.dirname(os.path.abspath(__file__))

# A case's memory is measured as the growth of the worker's peak resident
# size, which only ever goes up: a worker whose peak has grown by more than
# this since it started is replaced, so that every case starts near the bottom.
WORKER_PEAK_SLACK_MB = 64

# How long a timed-out worker gets to print its stack before it is killed.
STACK_WAIT_SECONDS = 0.5

# ---------------------------------------------------------------- the worker process


def exception_location(exc):
    """'file.py:123 in function' of the innermost frame of an exception."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    frame = frames[-1]
    return f"{os.path.basename(frame.filename)}:{frame.lineno} in {frame.name}"


def exercise(model):
    """A small prediction with a loaded model (--predict)."""
    import numpy as np

    from fastlstm import LSTMForecaster

    if isinstance(model, LSTMForecaster):
        model.predict()
    elif hasattr(model, "vocab_size_"):
        model.predict(np.ones((2, 3), dtype=np.int64))
    elif model.n_features_in_ <= 10000:
        model.predict(np.zeros((2, 3, model.n_features_in_)))


def load_one(path, predict):
    """Load one file; returns the reply for the parent (a JSON-able dict)."""
    import fastlstm

    phase = "load"
    try:
        model = fastlstm.load(path)
        if predict:
            phase = "predict"
            exercise(model)
        return {"outcome": "ok"}
    except ValueError as e:
        if phase == "load":
            return {"outcome": "rejected", "type": type(e).__name__}
        error = e
    except BaseException as e:  # MemoryError, RecursionError, SystemExit, ...: all findings
        error = e
    try:
        text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    except BaseException:  # formatting can fail after a MemoryError
        text = "(traceback not available)"
    kind = "exception" if phase == "load" else "exception in predict after load"
    name = type(error).__qualname__
    if type(error).__module__ != "builtins":
        name = f"{type(error).__module__}.{name}"
    return {"outcome": kind, "type": name, "message": str(error)[:1000],
            "where": exception_location(error), "traceback": text[-6000:]}


def address_space_in_use():
    """Bytes of address space this process maps now (Linux)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[0])
    return pages * os.sysconf("SC_PAGE_SIZE")


def peak_mb():
    """The peak resident size of this process so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def print_stack(signum, frame):
    """SIGUSR1 handler: the Python stack, innermost first, to stderr (the log).

    The parent sends SIGUSR1 to a case that runs past its timeout. (Not
    faulthandler.dump_traceback_later: its watchdog thread reads the frames
    while the main thread changes them, and can crash the worker.)"""
    lines = ["Stack at the timeout (most recent call first):"]
    for entry in reversed(traceback.extract_stack(frame)):
        lines.append(f'  File "{entry.filename}", line {entry.lineno} in {entry.name}')
    sys.stderr.write("\n".join(lines) + "\n")
    sys.stderr.flush()


def worker_main(args):
    """Read case paths from stdin, one per line; reply one JSON line each."""
    import fastlstm  # noqa: F401  imported before the limit is set: the import does not count

    replies = os.fdopen(os.dup(1), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # a stray print cannot garble the replies
    limit = address_space_in_use() + args.memory_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    faulthandler.enable()  # a crash prints the Python stack to stderr (the log)
    signal.signal(signal.SIGUSR1, print_stack)
    replies.write(json.dumps({"outcome": "ready", "peak_mb": peak_mb()}) + "\n")
    for line in sys.stdin:
        path = line.rstrip("\n")
        peak_before = peak_mb()
        start = time.perf_counter()
        reply = load_one(path, args.predict)
        reply["seconds"] = round(time.perf_counter() - start, 4)
        reply["peak_mb"] = peak_mb()
        reply["peak_growth_mb"] = round(reply["peak_mb"] - peak_before, 1)
        replies.write(json.dumps(reply) + "\n")
    return 0


# ---------------------------------------------------------------- the parent side


class WorkerDied(Exception):
    pass


class Worker:
    """A worker process that loads case files one at a time."""

    def __init__(self, args, tmpdir):
        self.log_path = os.path.join(tmpdir, "worker.log")
        self.log = open(self.log_path, "ab")
        command = [sys.executable, os.path.abspath(__file__), "--worker",
                   "--memory-mb", str(args.memory_mb)]
        if args.predict:
            command.append("--predict")
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log)
        self.buffer = b""
        self.closed_output = False
        reply = self.read_reply(time.monotonic() + 120)
        if reply is None or reply.get("outcome") != "ready":
            self.stop()
            raise WorkerDied("the worker did not start:\n" + self.log_tail(0))
        self.start_peak_mb = reply["peak_mb"]

    def run(self, path, timeout):
        """Load ``path`` in the worker; returns the reply dict. A timeout or the
        worker's death gives outcome 'timeout' or 'worker killed by SIG...' /
        'worker exit status N', and the worker is gone."""
        log_start = os.path.getsize(self.log_path)
        try:
            self.proc.stdin.write(path.encode() + b"\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass
        reply = self.read_reply(time.monotonic() + timeout)
        if reply is not None:
            return reply
        if not self.closed_output:
            # ask for the stack it is stuck in (Python code only gets to print it
            # between two bytecodes: a long C call gives none), then kill it
            self.proc.send_signal(signal.SIGUSR1)
            time.sleep(STACK_WAIT_SECONDS)
            self.stop()
            return {"outcome": "timeout", "seconds": timeout, "log": self.log_tail(log_start)}
        status = self.proc.wait()
        self.stop()
        if status < 0:
            how = f"killed by {signal.Signals(-status).name}"
        else:
            how = f"exit status {status}"
        return {"outcome": f"worker {how}", "log": self.log_tail(log_start)}

    def read_reply(self, deadline):
        """The next JSON line from the worker, or None on timeout or at the end
        of its output (then ``closed_output`` is set: the worker is exiting)."""
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    self.closed_output = True
                    return None
                self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def log_tail(self, start):
        """What the worker wrote to stderr since offset ``start`` (its end)."""
        with open(self.log_path, "rb") as f:
            f.seek(start)
            return f.read()[-6000:].decode("utf-8", errors="replace")

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except BrokenPipeError:
                pass
        self.log.close()


def stack_location(log):
    """'file.py:123 in function' from a stack in the log (innermost first): the
    innermost frame in the fastlstm package if there is one, else the innermost."""
    frames = re.findall(r'File "([^"]+)", line (\d+) in (\S+)', log or "")
    if not frames:
        return ""
    ours = [f for f in frames if os.path.basename(os.path.dirname(f[0])) == "fastlstm"]
    path, line, function = (ours or frames)[0]
    return f"{os.path.basename(path)}:{line} in {function}"


def classify(reply, max_case_mb):
    """(finding kind, where) for a reply, or None when the case is fine."""
    outcome = reply["outcome"]
    if outcome in ("ok", "rejected"):
        if reply.get("peak_growth_mb", 0) > max_case_mb:
            return f"memory > {max_case_mb} MB", ""
        return None
    if outcome.startswith("exception"):
        return f"{outcome} {reply['type']}", reply.get("where", "")
    return outcome, stack_location(reply.get("log"))


def describe(reply, kind, where, description, origin):
    """The text saved next to a finding's file."""
    lines = [f"finding: {kind}", f"where: {where or '?'}", f"case: {origin}",
             f"mutations: {description}", f"seconds: {reply.get('seconds')}",
             f"peak memory growth (MB): {reply.get('peak_growth_mb')}"]
    if reply.get("message"):
        lines.append(f"message: {reply['type']}: {reply['message']}")
    if reply.get("traceback"):
        lines += ["", reply["traceback"]]
    if reply.get("log"):
        lines += ["", "worker stderr:", reply["log"]]
    return "\n".join(lines) + "\n"


def slug(text):
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")[:60]


class Findings:
    """Counts findings by (kind, where) and saves the first few of each."""

    def __init__(self, directory, keep):
        self.directory = directory
        self.keep = keep
        self.by_signature = {}  # (kind, where) -> [count, first saved path, first message]

    def add(self, kind, where, reply, blob, description, name):
        """Count a finding (and save it); returns True if its kind and place are new."""
        signature = (kind, where)
        new = signature not in self.by_signature
        entry = self.by_signature.setdefault(signature, [0, None, reply.get("message", "")])
        entry[0] += 1
        if entry[0] > self.keep:
            return new
        os.makedirs(self.directory, exist_ok=True)
        base = os.path.join(self.directory, f"{name}-{slug(kind)}")
        with open(base + ".npz", "wb") as f:
            f.write(blob)
        with open(base + ".txt", "w") as f:
            f.write(describe(reply, kind, where, description, name))
        if entry[1] is None:
            entry[1] = base + ".npz"
        return new

    def total(self):
        return sum(entry[0] for entry in self.by_signature.values())

    def by_kind(self):
        counts = {}
        for (kind, _), entry in self.by_signature.items():
            counts[kind] = counts.get(kind, 0) + entry[0]
        return counts


class Runner:
    """Runs case files through a worker, restarting it when it dies."""

    def __init__(self, args, tmpdir):
        self.args = args
        self.tmpdir = tmpdir
        self.worker = None
        self.restarts = 0

    def run(self, path):
        if self.worker is None or not self.worker.alive():
            if self.worker is not None:
                self.worker.stop()
                self.restarts += 1
            self.worker = Worker(self.args, self.tmpdir)
        reply = self.worker.run(path, self.args.timeout)
        if reply.get("peak_mb", 0) > self.worker.start_peak_mb + WORKER_PEAK_SLACK_MB:
            self.worker.stop()  # see WORKER_PEAK_SLACK_MB
        return reply

    def close(self):
        if self.worker is not None:
            self.worker.stop()


def corpus_files(directory):
    paths = sorted(glob.glob(os.path.join(directory, "*.npz")))
    if not paths:
        raise SystemExit(f"fuzz_load: no .npz files in {directory}")
    return paths


def check_seeds(runner, paths):
    """Every seed must load as it is, or the mutations start from nothing valid."""
    bad = []
    for path in paths:
        reply = runner.run(path)
        if reply["outcome"] != "ok":
            bad.append(f"  {path}: {reply['outcome']} {reply.get('type', '')}")
    if bad:
        print("fuzz_load: these seed files do not load; regenerate the corpus with "
              "fuzz/make_corpus.py:\n" + "\n".join(bad), file=sys.stderr)
        return False
    return True


def fuzz(args, runner, tmpdir):
    paths = corpus_files(args.corpus)
    seeds = mutate.load_seeds(paths)
    findings = Findings(args.findings, args.keep)
    outcomes = {}
    case_path = os.path.join(tmpdir, "case.npz")
    start = time.monotonic()
    if not check_seeds(runner, paths):
        return 2
    cases = 0
    slowest = (0.0, "")
    while time.monotonic() - start < args.seconds and (args.cases is None or cases < args.cases):
        rng = random.Random(f"{args.seed}:{cases}")
        try:
            blob, description = mutate.make_case(rng, seeds)
        except Exception:
            traceback.print_exc()
            print(f"fuzz_load: a mutation failed (a bug in fuzz/mutate.py, not in fastlstm); "
                  f"reproduce with --seed {args.seed} --cases {cases + 1}", file=sys.stderr)
            return 2
        with open(case_path, "wb") as f:
            f.write(blob)
        reply = runner.run(case_path)
        outcomes[reply["outcome"]] = outcomes.get(reply["outcome"], 0) + 1
        if reply.get("seconds", 0) > slowest[0]:
            slowest = (reply["seconds"], f"case {cases}: {description}")
        verdict = classify(reply, args.max_case_mb)
        if verdict is not None:
            kind, where = verdict
            new = findings.add(kind, where, reply, blob, description,
                               f"seed{args.seed}-case{cases:07d}")
            if new or args.verbose:
                print(f"case {cases}: {kind} at {where or '?'}: "
                      f"{mutate.short(description, 300)}", flush=True)
        cases += 1
    elapsed = time.monotonic() - start
    print(f"  slowest case: {slowest[0]:.2f} s ({mutate.short(slowest[1], 200)})")
    report(args, cases, elapsed, runner.restarts, outcomes, findings)
    return 1 if findings.total() else 0


def report(args, cases, elapsed, restarts, outcomes, findings):
    for (kind, where), (count, path, message) in sorted(findings.by_signature.items(),
                                                        key=lambda item: -item[1][0]):
        print(f"  {count:6d}  {kind} at {where or '?'}: {message[:150]}")
        print(f"          e.g. {path}")
    kinds = ", ".join(f"{kind}: {n}" for kind, n in sorted(findings.by_kind().items()))
    seen = ", ".join(f"{name} {n}" for name, n in sorted(outcomes.items()))
    print(f"fuzz_load: seed {args.seed}, {cases} cases in {elapsed:.1f} s "
          f"({cases / max(elapsed, 1e-9):.1f} cases/s; outcomes: {seen}; "
          f"worker restarts: {restarts}); "
          f"findings: {findings.total()} ({len(findings.by_signature)} distinct)"
          + (f": {kinds}" if kinds else ""))


def replay(args, runner):
    status = 0
    for path in args.replay:
        reply = runner.run(os.path.abspath(path))
        verdict = classify(reply, args.max_case_mb)
        if verdict is None:
            print(f"{path}: {reply['outcome']} {reply.get('type', '')}".rstrip())
            continue
        status = 1
        kind, where = verdict
        print(f"{path}: FINDING {kind} at {where or '?'}")
        print(describe(reply, kind, where, "(replayed file)", path))
    return status


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60, help="time budget (default 60)")
    ap.add_argument("--cases", type=int, default=None,
                    help="stop after this many cases (with --seconds, whichever comes first)")
    ap.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    ap.add_argument("--corpus", default=os.path.join(HERE, "corpus"),
                    help="directory of valid seed .npz files (default fuzz/corpus)")
    ap.add_argument("--findings", default=os.path.join(HERE, "findings"),
                    help="where findings are saved (default fuzz/findings)")
    ap.add_argument("--timeout", type=float, default=10, help="seconds per case (default 10)")
    ap.add_argument("--memory-mb", type=int, default=2048,
                    help="address space a case may add to the worker's (RLIMIT_AS; "
                         "default 2048)")
    ap.add_argument("--max-case-mb", type=int, default=512,
                    help="peak resident memory a case may add (default 512)")
    ap.add_argument("--keep", type=int, default=3,
                    help="files saved per distinct finding (default 3)")
    ap.add_argument("--predict", action="store_true",
                    help="also run a small predict on every model that loads")
    ap.add_argument("--verbose", action="store_true",
                    help="print every finding as it happens (default: the first of each kind)")
    ap.add_argument("--replay", nargs="+", metavar="FILE",
                    help="load these files (no mutation) and report what happens")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        return worker_main(args)
    tmpdir = tempfile.mkdtemp(prefix="fuzz_load-")
    runner = Runner(args, tmpdir)
    try:
        if args.replay:
            return replay(args, runner)
        return fuzz(args, runner, tmpdir)
    except WorkerDied as e:
        print(f"fuzz_load: {e}", file=sys.stderr)
        return 2
    finally:
        runner.close()
        shutil.rmtree(tmpdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
