#!/usr/bin/env bash
# CI ThreadSanitizer stage: build the extension with -fsanitize=thread (OpenMP
# on), run the thread-safety tests (tests/test_threads.py,
# tests/test_concurrency.py) and a stress script (4 Python threads sharing
# layers with n_threads=2) against it on every instruction-set level the build
# has and the CPU runs (FASTLSTM_MAX_ISA: each level has its own tile and unit
# block, so its own split of the work), fail on any TSan report or test
# failure, then put the normal build back. 2.5 min on 2 busy cores (build
# 21 s + 9 s, tests 57 s + 33 s, normal rebuild ~25 s). Two passes:
#
#  1. gcc + libgomp (the toolchain fastlstm ships with; all levels),
#     OMP_THREAD_LIMIT=1.
#     libgomp is not TSan-instrumented and syncs its barriers with raw
#     futexes, so TSan never sees their happens-before: with real OpenMP
#     threads one round of the stress script gives ~640 reports, all false
#     (a worker's writes read by the master after the join barrier; the
#     master's stack frame, read by its workers, reused by the next call).
#     race:libgomp.so would silence them but also hides every access made
#     inside a parallel region (the region's frames sit on a libgomp frame),
#     and matching them made one round take 190 s instead of 2 s. With
#     OMP_THREAD_LIMIT=1 every region runs on the calling thread, libgomp
#     starts no worker, and nothing is hidden: this pass checks races between
#     Python threads (the GIL is released in every kernel call), including
#     accesses inside the regions, while the kernels still plan for
#     n_threads=2 or 3 and run every share on the one thread.
#  2. clang-14 + LLVM's libomp + Archer (libarcher.so, an OMPT tool that tells
#     TSan about libomp's barriers, tasks and locks): real OpenMP threads,
#     so races between the threads of one team are checked too, on the
#     baseline level only (clang builds only that one: src_c/level.h). This needs
#     apt's clang-14 and libomp-14-dev (installed here when missing). The TSan
#     runtime is still gcc's libtsan: clang-14's own shared runtime
#     (libclang_rt.tsan-x86_64.so) segfaults at start when preloaded, even
#     into /bin/true, on this machine's kernel (6.18); gcc 12's libtsan comes
#     from the same compiler-rt generation, has the same __tsan_* interface,
#     and works.
#
# Why each setting is there:
# * -fsanitize=thread -fno-omit-frame-pointer -g1: TSan instrumentation and
#   stack traces with file:line (-g1: line tables only, quick to compile).
# * FASTLSTM_MAX_ISA=<level>: each level the TSan build has and the CPU runs
#   (levels_supported()), one after the other.
# * LD_PRELOAD=libtsan: Python is not built with TSan and the runtime must be
#   loaded first (without it the import fails: "cannot allocate memory in
#   static TLS block").
# * TSAN_OPTIONS
#     suppressions=.ci/tsan.supp    uninstrumented OpenMP runtimes' own calls
#                                   into intercepted functions (see the file).
#     halt_on_error=0 + log_path    collect every report of the run (TSan
#                                   dedups them), each process in its own file;
#                                   the stage fails if any file exists (TSan
#                                   also makes the process exit with 66).
#     second_deadlock_stack=1       both stacks in lock-order reports.
# * ARCHER_OPTIONS=verbose=1 (stress script only: Archer prints it on stdout,
#   which a test in test_threads.py compares): Archer says when it attaches,
#   and the stage checks that it did (without it pass 2 would get pass 1's
#   false positives, now from libomp). Archer's advice to set
#   ignore_noninstrumented_modules=1 is filtered from the log (tsan.supp).
# * pytest --capture=sys: reports written to fd 2 go straight to the log.
set -euo pipefail
cd "$(dirname "$0")/.."

t0=$SECONDS
jobs=$(nproc 2>/dev/null || echo 2)

probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT

# --- toolchains ------------------------------------------------------------------
# gcc's TSan runtime (Debian: gcc-12 -> libgcc-12-dev -> libtsan2).
echo 'int main(void) { return 0; }' > "$probe/p.c"
if ! { gcc -fsanitize=thread "$probe/p.c" -o "$probe/p" 2>/dev/null && "$probe/p"; }; then
    v=$(gcc -dumpversion | cut -d. -f1)
    echo "tsan: installing libgcc-$v-dev (libtsan) from apt"
    apt-get update -qq && apt-get install -y -qq "libgcc-$v-dev" >/dev/null
    gcc -fsanitize=thread "$probe/p.c" -o "$probe/p" && "$probe/p"
fi
TSAN_LIB=$(readlink -f "$(gcc -print-file-name=libtsan.so)")
[ -f "$TSAN_LIB" ] || { echo "tsan: libtsan.so not found" >&2; exit 1; }
# clang-14, libomp and Archer for pass 2 (Debian 12's clang).
ARCHER=/usr/lib/llvm-14/lib/libarcher.so
if ! command -v clang-14 >/dev/null || [ ! -f "$ARCHER" ]; then
    echo "tsan: installing clang-14 libomp-14-dev (Archer) from apt"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang-14 libomp-14-dev >/dev/null
fi
python -c "import Cython, setuptools" 2>/dev/null || python -m pip install -q Cython setuptools wheel

# --- put the normal build back whatever happens below ----------------------------
restore() {
    local rc=$?
    rm -rf "$probe"
    echo "tsan: rebuilding the normal extension"
    env -u CC -u CFLAGS -u LDFLAGS -u LD_PRELOAD python setup.py -q build_ext --inplace --force -j "$jobs" \
        >/dev/null 2>&1 || { echo "tsan: normal rebuild FAILED" >&2; rc=1; }
    echo "tsan: done in $((SECONDS - t0))s, exit status $rc"
    exit $rc
}
trap restore EXIT

# --- the stress script: 4 Python threads share an LSTM(64, 64) and a 2-layer
# bidirectional GRU (n_threads=2): inference (checked against the serial result)
# and training forward + backward, 3 rounds each, all at once.
cat > "$probe/stress.py" <<'EOF'
import sys, threading
import numpy as np
import fastlstm

layers = [fastlstm.LSTM(64, 64, n_threads=2, random_state=0),
          fastlstm.GRU(32, 48, num_layers=2, bidirectional=True, n_threads=2, random_state=1)]
rng = np.random.default_rng(0)
inputs = [[rng.standard_normal((8, 12, l.input_size)).astype(np.float32) for _ in range(4)]
          for l in layers]
serial = [[l(x)[0] for x in xs] for l, xs in zip(layers, inputs)]
errors = []
barrier = threading.Barrier(4)

def worker(k):
    try:
        barrier.wait()
        for _ in range(3):
            for li, l in enumerate(layers):
                x = inputs[li][k]
                assert np.array_equal(l(x)[0], serial[li][k]), (li, k)
                y, _, cache = l.forward(x)
                l.backward(cache, np.ones_like(y))
    except Exception as e:
        errors.append(repr(e))

threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
for th in threads:
    th.start()
for th in threads:
    th.join()
print("stress script (%s, level %s):" % (fastlstm.__file__, fastlstm._kernels.isa()),
      "errors " + "; ".join(errors) if errors else "ok")
sys.exit(1 if errors else 0)
EOF

# run_pass NAME OMP_SYMBOL SELECT [VAR=VALUE ...]: build with the CC/CFLAGS
# already in the environment of the call, check the build, run the tests
# (pytest -k SELECT when not empty) on each level with the given variables
# under TSan; exit 1 on any report or failure.
run_pass() {
    local name=$1 omp_sym=$2 select=$3
    shift 3
    local archer=""
    case " $* " in *OMP_TOOL_LIBRARIES=*) archer=ARCHER_OPTIONS=verbose=1 ;; esac
    local t=$SECONDS
    python setup.py -q build_ext --inplace --force -j "$jobs" > "$probe/build.log" 2>&1 \
        || { tail -40 "$probe/build.log"; echo "tsan[$name]: build FAILED" >&2; exit 1; }
    local build_s=$((SECONDS - t))
    local so
    so=$(ls fastlstm/_kernels*.so)
    nm -D "$so" > "$probe/syms"
    grep -q __tsan_read "$probe/syms" || { echo "tsan[$name]: $so is not TSan-instrumented" >&2; exit 1; }
    grep -q "$omp_sym" "$probe/syms" || { echo "tsan[$name]: $so was built without OpenMP" >&2; exit 1; }

    local logs="$probe/logs-$name"
    mkdir -p "$logs"
    local tsan_options="suppressions=$PWD/.ci/tsan.supp:halt_on_error=0:second_deadlock_stack=1:log_path=$logs/tsan"
    local levels
    levels=$(env "$@" LD_PRELOAD="$TSAN_LIB" TSAN_OPTIONS="$tsan_options" \
             python -c "import fastlstm._kernels as k; print(' '.join(k.levels_supported()))")
    t=$SECONDS
    local rc=0 rc2=0 level summaries=""
    : > "$probe/out-$name.log"
    set +e
    for level in $levels; do
        echo "--- tsan[$name]: level $level"
        env "$@" FASTLSTM_MAX_ISA="$level" LD_PRELOAD="$TSAN_LIB" TSAN_OPTIONS="$tsan_options" \
            python -m pytest -q -p no:cacheprovider --capture=sys ${select:+-k "$select"} \
            tests/test_threads.py tests/test_concurrency.py 2>&1 \
            | tee "$probe/pytest.log" | grep -vE '\((rel|abs)\) +[-+.0-9e]+$|ignore_noninstrumented_modules=1'
        [ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
        cat "$probe/pytest.log" >> "$probe/out-$name.log"
        summaries="$summaries $level: $(grep -E '^=*.*[0-9]+ passed' "$probe/pytest.log" | tail -1 | sed 's/=//g; s/^ *//; s/ *$//' | sed 's/ in .*//');"
        # PYTHONPATH: the script lives outside the checkout; import this checkout's
        # fastlstm (the TSan build), not whatever an installed one points at
        env "$@" $archer FASTLSTM_MAX_ISA="$level" PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" \
            LD_PRELOAD="$TSAN_LIB" TSAN_OPTIONS="$tsan_options" \
            python "$probe/stress.py" 2>&1 | tee -a "$probe/out-$name.log" | grep -vE 'ignore_noninstrumented_modules=1'
        [ "${PIPESTATUS[0]}" -eq 0 ] || rc2=1
    done
    set -e
    local test_s=$((SECONDS - t))

    if [ -n "$(ls "$logs")" ]; then
        for f in "$logs"/*; do
            echo "=== ThreadSanitizer report(s), pass $name: $(basename "$f") ==="
            cat "$f"
        done
        echo "tsan[$name]: FAILED: $(cat "$logs"/* | grep -c 'WARNING: ThreadSanitizer') report(s) above" >&2
        exit 1
    fi
    if grep -q 'WARNING: ThreadSanitizer' "$probe/out-$name.log"; then
        echo "tsan[$name]: FAILED: ThreadSanitizer report in the output above" >&2
        exit 1
    fi
    if [ "$rc" -ne 0 ] || [ "$rc2" -ne 0 ]; then
        echo "tsan[$name]: FAILED: pytest failed: $rc, stress script failed: $rc2" >&2
        exit 1
    fi
    if [ -n "$archer" ] && ! grep -q 'Archer detected OpenMP application with TSan' "$probe/out-$name.log"; then
        echo "tsan[$name]: FAILED: Archer did not attach" >&2
        exit 1
    fi
    echo "tsan[$name]: clean:$summaries each + the stress script; build ${build_s}s, tests ${test_s}s"
}

# pass 1: gcc + libgomp (every level), every region on the calling thread. The
# 96 determinism tests (one Python thread, n_threads = 1, 2, 3) run on one
# thread here, where TSan has nothing to check: they are left to pass 2.
CFLAGS="-fsanitize=thread -fno-omit-frame-pointer -g1" LDFLAGS="-fsanitize=thread" \
    run_pass gcc-libgomp GOMP_parallel "not test_bitwise_identical_for_any_thread_count" OMP_THREAD_LIMIT=1
# pass 2: clang + libomp + Archer (baseline level), real OpenMP teams
CC=clang-14 CFLAGS="-fsanitize=thread -fno-omit-frame-pointer -g1" LDFLAGS="-fsanitize=thread" \
    run_pass clang-libomp-archer __kmpc_fork_call "" OMP_TOOL_LIBRARIES="$ARCHER"
