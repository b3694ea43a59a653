"""A small HTTP prediction server on the standard library, for a fitted model file.

    python examples/serve.py model.npz [--port 8000] [--backend fastlstm|onnxruntime]

POST /predict with a JSON body {"x": [[[...], ...]]}: a batch of sequences
(B, T, d) (or token ids (B, T) for a model with an embedding); the answer is
{"y": ...}: what ``predict`` gives (the classifier: ``predict_proba``). GET
/health answers {"ok": true} once the model is loaded.

One thread per connection (ThreadingHTTPServer, HTTP/1.1 keep-alive). The
fastlstm backend calls the estimator from every thread at once: inference is
thread-safe, and with --threads 0 (n_threads=None) concurrent requests share
the cores. The onnxruntime backend serves the same model exported with
``to_onnx`` (needs onnx and onnxruntime), for comparison
(bench/serving.py runs both under the same load).
"""
import argparse
import json
import socket
import sys
import tempfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

import fastlstm

MAX_BODY = 16 << 20   # bytes of JSON one request may send


def fastlstm_backend(model, n_threads):
    model.set_params(n_threads=n_threads)
    if isinstance(model, fastlstm.LSTMClassifier):
        return model.predict_proba
    return model.predict


def onnxruntime_backend(model, n_threads):
    import onnxruntime as ort

    path = tempfile.NamedTemporaryFile(suffix=".onnx", delete=False).name
    model.to_onnx(path)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = n_threads or 0
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    dtype = np.int64 if "int" in inp.type else np.float32

    def predict(x):
        return sess.run(None, {inp.name: np.asarray(x, dtype=dtype)})[0]
    return predict


def make_handler(predict, ids):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"      # keep-alive: one connection, many requests

        def log_message(self, *args):      # quiet: a load test sends thousands
            pass

        def setup(self):
            super().setup()
            # answer at once: Nagle's algorithm would hold the reply back until
            # the client's delayed ACK (about 40 ms) on a keep-alive connection
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def _answer(self, code, obj):
            body = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/health":
                self._answer(200, {"ok": True})
            else:
                self._answer(404, {"error": "unknown path"})

        def do_POST(self):
            if self.path != "/predict":
                self._answer(404, {"error": "unknown path"})
                return
            try:
                n = int(self.headers.get("Content-Length", "0"))
                if not 0 < n <= MAX_BODY:
                    raise ValueError(f"the body must be 1 to {MAX_BODY} bytes of JSON")
                x = json.loads(self.rfile.read(n))["x"]
                x = np.asarray(x, dtype=np.int64 if ids else np.float32)
                y = predict(x)
            except (ValueError, KeyError, TypeError) as e:
                self._answer(400, {"error": str(e)})
                return
            self._answer(200, {"y": np.asarray(y).tolist()})
    return Handler


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="a model file written by estimator.save(path)")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--backend", choices=("fastlstm", "onnxruntime"), default="fastlstm")
    ap.add_argument("--threads", type=int, default=1,
                    help="threads per request (0: fastlstm's default, shared between requests)")
    a = ap.parse_args(argv)
    model = fastlstm.load(a.model)
    make = fastlstm_backend if a.backend == "fastlstm" else onnxruntime_backend
    predict = make(model, a.threads or None)
    ids = getattr(model, "embedding_dim", None) is not None
    server = ThreadingHTTPServer((a.host, a.port), make_handler(predict, ids))
    server.daemon_threads = True
    print(f"serving {a.model} ({type(model).__name__}, {a.backend}) on "
          f"http://{a.host}:{server.server_address[1]}/predict", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
