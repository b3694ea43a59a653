"""Model files: round trips, and a corpus of bad files that must raise ValueError."""

import json
import os
import pickle
import zipfile

import numpy as np

from fastlstm.spec import NetworkSpec
import pytest

from fastlstm.estimators import LSTMClassifier, LSTMForecaster, LSTMRegressor
from fastlstm import load
from fastlstm.io import FORMAT_VERSION

FAST = dict(hidden_sizes=(5,), epochs=2, batch_size=16, n_threads=1, random_state=0)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 6, 2))
    return dict(
        X=X,
        y=X[:, -1, 0] + X[:, 0, 1],
        Y3=X[:, :, :1] * 2.0,
        ids=rng.integers(0, 9, size=(30, 7)),
        labels=rng.choice(["ant", "bee", "cat"], 30),
        series=np.sin(np.arange(80) / 4.0) + np.arange(80) / 40.0,
    )


@pytest.fixture(scope="module")
def models(data):
    return {
        "regressor": LSTMRegressor(**FAST).fit(data["X"], data["y"]),
        "seq2seq": LSTMRegressor(**dict(FAST, cell="gru", bidirectional=True)).fit(
            data["X"], data["Y3"]),
        "classifier_ids": LSTMClassifier(**dict(FAST, embedding_dim=4, cell="peephole")).fit(
            data["ids"], data["labels"]),
        "classifier_binary": LSTMClassifier(**dict(FAST, cell="cifg")).fit(
            data["X"], data["y"] > 0),
        "forecaster": LSTMForecaster(window=8, horizon=3, **FAST).fit(data["series"]),
        "forecaster_rec": LSTMForecaster(window=8, horizon=3, strategy="recursive", difference=True,
                                         **FAST).fit(np.c_[data["series"], -data["series"]]),
    }


def _outputs(name, model, data):
    if name.startswith("forecaster"):
        return [model.predict()]
    if name == "classifier_ids":
        return [model.predict_proba(data["ids"]), model.predict(data["ids"])]
    if name == "classifier_binary":
        return [model.predict_proba(data["X"]), model.predict(data["X"])]
    return [model.predict(data["X"])]


@pytest.mark.parametrize("name", ["regressor", "seq2seq", "classifier_ids",
                                  "classifier_binary", "forecaster", "forecaster_rec"])
def test_round_trip_gives_identical_predictions(name, models, data, tmp_path):
    model = models[name]
    path = tmp_path / "m.npz"
    assert model.save(path) == str(path)
    assert os.path.exists(path) and not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    loaded = load(path)
    assert type(loaded) is type(model)
    assert loaded.get_params() == model.get_params()
    for a, b in zip(_outputs(name, model, data), _outputs(name, loaded, data)):
        np.testing.assert_array_equal(a, b)  # same parameters, same arithmetic
    assert loaded.loss_curve_ == model.loss_curve_
    assert loaded.n_iter_ == model.n_iter_
    assert loaded.n_features_in_ == model.n_features_in_
    # the loaded model can keep training
    if name == "regressor":
        loaded.partial_fit(data["X"], data["y"])
        assert loaded.n_iter_ == model.n_iter_ + 1


def test_file_is_plain_npz_without_pickles(models, tmp_path):
    path = tmp_path / "m.npz"
    models["classifier_ids"].save(path)
    with np.load(path, allow_pickle=False) as z:  # numpy itself can read every member
        assert int(z["format_version"]) == FORMAT_VERSION
        config = json.loads(z["config"].tobytes().decode("utf-8"))
        assert config["estimator"] == "LSTMClassifier"
        for name, spec in config["arrays"].items():
            assert list(z[name].shape) == spec["shape"]


def test_pickle_round_trip(models, data):
    for name, model in models.items():
        clone = pickle.loads(pickle.dumps(model))
        for a, b in zip(_outputs(name, model, data), _outputs(name, clone, data)):
            np.testing.assert_array_equal(a, b)


def test_unfitted_model_cannot_be_saved(tmp_path):
    from fastlstm.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        LSTMRegressor().save(tmp_path / "m.npz")


# ---------------------------------------------------------------- the bad-file corpus


def _members(path):
    with zipfile.ZipFile(path) as zf:
        out = {}
        for name in zf.namelist():
            with zf.open(name) as f:
                out[name[:-4]] = np.lib.format.read_array(f, allow_pickle=True)
    return out


def _write(path, members, duplicate=None):
    with zipfile.ZipFile(path, "w") as zf:
        for name, arr in members.items():
            with zf.open(name + ".npy", "w") as f:
                np.lib.format.write_array(f, np.asanyarray(arr), allow_pickle=True)
        if duplicate:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # zipfile warns about the duplicate
                with zf.open(duplicate + ".npy", "w") as f:
                    np.lib.format.write_array(f, members[duplicate])


def _config(members):
    return json.loads(members["config"].tobytes().decode("utf-8"))


def _with_config(members, config, raw=None):
    members = dict(members)
    text = raw if raw is not None else json.dumps(config)
    members["config"] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    return members


@pytest.fixture(scope="module")
def good_files(models, tmp_path_factory):
    d = tmp_path_factory.mktemp("good")
    out = {}
    for name in ("regressor", "classifier_ids", "forecaster"):
        p = d / f"{name}.npz"
        models[name].save(p)
        out[name] = p
    return out


def _bad_variants(good_files):
    """(id, builder) pairs; builder(tmp_path) writes a bad file and returns its path."""
    reg = good_files["regressor"]
    clf = good_files["classifier_ids"]
    fc = good_files["forecaster"]
    variants = []

    def add(vid, base, mutate, duplicate=None):
        def build(tmp):
            m = _members(base)
            m = mutate(m)
            p = tmp / f"{vid}.npz"
            _write(p, m, duplicate)
            return p
        variants.append((vid, build))

    def set_cfg(path_keys, value):
        def mutate(m):
            c = _config(m)
            node = c
            for k in path_keys[:-1]:
                node = node[k]
            node[path_keys[-1]] = value
            return _with_config(m, c)
        return mutate

    # --- truncation, at several depths of the file
    for frac in (0.02, 0.3, 0.6, 0.97):
        def build(tmp, frac=frac):
            raw = open(reg, "rb").read()
            p = tmp / f"trunc{frac}.npz"
            open(p, "wb").write(raw[: max(1, int(len(raw) * frac))])
            return p
        variants.append((f"truncated_{frac}", build))

    def build_trunc_member(tmp):
        m = _members(reg)
        p = tmp / "trunc_member.npz"
        with zipfile.ZipFile(p, "w") as zf:
            for name, arr in m.items():
                buf = __import__("io").BytesIO()
                np.lib.format.write_array(buf, arr)
                data = buf.getvalue()
                if name == "params":
                    data = data[:-8]  # header intact, data two floats short
                zf.writestr(name + ".npy", data)
        return p
    variants.append(("member_data_truncated", build_trunc_member))

    # --- version
    add("version_2", reg, lambda m: {**m, "format_version": np.array(2, np.int64)})
    add("version_float", reg, lambda m: {**m, "format_version": np.array(1.0)})
    add("version_vector", reg, lambda m: {**m, "format_version": np.array([1, 1])})
    add("config_version_mismatch", reg, set_cfg(["format_version"], 3))
    add("version_missing", reg, lambda m: {k: v for k, v in m.items() if k != "format_version"})

    # --- pickles
    add("object_array_params", reg,
        lambda m: {**m, "params": np.array([{"evil": 1}, 2], dtype=object)})
    add("object_dtype_in_config", reg, lambda m: _with_config(
        {**m, "params": np.array([{"evil": 1}], dtype=object)},
        {**_config(m), "arrays": {**_config(m)["arrays"],
                                  "params": {"shape": [1], "dtype": "object"}}}))

    def build_raw_pickle(tmp):
        p = tmp / "pickle.npz"
        p.write_bytes(pickle.dumps({"not": "a model"}))
        return p
    variants.append(("raw_pickle_file", build_raw_pickle))

    # --- shapes inconsistent with the config / architecture
    add("params_shorter_than_config", reg,
        lambda m: {**m, "params": m["params"][:-3]})

    def consistent_but_wrong(m):
        m = dict(m)
        m["params"] = m["params"][:-3]
        c = _config(m)
        c["arrays"]["params"]["shape"] = [m["params"].size]
        return _with_config(m, c)
    add("params_size_not_architecture", reg, consistent_but_wrong)

    def huge_architecture(m):
        c = _config(m)
        c["params"]["hidden_sizes"] = [100000]
        c["network"]["hidden_sizes"] = [100000]
        return _with_config(m, c)
    add("huge_hidden_size_small_params", reg, huge_architecture)
    add("params_dtype_mismatch", reg,
        lambda m: {**m, "params": m["params"].astype(np.float64)})
    add("spec_cell_mismatch", reg, set_cfg(["network", "cell"], "gru"))
    add("n_features_mismatch", reg, set_cfg(["fitted", "n_features_in_"], 7))
    add("loss_curve_length", reg, set_cfg(["fitted", "loss_curve_"], [1.0]))
    add("classes_unsorted", clf, lambda m: {**m, "classes": m["classes"][::-1].copy()})
    add("classes_count_mismatch", clf, lambda m: _with_config(
        {**m, "classes": np.array(["a", "b", "c", "d"])},
        {**_config(m), "arrays": {**_config(m)["arrays"],
                                  "classes": {"shape": [4], "dtype": "<U1"}}}))
    add("forecaster_zero_scale", fc, lambda m: {**m, "scale": np.zeros_like(m["scale"])})
    add("forecaster_window_mismatch", fc, set_cfg(["params", "window"], 9))

    # --- non-numeric / wrongly typed config values
    add("hidden_sizes_strings", reg, set_cfg(["params", "hidden_sizes"], ["5"]))
    add("spec_hidden_sizes_strings", reg, set_cfg(["network", "hidden_sizes"], ["5"]))
    add("learning_rate_string", reg, set_cfg(["params", "learning_rate"], "0.1"))
    add("epochs_float", reg, set_cfg(["params", "epochs"], 1.5))
    add("n_features_string", reg, set_cfg(["fitted", "n_features_in_"], "2"))
    add("n_features_bool", reg, set_cfg(["fitted", "n_features_in_"], True))
    add("loss_curve_strings", reg, set_cfg(["fitted", "loss_curve_"], ["x", "y"]))
    add("best_loss_null", reg, set_cfg(["fitted", "best_loss_"], None))
    add("params_object_value", reg, set_cfg(["params", "cell"], {"evil": 1}))
    add("hostile_n_threads", reg, set_cfg(["params", "n_threads"], 10**7))
    def needs_newer_reader(m):
        c = _config(m)
        c["params"]["surprise"] = 1
        c["min_reader_version"] = "99.0.0"
        return _with_config(m, c)

    add("needs_newer_reader", reg, needs_newer_reader)
    add("min_reader_not_a_version", reg, set_cfg(["min_reader_version"], "latest"))
    add("unknown_estimator", reg, set_cfg(["estimator"], "os.system"))
    add("shape_not_ints", reg, set_cfg(["arrays", "params", "shape"], ["3"]))
    add("config_nan_constant", reg, lambda m: _with_config(
        m, None, raw=json.dumps(_config(m)).replace('"best_loss_": ', '"best_loss_": NaN, "x": ')))
    add("config_huge_float", reg, lambda m: _with_config(
        m, None, raw=json.dumps(_config(m)).replace('"best_loss_": ', '"best_loss_": 1e999, "x": ')))
    add("recursive_horizon_huge", fc, lambda m: set_cfg(["params", "strategy"], "recursive")(
        set_cfg(["params", "horizon"], 10**9)(_fix_recursive_outputs(m))))
    add("config_not_json", reg, lambda m: _with_config(m, None, raw="{not json"))
    add("config_not_object", reg, lambda m: _with_config(m, None, raw="[1, 2]"))
    add("config_bad_utf8", reg, lambda m: {**m, "config": np.array([0xff, 0xfe], np.uint8)})
    add("config_missing", reg, lambda m: {k: v for k, v in m.items() if k != "config"})

    # --- values
    add("nan_params", reg, lambda m: {**m, "params": np.where(
        np.arange(m["params"].size) == 3, np.nan, m["params"]).astype(m["params"].dtype)})
    add("inf_params", reg, lambda m: {**m, "params": np.full_like(m["params"], np.inf)})

    # --- members
    add("extra_member", reg, lambda m: {**m, "extra": np.zeros(3)})
    add("missing_params", reg, lambda m: {k: v for k, v in m.items() if k != "params"})
    add("duplicate_member", reg, lambda m: m, duplicate="params")

    def build_npy(tmp):
        p = tmp / "plain.npz"
        with open(p, "wb") as f:
            np.save(f, np.zeros(3))
        return p
    variants.append(("plain_npy_file", build_npy))

    def build_empty(tmp):
        p = tmp / "empty.npz"
        p.write_bytes(b"")
        return p
    variants.append(("empty_file", build_empty))
    return variants


def _fix_recursive_outputs(m):
    # a recursive forecaster's network has n_vars outputs: make the file otherwise valid
    c = _config(m)
    c["network"]["n_outputs"] = 1
    m = dict(m)
    n = NetworkSpec.from_json(c["network"]).param_count()        # one output fewer rows in the head
    m["params"] = m["params"][:n].copy()
    c["arrays"]["params"]["shape"] = [n]
    return _with_config(m, c)


def _variant_ids():
    # ids only; builders are made per test from the fixture
    return [
        "truncated_0.02", "truncated_0.3", "truncated_0.6", "truncated_0.97",
        "member_data_truncated", "version_2", "version_float", "version_vector",
        "config_version_mismatch", "version_missing", "object_array_params",
        "object_dtype_in_config", "raw_pickle_file", "params_shorter_than_config",
        "params_size_not_architecture", "huge_hidden_size_small_params",
        "params_dtype_mismatch", "spec_cell_mismatch", "n_features_mismatch",
        "loss_curve_length", "classes_unsorted", "classes_count_mismatch",
        "forecaster_zero_scale", "forecaster_window_mismatch", "hidden_sizes_strings",
        "spec_hidden_sizes_strings", "learning_rate_string", "epochs_float",
        "n_features_string", "n_features_bool", "loss_curve_strings", "best_loss_null",
        "params_object_value", "hostile_n_threads", "needs_newer_reader",
        "min_reader_not_a_version", "unknown_estimator",
        "shape_not_ints", "config_nan_constant", "config_huge_float",
        "recursive_horizon_huge", "config_not_json", "config_not_object",
        "config_bad_utf8", "config_missing", "nan_params", "inf_params", "extra_member",
        "missing_params", "duplicate_member", "plain_npy_file", "empty_file",
    ]


def test_corpus_ids_are_complete(good_files):
    assert [vid for vid, _ in _bad_variants(good_files)] == _variant_ids()


EXPECTED_WORDS = {
    # a few variants must say what is wrong in words a user can act on
    "version_2": "version",
    "raw_pickle_file": "pickle",
    "object_array_params": "pickle",
    "nan_params": "NaN",
    "params_shorter_than_config": "shape",
    "member_data_truncated": "truncated",
    "unknown_estimator": "unknown estimator",
    "recursive_horizon_huge": "horizon",
    "config_huge_float": "out-of-range",
    "hostile_n_threads": "n_threads",
    "needs_newer_reader": "upgrade fastlstm",
    "huge_hidden_size_small_params": "but the architecture in the config has",
}


@pytest.mark.parametrize("vid", _variant_ids())
def test_bad_model_file_raises_value_error(vid, good_files, tmp_path):
    build = dict(_bad_variants(good_files))[vid]
    path = build(tmp_path)
    with pytest.raises(ValueError) as info:
        load(path)
    if vid in EXPECTED_WORDS:
        assert EXPECTED_WORDS[vid].lower() in str(info.value).lower(), str(info.value)


def test_good_files_load(good_files):
    # the corpus is built from these: they must load, so each failure above is the mutation's
    for p in good_files.values():
        load(p)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "nope.npz")
