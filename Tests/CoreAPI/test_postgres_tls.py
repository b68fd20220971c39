"""Core's link to PostgreSQL honours libpq's sslmode and sslrootcert: the test server (scripts/test-postgres.sh) has a
certificate from a throwaway CA naming localhost and 127.0.0.1, and also listens on 127.0.0.2, which it does not name."""
import os
import subprocess
import tempfile

import pytest

from conftest import BIN_DIR, PG_URL, Core, new_postgres_database

CA = os.environ.get("MUSTER_TEST_PG_CA")
pytestmark = pytest.mark.skipif(not PG_URL or not CA, reason="needs the test PostgreSQL server with TLS")


def url(database_url, host, query):
    base = database_url.replace("127.0.0.1", host, 1)
    return f"{base}?{query}"


def ssl_connections(database_url):
    """How many of the database's client connections use TLS, as the server sees them."""
    name = database_url.rsplit("/", 1)[1]
    port = PG_URL.rsplit(":", 1)[1].split("/")[0]
    out = subprocess.run(["psql", "-h", "127.0.0.1", "-p", port, "-U", "postgres", "-tA", "-c",
                          "SELECT count(*) FILTER (WHERE s.ssl), count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) "
                          f"WHERE a.datname = '{name}'"], capture_output=True, text=True, check=True)
    encrypted, total = out.stdout.strip().split("|")
    return int(encrypted), int(total)


def start_fails(database):
    """Runs muster-core serve against `database`; returns (exit code, output) of a start that must fail."""
    data = tempfile.mkdtemp(prefix="muster-core-tls-")
    result = subprocess.run([str(BIN_DIR / "muster-core"), "serve", "--data-dir", data, "--http-listen", "127.0.0.1:0",
                             "--grpc-listen", "127.0.0.1:0", "--database", database], capture_output=True, text=True, timeout=60)
    return result.returncode, result.stdout + result.stderr


@pytest.mark.parametrize("host,query", [
    ("127.0.0.1", f"sslmode=verify-full&sslrootcert={CA}"),
    ("127.0.0.2", f"sslmode=verify-ca&sslrootcert={CA}"),
    ("127.0.0.2", "sslmode=require"),
])
def test_core_runs_over_tls(host, query):
    database = new_postgres_database()
    core = Core(database=url(database, host, query))
    try:
        assert core.create("edge-1", "poller").status == 201
        encrypted, total = ssl_connections(database)
        assert total > 0 and encrypted == total, (encrypted, total)
    finally:
        assert core.stop() == 0


def test_prefer_is_the_default_and_encrypts_when_offered():
    database = new_postgres_database()
    core = Core(database=database)
    try:
        assert core.create("edge-1", "poller").status == 201
        encrypted, total = ssl_connections(database)
        assert total > 0 and encrypted == total
    finally:
        core.stop()


def test_verify_full_refuses_a_name_the_certificate_does_not_carry():
    code, output = start_fails(url(new_postgres_database(), "127.0.0.2", f"sslmode=verify-full&sslrootcert={CA}"))
    assert code == 1 and "failedToValidateHostname" in output, output


def test_verify_full_refuses_a_certificate_from_another_ca(tmp_path):
    other = tmp_path / "other-ca.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
                    "-subj", "/CN=not the server's CA", "-keyout", str(tmp_path / "k"), "-out", str(other)], check=True, capture_output=True)
    code, output = start_fails(url(new_postgres_database(), "127.0.0.1", f"sslmode=verify-full&sslrootcert={other}"))
    assert code == 1 and "CERTIFICATE_VERIFY_FAILED" in output, output


@pytest.mark.parametrize("query,message", [
    ("sslmode=bogus", "sslmode must be one of"),
    ("sslmode=verify-full", "needs sslrootcert"),
    ("sslmode=verify-ca", "needs sslrootcert"),
    ("application_name=x", "unknown postgres URL parameter 'application_name'"),
])
def test_bad_tls_settings_exit_2_with_one_line(query, message):
    code, output = start_fails(url(PG_URL, "127.0.0.1", query))
    assert code == 2 and message in output and output.strip().count("\n") == 0, output
