#!/usr/bin/env bash
# Bounded fuzzing of the model-file loader (fastlstm.load).
#
# Run from the repository root, inside an activated virtual environment in
# which fastlstm is importable (e.g. after `pip install -e .`). The fuzzer
# needs only the standard library and numpy, so nothing is installed here.
#
# Environment (optional):
#   FUZZ_SECONDS  time budget (default 120)
#   FUZZ_SEED     random seed (default 20240601: a fixed seed, so a red run
#                 can be reproduced locally with the same command)
#
# Exit status: 0 no findings, 1 findings (saved in fuzz/findings/, keep that
# directory as a CI artifact), 2 the fuzzer could not run.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-120}"
seed="${FUZZ_SEED:-20240601}"

python -c "import fastlstm, numpy" || {
    echo "fuzz.sh: fastlstm is not importable; activate the venv and pip install -e . first" >&2
    exit 2
}

rm -rf fuzz/findings
echo "fuzz.sh: fuzzing fastlstm.load for ${seconds} s with seed ${seed}"
python fuzz/fuzz_load.py --seconds "${seconds}" --seed "${seed}" \
    --corpus fuzz/corpus --findings fuzz/findings
