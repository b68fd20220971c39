"""Helpers for the relay tests: a real muster-poller process (logs kept with Core's for the secrets check),
agent packages, and grpcio clients for EdgeOnboarding with keys and CSRs made by pyca/cryptography."""
import json
import os
import pathlib
import queue
import signal
import socket
import subprocess
import threading
import time
import uuid

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import BIN_DIR, LOG_DIR, SECRETS, free_port, open_archive, stop_process

POLLER = str(BIN_DIR / "muster-poller")
AGENT = str(BIN_DIR / "muster-agent")


def wait_for(predicate, timeout=20, interval=0.1, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def pump_updates(call):
    """A queue that a thread of its own fills with each message of a server stream `call`, then with the RpcError
    that ends it, if one does (a cancelled call ends its thread that way too)."""
    updates = queue.Queue()

    def pump():
        try:
            for update in call:
                updates.put(update)
        except grpc.RpcError as error:
            updates.put(error)

    threading.Thread(target=pump, daemon=True).start()
    return updates


def install_poller_package(core, name, directory):
    """Creates a poller package, downloads it and runs `muster-poller install` into `directory`; returns the package."""
    directory = pathlib.Path(directory)
    package = core.create(name, "poller").json()
    archive = directory.parent / f"{name}-{uuid.uuid4().hex[:6]}.tar.gz"
    archive.write_bytes(core.api("GET", f"/api/edge-packages/{package['id']}/download").body)
    open_archive(archive.read_bytes())
    subprocess.run([POLLER, "install", "--package", str(archive), "--dir", str(directory)], check=True, capture_output=True)
    return package


class Poller:
    """An installed, attested poller serving on 127.0.0.1."""

    def __init__(self, core, directory, name="edge-1", extra=()):
        self.core, self.directory, self.name, self.extra = core, pathlib.Path(directory), name, list(extra)
        self.package_id = install_poller_package(core, name, self.directory)["id"]
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log_path = LOG_DIR / f"poller-{uuid.uuid4().hex[:8]}.log"
        self.start()

    def start(self):
        self.log = open(self.log_path, "a")
        self.process = subprocess.Popen([POLLER, "run", "--dir", str(self.directory), "--listen", self.address, *self.extra],
                                        stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"muster-poller exited {self.process.returncode}: {self.log_path.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("muster-poller did not start serving")

    def stop(self, sig=signal.SIGTERM):
        return stop_process(self.process, self.log, sig)

    def logs(self):
        return self.log_path.read_text(errors="replace")

    @property
    def bundle(self):
        return (self.directory / "identity" / "bundle.pem").read_bytes()

    def status(self):
        return subprocess.run([POLLER, "status", "--dir", str(self.directory)], capture_output=True, text=True, timeout=30)


def agent_package(core, name, poller="edge-1", component_type="agent", archive_dir=None, **fields):
    """Creates an agent/checker package for `poller`, downloads it; returns (package, archive path or None, token)."""
    package = core.create(name, component_type, poller_id=poller, **fields).json()
    body = core.api("GET", f"/api/edge-packages/{package['id']}/download").body
    files = open_archive(body)
    token = files["join-token"][1].decode().strip()
    path = None
    if archive_dir is not None:
        path = pathlib.Path(archive_dir) / f"{name}.tar.gz"
        path.write_bytes(body)
    return package, path, token


def status_of(core, package_id):
    return core.api("GET", f"/api/edge-packages/{package_id}").json()["status"]


def wait_cached(core, package_id):
    """A package is in the poller's cache once Core marked it Delivered via the poller."""
    wait_for(lambda: core.api("GET", f"/api/edge-packages/{package_id}").json()["delivered_at"] is not None,
             what=f"package {package_id} pulled by its poller")


def new_key_and_csr():
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pytest-agent")])) \
        .sign(key, hashes.SHA256())
    return key, csr.public_bytes(serialization.Encoding.DER)


def pem_chain(ders):
    return b"".join(x509.load_der_x509_certificate(d).public_bytes(serialization.Encoding.PEM) for d in ders)


def key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def edge_stub(onboarding, poller, key=None, chain_pem=None):
    """An EdgeOnboarding stub over TLS verified with the poller's bundle; mTLS when given a key and chain."""
    _, grpc_mod = onboarding
    credentials = grpc.ssl_channel_credentials(root_certificates=poller.bundle, private_key=key_pem(key) if key else None,
                                               certificate_chain=chain_pem)
    channel = grpc.secure_channel(poller.address, credentials)
    return channel, grpc_mod.EdgeOnboardingStub(channel)


def join(onboarding, poller, token):
    """Joins over grpcio; returns (key, response)."""
    pb, _ = onboarding
    key, csr = new_key_and_csr()
    channel, stub = edge_stub(onboarding, poller)
    with channel:
        return key, stub.Join(pb.JoinRequest(join_token=token, csr=csr), timeout=10)


def renew(onboarding, poller, key, chain_pem):
    """Renews over mTLS with the given SVID; returns (new key, response)."""
    pb, _ = onboarding
    new_key, csr = new_key_and_csr()
    channel, stub = edge_stub(onboarding, poller, key=key, chain_pem=chain_pem)
    with channel:
        return new_key, stub.Renew(pb.RenewRequest(csr=csr), timeout=10)


def remember(token):
    SECRETS.add(token)
    return token
