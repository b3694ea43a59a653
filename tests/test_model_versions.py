"""Model files across versions: files of older versions load (what they lack
takes its default), files of newer versions load with a warning when they
declare that this version computes their function (``min_reader_version``)
and are refused naming both versions when not; pickles warn on a version
mismatch; ``include_optimizer`` makes partial_fit continue exactly."""
import copy
import json
import os
import pickle
import re
import warnings
import zipfile

import numpy as np
import pytest

import fastlstm
from fastlstm.exceptions import InconsistentVersionWarning
from fastlstm.io import ModelFileWarning

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
# saved by fastlstm 0.1.0 at f792628 (tests/fixtures/make_baseline.py)
FIXTURE_FILES = ("regressor_peephole_bidi", "classifier_gru_embedding",
                 "forecaster_cifg_recursive")

RNG = np.random.default_rng(0)
X = RNG.standard_normal((24, 5, 2))
Y = X[:, :, 0].sum(axis=1)


def _members(path):
    with zipfile.ZipFile(path) as zf:
        return {n[:-4]: np.lib.format.read_array(zf.open(n)) for n in zf.namelist()}


def _rewrite(src, dst, edit):
    """Copy a model file, letting edit(config) change its JSON config."""
    members = _members(src)
    config = json.loads(members["config"].tobytes())
    edit(config)
    members["config"] = np.frombuffer(json.dumps(config).encode(), np.uint8)
    with zipfile.ZipFile(dst, "w") as zf:
        for name, arr in members.items():
            with zf.open(name + ".npy", "w") as f:
                np.lib.format.write_array(f, arr, allow_pickle=False)
    return dst


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    est = fastlstm.LSTMRegressor(hidden_sizes=(6,), epochs=2, batch_size=8, random_state=0,
                                 n_threads=1).fit(X, Y)
    return est, est.save(tmp_path_factory.mktemp("m") / "m.npz")


@pytest.mark.parametrize("name", FIXTURE_FILES)
def test_files_of_the_first_release_load_without_warnings(name):
    path = os.path.join(FIXTURES, f"{name}.npz")
    config = json.loads(_members(path)["config"].tobytes())
    assert config["fastlstm_version"] == "0.1.0" and "min_reader_version" not in config
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fastlstm.load(path)


def test_unknown_keys_of_a_newer_writer_warn_and_are_ignored(saved, tmp_path):
    est, path = saved

    def newer(c):
        c["fastlstm_version"] = "0.7.0"
        c["min_reader_version"] = "0.1.0"     # its writer says 0.1.0 computes the same
        c["params"]["label_smoothing"] = 0.1
        c["fitted"]["train_seconds_"] = 1.5
        c["network"]["recurrent_dropout"] = 0.0
    with pytest.warns(ModelFileWarning, match="0.7.0.*params.label_smoothing.*"
                      "network.recurrent_dropout.*fitted.train_seconds_"):
        loaded = fastlstm.load(_rewrite(path, tmp_path / "newer.npz", newer))
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))


def test_a_file_needing_a_newer_reader_is_refused_naming_versions(saved, tmp_path):
    _, path = saved

    def newer(c):
        c["fastlstm_version"] = "0.7.0"
        c["min_reader_version"] = "0.6.0"
        c["network"]["layer_norm"] = True
    with pytest.raises(ValueError, match=r"needs fastlstm >= 0\.6\.0.*written by fastlstm "
                       r"0\.7\.0.*this is fastlstm " + re.escape(fastlstm.__version__)
                       + ": upgrade"):
        fastlstm.load(_rewrite(path, tmp_path / "newer.npz", newer))


def test_keys_an_older_writer_lacked_take_their_defaults(saved, tmp_path):
    est, path = saved

    def older(c):
        for key in ("gate_activation", "clip_norm", "verbose", "restore_best_weights"):
            del c["params"][key]
        del c["network"]["gate_activation"]
        del c["fastlstm_version"]
        del c["min_reader_version"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = fastlstm.load(_rewrite(path, tmp_path / "older.npz", older))
    assert (loaded.gate_activation, loaded.clip_norm, loaded.verbose) == ("sigmoid", None, 0)
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))


def test_a_required_network_key_missing_is_refused(saved, tmp_path):
    _, path = saved
    with pytest.raises(ValueError, match="network spec"):
        fastlstm.load(_rewrite(path, tmp_path / "bad.npz",
                               lambda c: c["network"].pop("hidden_sizes")))


def test_pickle_from_another_version_warns():
    est = fastlstm.LSTMRegressor(hidden_sizes=(4,), epochs=1, random_state=0,
                                 n_threads=1).fit(X, Y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        same = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(same.predict(X), est.predict(X))
    state = est.__getstate__()
    state["_fastlstm_version"] = "0.0.9"
    other = fastlstm.LSTMRegressor.__new__(fastlstm.LSTMRegressor)
    with pytest.warns(InconsistentVersionWarning, match="from version 0.0.9 when using "
                      "version " + re.escape(fastlstm.__version__)) as record:
        other.__setstate__(state)
    w = record[0].message
    assert (w.estimator_name, w.original_version, w.current_version) == \
        ("LSTMRegressor", "0.0.9", fastlstm.__version__)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_include_optimizer_continues_partial_fit_exactly(optimizer, tmp_path):
    est = fastlstm.LSTMRegressor(hidden_sizes=(6, 5), dropout=0.3, optimizer=optimizer,
                                 learning_rate=0.01, epochs=2, batch_size=8, random_state=1,
                                 n_threads=1).fit(X, Y)
    ref = copy.deepcopy(est)
    for _ in range(2):
        ref.partial_fit(X, Y)
    with_opt = fastlstm.load(est.save(tmp_path / "with.npz", include_optimizer=True))
    without = fastlstm.load(est.save(tmp_path / "without.npz"))
    for model in (with_opt, without):
        for _ in range(2):
            model.partial_fit(X, Y)
    np.testing.assert_array_equal(with_opt._network.params, ref._network.params)
    assert with_opt.loss_curve_ == ref.loss_curve_
    # without the optimizer state the optimizer and the streams start over
    assert not np.array_equal(without._network.params, ref._network.params)
    # and the saved state survives a second round trip
    again = fastlstm.load(with_opt.save(tmp_path / "again.npz", include_optimizer=True))
    ref.partial_fit(X, Y)
    again.partial_fit(X, Y)
    np.testing.assert_array_equal(again._network.params, ref._network.params)


def test_training_state_is_checked(tmp_path):
    est = fastlstm.LSTMRegressor(hidden_sizes=(4,), epochs=1, random_state=0,
                                 n_threads=1).fit(X, Y)
    path = est.save(tmp_path / "t.npz", include_optimizer=True)
    bad_stream = lambda c: c["training"]["streams"]["shuffle_rng"].update(bit_generator="MT")
    for edit in (lambda c: c["training"].update(step=-1),
                 lambda c: c["training"].update(optimizer="sgd"),
                 bad_stream):
        with pytest.raises(ValueError, match="training state"):
            fastlstm.load(_rewrite(path, tmp_path / "bad.npz", edit))


def test_validation_losses_of_first_release_files_move_to_their_new_name(tmp_path):
    est = fastlstm.LSTMRegressor(hidden_sizes=(4,), epochs=3, early_stopping=True,
                                 random_state=0, n_threads=1).fit(X, Y)
    assert len(est.validation_scores_) == 3 and est.validation_scores_ != \
        est.validation_loss_curve_
    path = est.save(tmp_path / "new.npz")
    loaded = fastlstm.load(path)
    assert loaded.validation_scores_ == est.validation_scores_
    assert loaded.validation_loss_curve_ == est.validation_loss_curve_

    def as_written_by_0_1_0(c):        # validation_scores_ held the losses then
        c["fitted"]["validation_scores_"] = c["fitted"].pop("validation_loss_curve_")
        c["fastlstm_version"] = "0.1.0"
        del c["min_reader_version"]
    old = fastlstm.load(_rewrite(path, tmp_path / "old.npz", as_written_by_0_1_0))
    assert old.validation_loss_curve_ == est.validation_loss_curve_
    assert old.validation_scores_ is None
