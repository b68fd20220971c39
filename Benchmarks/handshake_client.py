"""Connection-setup load: every call on a new mTLS connection (as agents that each join once would), against
one server process whose CPU time is read from /proc. Prints JSON: calls/s and server CPU ms per call.

Usage: handshake_client.py ADDRESS BUNDLE CLIENT_CERT CLIENT_KEY SERVER_PID [CALLS] [CONCURRENCY]
Needs the Python stubs of muster/testing/v1/echo.proto on PYTHONPATH.
"""
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import grpc

from muster.testing.v1 import echo_pb2, echo_pb2_grpc


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    address, bundle, cert, key, pid = sys.argv[1:6]
    calls = int(sys.argv[6]) if len(sys.argv) > 6 else 2000
    concurrency = int(sys.argv[7]) if len(sys.argv) > 7 else 32
    credentials = grpc.ssl_channel_credentials(open(bundle, "rb").read(), open(key, "rb").read(), open(cert, "rb").read())
    # The servers' SVIDs carry 127.0.0.1 or localhost; name the target so the hostname check passes for both.
    options = [("grpc.use_local_subchannel_pool", 1), ("grpc.ssl_target_name_override", "localhost")]
    failures = []

    def call(_):
        try:
            with grpc.secure_channel(address, credentials, options=options) as channel:
                echo_pb2_grpc.EchoStub(channel).Unary(echo_pb2.EchoRequest(payload=b"x" * 64), timeout=30)
        except grpc.RpcError as error:
            failures.append(error.code())

    for _ in range(50):  # warm-up
        call(None)
    before = cpu_seconds(int(pid))
    begin = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(call, range(calls)))
    wall = time.perf_counter() - begin
    used = cpu_seconds(int(pid)) - before
    print(json.dumps({"calls_per_s": round(calls / wall, 1), "server_cpu_ms_per_call": round(used / calls * 1000, 3),
                      "errors": len(failures)}))


if __name__ == "__main__":
    main()
