"""Load test of examples/serve.py on loopback: fastlstm against ONNX Runtime
serving the same model (exported with ``to_onnx``), batch-1 requests.

    python bench/serving.py [--seconds 10] [--clients 2] [--threads 1]

Fits a small LSTMRegressor (I=8, H=128, T=50; one epoch: the weights' values
do not matter for speed), saves it, then for each backend starts the server
in a subprocess and runs ``--clients`` client threads, each sending requests
one after another over one keep-alive connection for ``--seconds`` (after a
warm-up). Reports requests per second and the median and 99th percentile
latency seen by the clients, including HTTP and JSON. Backends whose
packages are missing are skipped with a message.
"""
import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(os.path.dirname(HERE), "examples", "serve.py")
I, H, T = 8, 128, 50


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port, proc, timeout=120):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the server did not start")


def client(port, body, stop, warm_until, out):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.connect()
    # http.client sends the headers and the body in two writes: without
    # TCP_NODELAY the body waits for the server's delayed ACK
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    lat = []
    while True:
        t0 = time.perf_counter()
        if t0 >= stop:
            break
        c.request("POST", "/predict", body=body, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        if r.status != 200:
            raise RuntimeError(f"HTTP {r.status}")
        t1 = time.perf_counter()
        if t0 >= warm_until:
            lat.append(t1 - t0)
    c.close()
    out.append(lat)


def run(backend, model_path, seconds, clients, threads, body):
    port = free_port()
    proc = subprocess.Popen([sys.executable, SERVER, model_path, "--port", str(port),
                             "--backend", backend, "--threads", str(threads)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_ready(port, proc)
        now = time.perf_counter()
        warm_until, stop = now + 1.0, now + 1.0 + seconds
        out = []
        ts = [threading.Thread(target=client, args=(port, body, stop, warm_until, out))
              for _ in range(clients)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    finally:
        proc.terminate()
        proc.wait(30)
    lat = sorted(x for part in out for x in part)
    return dict(backend=backend, requests=len(lat), rps=len(lat) / seconds,
                p50_ms=1e3 * statistics.median(lat),
                p99_ms=1e3 * lat[min(len(lat) - 1, int(0.99 * len(lat)))])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="threads per request")
    a = ap.parse_args(argv)
    import fastlstm

    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, T, I)).astype(np.float32)
    model = fastlstm.LSTMRegressor(hidden_sizes=(H,), epochs=1, random_state=0, n_threads=1)
    model.fit(X, X[:, -1, 0])
    path = os.path.join(tempfile.mkdtemp(), "model.npz")
    model.save(path)
    body = json.dumps({"x": X[:1].tolist()}).encode()
    print(f"LSTMRegressor I={I} H={H}, batch-1 requests of T={T} steps; {a.clients} client "
          f"threads, {a.threads} thread(s) per request, {a.seconds:.0f} s per backend; "
          f"fastlstm kernels: {fastlstm._kernels.isa()}")
    rows = []
    for backend in ("fastlstm", "onnxruntime"):
        if backend == "onnxruntime":
            try:
                import onnx  # noqa: F401
                import onnxruntime  # noqa: F401
            except ImportError as e:
                print(f"skipping onnxruntime: {e}")
                continue
        rows.append(run(backend, path, a.seconds, a.clients, a.threads, body))
    print("| backend | requests/s | p50 (ms) | p99 (ms) |")
    print("|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['backend']} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} |")


if __name__ == "__main__":
    main()
