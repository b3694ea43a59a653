"""Coverage-guided fuzzing of fastlstm.load with atheris (optional, for long runs).

fuzz_load.py is the bounded, reproducible fuzzer that CI runs; this harness
adds code-coverage guidance (libFuzzer, through atheris) for longer runs by
hand. Inputs are mutated with mutate.py's structured and raw mutations (a
custom mutator) and, for a share of them, with libFuzzer's own byte
mutations; coverage of zipfile, numpy's .npy reader, json and fastlstm
decides which mutated files are kept as new seeds.

    pip install atheris   # wheels for CPython 3.11-3.13 on x86-64 Linux
    mkdir -p /tmp/atheris-corpus
    python fuzz/atheris_load.py -max_total_time=600 -timeout=10 -rss_limit_mb=4096 \\
        -max_len=1000000 -artifact_prefix=fuzz/findings/ /tmp/atheris-corpus fuzz/corpus

libFuzzer stops at the first finding (an exception other than ValueError,
which includes MemoryError under the 2 GiB address-space limit set here, a
crash, a case over -timeout seconds, or memory over -rss_limit_mb) and writes
the file as crash-*, timeout-* or oom-* under -artifact_prefix; replay it
with ``python fuzz/fuzz_load.py --replay FILE``. (libFuzzer's -fork mode,
which would keep going, does not work with atheris.) New inputs go to the
first corpus directory, so give it a scratch directory, not fuzz/corpus.
"""

import glob
import os
import random
import resource
import sys
import tempfile

import atheris

import mutate

import fastlstm
import fastlstm.io  # noqa: F401

HERE = os.path.dirname(os.path.abspath(__file__))
SEEDS = mutate.load_seeds(sorted(glob.glob(os.path.join(HERE, "corpus", "*.npz"))))
CASE_PATH = os.path.join(tempfile.mkdtemp(prefix="atheris_load-"), "case.npz")
LIBFUZZER_SHARE = 0.2  # inputs mutated by libFuzzer's byte mutations instead of mutate.py


def test_one_input(data):
    with open(CASE_PATH, "wb") as f:
        f.write(data)
    try:
        fastlstm.load(CASE_PATH)
    except ValueError:
        pass  # the expected way to refuse a file; anything else is a finding


def custom_mutator(data, max_size, seed):
    rng = random.Random(seed)
    if rng.random() < LIBFUZZER_SHARE:
        return atheris.Mutate(data, max_size)
    try:
        members = mutate.read_members(data)
    except Exception:  # not a readable archive (any of zipfile's errors): raw mutations only
        members = None
    blob, _ = mutate.mutate_file(rng, data, members, SEEDS)
    return blob[:max_size]


def main():
    # as in fuzz_load.py: a loader that allocates before it checks hits this limit
    with open("/proc/self/statm") as f:
        in_use = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    limit = in_use + (2 << 30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    # coverage of everything loaded: fastlstm, zipfile, numpy's .npy reader, json
    atheris.instrument_all()
    atheris.Setup(sys.argv, test_one_input, custom_mutator=custom_mutator)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
