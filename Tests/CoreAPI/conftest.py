"""Black-box fixtures for Core: muster-core as a real process on SQLite or on the test PostgreSQL server."""
import io
import json
import os
import pathlib
import shutil
import signal
import socket
import sys
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import uuid

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN_DIR = pathlib.Path(os.environ.get("MUSTER_BIN_DIR", ROOT / ".build" / "debug"))
PG_URL = os.environ.get("MUSTER_TEST_POSTGRES_URL")
LOG_DIR = pathlib.Path(tempfile.mkdtemp(prefix="muster-core-logs-"))
# Every secret the tests see (admin/operator tokens, join tokens); no log may contain one.
SECRETS = set()


@pytest.fixture(scope="session", autouse=True)
def no_secret_in_any_log(request):
    """After the whole session (whatever ran, in whatever order): no log written by any Core, poller or agent
    process contains a token the tests saw. A leak fails the session as an error in this fixture's teardown."""
    yield
    logs = sorted(LOG_DIR.glob("*.log"))
    if not logs:
        return  # nothing here started a process
    text = "\n".join(path.read_text(errors="replace") for path in logs)
    leaked = [secret[:8] + "…" for secret in SECRETS if secret in text]
    assert not leaked, f"secrets in the process logs of this run: {leaked}"
    assert "mjt_" not in text and "mot_" not in text, "a token-shaped string is in the process logs of this run"
    if request.session.testscollected >= 50:
        # A full run must have seen enough secrets (and the admin-token notice) for this check to mean anything.
        assert len(SECRETS) >= 5, "the run saw too few secrets for the log check to mean anything"
        assert "created the admin token" in text


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def new_postgres_database():
    name = "muster_bb_" + uuid.uuid4().hex[:12]
    port = PG_URL.rsplit(":", 1)[1].split("/")[0]
    subprocess.run(["psql", "-h", "127.0.0.1", "-p", port, "-U", "postgres", "-q", "-c", f"CREATE DATABASE {name}"],
                   check=True, capture_output=True)
    return PG_URL.rsplit("/", 1)[0] + "/" + name


def stop_process(process, log, sig=signal.SIGTERM):
    """Signals a test's server process, waits (killing it after 20 s), closes its log; returns its exit code."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    log.close()
    return process.returncode


class Response:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)


class Core:
    """One muster-core process; its stderr goes to a log file checked for secrets at the end of the run."""

    def __init__(self, data_dir=None, database=None, extra=(), env=None):
        self.data_dir = pathlib.Path(data_dir or tempfile.mkdtemp(prefix="muster-core-"))
        self.http_port, self.grpc_port = free_port(), free_port()
        self.database = database
        self.args = [str(BIN_DIR / "muster-core"), "serve", "--data-dir", str(self.data_dir),
                     "--http-listen", f"127.0.0.1:{self.http_port}", "--grpc-listen", f"127.0.0.1:{self.grpc_port}",
                     "--trust-domain", "blackbox.test", *(["--database", database] if database else []), *extra]
        self.env = {**os.environ, **(env or {})}
        self.log_path = LOG_DIR / f"core-{uuid.uuid4().hex[:8]}.log"
        self.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.http_port}"

    def start(self):
        self.log = open(self.log_path, "a")
        self.process = subprocess.Popen(self.args, stdout=self.log, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"muster-core exited {self.process.returncode}: {self.log_path.read_text()[-2000:]}")
            try:
                if self.request("GET", "/healthz").status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError("muster-core did not answer /healthz within 60 s")
        self.admin = (self.data_dir / "admin.token").read_text().strip()
        SECRETS.add(self.admin)

    def stop(self, sig=signal.SIGTERM):
        return stop_process(self.process, self.log, sig)

    def request(self, method, path, token=None, body=None, raw=None, headers=None, timeout=30):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        for key, value in (headers or {}).items():
            req.add_header(key, value)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return Response(resp.status, dict(resp.headers), resp.read())
        except urllib.error.HTTPError as error:
            return Response(error.code, dict(error.headers), error.read())

    def api(self, method, path, body=None, token=None, **kw):
        return self.request(method, path, token=token or self.admin, body=body, **kw)

    def mint(self, scopes, name="tester"):
        args = [str(BIN_DIR / "muster-core"), "token", "create", "--data-dir", str(self.data_dir), "--scopes", scopes, "--name", name,
                *(["--database", self.database] if self.database else [])]
        out = subprocess.run(args, capture_output=True, text=True, check=True, env=self.env)
        token = out.stdout.strip()
        SECRETS.add(token)
        return token

    def create(self, name, component_type="agent", **fields):
        body = {"name": name, "component_type": component_type, **fields}
        if component_type != "poller":
            body.setdefault("poller_id", "edge-1")
        return self.api("POST", "/api/edge-packages", body)


def replica_pair(database, extra=()):
    """Two Core processes on one PostgreSQL database, sharing the CA and the token key as replicas must."""
    first = Core(database=database, extra=["--create-rate-limit", "1000", *extra])
    shared = pathlib.Path(tempfile.mkdtemp(prefix="muster-replica-"))
    shutil.copytree(first.data_dir / "ca", shared / "ca")
    shutil.copy2(first.data_dir / "token.key", shared / "token.key")
    return first, Core(data_dir=shared, database=database, extra=["--create-rate-limit", "1000", *extra])


def open_archive(body):
    """Opens a downloaded package with Python's tarfile and returns {name: (mode, bytes)}; records the token."""
    files = {}
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as archive:
        for member in archive.getmembers():
            files[member.name] = (member.mode, archive.extractfile(member).read())
    if "join-token" in files:
        SECRETS.add(files["join-token"][1].decode().strip())
    return files


@pytest.fixture(scope="session")
def onboarding():
    out = pathlib.Path(tempfile.mkdtemp(prefix="muster-onboarding-stubs-"))
    from grpc_tools import protoc
    assert protoc.main(["protoc", f"-I{ROOT / 'Protos'}", f"--python_out={out}", f"--grpc_python_out={out}",
                        str(ROOT / "Protos/muster/onboarding/v1/onboarding.proto")]) == 0
    sys.path.insert(0, str(out))
    from muster.onboarding.v1 import onboarding_pb2, onboarding_pb2_grpc
    return onboarding_pb2, onboarding_pb2_grpc


BACKENDS = ["sqlite"] + (["postgres"] if PG_URL else [])


@pytest.fixture(params=BACKENDS)
def core(request):
    database = new_postgres_database() if request.param == "postgres" else None
    instance = Core(database=database, extra=["--create-rate-limit", "1000"])
    yield instance
    assert instance.stop() == 0, f"muster-core did not exit cleanly on SIGTERM: {instance.log_path.read_text()[-1500:]}"


@pytest.fixture
def sqlite_core():
    instance = Core(extra=["--create-rate-limit", "1000"])
    yield instance
    instance.stop()


@pytest.fixture(scope="session")
def bundle(tmp_path_factory):
    """The release bundle (scripts/release.sh) packing this build's executables, unpacked; made once a run."""
    out = tmp_path_factory.mktemp("dist")
    made = subprocess.run([str(ROOT / "scripts/release.sh"), "--bin-dir", str(BIN_DIR), "--out", str(out),
                           "--version", "1.2.3-test"], capture_output=True, text=True, timeout=600)
    assert made.returncode == 0, made.stderr
    archive = pathlib.Path(made.stdout.strip().splitlines()[-1])
    assert archive.name == f"muster-1.2.3-test-linux-{os.uname().machine}.tar.gz"
    with tarfile.open(archive) as tar:
        tar.extractall(out, filter="tar")
    return out / archive.name[:-len(".tar.gz")]
