"""Python grpcio (written by others) as the client of our Swift server, over mTLS."""
import signal
import subprocess
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from conftest import CORE_ID, TRUST_DOMAIN, DemoServer


def mtls_channel(demo, with_client_cert=True):
    creds = grpc.ssl_channel_credentials(
        root_certificates=demo.read("bundle.pem"),
        private_key=demo.read("client/svid.key") if with_client_cert else None,
        certificate_chain=demo.read("client/svid.pem") if with_client_cert else None,
    )
    # grpcio verifies the server by hostname: our serving SVID carries IP SAN 127.0.0.1 for that.
    options = [("grpc.max_receive_message_length", 8 << 20), ("grpc.max_send_message_length", 16 << 20)]
    return grpc.secure_channel(demo.target, creds, options=options)


def test_health_check_over_mtls_is_serving(demo):
    with mtls_channel(demo) as channel:
        response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_health_watch_streams_the_status(demo):
    with mtls_channel(demo) as channel:
        stream = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(), timeout=10)
        first = next(stream)
        stream.cancel()
    assert first.status == health_pb2.HealthCheckResponse.SERVING


def test_every_call_kind(demo, stubs):
    echo_pb2, echo_pb2_grpc = stubs
    with mtls_channel(demo) as channel:
        stub = echo_pb2_grpc.EchoStub(channel)
        response, call = stub.Unary.with_call(
            echo_pb2.EchoRequest(payload=b"py"), metadata=[("x-echo", "v1")], timeout=10)
        assert response.payload == b"py"
        assert response.peer_spiffe_id == f"spiffe://{TRUST_DOMAIN}/muster/poller/demo"
        assert ("x-echo", "v1") in call.initial_metadata()
        assert ("x-echo-trailer", "v1") in call.trailing_metadata()

        streamed = list(stub.ServerStream(echo_pb2.EchoRequest(payload=b"s", repeat=7), timeout=10))
        assert [r.payload for r in streamed] == [b"s"] * 7

        counted = stub.ClientStream(iter([echo_pb2.EchoRequest(payload=b"c%d" % i) for i in range(12)]), timeout=10)
        assert counted.count == 12 and counted.payload == b"c11"

        answers = list(stub.Bidi(iter([echo_pb2.EchoRequest(payload=b"b%d" % i) for i in range(5)]), timeout=10))
        assert [a.payload for a in answers] == [b"b%d" % i for i in range(5)]

        big = b"\x5a" * (4 << 20)
        assert stub.Unary(echo_pb2.EchoRequest(payload=big), timeout=30).payload == big


def test_status_codes_reach_the_python_client(demo, stubs):
    echo_pb2, echo_pb2_grpc = stubs
    with mtls_channel(demo) as channel:
        stub = echo_pb2_grpc.EchoStub(channel)
        with pytest.raises(grpc.RpcError) as failed:
            stub.Unary(echo_pb2.EchoRequest(fail_with_code=7, fail_with_message="no entry"), timeout=10)
        assert failed.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert failed.value.details() == "no entry"

        with pytest.raises(grpc.RpcError) as late:
            stub.Unary(echo_pb2.EchoRequest(delay_ms=3000), timeout=0.3)
        assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_bad_input_gets_specific_statuses(demo):
    with mtls_channel(demo) as channel:
        raw = channel.unary_unary("/muster.testing.v1.Echo/Unary")
        with pytest.raises(grpc.RpcError) as malformed:
            raw(b"\x0a\x7f\x01", timeout=10)
        assert malformed.value.code() == grpc.StatusCode.INVALID_ARGUMENT

        unknown = channel.unary_unary("/muster.testing.v1.Echo/Missing")
        with pytest.raises(grpc.RpcError) as missing:
            unknown(b"", timeout=10)
        assert missing.value.code() == grpc.StatusCode.UNIMPLEMENTED

        with pytest.raises(grpc.RpcError) as oversized:
            raw(b"\x0a\x80\x80\x80\x05" + b"\x00" * (10 << 20), timeout=30)
        assert oversized.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

        # The server is still healthy after all of that.
        response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_client_without_certificate_is_refused(demo):
    with mtls_channel(demo, with_client_cert=False) as channel:
        with pytest.raises(grpc.RpcError) as refused:
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def served_certificate_serial(demo):
    """The serial of the certificate the server presents to a new connection, as openssl sees it."""
    handshake = subprocess.run(
        ["openssl", "s_client", "-connect", demo.target, "-CAfile", str(demo.data_dir / "bundle.pem"),
         "-cert", str(demo.data_dir / "client/svid.pem"), "-key", str(demo.data_dir / "client/svid.key"),
         "-alpn", "h2", "-verify_return_error"],
        input=b"", capture_output=True, timeout=20)
    # After the handshake the server's HTTP/2 preface (binary) may follow the text: decode leniently.
    out = handshake.stdout.decode("utf-8", errors="replace")
    assert "Verify return code: 0 (ok)" in out, out + handshake.stderr.decode("utf-8", errors="replace")
    cert = out[out.index("-----BEGIN CERTIFICATE-----"):out.index("-----END CERTIFICATE-----") + 25]
    serial = subprocess.run(["openssl", "x509", "-noout", "-serial"], input=cert, capture_output=True, text=True)
    return serial.stdout.strip()


def test_sighup_rotates_the_serving_certificate_without_dropping_calls(demo, stubs):
    echo_pb2, echo_pb2_grpc = stubs
    before = served_certificate_serial(demo)
    with mtls_channel(demo) as channel:
        stub = echo_pb2_grpc.EchoStub(channel)
        pending = stub.Unary.future(echo_pb2.EchoRequest(payload=b"across", delay_ms=800), timeout=10)
        time.sleep(0.2)
        demo.process.send_signal(signal.SIGHUP)
        time.sleep(0.3)
        after = served_certificate_serial(demo)
        assert pending.result().payload == b"across"
    assert before != after


def test_sigterm_shuts_down_cleanly(tmp_path):
    server = DemoServer(tmp_path / "demo")
    assert server.stop() == 0
