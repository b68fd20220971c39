"""A poller from package to attested SVID: install, run (attest once over TLS pinned by the package), serve
Health with its SVID; statuses and audit via Core's API; a reused token refused."""
import os
import shutil
import signal
import stat
import subprocess
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from conftest import BIN_DIR, free_port, open_archive

POLLER = str(BIN_DIR / "muster-poller")


def start_poller(directory, port):
    process = subprocess.Popen([POLLER, "run", "--dir", str(directory), "--listen", f"127.0.0.1:{port}"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 30
    while time.time() < deadline:
        if process.poll() is not None:
            return process, process.stdout.read()
        try:
            import socket
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process, None
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise AssertionError("poller did not start serving")


def test_poller_installs_attests_and_serves_with_its_svid(sqlite_core, tmp_path):
    core = sqlite_core
    package = core.create("edge-1", "poller", site="lab").json()
    archive = tmp_path / "poller.tar.gz"
    archive.write_bytes(core.api("GET", f"/api/edge-packages/{package['id']}/download").body)
    open_archive(archive.read_bytes())
    state = tmp_path / "state"
    assert subprocess.run([POLLER, "install", "--package", str(archive), "--dir", str(state)], capture_output=True).returncode == 0
    spare = tmp_path / "spare"
    shutil.copytree(state, spare)  # the same package installed twice: its token must work only once

    port = free_port()
    poller, output = start_poller(state, port)
    try:
        assert output is None, output
        shown = core.api("GET", f"/api/edge-packages/{package['id']}").json()
        assert shown["status"] == "activated" and shown["activated_from_ip"] == "127.0.0.1"
        pollers = core.api("GET", "/api/pollers").json()["items"]
        assert pollers[0]["status"] == "active" and pollers[0]["advertise_address"] == f"127.0.0.1:{port}"
        assert not (state / "package" / "join-token").exists(), "the spent token file was kept"
        identity = state / "identity"
        assert stat.S_IMODE(os.stat(identity).st_mode) == 0o700
        for name in ["svid.pem", "svid.key", "ca.pem", "ca.key", "bundle.pem"]:
            assert stat.S_IMODE(os.stat(identity / name).st_mode) == 0o600, name
        for name in ["svid.pem", "ca.pem"]:
            verdict = subprocess.run(["openssl", "verify", "-x509_strict", "-CAfile", str(identity / "bundle.pem"), str(identity / name)],
                                     capture_output=True, text=True)
            assert verdict.returncode == 0, verdict.stdout + verdict.stderr
        text = subprocess.run(["openssl", "x509", "-in", str(identity / "svid.pem"), "-noout", "-ext", "subjectAltName"],
                              capture_output=True, text=True, check=True).stdout
        assert "URI:spiffe://blackbox.test/muster/poller/edge-1" in text and "IP Address:127.0.0.1" in text

        credentials = grpc.ssl_channel_credentials(root_certificates=(identity / "bundle.pem").read_bytes())
        with grpc.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING

        status = subprocess.run([POLLER, "status", "--dir", str(state)], capture_output=True, text=True, timeout=30)
        assert status.returncode == 0 and "attested:  yes" in status.stdout and "reachable over mTLS" in status.stdout
    finally:
        poller.send_signal(signal.SIGTERM)
        assert poller.wait(timeout=20) == 0

    # A restart serves again from the stored identity without attesting (the token is gone).
    poller, output = start_poller(state, port)
    try:
        assert output is None, output
    finally:
        poller.send_signal(signal.SIGTERM)
        poller.wait(timeout=20)

    reused = subprocess.run([POLLER, "run", "--dir", str(spare), "--listen", f"127.0.0.1:{free_port()}"],
                            capture_output=True, text=True, timeout=60)
    assert reused.returncode == 1
    assert "join token not accepted" in reused.stderr and len(reused.stderr.strip().splitlines()) == 1
    assert not (spare / "identity").exists()
    denied = core.api("GET", "/api/audit?action=package.activate&outcome=denied").json()["items"]
    assert [d["reason"] for d in denied] == ["token already used"]


def test_a_poller_with_a_wrong_pin_stops_before_sending_its_token(sqlite_core, tmp_path):
    core = sqlite_core
    package = core.create("edge-2", "poller").json()
    archive = tmp_path / "poller.tar.gz"
    archive.write_bytes(core.api("GET", f"/api/edge-packages/{package['id']}/download").body)
    open_archive(archive.read_bytes())
    state = tmp_path / "state"
    assert subprocess.run([POLLER, "install", "--package", str(archive), "--dir", str(state)], capture_output=True).returncode == 0
    manifest = (state / "package" / "manifest.json").read_text()
    import json
    data = json.loads(manifest)
    data["ca_pin"] = "sha256:" + "00" * 32
    (state / "package" / "manifest.json").write_text(json.dumps(data))
    result = subprocess.run([POLLER, "run", "--dir", str(state), "--listen", f"127.0.0.1:{free_port()}"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert core.api("GET", f"/api/edge-packages/{package['id']}").json()["status"] == "delivered", "the token reached a server the pin did not vouch for"
    assert core.api("GET", "/api/audit?action=package.activate").json()["items"] == []
