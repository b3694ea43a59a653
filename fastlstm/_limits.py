"""Upper bounds on sizes, checked before anything is allocated or built.

They stop a typo or a hostile model file from asking for absurd memory or
time (a loop over 2**31 layers, a workspace for a million threads) and keep
every size inside the C kernels' int arithmetic. Each is far above real use.
"""

MAX_LAYERS = 64              # stacked recurrent layers: num_layers, len(hidden_sizes)
MAX_WIDTH = 1 << 24          # input_size, hidden_size, embedding_dim, n_outputs
MAX_THREADS = 4096           # |n_threads|
MAX_INFERRED_VOCAB = 1 << 22  # vocabulary sized from the largest token id (vocab_size=None)
