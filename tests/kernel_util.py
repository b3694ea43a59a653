"""Old name of the kernel helpers, which now live in helpers.py.

Kept only because tests/test_threads.py (and the script it runs in a subprocess)
still says ``import kernel_util as ku``; delete this file when that module imports
helpers instead. Add nothing here.
"""
from helpers import (kernel_infer, kernel_train, make_case, make_layer,  # noqa: F401
                     random_lengths, seed_of)
