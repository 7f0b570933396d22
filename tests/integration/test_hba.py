"""auth_hba_file: pg_hba.conf-style rules decide who may log in, and how.

Rules are tried in order, the first match decides, no match rejects with SQLSTATE 28000;
the admin console follows the same rules."""

import statistics
import time

import psycopg
import pytest

import tlscerts

RULES = """\
# TYPE     DATABASE  USER      ADDRESS       METHOD
local      all       all                     trust
host       all       mallory   all           reject
hostssl    app       certuser  127.0.0.1/32  cert
host       pooler    admin     127.0.0.1/32  md5
hostnossl  app       md5user   127.0.0.1/32  md5
host       app       app,scramuser,ghost 127.0.0.1/32 scram-sha-256
host       app       trusty    ::1/128       trust
"""


def start_with_rules(pooler, tmp_path, rules=RULES, certs=None):
    d = tmp_path / "rules"
    d.mkdir(exist_ok=True)
    path = d / "hba.conf"
    path.write_text(rules)
    extra = {"auth_hba_file": str(path)}
    if certs is not None:
        extra.update({"client_tls_sslmode": "prefer",
                      "client_tls_cert_file": certs.server_cert,
                      "client_tls_key_file": certs.server_key,
                      "client_tls_ca_file": certs.ca})
    return pooler(extra_pooler=extra)


def sqlstate(p, user, password="x", dbname="app", tls=None):
    """The SQLSTATE a login gets (asyncpg reports it; libpq does not). tls: None for a
    plain connection, else (ca, cert, key) with cert/key possibly None."""
    import asyncio
    import ssl as ssl_mod

    import asyncpg

    ctx = False
    if tls is not None:
        ca, crt, key = tls
        ctx = ssl_mod.create_default_context(cafile=ca)
        ctx.check_hostname = False
        if crt:
            ctx.load_cert_chain(crt, key)

    async def go():
        try:
            conn = await asyncpg.connect(host=p.host, port=p.port, user=user,
                                         password=password, database=dbname, ssl=ctx,
                                         timeout=5)
        except asyncpg.PostgresError as e:
            return e.sqlstate
        await conn.close()
        return None
    return asyncio.run(go())


def test_matching_rule_lets_in(pooler, tmp_path):
    p = start_with_rules(pooler, tmp_path)
    with p.connect("app") as conn:
        assert conn.execute("select 1").fetchone() == (1,)
    with p.connect("scramuser") as conn:
        assert conn.execute("select 1").fetchone() == (1,)
    # md5 on a plain connection (hostnossl)
    with p.connect("md5user") as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_no_matching_rule_rejects_with_28000(pooler, tmp_path):
    p = start_with_rules(pooler, tmp_path)
    # a known user on a database no rule names, and an unknown one: the same answer
    for user in ("app", "nosuchuser"):
        with pytest.raises(psycopg.OperationalError) as ei:
            p.connect(user, password="x", dbname="postgres")
        msg = str(ei.value)
        assert "no pg_hba.conf-style entry" in msg
        assert 'user "%s", database "postgres", no encryption' % user in msg
        assert sqlstate(p, user, dbname="postgres") == "28000"
    # reject lines reject, whatever the password
    with pytest.raises(psycopg.OperationalError, match="rejects connection"):
        p.connect("mallory", password="whatever")
    assert sqlstate(p, "mallory") == "28000"


def test_unix_socket_uses_local_rules(pooler, tmp_path):
    p = start_with_rules(pooler, tmp_path)
    with psycopg.connect(host=p.unix_dir, port=p.port, user="app", dbname="app",
                         password="wrong", autocommit=True) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_admin_console_follows_the_rules(pooler, tmp_path):
    p = start_with_rules(pooler, tmp_path)
    with p.connect("admin", dbname="pooler") as conn:
        assert conn.execute("show pools").fetchall() is not None
    with pytest.raises(psycopg.OperationalError, match="no pg_hba.conf-style entry"):
        p.connect("app", dbname="pooler")
    assert sqlstate(p, "app", "app", dbname="pooler") == "28000"


def test_unknown_user_looks_like_wrong_password(pooler, tmp_path):
    """ghost matches a scram-sha-256 rule but is in no auth file: it gets the same error
    as a wrong password, after the same work."""
    p = start_with_rules(pooler, tmp_path)

    def attempt(user, password):
        t0 = time.monotonic()
        with pytest.raises(psycopg.OperationalError) as ei:
            p.connect(user, password=password)
        return time.monotonic() - t0, str(ei.value).replace(user, "USER")

    unknown = [attempt("ghost", "secret") for _ in range(8)]
    wrong = [attempt("scramuser", "wrong") for _ in range(8)]
    assert {u[1] for u in unknown} == {w[1] for w in wrong}
    assert sqlstate(p, "ghost") == sqlstate(p, "scramuser") == "28P01"
    med_unknown = statistics.median(u[0] for u in unknown)
    med_wrong = statistics.median(w[0] for w in wrong)
    # the same exchange (SCRAM with 4096 iterations on the client): well within 3x
    assert med_unknown < 3 * med_wrong + 0.05 and med_wrong < 3 * med_unknown + 0.05, \
        (med_unknown, med_wrong)


def test_hostssl_and_hostnossl(pooler, tmp_path):
    certs = tlscerts.make_certs(str(tmp_path / "certs"))
    p = start_with_rules(pooler, tmp_path, certs=certs)
    # md5user is allowed on plain connections only
    with pytest.raises(psycopg.OperationalError, match="SSL encryption"):
        psycopg.connect(p.dsn("md5user", sslmode="require"))
    assert sqlstate(p, "md5user", "secret", tls=(certs.ca, None, None)) == "28000"
    with psycopg.connect(p.dsn("md5user", sslmode="disable"), autocommit=True) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_cert_auth(pooler, tmp_path):
    certs = tlscerts.make_certs(str(tmp_path / "certs"))
    p = start_with_rules(pooler, tmp_path, certs=certs)
    good_crt, good_key = certs.client("certuser")
    with psycopg.connect(p.dsn("certuser", password="", sslmode="require", sslcert=good_crt,
                               sslkey=good_key), autocommit=True) as conn:
        assert conn.execute("select current_user").fetchone() == ("app",)
    # a certificate made out to someone else
    bad_crt, bad_key = certs.client("someoneelse")
    with pytest.raises(psycopg.OperationalError,
                       match='certificate authentication failed for user "certuser"'):
        psycopg.connect(p.dsn("certuser", password="", sslmode="require", sslcert=bad_crt,
                              sslkey=bad_key))
    assert sqlstate(p, "certuser", tls=(certs.ca, bad_crt, bad_key)) == "28000"
    assert sqlstate(p, "certuser", tls=(certs.ca, good_crt, good_key)) is None
    # no certificate at all
    with pytest.raises(psycopg.OperationalError, match="certificate authentication failed"):
        psycopg.connect(p.dsn("certuser", password="", sslmode="require"))
    # a certificate from another CA is refused in the handshake
    other = tlscerts.make_certs(str(tmp_path / "other"))
    o_crt, o_key = other.client("certuser")
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(p.dsn("certuser", password="", sslmode="require", sslcert=o_crt,
                              sslkey=o_key))


def test_parse_error_names_file_and_line(pooler, tmp_path, cluster):
    import subprocess
    import conftest
    rules = tmp_path / "bad.conf"
    rules.write_text("local all all trust\nhost all all 10.0.0.0/8 pasword\n")
    ini = conftest.write_ini(str(tmp_path), cluster, 1,
                             extra_pooler={"auth_hba_file": str(rules)})
    out = subprocess.run([conftest.POOLER_BIN, "-c", ini, "--check-config"],
                         capture_output=True, text=True, timeout=20)
    assert out.returncode != 0
    assert "%s:2: unknown method \"pasword\"" % rules in out.stderr


def test_reload_picks_up_new_rules(pooler, tmp_path):
    p = start_with_rules(pooler, tmp_path)
    with p.connect("app") as conn:
        conn.execute("select 1")
    (tmp_path / "rules" / "hba.conf").write_text("host all admin all md5\n")
    with p.connect("admin", dbname="pooler") as admin:
        admin.execute("reload")
    with pytest.raises(psycopg.OperationalError, match="no pg_hba.conf-style entry"):
        p.connect("app")


def scram_salt(p, user):
    """The salt the pooler's server-first-message gives `user`."""
    import struct

    from pgwire import RawConn, message, startup_message
    with RawConn(p.host, p.port) as c:
        c.send(startup_message({"user": user, "database": "app"}))
        kind, payload = c.read_msg()
        assert kind == "R" and struct.unpack("!I", payload[:4])[0] == 10, (kind, payload)
        first = b"n,,n=,r=abcdefghijklmnop"
        c.send(message(b"p", b"SCRAM-SHA-256\0" + struct.pack("!I", len(first)) + first))
        kind, payload = c.read_msg()
        assert kind == "R" and struct.unpack("!I", payload[:4])[0] == 11, (kind, payload)
        attrs = dict(a.split("=", 1) for a in payload[4:].decode().split(","))
        return attrs["s"]


def test_unknown_user_salt_is_stable(pooler):
    """Asking twice must not reveal a made-up user: its salt stays put, as a real one's."""
    p = pooler()
    assert scram_salt(p, "scramuser") == scram_salt(p, "scramuser")
    assert scram_salt(p, "nosuchuser") == scram_salt(p, "nosuchuser")
    assert scram_salt(p, "nosuchuser") != scram_salt(p, "otherghost")
