"""Build fastlstm's one extension: fastlstm/_kernels.pyx + the C kernels in src_c/.

OpenMP is probed by compiling a small program with -fopenmp; FASTLSTM_OPENMP=0
forces a single-threaded build. Nothing is compiled for the build machine's
CPU alone: the kernels dispatch at run time between AVX-512, AVX2+FMA and
baseline code (src_c/fl_simd.h).
"""
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from glob import glob

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

OPENMP_TEST = r"""
#include <omp.h>
int main(void) { int n = 0;
#pragma omp parallel reduction(+:n)
  n += 1;
  return n > 0 ? 0 : 1; }
"""


def openmp_flags():
    """Return (compile, link) flags for OpenMP, or ([], []) when it is unavailable."""
    if os.environ.get("FASTLSTM_OPENMP", "1") == "0":
        print("fastlstm: OpenMP disabled by FASTLSTM_OPENMP=0; building single-threaded")
        return [], []
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    cc = cc.split()
    tmp = tempfile.mkdtemp()
    try:
        src = os.path.join(tmp, "omp.c")
        with open(src, "w") as f:
            f.write(OPENMP_TEST)
        cmd = cc + ["-fopenmp", src, "-o", os.path.join(tmp, "omp")]
        ok = subprocess.run(cmd, capture_output=True).returncode == 0
    except OSError:
        ok = False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if ok:
        print("fastlstm: OpenMP found (-fopenmp); building multi-threaded")
        return ["-fopenmp"], ["-fopenmp"]
    print("fastlstm: OpenMP not available; building single-threaded", file=sys.stderr)
    return [], []


omp_compile, omp_link = openmp_flags()
ext = Extension(
    "fastlstm._kernels",
    sources=["fastlstm/_kernels.pyx"] + sorted(glob("src_c/*.c")),
    include_dirs=["src_c", numpy.get_include()],   # the numpy C API (_kernels.pyx's _data)
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_2_0_API_VERSION")],
    extra_compile_args=["-O3", "-fno-math-errno", "-fno-trapping-math", "-Wno-unknown-pragmas", "-Wno-psabi"] + omp_compile,
    extra_link_args=omp_link,
    depends=sorted(glob("src_c/*.h")),
)

setup(ext_modules=cythonize([ext], compiler_directives={"language_level": "3"}))
