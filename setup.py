"""Build fastlstm's extension, fastlstm/_kernels.pyx + the C kernels in src_c/,
and its C library for programs without Python, fastlstm/libfastlstm.so: the
same kernels plus the model-file API of src_c/api/ (public header
fastlstm/include/fastlstm_model.h, shipped as package data).

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
from setuptools.command.build_ext import build_ext

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
COMPILE_ARGS = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-Wno-unknown-pragmas", "-Wno-psabi"]
ext = Extension(
    "fastlstm._kernels",
    sources=["fastlstm/_kernels.pyx"] + sorted(glob("src_c/*.c")),
    include_dirs=["src_c", numpy.get_include()],   # the numpy C API (_kernels.pyx's _data)
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_2_0_API_VERSION")],
    extra_compile_args=COMPILE_ARGS + omp_compile,
    extra_link_args=omp_link,
    depends=sorted(glob("src_c/*.h")),
)

# The C API library: a plain shared library (no Python C API: a C program
# links it without libpython) exporting only fastlstm_model.h's functions.
LIB_NAME = "fastlstm.libfastlstm"
LIB_FILE = "libfastlstm.dylib" if sys.platform == "darwin" else "libfastlstm.so"
lib = Extension(
    LIB_NAME,
    sources=sorted(glob("src_c/*.c")) + sorted(glob("src_c/api/*.c")),
    include_dirs=["src_c", "src_c/api", "fastlstm/include"],
    extra_compile_args=COMPILE_ARGS + ["-fvisibility=hidden", "-pthread"] + omp_compile,
    extra_link_args=omp_link + ["-pthread"] + (
        [f"-Wl,-soname,{LIB_FILE}"] if sys.platform.startswith("linux") else []),
    libraries=["m"],
    depends=sorted(glob("src_c/*.h") + glob("src_c/api/*.h")) + ["fastlstm/include/fastlstm_model.h"],
)


class BuildExt(build_ext):
    """build_ext that also links the C API library, under its own name and
    with its own object directory (the kernels are compiled for it again:
    the two builds may run at once with -j)."""

    def get_ext_filename(self, fullname):
        # called with the dotted name, and with its last part alone
        parts = fullname.split(".")
        if parts[-1] == LIB_NAME.split(".")[-1]:
            return os.path.join(*parts[:-1], LIB_FILE)
        return super().get_ext_filename(fullname)

    def build_extension(self, ext):
        if ext.name != LIB_NAME:
            return super().build_extension(ext)
        out = self.get_ext_fullpath(ext.name)
        inputs = list(ext.sources) + list(ext.depends)
        if not self.force and os.path.exists(out) and all(
                os.path.getmtime(f) <= os.path.getmtime(out) for f in inputs):
            return                                  # up to date
        objects = self.compiler.compile(
            ext.sources, output_dir=os.path.join(self.build_temp, "libfastlstm"),
            include_dirs=ext.include_dirs, extra_postargs=ext.extra_compile_args,
            depends=ext.depends, debug=self.debug)
        self.compiler.link_shared_object(
            objects, out, libraries=ext.libraries, extra_postargs=ext.extra_link_args,
            target_lang="c", debug=self.debug)


setup(ext_modules=cythonize([ext], compiler_directives={"language_level": "3"}) + [lib],
      cmdclass={"build_ext": BuildExt})
