"""Workload API benchmark: N concurrent FetchX509SVID streams on one muster-agent, beside one stream in the same run.

For each stream count it reports the agent's resident memory before and with the streams open, and, over the
agent's renewals (at half-life of a 60 s SVID), the time from the renewal (the new svid.pem's mtime, written just
before the agent pushes) until each stream received the new SVID: p50, p99 and max over all streams and renewals.

Usage: MUSTER_BIN_DIR=DIR python3 Benchmarks/workload_bench.py [--streams 200] [--renewals 2]
DIR holds builds of muster-core, muster-poller and muster-agent (release for the published numbers).
"""
import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "Tests" / "CoreAPI"))

import grpc  # noqa: E402
from cryptography import x509  # noqa: E402
from spiffe._proto import workload_pb2  # noqa: E402

from conftest import Core  # noqa: E402
from relay import AGENT, Poller, agent_package, wait_cached, wait_for  # noqa: E402


def rss_kib(pid):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def first_der(data):
    """The first certificate of concatenated DER (the standard's chain encoding): its SEQUENCE's own length."""
    if data[1] < 0x80:
        return data[:2 + data[1]]
    size = data[1] & 0x7F
    return data[:2 + size + int.from_bytes(data[2:2 + size], "big")]


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


class Stream(threading.Thread):
    """One workload: a FetchX509SVID stream; records (serial, arrival time) of every message."""

    def __init__(self, endpoint):
        super().__init__(daemon=True)
        self.channel = grpc.insecure_channel(endpoint)
        self.arrivals = []
        self.ready = threading.Event()
        self.call = None

    def run(self):
        method = self.channel.unary_stream("/SpiffeWorkloadAPI/FetchX509SVID",
                                           request_serializer=workload_pb2.X509SVIDRequest.SerializeToString,
                                           response_deserializer=workload_pb2.X509SVIDResponse.FromString)
        self.call = method(workload_pb2.X509SVIDRequest(), metadata=[("workload.spiffe.io", "true")])
        try:
            for response in self.call:
                leaf = x509.load_der_x509_certificate(first_der(response.svids[0].x509_svid))
                self.arrivals.append((leaf.serial_number, time.time()))
                self.ready.set()
        except grpc.RpcError:
            pass

    def close(self):
        if self.call is not None:
            self.call.cancel()
        self.channel.close()


def measure(core, poller, streams, renewals):
    root = pathlib.Path(tempfile.mkdtemp(prefix="muster-wl-bench-"))
    package, archive, _ = agent_package(core, f"bench-{streams}-{int(time.time())}", archive_dir=root)
    wait_cached(core, package["id"])
    state = root / "agent"
    subprocess.run([AGENT, "install", "--package", str(archive), "--dir", str(state)], check=True, capture_output=True)
    socket_path = root / "workload.sock"
    agent = subprocess.Popen([AGENT, "run", "--dir", str(state), "--workload-socket", str(socket_path)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(socket_path.exists, what="the socket")
        time.sleep(1)
        idle = rss_kib(agent.pid)
        workers = [Stream(f"unix://{socket_path}") for _ in range(streams)]
        for worker in workers:
            worker.start()
        for worker in workers:
            assert worker.ready.wait(60), "a stream got no first SVID"
        time.sleep(1)
        loaded = rss_kib(agent.pid)
        svid = state / "identity" / "svid.pem"
        latencies = []
        for _ in range(renewals):
            serial = x509.load_pem_x509_certificates(svid.read_bytes())[0].serial_number
            wait_for(lambda: svid.exists() and x509.load_pem_x509_certificates(svid.read_bytes())[0].serial_number != serial,
                     timeout=90, interval=0.05, what="a renewal")
            renewed_at = svid.stat().st_mtime_ns / 1e9
            new = x509.load_pem_x509_certificates(svid.read_bytes())[0].serial_number
            wait_for(lambda: all(any(s == new for s, _ in w.arrivals) for w in workers), timeout=30, interval=0.05,
                     what="every stream with the new SVID")
            latencies += [next(t for s, t in w.arrivals if s == new) - renewed_at for w in workers]
        peak = rss_kib(agent.pid)
        for worker in workers:
            worker.close()
        return {"streams": streams, "idle_kib": idle, "loaded_kib": loaded, "peak_kib": peak,
                "p50_ms": percentile(latencies, 0.5) * 1000, "p99_ms": percentile(latencies, 0.99) * 1000,
                "max_ms": max(latencies) * 1000, "samples": len(latencies)}
    finally:
        agent.terminate()
        agent.wait(timeout=20)
        shutil.rmtree(root, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--renewals", type=int, default=2)
    args = parser.parse_args()
    core = Core(extra=["--create-rate-limit", "1000"])
    poller = Poller(core, pathlib.Path(tempfile.mkdtemp(prefix="muster-wl-bench-poller-")) / "poller",
                    extra=["--agent-svid-ttl", "60"])
    try:
        results = [measure(core, poller, 1, args.renewals), measure(core, poller, args.streams, args.renewals)]
    finally:
        poller.stop()
        core.stop()
    print(f"{'streams':>8} {'RSS idle':>10} {'RSS open':>10} {'RSS peak':>10} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'samples':>8}")
    for r in results:
        print(f"{r['streams']:>8} {r['idle_kib'] / 1024:>8.1f}Mi {r['loaded_kib'] / 1024:>8.1f}Mi {r['peak_kib'] / 1024:>8.1f}Mi "
              f"{r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['max_ms']:>8.1f} {r['samples']:>8}")
    one, many = results
    print(f"memory per open stream: {(many['loaded_kib'] - many['idle_kib']) / max(1, many['streams']):.1f} KiB")


if __name__ == "__main__":
    main()
