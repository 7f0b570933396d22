"""`pooler --import-pgbouncer pgbouncer.ini` turns a PgBouncer config into a pooler one.

The test starts from the pgbouncer.ini that Debian's pgbouncer package installs, changes
only what a user would (ports, paths, a [databases] section pointing at the test
cluster, a few pool settings), imports it, and runs the result: the same clients log in
with the same passwords, and each setting that could not be carried is a comment."""
import os
import re
import signal
import subprocess
import time

import psycopg
import pytest

import pgcluster
import tlscerts
from conftest import POOLER_BIN, write_users

DEBIAN_INI = "/etc/pgbouncer/pgbouncer.ini"


def set_key(text, key, value):
    """Set key in [pgbouncer] as a user editing the file would: replace its lines, set or
    commented out, or add it after the section header."""
    pattern = re.compile(r"^;?\s*%s\s*=.*$" % re.escape(key), re.M)
    if pattern.search(text):
        return pattern.sub("%s = %s" % (key, value), text)
    return text.replace("[pgbouncer]\n", "[pgbouncer]\n%s = %s\n" % (key, value), 1)


def pgbouncer_ini(tmp, cluster, port):
    certs = tlscerts.make_certs(os.path.join(tmp, "certs"))
    with open(DEBIAN_INI) as f:
        text = f.read()
    assert "[pgbouncer]" in text and "[databases]" in text
    write_users(os.path.join(tmp, "userlist.txt"))
    for key, value in (("listen_addr", "127.0.0.1"), ("listen_port", port),
                       ("unix_socket_dir", tmp), ("logfile", "pgbouncer.log"),
                       ("pidfile", os.path.join(tmp, "pgbouncer.pid")),
                       ("auth_file", "userlist.txt"), ("admin_users", "admin"),
                       ("stats_users", "app"), ("pool_mode", "transaction"),
                       ("default_pool_size", "4"), ("query_wait_timeout", "30"),
                       ("server_lifetime", "1800"), ("client_tls_sslmode", "require"),
                       ("client_tls_cert_file", certs.server_cert),
                       ("client_tls_key_file", certs.server_key),
                       ("server_tls_sslmode", "disable"),
                       ("ignore_startup_parameters", "extra_float_digits"),
                       ("application_name_add_host", "1"), ("tcp_keepalive", "1")):
        text = set_key(text, key, value)
    databases = ("app = host=%s port=%d dbname=app user=app password=app\n"
                 "own = host=%s port=%d dbname=app pool_size=2 connect_query='select 1'\n"
                 "* = host=%s port=%d\n" % ((cluster.host, cluster.primary_port) * 3))
    text = text.replace("[databases]\n", "[databases]\n" + databases, 1)
    text = text.replace("[users]\n", "[users]\napp = pool_mode=session\n", 1)
    path = os.path.join(tmp, "pgbouncer.ini")
    with open(path, "w") as f:
        f.write(text)
    return path


def run(*args):
    return subprocess.run([POOLER_BIN] + list(args), capture_output=True, text=True,
                          timeout=20)


@pytest.mark.timeout(60)
def test_import_debian_pgbouncer_ini_and_run_it(cluster, tmp_path):
    port = pgcluster.free_port()
    src = pgbouncer_ini(str(tmp_path), cluster, port)
    out = run("--import-pgbouncer", src)
    assert out.returncode == 0, out.stderr
    conf = out.stdout
    # carried
    for line in ("listen_port = %d" % port, "auth_type = md5",
                 "auth_file = %s/userlist.txt" % tmp_path, "admin_users = admin",
                 "stats_users = app", "query_wait_timeout = 30", "server_lifetime = 1800",
                 "log_file = %s/pgbouncer.log" % tmp_path, "[database.app]",
                 "[database.own]", "pool_mode = transaction", "pool_size = 4",
                 "pool_size = 2", "server_user = app", "server_password = app",
                 "role = auto", "sslmode = disable", "client_tls_sslmode = require",
                 "client_tls_cert_file = %s/certs/server.crt" % tmp_path):
        assert line in conf.splitlines(), (line, conf)
    # each setting without an equivalent is a comment naming it
    for what in ("pidfile", "application_name_add_host", "tcp_keepalive",
                 "connect_query", '"*"', "[users] app", "ignore_startup_parameters"):
        assert any(what in l and l.startswith(";") for l in conf.splitlines()), (what, conf)
    # one node for the one address both databases use
    assert conf.count("[node.") == 1, conf
    assert "unix_socket_dir = %s" % tmp_path in conf.splitlines(), conf

    ini = tmp_path / "pooler.ini"
    # the test's own: stderr instead of the log file, and a free metrics port
    ini.write_text(conf.replace("log_file = %s/pgbouncer.log" % tmp_path, "")
                   .replace("[pooler]\n", "[pooler]\nmetrics_listen = 127.0.0.1:0\n", 1))
    check = run("-c", str(ini), "--check-config")
    assert check.returncode == 0, check.stderr

    proc = subprocess.Popen([POOLER_BIN, "-c", str(ini)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while not pgcluster.port_open(port):
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "pooler not accepting"
            time.sleep(0.05)

        def dsn(user, password, db):
            return ("host=127.0.0.1 port=%d user=%s password=%s dbname=%s connect_timeout=5 "
                    "sslmode=require" % (port, user, password, db))

        # the same users with the same passwords: a plain, an md5 and a SCRAM secret
        for user, password in (("app", "app"), ("md5user", "secret"),
                               ("scramuser", "secret")):
            with psycopg.connect(dsn(user, password, "app")) as c:
                assert c.execute("select current_user").fetchone() == ("app",)
                assert c.pgconn.ssl_in_use
        with pytest.raises(psycopg.OperationalError):  # client_tls_sslmode = require
            psycopg.connect(dsn("app", "app", "app").replace("require", "disable")).close()
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(dsn("md5user", "wrong", "app")).close()
        # a database without user= logs in as the client, with its auth-file password
        with psycopg.connect(dsn("app", "app", "own")) as c:
            assert c.execute("select current_user").fetchone() == ("app",)
        # the console answers as pgbouncer
        with psycopg.connect(dsn("admin", "admin", "pgbouncer"), autocommit=True,
                             prepare_threshold=None) as a:
            cur = psycopg.ClientCursor(a)
            cur.execute("SHOW DATABASES")
            assert {r[0] for r in cur.fetchall()} == {"app", "own"}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        err = proc.stderr.read()
    assert proc.returncode == 0, err
    assert "AddressSanitizer" not in err and "LeakSanitizer" not in err, err


def test_import_of_a_missing_file_fails(tmp_path):
    out = run("--import-pgbouncer", str(tmp_path / "nope.ini"))
    assert out.returncode == 1 and "nope.ini" in out.stderr
    assert out.stdout == ""
