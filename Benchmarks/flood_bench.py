"""Flood benchmark: an operator creates packages while anonymous callers send N bad attestations to Core's gRPC port.
Side by side in one run: create latency idle, under the flood with the refusal-audit budget (the default), and
under the same flood with the budget lifted (every refusal written, as before the budget); audit rows written.

Usage: python3 Benchmarks/flood_bench.py --bin PATH/muster-core [--attempts 20000] [--creates 300] [--flooders 8]
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
import urllib.request

import grpc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stubs():
    out = tempfile.mkdtemp(prefix="muster-flood-stubs-")
    from grpc_tools import protoc
    assert protoc.main(["protoc", f"-I{ROOT}/Protos", f"--python_out={out}", f"--grpc_python_out={out}",
                        f"{ROOT}/Protos/muster/onboarding/v1/onboarding.proto"]) == 0
    sys.path.insert(0, out)
    from muster.onboarding.v1 import onboarding_pb2, onboarding_pb2_grpc
    return onboarding_pb2, onboarding_pb2_grpc


class Core:
    def __init__(self, binary, extra, data=None):
        self.data = data or tempfile.mkdtemp(prefix="muster-flood-")
        self.http, self.grpc = free_port(), free_port()
        env = {**os.environ, "MUSTER_LOG_LEVEL": "error"}
        self.process = subprocess.Popen([binary, "serve", "--data-dir", self.data, "--http-listen", f"127.0.0.1:{self.http}",
                                         "--grpc-listen", f"127.0.0.1:{self.grpc}", "--create-rate-limit", "100000000",
                                         "--reaper-interval", "3600", *extra],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        deadline = time.time() + 60
        while True:
            assert time.time() < deadline and self.process.poll() is None, "Core did not start"
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{self.http}/healthz", timeout=1).status == 200 and \
                        os.path.exists(f"{self.data}/admin.token"):
                    break
            except OSError:
                pass
            time.sleep(0.1)
        self.token = open(f"{self.data}/admin.token").read().strip()
        self.connection = http.client.HTTPConnection("127.0.0.1", self.http, timeout=60)
        self.count = 0

    def call(self, method, path, body=None):
        self.connection.request(method, path, body=json.dumps(body) if body is not None else None,
                                headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
        response = self.connection.getresponse()
        return response.status, response.read()

    def create(self):
        self.count += 1
        start = time.perf_counter()
        status, _ = self.call("POST", "/api/edge-packages", {"name": f"p-{self.count}", "component_type": "poller"})
        assert status == 201, status
        return (time.perf_counter() - start) * 1000

    def audit_rows(self):
        """Rows in the audit table, counted straight from the SQLite file (after the process stopped)."""
        import sqlite3
        with sqlite3.connect(f"{self.data}/muster.db") as db:
            return dict(db.execute("SELECT action, COUNT(*) FROM audit_log GROUP BY action").fetchall())

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def flood(core, pb, grpc_mod, attempts, flooders, done):
    bundle = open(f"{core.data}/ca/bundle.pem", "rb").read()
    sent = [0]
    lock = threading.Lock()

    def worker(count):
        with grpc.secure_channel(f"127.0.0.1:{core.grpc}", grpc.ssl_channel_credentials(root_certificates=bundle)) as channel:
            stub = grpc_mod.CoreOnboardingStub(channel)
            for _ in range(count):
                try:
                    stub.AttestPoller(pb.AttestPollerRequest(join_token="mjt_flood"), timeout=30)
                except grpc.RpcError:
                    pass
                with lock:
                    sent[0] += 1

    threads = [threading.Thread(target=worker, args=(attempts // flooders,)) for _ in range(flooders)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done["seconds"] = time.perf_counter() - start
    done["sent"] = sent[0]


def scenario(binary, label, extra, attempts, creates, flooders, pb, grpc_mod):
    core = Core(binary, extra)
    for _ in range(30):
        core.create()  # warm-up
    idle = [core.create() for _ in range(creates)]
    done = {}
    flooder = threading.Thread(target=flood, args=(core, pb, grpc_mod, attempts, flooders, done))
    flooder.start()
    loaded = []
    while flooder.is_alive():
        loaded.append(core.create())
    flooder.join()
    core.stop()
    rows = core.audit_rows()
    refusals = rows.get("package.activate", 0)
    print(f"| {label} | {statistics.median(idle):.2f} / {percentile(idle, 99):.2f} | "
          f"{statistics.median(loaded):.2f} / {percentile(loaded, 99):.2f} ({len(loaded)} creates) | "
          f"{statistics.median(loaded) / statistics.median(idle):.2f}× | {done['sent']} in {done['seconds']:.1f} s "
          f"({done['sent'] / done['seconds']:.0f}/s) | {refusals} + {rows.get('audit.suppressed', 0)} suppressed-count rows |")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    parser.add_argument("--attempts", type=int, default=20000)
    parser.add_argument("--creates", type=int, default=300)
    parser.add_argument("--flooders", type=int, default=8)
    args = parser.parse_args()
    pb, grpc_mod = stubs()
    print(f"{args.attempts} bad AttestPoller calls from {args.flooders} grpcio clients on 127.0.0.1 while one operator creates "
          "packages one at a time over HTTP; SQLite; latency in ms (p50 / p99).\n")
    print("| Core | create idle | create under flood | p50 ratio | flood | audit rows written for the flood |")
    print("|---|---|---|---|---|---|")
    scenario(args.bin, "budget (default, 30/min per source)", [], args.attempts, args.creates, args.flooders, pb, grpc_mod)
    scenario(args.bin, "no budget (every refusal written)", ["--refusal-audit-rate", "100000000"], args.attempts, args.creates,
             args.flooders, pb, grpc_mod)


if __name__ == "__main__":
    main()
