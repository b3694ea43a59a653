"""Old name of the kernel helpers, which now live in helpers.py.

Kept only while test modules still say ``import kernel_util as ku``; delete this
file when none does. Add nothing here.
"""
from helpers import (compare_all, kernel_infer, kernel_train, lstm_state,  # noqa: F401
                     make_case, make_layer, projected_loss, random_lengths, reference_train,
                     rel_err, seed_of)
