"""TLS between clients and the pooler (client_tls_*), channel binding, and TLS from the
pooler to PostgreSQL (a node's sslmode).

Certificates are made per test run with the openssl CLI (tlscerts.py)."""

import os
import socket
import struct
import subprocess

import psycopg
import pytest

import tlscerts


@pytest.fixture
def certs(tmp_path):
    return tlscerts.make_certs(str(tmp_path / "certs"))


def tls_pooler(pooler, certs, mode="require", **kw):
    extra = {
        "client_tls_sslmode": mode,
        "client_tls_cert_file": certs.server_cert,
        "client_tls_key_file": certs.server_key,
        "client_tls_ca_file": certs.ca,
    }
    extra.update(kw.pop("extra_pooler", {}))
    return pooler(extra_pooler=extra, **kw)


def test_psql_sslmode_require_runs_queries(pooler, certs):
    p = tls_pooler(pooler, certs)
    with psycopg.connect(p.dsn("app", sslmode="require"), autocommit=True) as conn:
        assert conn.pgconn.ssl_in_use
        assert conn.execute("select 41 + 1").fetchone() == (42,)
        # a result larger than one TLS record, and larger than the high-water mark
        n = conn.execute("select count(*), sum(length(r)) from "
                         "(select repeat('x', 1000) || g as r from generate_series(1, 3000) g) s"
                         ).fetchone()
        assert n[0] == 3000
        rows = conn.execute("select repeat('y', 1000) from generate_series(1, 3000)").fetchall()
        assert len(rows) == 3000 and rows[-1][0] == "y" * 1000


def test_verify_full_checks_the_pooler_certificate(pooler, certs):
    p = tls_pooler(pooler, certs)
    with psycopg.connect(p.dsn("app", sslmode="verify-full", sslrootcert=certs.ca),
                         autocommit=True) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
    # a different CA: the client refuses the pooler
    other = tlscerts.make_certs(os.path.join(p.dir, "other"))
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        psycopg.connect(p.dsn("app", sslmode="verify-full", sslrootcert=other.ca))


def test_channel_binding_require(pooler, certs):
    p = tls_pooler(pooler, certs)
    for user in ("app", "scramuser"):
        with psycopg.connect(p.dsn(user, sslmode="require", channel_binding="require"),
                             autocommit=True) as conn:
            assert conn.execute("select current_user").fetchone() == ("app",)
    # a wrong password still fails with channel binding
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(p.dsn("scramuser", password="wrong", sslmode="require",
                              channel_binding="require"))


def test_psql_with_channel_binding(pooler, certs):
    p = tls_pooler(pooler, certs)
    env = dict(os.environ, PGPASSWORD="app")
    out = subprocess.run(
        ["psql", "-X", "-At", "-c", "select 'through tls'",
         "host=127.0.0.1 port=%d user=app dbname=app sslmode=verify-full sslrootcert=%s "
         "channel_binding=require" % (p.port, certs.ca)],
        env=env, capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "through tls"


def test_require_rejects_plain_clients(pooler, certs):
    p = tls_pooler(pooler, certs)
    with pytest.raises(psycopg.OperationalError, match="SSL required"):
        psycopg.connect(p.dsn("app", sslmode="disable"))


def test_prefer_accepts_both(pooler, certs):
    p = tls_pooler(pooler, certs, mode="prefer")
    with psycopg.connect(p.dsn("app", sslmode="disable"), autocommit=True) as conn:
        assert not conn.pgconn.ssl_in_use
        assert conn.execute("select 1").fetchone() == (1,)
    with psycopg.connect(p.dsn("app", sslmode="require"), autocommit=True) as conn:
        assert conn.pgconn.ssl_in_use
        # plain clients are offered SCRAM-SHA-256 only, TLS ones may bind
        assert conn.execute("select 1").fetchone() == (1,)


def test_disable_answers_n(pooler):
    p = pooler()
    with pytest.raises(psycopg.OperationalError, match="does not support SSL"):
        psycopg.connect(p.dsn("app", sslmode="require"))
    with psycopg.connect(p.dsn("app", sslmode="prefer"), autocommit=True) as conn:
        assert not conn.pgconn.ssl_in_use


def test_bytes_after_ssl_request_close_the_connection(pooler, certs):
    """CVE-2021-23222: plain-text bytes sent behind SSLRequest must not be taken as if
    they had come through TLS."""
    p = tls_pooler(pooler, certs)
    with socket.create_connection((p.host, p.port), timeout=5) as s:
        startup = struct.pack("!ii", 8, 80877103)
        injected = struct.pack("!ii", 9, 196608) + b"\0"
        s.sendall(startup + injected)
        data = s.recv(100)
        assert data in (b"",) or data[:1] != b"S", data
    assert "data after SSLRequest" in p.log()
    with psycopg.connect(p.dsn("app", sslmode="require"), autocommit=True) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_verify_ca_needs_a_client_certificate(pooler, certs):
    p = tls_pooler(pooler, certs, mode="verify-ca")
    crt, key = certs.client("app")
    with psycopg.connect(p.dsn("app", sslmode="require", sslcert=crt, sslkey=key),
                         autocommit=True) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
    with pytest.raises(psycopg.OperationalError):
        with psycopg.connect(p.dsn("app", sslmode="require")) as conn:
            conn.execute("select 1")


def test_copy_through_tls(pooler, certs, cluster):
    p = tls_pooler(pooler, certs)
    with psycopg.connect(p.dsn("app", sslmode="require"), autocommit=True) as conn:
        conn.execute("drop table if exists tls_copy")
        conn.execute("create table tls_copy (id int, t text)")
        with conn.cursor().copy("copy tls_copy from stdin") as cp:
            for i in range(20000):
                cp.write_row((i, "row %d" % i))
        assert conn.execute("select count(*) from tls_copy").fetchone() == (20000,)
        out = bytearray()
        with conn.cursor().copy("copy tls_copy to stdout") as cp:
            for chunk in cp:
                out += chunk
        assert out.count(b"\n") == 20000
        conn.execute("drop table tls_copy")


def test_missing_certificate_is_a_config_error(pooler, certs, tmp_path, cluster):
    import conftest
    ini = conftest.write_ini(str(tmp_path), cluster, 1, extra_pooler={
        "client_tls_sslmode": "require",
        "client_tls_cert_file": str(tmp_path / "nope.crt"),
        "client_tls_key_file": certs.server_key})
    out = subprocess.run([conftest.POOLER_BIN, "-c", ini, "--check-config"],
                         capture_output=True, text=True, timeout=20)
    assert out.returncode != 0
    assert "client_tls_cert_file" in out.stderr and "nope.crt" in out.stderr
    ini = conftest.write_ini(str(tmp_path), cluster, 1, extra_pooler={
        "client_tls_sslmode": "require"})
    out = subprocess.run([conftest.POOLER_BIN, "-c", ini, "--check-config"],
                         capture_output=True, text=True, timeout=20)
    assert out.returncode != 0
    assert "client_tls_cert_file: required" in out.stderr


# ---- TLS from the pooler to PostgreSQL -----------------------------------------------

@pytest.fixture
def ssl_primary(cluster, certs):
    cluster.enable_ssl(certs.server_cert, certs.server_key)
    try:
        yield cluster
    finally:
        cluster.disable_ssl()


def server_ssl_in_use(conn):
    return conn.execute("select ssl from pg_stat_ssl where pid = pg_backend_pid()").fetchone()[0]


@pytest.mark.parametrize("client_tls", [False, True])
def test_pooler_to_server_over_tls(pooler, certs, ssl_primary, client_tls):
    kw = {}
    if client_tls:
        p = tls_pooler(pooler, certs, with_replica=False,
                       node_overrides={"primary": {"sslmode": "verify-full",
                                                   "sslrootcert": certs.ca}})
        kw = {"sslmode": "require"}
    else:
        p = pooler(with_replica=False,
                   node_overrides={"primary": {"sslmode": "require"}})
    with psycopg.connect(p.dsn("app", **kw), autocommit=True) as conn:
        assert server_ssl_in_use(conn) is True
        assert conn.execute("select 6 * 7").fetchone() == (42,)
        rows = conn.execute("select g, repeat('z', 500) from generate_series(1, 20000) g"
                            ).fetchall()
        assert len(rows) == 20000 and rows[-1] == (20000, "z" * 500)
        conn.execute("drop table if exists tls_srv_copy")
        conn.execute("create table tls_srv_copy (id int, t text)")
        with conn.cursor().copy("copy tls_srv_copy from stdin") as cp:
            for i in range(20000):
                cp.write_row((i, "x" * 50))
        assert conn.execute("select count(*) from tls_srv_copy").fetchone() == (20000,)
        conn.execute("drop table tls_srv_copy")
    # many short transactions over the pooled TLS server connections
    with psycopg.connect(p.dsn("app", **kw), autocommit=True) as conn:
        for i in range(200):
            assert conn.execute("select %s::int", (i,)).fetchone() == (i,)


def test_server_verify_full_refuses_an_unknown_ca(pooler, certs, ssl_primary, tmp_path):
    other = tlscerts.make_certs(str(tmp_path / "other"))
    p = pooler(with_replica=False,
               node_overrides={"primary": {"sslmode": "verify-full", "sslrootcert": other.ca}})
    with pytest.raises(psycopg.OperationalError):
        p.connect("app")
    assert "certificate verify failed" in p.log()


def pgbench_over_tls(p, cluster):
    import re
    env = dict(os.environ, PGPASSWORD="app", PGSSLMODE="require", PGCONNECT_TIMEOUT="5")
    init = subprocess.run(["pgbench", "-h", cluster.host, "-p", str(cluster.primary_port),
                           "-U", "app", "-i", "-s", "1", "-q", "app"],
                          env=dict(env, PGSSLMODE="disable"), capture_output=True, text=True,
                          timeout=60)
    assert init.returncode == 0, init.stderr
    r = subprocess.run(["pgbench", "-h", p.host, "-p", str(p.port), "-U", "app", "-n", "-S",
                        "-c", "10", "-j", "2", "-T", "5", "app"],
                       env=env, capture_output=True, text=True, timeout=45)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"number of failed transactions: 0 ", r.stdout), r.stdout
    tps = re.search(r"tps = ([\d.]+)", r.stdout)
    assert tps and float(tps.group(1)) > 0
    return float(tps.group(1))


@pytest.mark.timeout(60)
def test_pgbench_over_tls(pooler, certs, cluster):
    """pgbench -S with 10 TLS clients: every transaction succeeds (bytes split across TLS
    records, partial writes and buffered records all on the relay path)."""
    p = tls_pooler(pooler, certs, with_replica=False)
    print("pgbench -S -c 10 over client TLS: %.0f tps" % pgbench_over_tls(p, cluster))


@pytest.mark.timeout(60)
def test_pgbench_over_tls_both_sides(pooler, certs, ssl_primary):
    """The same with the pooler's server connections on TLS too (libpq's sessions)."""
    p = tls_pooler(pooler, certs, with_replica=False,
                   node_overrides={"primary": {"sslmode": "require"}})
    print("pgbench -S -c 10, TLS on both sides: %.0f tps" % pgbench_over_tls(p, ssl_primary))


def test_plain_bytes_after_s_fail_the_handshake_only(pooler, certs):
    """A client that gets 'S' and then speaks plain protocol is closed; others go on."""
    p = tls_pooler(pooler, certs)
    with socket.create_connection((p.host, p.port), timeout=5) as s:
        s.sendall(struct.pack("!ii", 8, 80877103))
        assert s.recv(1) == b"S"
        s.sendall(struct.pack("!ii", 9, 196608) + b"\0")
        s.settimeout(5)
        rest = b""
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                rest += chunk
        except ConnectionResetError:
            pass
        assert b"SCRAM" not in rest  # never got as far as authentication
    with psycopg.connect(p.dsn("app", sslmode="require"), autocommit=True) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_reload_with_a_broken_certificate_keeps_the_old_one(pooler, certs):
    p = tls_pooler(pooler, certs)
    with open(p.ini) as f:
        ini = f.read()
    with open(p.ini, "w") as f:
        f.write(ini.replace(certs.server_key, certs.server_key + ".missing"))
    with p.connect("admin", dbname="pooler") as admin:
        with pytest.raises(psycopg.Error, match="client_tls_key_file"):
            admin.execute("reload")
    assert "client_tls_key_file" in p.log()
    with psycopg.connect(p.dsn("app", sslmode="require"), autocommit=True) as conn:
        assert conn.pgconn.ssl_in_use
        assert conn.execute("select 1").fetchone() == (1,)


def test_bad_protocol_list_is_a_config_error(certs, tmp_path, cluster):
    import conftest
    ini = conftest.write_ini(str(tmp_path), cluster, 1, extra_pooler={
        "client_tls_sslmode": "require", "client_tls_cert_file": certs.server_cert,
        "client_tls_key_file": certs.server_key, "client_tls_protocols": "tlsv1.2,sslv3"})
    out = subprocess.run([conftest.POOLER_BIN, "-c", ini, "--check-config"],
                         capture_output=True, text=True, timeout=20)
    assert out.returncode != 0
    assert "client_tls_protocols" in out.stderr and "sslv3" in out.stderr


def test_stalled_handshakes_do_not_block_others(pooler, certs):
    """Handshakes run on the event loop without blocking: clients that stop halfway
    (after 'S', or after half a ClientHello) do not hold anyone else up."""
    p = tls_pooler(pooler, certs)
    stalled = []
    for i in range(5):
        s = socket.create_connection((p.host, p.port), timeout=5)
        s.sendall(struct.pack("!ii", 8, 80877103))
        assert s.recv(1) == b"S"
        if i % 2:
            s.sendall(b"\x16\x03\x01\x02\x00\x01")  # the start of a ClientHello, no more
        stalled.append(s)
    try:
        for _ in range(3):
            with psycopg.connect(p.dsn("app", sslmode="require"), autocommit=True) as conn:
                assert conn.execute("select 1").fetchone() == (1,)
    finally:
        for s in stalled:
            s.close()


def test_encrypted_client_tls_key_is_refused_without_prompting(certs, tmp_path, cluster):
    import conftest
    key = tlscerts.encrypt_key(certs.server_key, str(tmp_path / "enc.key"), "pass-phrase")
    ini = conftest.write_ini(str(tmp_path), cluster, 1, extra_pooler={
        "client_tls_sslmode": "require", "client_tls_cert_file": certs.server_cert,
        "client_tls_key_file": key})
    out = subprocess.run([conftest.POOLER_BIN, "-c", ini, "--check-config"],
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20)
    assert out.returncode != 0
    assert "client_tls_key_file" in out.stderr and "enc.key" in out.stderr


SSLPASSWORD = "Key-pass-6e0f2b"


def test_node_sslpassword_unlocks_an_encrypted_key_and_stays_secret(pooler, certs,
                                                                   ssl_primary, tmp_path):
    crt, key = certs.client("app")
    enc = tlscerts.encrypt_key(key, str(tmp_path / "client-enc.key"), SSLPASSWORD)
    p = pooler(with_replica=False, log_level="debug",
               node_overrides={"primary": {"sslmode": "verify-ca", "sslrootcert": certs.ca,
                                           "sslcert": crt, "sslkey": enc,
                                           "sslpassword": SSLPASSWORD}})
    with p.connect("app") as conn:
        assert server_ssl_in_use(conn) is True
    with p.connect("admin", dbname="pooler") as admin:
        shown = str(admin.execute("show config").fetchall())
    assert "node.primary.sslpassword" in shown
    assert SSLPASSWORD not in shown and SSLPASSWORD not in p.log()
    # the passphrase really is used: a wrong one fails the server login
    bad = pooler(with_replica=False,
                 node_overrides={"primary": {"sslmode": "verify-ca", "sslrootcert": certs.ca,
                                             "sslcert": crt, "sslkey": enc,
                                             "sslpassword": "wrong"}})
    with pytest.raises(psycopg.OperationalError):
        bad.connect("app")
