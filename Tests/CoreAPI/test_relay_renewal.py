"""Renewal at half-life with short lifetimes: the poller renews its SVID and downstream CA through RenewPoller
(Core audits each), keeps serving with them, and muster-agent run renews through the poller."""
import subprocess
import uuid

from cryptography import x509

from conftest import LOG_DIR, Core
from relay import AGENT, Poller, agent_package, join, status_of, wait_for, wait_cached


def serial(path, index=0):
    pem = path.read_bytes()
    return x509.load_pem_x509_certificates(pem)[index].serial_number


def test_poller_and_agent_renew_at_half_life(tmp_path, onboarding):
    core = Core(extra=["--create-rate-limit", "1000", "--svid-ttl", "30", "--poller-ca-ttl", "60"])
    poller = Poller(core, tmp_path / "poller", extra=["--agent-svid-ttl", "60"])
    agent_log_path = LOG_DIR / f"agent-{uuid.uuid4().hex[:8]}.log"
    agent_log = open(agent_log_path, "w")
    agent = None
    try:
        identity = poller.directory / "identity"
        first_svid, first_ca = serial(identity / "svid.pem"), serial(identity / "ca.pem")
        package, archive, _ = agent_package(core, "renewing", archive_dir=tmp_path)
        wait_cached(core, package["id"])
        state = tmp_path / "agent"
        installed = subprocess.run([AGENT, "install", "--package", str(archive), "--dir", str(state)], capture_output=True, text=True, timeout=60)
        assert installed.returncode == 0, installed.stderr
        first_agent = serial(state / "identity" / "svid.pem")
        agent = subprocess.Popen([AGENT, "run", "--dir", str(state), "--no-workload-api"], stdout=agent_log, stderr=subprocess.STDOUT)

        wait_for(lambda: serial(identity / "ca.pem") != first_ca, timeout=60, interval=0.5, what="the poller's CA renewed")
        assert serial(identity / "svid.pem") != first_svid
        # The files are replaced before the line is logged: wait for the line rather than race it.
        wait_for(lambda: "renewed the poller's SVID and CA" in poller.logs(), timeout=10, interval=0.2, what="the poller's renewal logged")
        renewals = core.api("GET", "/api/audit?action=poller.renew").json()["items"]
        assert renewals and all(r["actor"] == "poller:edge-1" and r["outcome"] == "ok" for r in renewals)
        assert any("ca_serial" in r["details"] for r in renewals)
        wait_for(lambda: serial(state / "identity" / "svid.pem") != first_agent, timeout=45, interval=0.5, what="the agent renewed")
        wait_for(lambda: "SVID renewed" in agent_log_path.read_text(), timeout=10, interval=0.2, what="the agent's renewal logged")
        verdict = subprocess.run(["openssl", "verify", "-CAfile", str(state / "identity" / "bundle.pem"), "-untrusted",
                                  str(state / "identity" / "svid.pem"), str(state / "identity" / "svid.pem")], capture_output=True, text=True)
        assert verdict.returncode == 0, verdict.stdout + verdict.stderr

        # A join after the CA renewal is signed by the new CA.
        later, _, token = agent_package(core, "after-renewal")
        wait_cached(core, later["id"])
        _, response = join(onboarding, poller, token)
        issuer = x509.load_der_x509_certificate(response.svid_chain[1])
        assert issuer.serial_number == serial(identity / "ca.pem")
        wait_for(lambda: status_of(core, later["id"]) == "activated", what="activation after the renewal")
    finally:
        if agent is not None:
            agent.terminate()
            agent.wait(timeout=20)
        agent_log.close()
        poller.stop()
        core.stop()
