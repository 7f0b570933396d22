"""Secrets stay secret: server and health-probe passwords, and the passwords clients
send, never show up in the log (even at debug level), SHOW CONFIG, --check-config or
/metrics."""

import subprocess

import psycopg
import pytest

import conftest
from test_metrics import get, metrics_port

SERVER_PW = "Srv-pw-7d1e93aa"
PROBE_PW = "Probe-pw-52c0ffee"
CLIENT_PW = "Client-pw-0b5e55ed"


@pytest.fixture
def secret_role(cluster):
    cluster.psql(cluster.primary_port,
                 "drop role if exists secret_srv; create role secret_srv login password '%s';"
                 "drop role if exists secret_probe; create role secret_probe login password '%s';"
                 "grant all on database app to secret_srv" % (SERVER_PW, PROBE_PW))
    cluster.psql(cluster.primary_port, "grant all on schema public to secret_srv")
    yield
    for role in ("secret_srv", "secret_probe"):
        cluster.psql(cluster.primary_port,
                     "select pg_terminate_backend(pid) from pg_stat_activity "
                     "where usename = '%s'" % role, check=False)
    cluster.psql(cluster.primary_port, "revoke all on schema public from secret_srv",
                 check=False)
    cluster.psql(cluster.primary_port,
                 "revoke all on database app from secret_srv;"
                 "drop role if exists secret_srv; drop role if exists secret_probe", check=False)


def test_passwords_never_leak(pooler, secret_role):
    p = pooler(log_level="debug", with_replica=False,
               extra_pooler={"health_user": "secret_probe", "health_password": PROBE_PW,
                             "health_dbname": "app"},
               extra_database={"server_user": "secret_srv", "server_password": SERVER_PW})
    with p.connect("app") as conn:
        assert conn.execute("select current_user").fetchone() == ("secret_srv",)
    # a client that sends a wrong password, in MD5 and SCRAM
    for user in ("md5user", "scramuser", "nosuchuser"):
        with pytest.raises(psycopg.OperationalError):
            p.connect(user, password=CLIENT_PW)
    with p.connect("admin", dbname="pooler") as admin:
        rows = admin.execute("show config").fetchall()
    shown = "\n".join(" ".join(str(v) for v in r) for r in rows)
    assert "server_password" in shown and "health_password" in shown
    metrics = get(metrics_port(p), "/metrics")[1]
    check = subprocess.run([conftest.POOLER_BIN, "-c", p.ini, "--check-config"],
                           capture_output=True, text=True, timeout=20).stdout
    assert "server_password" in check
    for where, text in (("log", p.log()), ("SHOW CONFIG", shown), ("metrics", metrics),
                        ("--check-config", check)):
        for secret in (SERVER_PW, PROBE_PW, CLIENT_PW):
            assert secret not in text, "%s shows %s" % (where, secret)
