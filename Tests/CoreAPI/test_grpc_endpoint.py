"""Core's gRPC endpoint as grpcio (written by others) sees it: TLS with Core's SVID, verified by name, and Health."""
import grpc
from cryptography import x509
from grpc_health.v1 import health_pb2, health_pb2_grpc


def test_grpcio_checks_core_health_over_tls_with_cores_svid(sqlite_core):
    core = sqlite_core
    bundle = (core.data_dir / "ca" / "bundle.pem").read_bytes()
    credentials = grpc.ssl_channel_credentials(root_certificates=bundle)
    with grpc.secure_channel(f"127.0.0.1:{core.grpc_port}", credentials) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = stub.Check(health_pb2.HealthCheckRequest(service="muster.onboarding.v1.CoreOnboarding"), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        assert stub.Check(health_pb2.HealthCheckRequest(), timeout=10).status == health_pb2.HealthCheckResponse.SERVING
    # The served leaf is Core's SVID: one URI SAN, the Core ID, and the advertised address as an IP SAN.
    import ssl
    pem = ssl.get_server_certificate(("127.0.0.1", core.grpc_port))
    leaf = x509.load_pem_x509_certificate(pem.encode())
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["spiffe://blackbox.test/muster/core"]
    assert "127.0.0.1" in [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_a_client_trusting_another_ca_is_refused(sqlite_core, tmp_path):
    from conftest import Core
    other = Core()
    try:
        foreign = (other.data_dir / "ca" / "bundle.pem").read_bytes()
    finally:
        other.stop()
    credentials = grpc.ssl_channel_credentials(root_certificates=foreign)
    with grpc.secure_channel(f"127.0.0.1:{sqlite_core.grpc_port}", credentials) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
            raise AssertionError("a client with another trust bundle reached Core")
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.UNAVAILABLE
