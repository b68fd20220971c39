"""Server CPU time per unary call on one warm mTLS channel: sequential 64-byte echo calls, the server process's
user + system time read from /proc before and after. This machine has no hardware instruction counter and valgrind
3.19 stops with an internal error on these servers, so CPU time per call is the steadiest per-call cost to hand.

Usage: call_cpu.py ADDRESS BUNDLE CLIENT_CERT CLIENT_KEY SERVER_PID [CALLS]
Needs the Python stubs of muster/testing/v1/echo.proto on PYTHONPATH.
"""
import json
import os
import sys

import grpc

from muster.testing.v1 import echo_pb2, echo_pb2_grpc


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    address, bundle, cert, key, pid = sys.argv[1:6]
    calls = int(sys.argv[6]) if len(sys.argv) > 6 else 20000
    credentials = grpc.ssl_channel_credentials(open(bundle, "rb").read(), open(key, "rb").read(), open(cert, "rb").read())
    options = [("grpc.ssl_target_name_override", "localhost")]
    with grpc.secure_channel(address, credentials, options=options) as channel:
        stub = echo_pb2_grpc.EchoStub(channel)
        request = echo_pb2.EchoRequest(payload=b"x" * 64)
        for _ in range(500):
            stub.Unary(request, timeout=60)
        before = cpu_seconds(int(pid))
        for _ in range(calls):
            stub.Unary(request, timeout=60)
        used = cpu_seconds(int(pid)) - before
    print(json.dumps({"calls": calls, "server_cpu_us_per_call": round(used / calls * 1e6, 1)}))


if __name__ == "__main__":
    main()
