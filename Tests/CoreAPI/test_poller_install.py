"""muster-poller install: a real package installs 0600/0700; every tar-slip variant is refused whole,
with nothing written outside staging (and nothing left in the target)."""
import gzip
import io
import os
import pathlib
import stat
import subprocess
import tarfile
import tempfile

import pytest

from conftest import BIN_DIR, open_archive

POLLER = str(BIN_DIR / "muster-poller")


def install(package, directory):
    return subprocess.run([POLLER, "install", "--package", str(package), "--dir", str(directory)], capture_output=True, text=True, timeout=60)


@pytest.fixture
def real_package(sqlite_core, tmp_path):
    package = sqlite_core.create("edge-1", "poller", site="lab").json()
    body = sqlite_core.api("GET", f"/api/edge-packages/{package['id']}/download").body
    open_archive(body)
    path = tmp_path / "poller.tar.gz"
    path.write_bytes(body)
    return path, package


def test_a_real_package_installs_with_tight_modes(real_package, tmp_path):
    path, package = real_package
    target = tmp_path / "state"
    result = install(path, target)
    assert result.returncode == 0, result.stderr
    assert package["spiffe_id"] in result.stdout
    installed = target / "package"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o700 and stat.S_IMODE(os.stat(installed).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(installed / "join-token").st_mode) == 0o600
    assert sorted(p.name for p in installed.iterdir()) == sorted(
        ["manifest.json", "join-token", "bundle.pem", "bundle.spiffe.json", "muster-poller.env", "README.txt"])
    assert [p.name for p in target.iterdir()] == ["package"], "staging left behind"
    again = install(path, target)
    assert again.returncode == 1 and "already installed" in again.stderr and len(again.stderr.splitlines()) == 1


def evil(tmp_path, base, add):
    """A copy of the real package with `add(tar)` appending hostile entries."""
    files = {}
    with tarfile.open(base, "r:gz") as archive:
        for member in archive.getmembers():
            files[member.name] = archive.extractfile(member).read()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        add(archive)
    path = tmp_path / f"evil-{len(list(tmp_path.iterdir()))}.tar.gz"
    path.write_bytes(out.getvalue())
    return path


def regular(name, data=b"x"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, io.BytesIO(data)


def special(name, kind, linkname=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info, None


CASES = {
    "dot-dot": (lambda t: t.addfile(*regular("../escaped")), "climbs out"),
    "nested dot-dot": (lambda t: t.addfile(*regular("a/../../escaped")), "climbs out"),
    "absolute": (lambda t: t.addfile(*regular("/tmp/muster-escaped-abs")), "absolute path"),
    "subdirectory": (lambda t: t.addfile(*regular("sub/file")), "not a plain file name"),
    "symlink then write through it": (lambda t: (t.addfile(*special("link", tarfile.SYMTYPE, "/tmp")), t.addfile(*regular("link/escaped"))), "not a regular file"),
    "hardlink": (lambda t: t.addfile(*special("hard", tarfile.LNKTYPE, "/etc/passwd")), "not a regular file"),
    "character device": (lambda t: t.addfile(*special("dev", tarfile.CHRTYPE)), "not a regular file"),
    "fifo": (lambda t: t.addfile(*special("fifo", tarfile.FIFOTYPE)), "not a regular file"),
    "directory": (lambda t: t.addfile(*special("dir", tarfile.DIRTYPE)), "not a plain file name"),
    "duplicate name": (lambda t: t.addfile(*regular("join-token", b"mjt_other")), "appears twice"),
    "too many entries": (lambda t: [t.addfile(*regular(f"f{i}")) for i in range(40)], "more than 32 entries"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_archives_are_refused_whole(real_package, tmp_path, case):
    add, fragment = CASES[case]
    path = evil(tmp_path, real_package[0], add)
    target = tmp_path / "state"
    outside = pathlib.Path(tempfile.gettempdir()) / "muster-escaped-abs"
    result = install(path, target)
    assert result.returncode == 1, (case, result.stdout)
    assert fragment in result.stderr and len(result.stderr.splitlines()) == 1, (case, result.stderr)
    assert not (tmp_path / "escaped").exists() and not outside.exists() and not pathlib.Path("/tmp/escaped").exists()
    assert not (target / "package").exists()
    assert not target.exists() or list(target.iterdir()) == [], "something was left in the target"


def test_a_gzip_bomb_stops_at_the_limit(real_package, tmp_path):
    big = tarfile.TarInfo("bomb")
    big.size = 200 << 20
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb") as gz:
        header = big.tobuf(format=tarfile.PAX_FORMAT)
        gz.write(header)
        zero = bytes(1 << 20)
        for _ in range(200):
            gz.write(zero)
    path = tmp_path / "bomb.tar.gz"
    path.write_bytes(out.getvalue())
    assert path.stat().st_size < 1 << 20
    result = install(path, tmp_path / "state")
    assert result.returncode == 1 and "larger than" in result.stderr
    assert not (tmp_path / "state" / "package").exists()


def test_a_package_for_another_component_or_with_a_foreign_bundle_is_refused(sqlite_core, tmp_path):
    sqlite_core.create("edge-1", "poller")
    agent = sqlite_core.create("a1").json()
    body = sqlite_core.api("GET", f"/api/edge-packages/{agent['id']}/download").body
    open_archive(body)
    path = tmp_path / "agent.tar.gz"
    path.write_bytes(body)
    result = install(path, tmp_path / "state")
    assert result.returncode == 1 and "it is for component type agent" in result.stderr
    assert install(tmp_path / "missing.tar.gz", tmp_path / "state").returncode == 1
    assert subprocess.run([POLLER, "install"], capture_output=True).returncode == 2


AGENT = str(BIN_DIR / "muster-agent")


@pytest.mark.parametrize("case", ["dot-dot", "absolute", "symlink then write through it", "hardlink", "duplicate name"])
def test_muster_agent_install_refuses_hostile_archives_the_same_way(sqlite_core, tmp_path, case):
    sqlite_core.create("edge-1", "poller")
    agent = sqlite_core.create("a1").json()
    body = sqlite_core.api("GET", f"/api/edge-packages/{agent['id']}/download").body
    open_archive(body)
    base = tmp_path / "agent.tar.gz"
    base.write_bytes(body)
    add, fragment = CASES[case]
    path = evil(tmp_path, base, add)
    target = tmp_path / "agent-state"
    result = subprocess.run([AGENT, "install", "--package", str(path), "--dir", str(target), "--poller", "127.0.0.1:9"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and fragment in result.stderr and len(result.stderr.splitlines()) == 1, (case, result.stderr)
    assert not (tmp_path / "escaped").exists() and not pathlib.Path("/tmp/escaped").exists()
    assert not (target / "package").exists() and not (target / "identity").exists()
