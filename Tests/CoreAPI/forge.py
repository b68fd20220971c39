"""What an attacker holding a poller's real CA key (or nothing but the network) can make: certificates forged with
pyca/cryptography, and grpcio servers that present them and count every call that reaches them."""
import datetime
import ipaddress
import threading
from concurrent import futures

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def load_ca(identity_dir):
    """A poller's real downstream CA: (certificate, key) from its identity directory."""
    cert = x509.load_pem_x509_certificates((identity_dir / "ca.pem").read_bytes())[0]
    key = serialization.load_pem_private_key((identity_dir / "ca.key").read_bytes(), None)
    return cert, key


def load_root(core):
    """Core's root CA (certificate, key): only for tests that need a second, genuine root-signed peer."""
    cert = x509.load_pem_x509_certificate((core.data_dir / "ca" / "root.pem").read_bytes())
    key = serialization.load_pem_private_key((core.data_dir / "ca" / "root.key").read_bytes(), None)
    return cert, key


def new_root(trust_domain="evil.test"):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"attacker root {trust_domain}")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now() - datetime.timedelta(minutes=1))
            .not_valid_after(now() + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def leaf(spiffe_id, issuer_cert, issuer_key, key=None, serial=None, dns=(), ips=(), valid_for=3600, expired=False):
    """An X.509-SVID leaf for `spiffe_id` signed by `issuer_key`: everything a verifier checks is well-formed, only
    the issuer (or the serial, or the time) is the attacker's choice."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    start = now() - datetime.timedelta(hours=2 if expired else 0, minutes=1)
    end = now() - datetime.timedelta(hours=1) if expired else now() + datetime.timedelta(seconds=valid_for)
    names = [x509.UniformResourceIdentifier(spiffe_id)] + [x509.DNSName(d) for d in dns] + \
        [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "forged")]))
            .issuer_name(issuer_cert.subject).public_key(key.public_key())
            .serial_number(serial or x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
            .sign(issuer_key, hashes.SHA256()))
    return key, cert


def pem(*certs):
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


class FakeServer:
    """A grpcio server presenting `chain_pem` with `key`. Every call that reaches it is recorded (method, and the
    request bytes): a client that accepted the forged identity sent something, one that refused sent nothing.
    `answers` maps a method path to a function(request_bytes) -> response_bytes; anything else is UNAVAILABLE."""

    def __init__(self, key, chain_pem, answers=None):
        self.calls = []
        self.lock = threading.Lock()
        answers = answers or {}
        outer = self

        class Handler(grpc.GenericRpcHandler):
            def service(self, details):
                method = details.method

                def handle(request, context):
                    with outer.lock:
                        outer.calls.append((method, request))
                    if method in answers:
                        return answers[method](request)
                    context.abort(grpc.StatusCode.UNAVAILABLE, "fake server")

                return grpc.unary_unary_rpc_method_handler(handle)

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self.server.add_generic_rpc_handlers((Handler(),))
        self.port = self.server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([(key_pem(key), chain_pem)]))
        self.address = f"127.0.0.1:{self.port}"
        self.server.start()

    def methods(self):
        with self.lock:
            return [m for m, _ in self.calls]

    def stop(self):
        self.server.stop(0)
