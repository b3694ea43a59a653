#!/usr/bin/env bash
# CI sanitizer stage: build the extension with AddressSanitizer +
# UndefinedBehaviorSanitizer (OpenMP on), run the test suite against it, fail
# on any sanitizer report or test failure, then put the normal build back.
# Run from the repository root (or anywhere: it cds there) inside the CI venv.
#
# Why each setting is there:
# * -fsanitize=address,undefined: out-of-bounds / use-after-free on the heap
#   (numpy buffers and the kernels' workspaces are malloc'd, so ASan sees
#   them), the stack and globals; signed overflow, bad shifts, misaligned or
#   null accesses, out-of-bounds array indexing.
# * float-cast-overflow: a float -> int conversion out of range (a NaN or huge
#   value turned into an index or a count) is UB; -fsanitize=undefined leaves
#   it out in GCC.
# * -fno-sanitize-recover=all: UBSan stops at the first report instead of
#   printing and going on, so a report cannot scroll past in a green run.
# * -fno-omit-frame-pointer -g1: whole stack traces with file:line, at a
#   fraction of -g's compile time (its variable tracking is what is slow).
# * Optimisation stays at setup.py's -O3 (its extra_compile_args come after
#   CFLAGS, so an -O1 here would be overridden anyway): the optimised code CI
#   ships is the code checked.
# * Every instruction-set level is built (avx512, avx2, baseline: each has its
#   own vector width, register tile and unit block, so each indexes memory
#   its own way), and the suite's tests/test_levels.py reruns the numerical
#   tests under each level the CPU runs, in subprocesses that inherit the
#   sanitizer environment below.
# * LD_PRELOAD=libasan: Python is not built with ASan, and the ASan runtime
#   must be loaded before anything else; LD_PRELOAD does that for the pytest
#   process and every subprocess it starts. libstdc++ is preloaded with it:
#   otherwise ASan's __cxa_throw interceptor finds no real one and aborts
#   the first C++ extension that throws (matplotlib's ft2font does, on import).
# * ASAN_OPTIONS
#     detect_leaks=0        the interpreter, numpy and torch keep objects alive
#                           until exit on purpose; LeakSanitizer would report
#                           thousands of such "leaks", none in fastlstm.
#     halt_on_error=1       stop at the first error (ASan's default, spelled out).
#     abort_on_error=1      abort() rather than _exit(1): pytest's faulthandler
#                           then prints the Python stack (which test), and the
#                           exit status (134) is not an ordinary test failure.
#     detect_stack_use_after_return=1   also catch pointers to a returned
#                           frame (kernels pass stack tiles by pointer).
#     log_path=DIR/asan     whole reports go to files, also from subprocesses
#                           (the examples, test_threads' OMP_THREAD_LIMIT
#                           child, whose stderr the tests capture and cut);
#                           the stage fails if any such file exists.
# * UBSAN_OPTIONS: halt_on_error=1 (fatal even if a build lacks
#   -fno-sanitize-recover), abort_on_error=1 (as for ASan: without it UBSan
#   ends the process with _exit(1), which reads like a test failure),
#   print_stacktrace=1. UBSan ignores log_path in this setup (gcc 12, ASan
#   preloaded: no file is written), so its reports go to stderr, and:
# * pytest --capture=sys: pytest's default fd-level capture would swallow a
#   report written to fd 2 by a process that then aborts (the temp file dies
#   with it); with sys-level capture C code writes straight to the log, and
#   the stage also fails on any sanitizer line it finds there.
# * The whole tests/ directory runs (about 1 min under ASan): the optimiser
#   (fl_adam), the finiteness check and the sum of squares are reached only
#   from test_optim, test_network and test_estimators, not the numerical tests.
set -euo pipefail
cd "$(dirname "$0")/.."

t0=$SECONDS
jobs=$(nproc 2>/dev/null || echo 2)
SAN="-fsanitize=address,undefined,float-cast-overflow"

# --- toolchain: gcc's sanitizer runtimes (libasan, libubsan) ---------------
# On Debian they come with gcc itself (gcc-12 -> libgcc-12-dev -> libasan8,
# libubsan1); install them only when a sanitized test program does not run.
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
echo 'int main(void) { return 0; }' > "$probe/p.c"
if ! { gcc $SAN "$probe/p.c" -o "$probe/p" 2>/dev/null && "$probe/p"; }; then
    v=$(gcc -dumpversion | cut -d. -f1)
    echo "sanitize: installing libgcc-$v-dev (libasan, libubsan) from apt"
    apt-get update -qq && apt-get install -y -qq "libgcc-$v-dev" >/dev/null
    gcc $SAN "$probe/p.c" -o "$probe/p" && "$probe/p"
fi
ASAN_LIB=$(readlink -f "$(gcc -print-file-name=libasan.so)")
[ -f "$ASAN_LIB" ] || { echo "sanitize: libasan.so not found" >&2; exit 1; }
python -c "import Cython, setuptools" 2>/dev/null || python -m pip install -q Cython setuptools wheel

# --- put the normal build back whatever happens below ---------------------
restore() {
    local rc=$?
    rm -rf "$probe"
    echo "sanitize: rebuilding the normal extension"
    env -u CFLAGS -u LDFLAGS -u LD_PRELOAD python setup.py -q build_ext --inplace --force -j "$jobs" \
        >/dev/null 2>&1 || { echo "sanitize: normal rebuild FAILED" >&2; rc=1; }
    echo "sanitize: done in $((SECONDS - t0))s, exit status $rc"
    exit $rc
}
trap restore EXIT

# --- sanitized build ----------------------------------------------------
t=$SECONDS
CFLAGS="$SAN -fno-sanitize-recover=all -fno-omit-frame-pointer -g1" \
LDFLAGS="$SAN" \
    python setup.py -q build_ext --inplace --force -j "$jobs" > "$probe/build.log" 2>&1 \
    || { tail -40 "$probe/build.log"; echo "sanitize: sanitized build FAILED" >&2; exit 1; }
build_s=$((SECONDS - t))
so=$(ls fastlstm/_kernels*.so)
# a build that silently lost the flags would pass everything: check it
# (to a file first: `nm | grep -q` fails under pipefail when grep exits early)
nm -D "$so" > "$probe/syms"
grep -q __asan_report "$probe/syms" || { echo "sanitize: $so is not ASan-instrumented" >&2; exit 1; }
grep -q __ubsan_handle "$probe/syms" || { echo "sanitize: $so is not UBSan-instrumented" >&2; exit 1; }
grep -q GOMP_parallel "$probe/syms" || { echo "sanitize: $so was built without OpenMP" >&2; exit 1; }
# the C API library is built by the same setup.py with the same flags;
# tests/test_c_api.py runs it in-process (ctypes) and in the example program
# it compiles (an uninstrumented executable: the LD_PRELOADed runtime below
# serves it, its ASan reports go to log_path, and a UBSan report aborts it,
# which fails the test)
lib=fastlstm/libfastlstm.so
nm -D "$lib" > "$probe/libsyms"
grep -q __asan_report "$probe/libsyms" || { echo "sanitize: $lib is not ASan-instrumented" >&2; exit 1; }
grep -q __ubsan_handle "$probe/libsyms" || { echo "sanitize: $lib is not UBSan-instrumented" >&2; exit 1; }

# --- tests under the sanitizers -------------------------------------------
logs="$probe/logs"
mkdir -p "$logs"
t=$SECONDS
set +e
LD_PRELOAD="$ASAN_LIB libstdc++.so.6" \
ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1:detect_stack_use_after_return=1:log_path=$logs/asan" \
UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1" \
    python -m pytest -q -p no:cacheprovider --capture=sys tests/ 2>&1 | tee "$probe/pytest.log" | grep -vE '\((rel|abs)\) +[-+.0-9e]+$'
rc=${PIPESTATUS[0]}
set -e
test_s=$((SECONDS - t))

reports=$(ls "$logs")
if [ -n "$reports" ]; then
    for f in "$logs"/*; do
        echo "=== sanitizer report: $(basename "$f") ==="
        cat "$f"
    done
    echo "sanitize: FAILED: sanitizer report(s) above" >&2
    exit 1
fi
if grep -qE 'runtime error:|ERROR: AddressSanitizer|Sanitizer:DEADLYSIGNAL' "$probe/pytest.log"; then
    echo "sanitize: FAILED: sanitizer report in the test output above" >&2
    exit 1
fi
if [ "$rc" -ne 0 ]; then
    echo "sanitize: FAILED: pytest exit status $rc" >&2
    exit 1
fi
summary=$(grep -E '^=*.*[0-9]+ passed' "$probe/pytest.log" | tail -1 | sed 's/=//g; s/^ *//; s/ *$//')
echo "sanitize: ASan+UBSan clean: $summary; sanitized build ${build_s}s, tests ${test_s}s"
