"""Batch-1 inference in bfloat16 and int8: compare.py's reduced-precision mode
on shapes e and f at one thread.

    python bench/quantized.py [more compare.py options, e.g. --reps 15 --markdown out.md]

runs ``python bench/compare.py`` with the options in ARGS and then the ones
given (a later value wins). See compare.py's docstring for what is timed.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import compare  # noqa: E402

ARGS = ["--threads", "1", "--modes", "infer", "--shapes", "e,f",
        "--precision", "float32,bfloat16,int8", "--frameworks", "fastlstm,torch,onnxruntime",
        "--no-footprint"]

if __name__ == "__main__":
    compare.main(ARGS + sys.argv[1:])
