"""Write the seed corpus of valid model files for fuzz_load.py into fuzz/corpus/.

Each model is fitted for one epoch on a few tiny samples with tiny hidden
sizes, so each file is a few KB. ``Estimator.save`` stores its members
uncompressed (as ``numpy.savez`` does); two files are rewritten with deflated
members (as ``numpy.savez_compressed`` writes them), since a zip member may be
either and the fuzzer should mutate both.

Run from the repository root:  python fuzz/make_corpus.py
"""

import argparse
import os
import sys
import zipfile

import numpy as np

from fastlstm import LSTMClassifier, LSTMForecaster, LSTMRegressor, load

TINY = dict(epochs=1, batch_size=4, n_threads=1, random_state=0)


def fitted_models():
    """(file name, fitted estimator) for every seed file."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(8, 5, 2))
    y = X[:, -1, 0] + X[:, 0, 1]
    ids = rng.integers(1, 7, size=(8, 6))
    labels = np.array(["ant", "bee", "cat", "ant", "bee", "cat", "ant", "bee"])
    series = np.sin(np.arange(30) / 3.0)
    series2 = np.c_[series, np.cos(np.arange(30) / 5.0)]
    return [
        ("regressor_lstm.npz",
         LSTMRegressor(hidden_sizes=(3,), **TINY).fit(X, y)),
        ("classifier_embedding.npz",
         LSTMClassifier(hidden_sizes=(3,), embedding_dim=2, **TINY).fit(ids, labels)),
        ("forecaster_direct.npz",
         LSTMForecaster(window=4, horizon=2, hidden_sizes=(3,), **TINY).fit(series)),
        ("regressor_gru_bidirectional_seq.npz",
         LSTMRegressor(hidden_sizes=(2, 2), cell="gru", bidirectional=True,
                       dtype="float64", **TINY).fit(X, X[:, :, :1])),
        ("classifier_peephole_binary.npz",
         LSTMClassifier(hidden_sizes=(2,), cell="peephole", activation="relu",
                        gate_activation="hard_sigmoid", **TINY).fit(X, y > 0)),
        ("forecaster_recursive_cifg.npz",
         LSTMForecaster(window=3, horizon=2, strategy="recursive", difference=True,
                        hidden_sizes=(2,), cell="cifg", **TINY).fit(series2)),
        # int8 weights and row scales in members of their own (quant_weights, quant_scales)
        ("regressor_int8_stacked.npz",
         LSTMRegressor(hidden_sizes=(3, 2), **TINY).fit(X, y).quantize("int8")),
    ]


def rewrite_deflated(src, dst):
    """Copy the zip ``src`` to ``dst`` with every member deflated."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            # a fixed timestamp keeps the file identical from run to run
            member = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            member.compress_type = zipfile.ZIP_DEFLATED
            zout.writestr(member, zin.read(info))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "corpus"),
                    help="output directory (default: fuzz/corpus)")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)

    written = []
    for name, model in fitted_models():
        path = os.path.join(args.out, name)
        model.save(path)
        written.append(path)
    # deflated copies of a classifier (string labels) and a forecaster
    for name in ("classifier_embedding.npz", "forecaster_direct.npz"):
        deflated = os.path.join(args.out, name.replace(".npz", "_deflated.npz"))
        rewrite_deflated(os.path.join(args.out, name), deflated)
        written.append(deflated)

    total = 0
    for path in written:
        load(path)  # every seed must load
        size = os.path.getsize(path)
        total += size
        print(f"{size:7d}  {path}")
    print(f"{total:7d}  total ({len(written)} files)")
    if total > 200_000:
        print("corpus is larger than 200 KB; make the models smaller", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
