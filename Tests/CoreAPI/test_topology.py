"""A real multi-host topology in network namespaces, built by the test with veth pairs and addresses private to it:

    Core host (this namespace) ── core network 10.231.1.0/24 ── site (poller) ── site network 10.231.2.0/24 ── agent

Core listens for pollers on its core-network address only; the site namespace has no forwarding and no route
beyond its two networks; the agent namespace knows only the site network. The poller and the agent are installed
with the bundle's install scripts inside their namespaces, then run as the scripts print. The test proves that the
agent never reached Core: it cannot open a connection to Core's address, and an nftables counter on the site's
agent-facing link sees no packet from the agent addressed to the core network during the whole run (while a
second counter sees the agent's packets to the poller, so the counting works)."""
import json
import os
import pathlib
import shutil
import socket
import subprocess
import time
import uuid

import pytest

from conftest import BIN_DIR, LOG_DIR, Core, free_port, open_archive
from relay import wait_for
from test_install import download

CORE_NET, SITE_NET = "10.231.1", "10.231.2"
CORE_IP, SITE_UP, SITE_DOWN, AGENT_IP = f"{CORE_NET}.1", f"{CORE_NET}.2", f"{SITE_NET}.1", f"{SITE_NET}.2"


def sh(*args, check=True):
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=60)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))}: {done.stderr.strip()}")
    return done


class Topology:
    def __init__(self):
        tag = uuid.uuid4().hex[:6]
        self.site, self.agent = f"msite{tag}", f"magent{tag}"
        self.core_if, self.site_up, self.site_down, self.agent_if = f"mc{tag}", f"mu{tag}", f"md{tag}", f"ma{tag}"
        made = subprocess.run(["ip", "netns", "add", self.site], capture_output=True, text=True)
        if made.returncode != 0:
            pytest.skip(f"network namespaces are refused here ({made.stderr.strip()}); the topology test needs them")
        self.namespaces = [self.site]
        sh("ip", "netns", "add", self.agent)
        self.namespaces.append(self.agent)
        sh("ip", "link", "add", self.core_if, "type", "veth", "peer", "name", self.site_up)
        sh("ip", "link", "set", self.site_up, "netns", self.site)
        sh("ip", "addr", "add", f"{CORE_IP}/24", "dev", self.core_if)
        sh("ip", "link", "set", self.core_if, "up")
        sh("ip", "link", "add", self.site_down, "netns", self.site, "type", "veth", "peer", "name", self.agent_if,
           "netns", self.agent)
        self.ns(self.site, "ip", "addr", "add", f"{SITE_UP}/24", "dev", self.site_up)
        self.ns(self.site, "ip", "addr", "add", f"{SITE_DOWN}/24", "dev", self.site_down)
        self.ns(self.agent, "ip", "addr", "add", f"{AGENT_IP}/24", "dev", self.agent_if)
        for namespace, links in [(self.site, ["lo", self.site_up, self.site_down]), (self.agent, ["lo", self.agent_if])]:
            for link in links:
                self.ns(namespace, "ip", "link", "set", link, "up")
        self.ns(self.site, "sysctl", "-qw", "net.ipv4.ip_forward=0")
        # Count what arrives from the agent on the site's agent-facing link: to the core network, and to the poller.
        rules = f"""table inet muster_watch {{
            counter to_core {{ }}
            counter to_poller {{ }}
            chain in {{ type filter hook prerouting priority -300; policy accept;
                iifname "{self.site_down}" ip daddr {CORE_NET}.0/24 counter name to_core
                iifname "{self.site_down}" ip daddr {SITE_DOWN} counter name to_poller
            }}
        }}"""
        self.ns(self.site, "nft", "-f", "-", input=rules)

    def ns(self, namespace, *args, input=None):
        done = subprocess.run(["ip", "netns", "exec", namespace, *map(str, args)], capture_output=True, text=True,
                              timeout=180, input=input)
        if done.returncode != 0:
            raise AssertionError(f"in {namespace}: {' '.join(map(str, args))}: {done.stderr.strip()}")
        return done

    def counter(self, name):
        listed = json.loads(self.ns(self.site, "nft", "-j", "list", "counter", "inet", "muster_watch", name).stdout)
        return next(item["counter"]["packets"] for item in listed["nftables"] if "counter" in item)

    def spawn(self, namespace, command, name):
        log_path = LOG_DIR / f"{name}-{uuid.uuid4().hex[:6]}.log"
        log = open(log_path, "w")
        process = subprocess.Popen(["ip", "netns", "exec", namespace, *map(str, command)], stdout=log,
                                   stderr=subprocess.STDOUT)
        return process, log, log_path

    def close(self):
        subprocess.run(["ip", "link", "del", self.core_if], capture_output=True)
        for namespace in self.namespaces:
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True)


def printed_command(output):
    return output.split("start it with: runuser -u muster -- ", 1)[1].strip().split()


def test_agents_on_the_site_network_onboard_through_the_poller_and_never_reach_core(bundle, tmp_path):
    topology = Topology()
    processes = []
    grpc_port = free_port()
    core = Core(extra=["--create-rate-limit", "1000", "--advertise", f"{CORE_IP}:{grpc_port}"])
    try:
        # Core answers pollers on its core-network address only (the HTTP API stays on this host's loopback).
        core.stop()
        core.args[core.args.index("--grpc-listen") + 1] = f"{CORE_IP}:{grpc_port}"
        core.start()

        package = tmp_path / "edge-site-x.tar.gz"
        package.write_bytes(download(core, core.create("edge-site-x", "poller").json()))
        started = time.monotonic()
        poller_root, listen = tmp_path / "site-host", f"{SITE_DOWN}:50052"
        installed = topology.ns(topology.site, bundle / "edge-poller-install.sh", "--package", package, "--root",
                                poller_root, "--listen", listen, "--no-start")
        command = printed_command(installed.stdout) + ["--agent-svid-ttl", "60"]
        processes.append(topology.spawn(topology.site, command, "topology-poller"))
        poller_dir = poller_root / "var/lib/muster-poller"
        poller_bin = poller_root / "usr/local/bin/muster-poller"
        wait_for(lambda: "attested:  yes" in topology.ns(topology.site, poller_bin, "status", "--dir", poller_dir).stdout,
                 timeout=60, what="the poller attesting across the core network")
        poller_time = time.monotonic() - started

        def agent_package(name):
            record = core.create(name, "agent", poller_id="edge-site-x").json()
            path = tmp_path / f"{name}.tar.gz"
            path.write_bytes(download(core, record))
            wait_for(lambda: core.api("GET", f"/api/edge-packages/{record['id']}").json()["delivered_at"], timeout=30,
                     what=f"{name} pulled by the poller")
            return record, path

        first, first_path = agent_package("web-01")
        started = time.monotonic()
        agent_root = tmp_path / "agent-host"
        joined = topology.ns(topology.agent, bundle / "edge-agent-install.sh", "--package", first_path, "--root",
                             agent_root, "--no-start")
        agent_time = time.monotonic() - started
        assert "joined as spiffe://blackbox.test/muster/poller/edge-site-x/agent/web-01" in joined.stdout
        print(f"\ninstall times (package in hand → identity): edge-poller-install.sh {poller_time:.1f} s, "
              f"edge-agent-install.sh {agent_time:.1f} s")
        agent_dir = agent_root / "var/lib/muster-agent"
        agent_process = topology.spawn(topology.agent, printed_command(joined.stdout), "topology-agent")
        processes.append(agent_process)
        wait_for(lambda: core.api("GET", f"/api/edge-packages/{first['id']}").json()["status"] == "activated",
                 timeout=30, what="the activation relayed to Core")

        # The agent cannot open a connection to Core, on either of Core's ports.
        for port in (grpc_port, core.http_port):
            probe = subprocess.run(["ip", "netns", "exec", topology.agent, "python3", "-c",
                                    f"import socket; socket.create_connection(('{CORE_IP}', {port}), timeout=3)"],
                                   capture_output=True, text=True, timeout=30)
            assert probe.returncode != 0 and ("unreachable" in probe.stderr or "timed out" in probe.stderr), probe.stderr

        # Core away (its link cut): a second agent joins from the poller's cache, the first renews.
        second, second_path = agent_package("web-02")
        svid = agent_dir / "identity/svid.pem"
        before = svid.read_bytes()
        sh("ip", "link", "set", topology.core_if, "down")
        second_root = tmp_path / "agent-host-2"
        joined_away = topology.ns(topology.agent, bundle / "edge-agent-install.sh", "--package", second_path,
                                  "--root", second_root, "--no-start")
        assert "joined as spiffe://blackbox.test/muster/poller/edge-site-x/agent/web-02" in joined_away.stdout
        wait_for(lambda: svid.read_bytes() != before, timeout=60, interval=0.5,
                 what="the first agent renewing while Core is unreachable")
        assert core.api("GET", f"/api/edge-packages/{second['id']}").json()["status"] == "delivered"
        sh("ip", "link", "set", topology.core_if, "up")
        wait_for(lambda: core.api("GET", f"/api/edge-packages/{second['id']}").json()["status"] == "activated",
                 timeout=90, interval=0.5, what="the queued activation delivered once Core is back")

        # Revocation travels Core → poller → agent: the poller ends the agent's identity watch, the agent drops the
        # identity and, serving the Workload API, keeps running to answer its workloads PERMISSION_DENIED.
        core.api("POST", f"/api/edge-packages/{first['id']}/revoke", {"reason": "topology test"})
        # The poller hears of it on its package stream (which may still be backing off after the outage) ...
        wait_for(lambda: ", 1 revoked" in topology.ns(topology.site, poller_bin, "status", "--dir", poller_dir).stdout,
                 timeout=120, interval=0.5, what="the revocation reaching the poller")
        # ... and tells the agent at once over the watch (not at its next renewal, up to 30 s later).
        process, log, log_path = agent_process
        wait_for(lambda: not (agent_dir / "identity").exists(), timeout=20, interval=0.2,
                 what="the agent dropping its revoked identity")

        def workload_state():
            try:
                return json.loads((agent_dir / "workload.json").read_text())["state"]
            except (OSError, ValueError, KeyError):
                return None
        wait_for(lambda: workload_state() == "revoked", timeout=10, what="the agent's Workload API saying revoked")
        assert process.poll() is None, log_path.read_text()[-1500:]
        assert "the poller refused this identity" in log_path.read_text()

        assert topology.counter("to_poller") > 0, "the counter sees the agent's traffic to the poller"
        assert topology.counter("to_core") == 0, "a packet from the agent was addressed to the core network"
    finally:
        for process, log, _ in processes:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
            log.close()
        core.stop()
        topology.close()
