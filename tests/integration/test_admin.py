"""The admin console: `psql -U admin pooler` reaches it; admin_users may run every command,
stats_users only SHOW; other users are turned away. PAUSE holds new transactions back
until RESUME; RELOAD re-reads the files; SHUTDOWN ends the daemon after its clients."""
import os
import threading
import time

import psycopg
import pytest


def admin(p, user="admin", password="admin"):
    return psycopg.connect(p.dsn(user=user, password=password, dbname="pooler"),
                           autocommit=True, prepare_threshold=None)


def rows(conn, sql):
    cur = psycopg.ClientCursor(conn)  # the console speaks the simple protocol
    cur.execute(sql)
    cols = [d.name for d in cur.description] if cur.description else []
    return cols, cur.fetchall() if cur.description else []


def test_show_commands_answer_with_pgbouncer_columns(pooler):
    p = pooler(pool_size=3)
    with p.connect() as c:
        c.execute("select 1")
    with admin(p) as a:
        cols, r = rows(a, "SHOW POOLS")
        assert cols[:13] == ["database", "user", "cl_active", "cl_waiting", "cl_cancel_req",
                             "sv_active", "sv_idle", "sv_used", "sv_tested", "sv_login",
                             "maxwait", "maxwait_us", "pool_mode"]
        assert any(row[0] == "app" and row[1] == "app" for row in r), r
        cols, r = rows(a, "show nodes")
        assert {row[0] for row in r} == {"primary", "replica1"}
        cols, r = rows(a, "SHOW DATABASES")
        assert r[0][0] == "app" and r[0][5] == "3"
        cols, r = rows(a, "SHOW CLIENTS")
        assert "admin" in {row[1] for row in r}
        cols, r = rows(a, "SHOW CONFIG")
        config = dict(r)
        assert config["listen_port"] == str(p.port)
        assert config["database.app.server_password"] == "(set, not shown)"
        cols, r = rows(a, "SHOW VERSION")
        assert r[0][0].startswith("pooler ")
        cols, r = rows(a, "SHOW HELP")
        assert len(r) >= 10
        for sql in ("SHOW STATS", "SHOW SERVERS"):
            rows(a, sql)
        with pytest.raises(psycopg.errors.SyntaxError):
            rows(a, "SHOW NONSENSE")


def test_stats_users_may_only_look_and_others_may_not_enter(pooler):
    p = pooler(extra_pooler={"stats_users": "app"})
    with admin(p, user="app", password="app") as a:
        rows(a, "SHOW POOLS")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            rows(a, "PAUSE")
    with pytest.raises(psycopg.OperationalError) as e:
        admin(p, user="md5user", password="secret").close()
    assert "admin" in str(e.value)


def test_pause_holds_transactions_until_resume(pooler):
    p = pooler(pool_size=2, with_replica=False)
    with admin(p) as a, p.connect() as c:
        c.execute("select 1")
        rows(a, "PAUSE")
        done = {}

        def run():
            done["v"] = c.execute("select 'after resume'").fetchone()[0]

        t = threading.Thread(target=run, daemon=True)
        t.start()
        t.join(0.7)
        assert t.is_alive(), "a transaction ran while paused"
        rows(a, "RESUME")
        t.join(10)
        assert done.get("v") == "after resume"


def test_reload_reads_the_auth_file_again(pooler):
    p = pooler()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(p.dsn(user="newuser", password="pw"), connect_timeout=5).close()
    with open(os.path.join(p.dir, "users.txt"), "a") as f:
        f.write('"newuser" "pw"\n')
    with admin(p) as a:
        rows(a, "RELOAD")
    with psycopg.connect(p.dsn(user="newuser", password="pw"), autocommit=True) as c:
        assert c.execute("select 1").fetchone() == (1,)
    assert "reloaded" in p.log()


def test_shutdown_ends_the_daemon(pooler):
    p = pooler()
    p.exit_expected = True
    with admin(p) as a:
        rows(a, "SHUTDOWN")
    deadline = time.monotonic() + 10
    while p.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert p.proc.returncode == 0


def test_reload_applies_a_new_pool_size_without_dropping_clients(pooler):
    p = pooler(pool_size=3, with_replica=False)
    with p.connect() as c:
        c.execute("select 1")
        ini = os.path.join(p.dir, "pooler.ini")
        with open(ini) as f:
            text = f.read()
        with open(ini, "w") as f:
            f.write(text.replace("pool_size = 3", "pool_size = 7"))
        with admin(p) as a:
            rows(a, "RELOAD")
            cols, r = rows(a, "SHOW DATABASES")
            assert r[0][5] == "7"
        assert c.execute("select 2").fetchone() == (2,)  # still connected
    with admin(p) as a:
        with open(ini, "w") as f:
            f.write(text.replace("pool_mode = transaction", "pool_mode = sideways"))
        with pytest.raises(psycopg.Error):
            rows(a, "RELOAD")  # a bad file keeps the running config
        cols, r = rows(a, "SHOW DATABASES")
        assert r[0][5] == "7"
