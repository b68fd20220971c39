"""Field installation: the release bundle (scripts/release.sh, packing the debug build), its checksums and library
list, the install scripts run for real (with --root and --no-start, then the daemon in the foreground, as they
print it), shellcheck, systemd-analyze verify on the units and docker-compose config on the Compose files."""
import hashlib
import os
import pathlib
import re
import shutil
import subprocess
import time

import pytest

from conftest import ROOT, Core, free_port, open_archive
from relay import Poller, wait_cached, wait_for

SCRIPTS = ["edge-poller-install.sh", "edge-agent-install.sh", "core-install.sh", "install-common.sh"]


def run(args, **kw):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=kw.pop("timeout", 120), **kw)


def files_below(path):
    return sorted(str(p.relative_to(path)) for p in pathlib.Path(path).rglob("*")) if pathlib.Path(path).exists() else []


def download(core, package):
    body = core.api("GET", f"/api/edge-packages/{package['id']}/download").body
    open_archive(body)
    return body


def test_bundle_holds_the_executables_units_scripts_compose_and_checksums_of_every_file(bundle):
    for exe in ["muster-core", "muster", "muster-poller", "muster-agent"]:
        assert os.access(bundle / "bin" / exe, os.X_OK)
    for unit in ["muster-core.service", "muster-poller.service", "muster-agent.service"]:
        assert (bundle / "systemd" / unit).is_file()
    for script in SCRIPTS:
        assert (bundle / script).is_file()
    for compose in ["core", "poller", "agent"]:
        assert (bundle / "compose" / compose / "compose.yaml").is_file()
    assert (bundle / "compose" / "Dockerfile").is_file() and (bundle / "README.md").is_file()
    assert (bundle / "VERSION").read_text().strip() == "1.2.3-test"
    listed = {}
    for line in (bundle / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(None, 1)
        listed[name.strip()] = digest
    every = {str(p.relative_to(bundle)) for p in bundle.rglob("*") if p.is_file() and p.name != "SHA256SUMS"}
    assert set(listed) == every
    for name in ["bin/muster-poller", "edge-poller-install.sh"]:
        assert hashlib.sha256((bundle / name).read_bytes()).hexdigest() == listed[name]
    dependencies = dict(line.split() for line in (bundle / "DEPENDENCIES").read_text().splitlines()
                        if not line.startswith("#"))
    assert dependencies["libgrpc.so.29"] == "libgrpc29" and dependencies["libarchive.so.13"] == "libarchive13"


def test_scripts_pass_shellcheck():
    scripts = [ROOT / "Compose" / s for s in SCRIPTS] + [ROOT / "scripts/release.sh", ROOT / "scripts/bootstrap.sh"]
    checked = run(["shellcheck", "-x", *scripts], cwd=ROOT / "Compose")
    assert checked.returncode == 0, checked.stdout


def test_units_pass_systemd_analyze_verify_and_are_locked_down(bundle, tmp_path):
    for unit in (bundle / "systemd").glob("*.service"):
        text = unit.read_text()
        for setting in ["User=muster", "StateDirectory=", "RuntimeDirectory=", "NoNewPrivileges=yes",
                        "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "Restart=on-failure"]:
            assert setting in text, f"{unit.name} lacks {setting}"
        assert re.search(r"^CapabilityBoundingSet=$", text, re.M), f"{unit.name}: capabilities not emptied"
        (tmp_path / unit.name).write_text(text.replace("@PREFIX@", str(bundle)))
    verified = run(["systemd-analyze", "verify", *sorted(tmp_path.glob("*.service"))])
    assert verified.returncode == 0 and verified.stderr == "", verified.stderr
    # The check can fail: a unit naming a missing program is reported.
    (tmp_path / "broken.service").write_text("[Service]\nExecStart=/nonexistent/muster-poller run\n")
    assert run(["systemd-analyze", "verify", tmp_path / "broken.service"]).returncode != 0


def test_compose_files_validate_and_name_only_what_the_bundle_has(bundle):
    env = {**os.environ, "MUSTER_DB_PASSWORD": "pw", "MUSTER_ADVERTISE": "core.example:50051",
           "MUSTER_PACKAGE": str(bundle / "README.md"), "MUSTER_POLLER_ADVERTISE": "10.0.0.5:50052"}
    for name in ["core", "poller", "agent"]:
        path = bundle / "compose" / name / "compose.yaml"
        config = run(["docker-compose", "-f", path, "config"], env=env)
        assert config.returncode == 0, config.stderr
        assert f"context: {bundle}" in config.stdout, "the image is built from the bundle's root"
        assert (bundle / "compose" / "Dockerfile").is_file()
        for volume in re.findall(r"^  ([a-z]+): \{\}$", path.read_text(), re.M):
            assert volume in config.stdout
    # A required setting left out is named, not silently empty.
    missing = run(["docker-compose", "-f", bundle / "compose/core/compose.yaml", "config"],
                  env={k: v for k, v in env.items() if k != "MUSTER_DB_PASSWORD"})
    assert missing.returncode != 0 and "MUSTER_DB_PASSWORD" in missing.stderr
    dockerfile = (bundle / "compose" / "Dockerfile").read_text()
    assert "sha256sum --check" in dockerfile and "DEPENDENCIES" in dockerfile


def test_a_tampered_bundle_stops_before_anything_is_written(bundle, tmp_path, sqlite_core):
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy, symlinks=True)
    with open(copy / "bin" / "muster-poller", "r+b") as exe:
        exe.seek(4096)
        exe.write(b"\x00tampered\x00")
    package = tmp_path / "p.tar.gz"
    package.write_bytes(download(sqlite_core, sqlite_core.create("edge-t", "poller").json()))
    done = run([copy / "edge-poller-install.sh", "--package", package, "--root", tmp_path / "root"])
    assert done.returncode == 1 and done.stdout == "" and done.stderr.count("\n") == 1
    assert "damaged or was changed (bin/muster-poller: FAILED)" in done.stderr
    assert not (tmp_path / "root").exists()


def test_a_missing_system_library_is_named_with_the_apt_line(bundle, tmp_path):
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy, symlinks=True)
    (tmp_path / "gone.c").write_text("int gone(void) { return 1; }\n")
    (tmp_path / "main.c").write_text("int gone(void);\nint main(void) { return gone(); }\n")
    run(["gcc", "-shared", "-fPIC", "-o", tmp_path / "libmustergone.so.1", "-Wl,-soname,libmustergone.so.1",
         tmp_path / "gone.c"]).check_returncode()
    run(["gcc", "-o", copy / "bin/muster-poller", tmp_path / "main.c", tmp_path / "libmustergone.so.1"]).check_returncode()
    (tmp_path / "libmustergone.so.1").unlink()
    with open(copy / "DEPENDENCIES", "a") as deps:
        deps.write("libmustergone.so.1 libmustergone1\n")
    sums = run(["bash", "-c", "find . -type f ! -name SHA256SUMS -printf '%P\\n' | LC_ALL=C sort | xargs sha256sum"],
               cwd=copy).stdout
    (copy / "SHA256SUMS").write_text(sums)
    package = tmp_path / "p.tar.gz"
    package.write_bytes(b"not even a package")
    done = run([copy / "edge-poller-install.sh", "--package", package, "--root", tmp_path / "root"])
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert "lacks the shared libraries libmustergone.so.1" in done.stderr
    assert done.stderr.strip().endswith("install them with: apt-get install -y libmustergone1")
    assert not (tmp_path / "root").exists()


def foreground(printed, tmp_path, name):
    """Starts the command an install script printed (as root here: the test's folders are root's own)."""
    command = printed.split("start it with: runuser -u muster -- ", 1)[1].strip().split()
    log = open(tmp_path / f"{name}.log", "w")
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT), log


def test_poller_install_runs_attests_and_a_second_run_changes_nothing(bundle, tmp_path, sqlite_core):
    core = sqlite_core
    package = tmp_path / "edge-site-x.tar.gz"
    package.write_bytes(download(core, core.create("edge-site-x", "poller").json()))
    root = tmp_path / "root"
    port = free_port()
    script = [bundle / "edge-poller-install.sh", "--package", package, "--root", root, "--listen", f"127.0.0.1:{port}",
              "--no-start"]
    started = time.monotonic()
    first = run(script)
    assert first.returncode == 0, first.stderr
    assert "installed spiffe://blackbox.test/muster/poller/edge-site-x" in first.stdout
    state = root / "var/lib/muster-poller"
    assert (state / "package" / "join-token").stat().st_mode & 0o077 == 0
    assert oct(state.stat().st_mode & 0o777) == "0o700" and state.owner() == "muster"
    unit = (root / "etc/systemd/system/muster-poller.service").read_text()
    assert "ExecStart=/usr/local/bin/muster-poller run" in unit and "@PREFIX@" not in unit
    assert (root / "etc/muster/muster-poller.env").read_text() == f"MUSTER_POLLER_LISTEN=127.0.0.1:{port}\nMUSTER_POLLER_ARGS=\n"

    process, log = foreground(first.stdout, tmp_path, "poller")
    try:
        status = [root / "usr/local/bin/muster-poller", "status", "--dir", state]
        wait_for(lambda: "attested:  yes" in run(status).stdout, timeout=60, what="the installed poller attesting")
        print(f"\nedge-poller-install.sh: package in hand to attested poller in {time.monotonic() - started:.1f} s")
        before = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file() and "var/lib" not in str(p)}
        again = run(script)
        assert again.returncode == 0 and "nothing changed" in again.stdout, again.stderr
        after = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file() and "var/lib" not in str(p)}
        assert before == after, "a second run with the same package rewrote files"
        assert "attested:  yes" in run(status).stdout

        # A package of another trust domain is refused unless --replace, and then the old identity is kept aside.
        other = Core(extra=["--trust-domain", "other.test"])
        try:
            foreign = tmp_path / "foreign.tar.gz"
            foreign.write_bytes(download(other, other.create("edge-site-x", "poller").json()))
        finally:
            other.stop()
        refused = run([*script[:2], foreign, *script[3:]])
        assert refused.returncode == 1 and refused.stderr.count("\n") == 1
        assert "already holds a poller of trust domain blackbox.test; the package is for other.test" in refused.stderr
        assert "attested:  yes" in run(status).stdout, "the refusal changed nothing"
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()
    replaced = run([*script[:2], foreign, *script[3:], "--replace"])
    assert replaced.returncode == 0, replaced.stderr
    assert "kept the previous identity in" in replaced.stdout
    assert [p.name for p in (root / "var/lib").iterdir() if p.name.startswith("muster-poller.previous-")]
    assert "other.test" in (state / "package/manifest.json").read_text()


def test_a_bad_package_or_option_stops_with_one_line_and_writes_nothing(bundle, tmp_path):
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"\x1f\x8b not a package")
    root = tmp_path / "root"
    cases = [
        (["--package", junk], 1, "the package was refused:"),
        (["--package", tmp_path / "missing.tar.gz"], 1, "cannot read the package"),
        (["--package", junk, "--listen", "nowhere"], 2, "--listen must be host:port"),
        ([], 2, "give the poller's package"),
        (["--package", junk, "--frobnicate"], 2, "unknown option --frobnicate"),
    ]
    for args, code, message in cases:
        done = run([bundle / "edge-poller-install.sh", *args, "--root", root])
        assert done.returncode == code and done.stderr.count("\n") == 1 and message in done.stderr, (args, done.stderr)
        assert not root.exists()


def test_agent_install_from_a_package_and_from_a_join_command_file(bundle, tmp_path, sqlite_core):
    core = sqlite_core
    poller = Poller(core, tmp_path / "poller")
    try:
        package = core.create("web-01", "agent", poller_id="edge-1").json()
        archive = tmp_path / "web-01.tar.gz"
        archive.write_bytes(download(core, package))
        wait_cached(core, package["id"])
        root = tmp_path / "root"
        script = [bundle / "edge-agent-install.sh", "--root", root, "--no-start"]
        first = run([*script, "--package", archive], timeout=180)
        assert first.returncode == 0, first.stderr
        assert "joined as spiffe://blackbox.test/muster/poller/edge-1/agent/web-01" in first.stdout
        state = root / "var/lib/muster-agent"
        assert (state / "identity" / "svid.pem").exists() and state.owner() == "muster"
        # Without systemd's RuntimeDirectory= the script makes the Workload API socket's directory itself.
        runtime = root / "run/muster-agent"
        assert runtime.is_dir() and oct(runtime.stat().st_mode & 0o777) == "0o755" and runtime.owner() == "muster"
        assert f"--workload-socket {runtime}/workload.sock" in first.stdout
        again = run([*script, "--package", archive])
        assert again.returncode == 0 and "nothing changed" in again.stdout

        # The console's one-line join command, saved to a file: read, never run.
        second = core.create("web-02", "agent", poller_id="edge-1").json()
        files = open_archive(download(core, second))
        token = files["join-token"][1].decode().strip()
        wait_cached(core, second["id"])
        line = f"printf '%s\\n' '{token}' | " + second["join_command"].replace("--token-file join-token", "--token-file -")
        canary = tmp_path / "ran"
        hostile = tmp_path / "hostile.txt"
        hostile.write_text(line.replace(f"'{token}'", f"'$(touch {canary})'") + "\n")
        refused = run([*script, "--root", tmp_path / "root2", "--join-command-file", hostile])
        assert refused.returncode == 1 and "holds no join token" in refused.stderr and not canary.exists()
        good = tmp_path / "join.txt"
        good.write_text(line + "\n")
        joined = run([bundle / "edge-agent-install.sh", "--root", tmp_path / "root2", "--no-start",
                      "--join-command-file", good], timeout=180)
        assert joined.returncode == 0, joined.stderr
        assert "joined as spiffe://blackbox.test/muster/poller/edge-1/agent/web-02" in joined.stdout
        assert token not in joined.stdout + joined.stderr
        wait_for(lambda: core.api("GET", f"/api/edge-packages/{second['id']}").json()["status"] == "activated",
                 timeout=30, what="the activation reaching Core")
    finally:
        poller.stop()


def test_core_install_writes_a_private_env_file_and_its_unit(bundle, tmp_path):
    root = tmp_path / "root"
    done = run([bundle / "core-install.sh", "--root", root, "--no-start", "--database",
                "postgres://muster:secret@db.example/muster?sslmode=verify-full", "--http-listen", "0.0.0.0:8080"])
    assert done.returncode == 0, done.stderr
    env = root / "etc/muster/muster-core.env"
    assert env.stat().st_mode & 0o077 == 0, "a database password stays root's"
    assert "MUSTER_DATABASE=postgres://muster:secret@db.example/muster?sslmode=verify-full" in env.read_text()
    assert "MUSTER_HTTP_LISTEN=0.0.0.0:8080" in env.read_text()
    assert "secret" not in done.stdout + done.stderr
    assert (root / "usr/local/bin/muster-core").exists() and (root / "usr/local/bin/muster").exists()
    bad = run([bundle / "core-install.sh", "--root", tmp_path / "root2", "--database", "mysql://x"])
    assert bad.returncode == 2 and "--database must be postgres://" in bad.stderr and not (tmp_path / "root2").exists()
