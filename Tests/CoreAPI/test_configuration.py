"""muster-core configuration: flag over MUSTER_* over the config file; bad settings stop it with exit 2 and one line."""
import base64
import json
import os
import signal
import subprocess
import tempfile
import time
import urllib.request

from conftest import BIN_DIR, SECRETS, free_port

CORE = str(BIN_DIR / "muster-core")


def serve(args, env_extra, data_dir):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUSTER_")}
    env.update(env_extra)
    return subprocess.Popen([CORE, "serve", "--data-dir", data_dir, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_ready(port, process):
    deadline = time.time() + 30
    while time.time() < deadline:
        assert process.poll() is None, process.stderr.read()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("Core did not start")


def create_poller(port, token):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/edge-packages", method="POST",
                                 data=json.dumps({"name": "edge-1", "component_type": "poller"}).encode())
    req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)


def test_flag_beats_environment_beats_config_file(tmp_path):
    http_port, grpc_port = free_port(), free_port()
    config = tmp_path / "core.json"
    config.write_text(json.dumps({"http_listen": f"127.0.0.1:{http_port}", "grpc_listen": f"127.0.0.1:{grpc_port}",
                                  "trust_domain": "file.test", "create_rate_limit": 1000}))
    key = base64.b64encode(os.urandom(32)).decode()
    data_dir = str(tmp_path / "data")
    process = serve(["--config", str(config)], {"MUSTER_TRUST_DOMAIN": "env.test", "MUSTER_TOKEN_KEY": key}, data_dir)
    try:
        wait_ready(http_port, process)
        token = open(f"{data_dir}/admin.token").read().strip()
        SECRETS.add(token)
        assert create_poller(http_port, token)["spiffe_id"] == "spiffe://env.test/muster/poller/edge-1"
        assert not os.path.exists(f"{data_dir}/token.key"), "MUSTER_TOKEN_KEY was given; no key file should be made"
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0

    data_dir = str(tmp_path / "data2")
    process = serve(["--config", str(config), "--trust-domain", "flag.test"], {"MUSTER_TRUST_DOMAIN": "env.test"}, data_dir)
    try:
        wait_ready(http_port, process)
        token = open(f"{data_dir}/admin.token").read().strip()
        SECRETS.add(token)
        assert create_poller(http_port, token)["spiffe_id"] == "spiffe://flag.test/muster/poller/edge-1"
        assert os.stat(f"{data_dir}/token.key").st_mode & 0o777 == 0o600
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0


def test_bad_settings_exit_2_with_one_line(tmp_path):
    config = tmp_path / "bad.json"
    config.write_text(json.dumps({"http_listen": "127.0.0.1:1", "colour": "red"}))
    cases = [
        (["--config", str(config)], {}, "unknown key 'colour'"),
        (["--database", "mysql://x"], {}, "--database"),
        (["--http-listen", "nowhere"], {}, "--http-listen"),
        ([], {"MUSTER_CREATE_RATE_LIMIT": "-3"}, "create rate limit"),
        (["--spire-socket", "/run/spire.sock"], {}, "SPIRE mode"),
    ]
    for args, env, fragment in cases:
        data_dir = tempfile.mkdtemp(prefix="muster-badcfg-")
        process = serve(args, env, data_dir)
        _, stderr = process.communicate(timeout=30)
        assert process.returncode == 2, (args, env, stderr)
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("muster-core: ") and fragment in lines[0], (args, stderr)
        assert not os.path.exists(f"{data_dir}/admin.token"), "a refused configuration still set up a data directory"
