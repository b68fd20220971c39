"""Our Swift client (muster-grpc-demo call) against a Python grpcio server, over mTLS with openssl-made SVIDs."""
import json
import subprocess
import time
from concurrent import futures

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from conftest import BIN_DIR

TD = "openssl.muster.local"


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A root CA and two SVIDs made by openssl, not by Muster."""
    d = tmp_path_factory.mktemp("pki")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/O=Interop/CN=Interop CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    for name, uri, extra in [("server", f"spiffe://{TD}/muster/core", ",IP:127.0.0.1"),
                             ("client", f"spiffe://{TD}/muster/poller/swift", "")]:
        (d / f"{name}.ext").write_text(
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
            f"extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=URI:{uri}{extra}\n")
        openssl("req", "-new", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/O=Interop/CN={name}", cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{name}.pem", "-days", "1", "-extfile", f"{name}.ext", cwd=d)
    (d / "server-chain.pem").write_bytes((d / "server.pem").read_bytes() + (d / "ca.pem").read_bytes())
    pin = subprocess.run("openssl x509 -in ca.pem -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum",
                         shell=True, cwd=d, capture_output=True, text=True, check=True).stdout.split()[0]
    return d, f"sha256:{pin}"


@pytest.fixture(scope="module")
def python_server(pki, stubs):
    echo_pb2, echo_pb2_grpc = stubs
    d, _ = pki

    class Echo(echo_pb2_grpc.EchoServicer):
        @staticmethod
        def peer(context):
            sans = context.auth_context().get("x509_subject_alternative_name", [])
            return next((s.decode() for s in sans if s.startswith(b"spiffe://")), "")

        def Unary(self, request, context):
            if request.fail_with_code:
                context.abort(grpc.StatusCode(next(c for c in grpc.StatusCode if c.value[0] == request.fail_with_code)),
                              request.fail_with_message)
            echo = dict(context.invocation_metadata()).get("x-echo")
            if echo:
                context.send_initial_metadata([("x-echo", echo)])
            return echo_pb2.EchoResponse(payload=request.payload, peer_spiffe_id=self.peer(context))

        def ServerStream(self, request, context):
            for _ in range(max(1, request.repeat)):
                yield echo_pb2.EchoResponse(payload=request.payload)

        def ClientStream(self, requests, context):
            items = list(requests)
            return echo_pb2.EchoResponse(payload=items[-1].payload if items else b"", count=len(items))

        def Bidi(self, requests, context):
            for request in requests:
                yield echo_pb2.EchoResponse(payload=request.payload)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    echo_pb2_grpc.add_EchoServicer_to_server(Echo(), server)
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    creds = grpc.ssl_server_credentials(
        [((d / "server.key").read_bytes(), (d / "server-chain.pem").read_bytes())],
        root_certificates=(d / "ca.pem").read_bytes(), require_client_auth=True)
    port = server.add_secure_port("127.0.0.1:0", creds)
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(grace=1)


def swift_call(target, pki, kind, trust="bundle", expect=f"spiffe://{TD}/muster/core", **extra):
    d, pin = pki
    args = [str(BIN_DIR / "muster-grpc-demo"), "call", "--target", target, "--kind", kind,
            "--cert", str(d / "client.pem"), "--key", str(d / "client.key"), "--expect-server-id", expect]
    args += ["--bundle", str(d / "ca.pem")] if trust == "bundle" else ["--ca-pin", trust]
    for key, value in extra.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=30)
    return done.returncode, json.loads(done.stdout) if done.stdout.strip() else {"stderr": done.stderr}


def test_swift_client_every_call_kind(python_server, pki):
    code, health_result = swift_call(python_server, pki, "health")
    assert (code, health_result) == (0, {"ok": True, "status": "serving"})
    code, unary = swift_call(python_server, pki, "unary", payload="from-swift")
    assert code == 0 and unary["payloads"] == ["from-swift"] and unary["header"] == "from-swift"
    assert unary["peer"] == f"spiffe://{TD}/muster/poller/swift"
    assert swift_call(python_server, pki, "server-stream", count=4)[1]["payloads"] == ["hello"] * 4
    assert swift_call(python_server, pki, "client-stream", count=9)[1]["count"] == 9
    assert swift_call(python_server, pki, "bidi", count=3)[1]["payloads"] == ["hello-0", "hello-1", "hello-2"]


def test_swift_client_first_contact_by_pin(python_server, pki):
    _, pin = pki
    code, result = swift_call(python_server, pki, "unary", trust=pin)
    assert code == 0 and result["ok"]
    code, result = swift_call(python_server, pki, "unary", trust="sha256:" + "0" * 64)
    assert code == 1 and result["code"] == "UNAVAILABLE" and "CA pin" in result["message"]


def test_swift_client_rejects_unexpected_server_identity(python_server, pki):
    code, result = swift_call(python_server, pki, "health", expect=f"spiffe://{TD}/muster/poller/someone-else")
    assert code == 1 and result["code"] == "UNAVAILABLE" and "server identity rejected" in result["message"]
