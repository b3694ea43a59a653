"""scale_inputs=True: each feature standardised with the statistics of fit's real
steps, the same in training, prediction, streaming, model files and export."""
import json
import zipfile

import numpy as np
import pytest

import fastlstm
from fastlstm import _version

RNG = np.random.default_rng(0)
SEQS = [RNG.normal([100.0, -3.0], [20.0, 0.01], size=(n, 2)) for n in (6, 3, 5, 6, 2, 4) * 3]
Y = np.array([s[:, 0].mean() / 100 + s[-1, 1] * 10 for s in SEQS])
KW = dict(hidden_sizes=(6,), epochs=3, batch_size=6, random_state=0, n_threads=1)


def test_statistics_come_from_the_real_steps_and_training_sees_standardised_x():
    est = fastlstm.LSTMRegressor(scale_inputs=True, **KW).fit(SEQS, Y)
    # (the statistics of X as the model holds it: float32)
    rows = np.concatenate(SEQS).astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(est.input_mean_, rows.mean(0), rtol=1e-12)
    np.testing.assert_allclose(est.input_scale_, rows.std(0), rtol=1e-12)
    by_hand = [((s.astype(np.float32) - est.input_mean_) / est.input_scale_) for s in SEQS]
    plain = fastlstm.LSTMRegressor(**KW).fit(by_hand, Y)
    np.testing.assert_array_equal(est._network.params, plain._network.params)
    np.testing.assert_array_equal(est.predict(SEQS), plain.predict(by_hand))
    assert fastlstm.LSTMRegressor(**KW).fit(SEQS, Y).input_mean_ is None


def test_model_file_round_trip_needs_a_new_enough_reader(tmp_path, monkeypatch):
    est = fastlstm.LSTMClassifier(scale_inputs=True, **KW).fit(SEQS, Y > np.median(Y))
    path = est.save(tmp_path / "scaled.npz")
    with zipfile.ZipFile(path) as zf:
        config = json.loads(np.lib.format.read_array(zf.open("config.npy")).tobytes())
    assert config["min_reader_version"] == "0.2.0" and config["fitted"]["input_scaled"]
    loaded = fastlstm.load(path)
    np.testing.assert_array_equal(loaded.input_scale_, est.input_scale_)
    np.testing.assert_array_equal(loaded.predict_proba(SEQS), est.predict_proba(SEQS))
    plain = fastlstm.LSTMClassifier(**KW).fit(SEQS, Y > np.median(Y)).save(tmp_path / "p.npz")
    monkeypatch.setattr(_version, "__version__", "0.1.5")
    with pytest.raises(ValueError, match=r"needs fastlstm >= 0\.2\.0.*this is fastlstm 0\.1\.5"):
        fastlstm.load(path)
    fastlstm.load(plain)       # a model without the feature still loads in 0.1.x


def test_streaming_and_export_apply_the_scaling():
    X = np.stack([s[:2] for s in SEQS]).astype(np.float32)
    est = fastlstm.LSTMRegressor(scale_inputs=True, **KW).fit(X, Y)
    state = est.init_state(len(X))
    for t in range(2):
        out, state = est.step(X[:, t], state)
    np.testing.assert_array_equal(out, est.predict(X))
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(est.to_onnx().SerializeToString(),
                                providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: X})[0]
    np.testing.assert_allclose(got, est.predict(X), rtol=1e-4, atol=1e-5)


def test_scaling_misuse_is_refused():
    ids = RNG.integers(1, 9, (12, 4))
    with pytest.raises(ValueError, match="token ids"):
        fastlstm.LSTMClassifier(scale_inputs=True, embedding_dim=3, **KW).fit(ids, ids[:, 0] % 2)
    est = fastlstm.LSTMRegressor(scale_inputs=True, **KW).fit(SEQS, Y)
    with pytest.raises(ValueError, match="scale_inputs=True"):
        est.set_params(warm_start=True, scale_inputs=False).fit(SEQS, Y)
