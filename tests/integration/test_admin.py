"""The admin console: `psql -U admin pooler` reaches it; admin_users may run every command,
stats_users only SHOW; other users are turned away. PAUSE holds new transactions back
until RESUME; RELOAD re-reads the files; SHUTDOWN ends the daemon after its clients."""
import os
import socket
import threading
import time
from decimal import Decimal

import psycopg
import pytest

from conftest import wait_for


def admin(p, user="admin", password="admin"):
    return psycopg.connect(p.dsn(user=user, password=password, dbname="pooler"),
                           autocommit=True, prepare_threshold=None)


def rows(conn, sql):
    cur = psycopg.ClientCursor(conn)  # the console speaks the simple protocol
    cur.execute(sql)
    cols = [d.name for d in cur.description] if cur.description else []
    return cols, cur.fetchall() if cur.description else []


# What PgBouncer 1.18 answers on its own admin console (copied from a running
# pgbouncer 1.18.0 with psql -A): the pooler must start with exactly these, in this order.
PGBOUNCER_SOCKET_COLUMNS = [
    "type", "user", "database", "state", "addr", "port", "local_addr", "local_port",
    "connect_time", "request_time", "wait", "wait_us", "close_needed", "ptr", "link",
    "remote_pid", "tls", "application_name"]
PGBOUNCER_COLUMNS = {
    "POOLS": ["database", "user", "cl_active", "cl_waiting", "cl_active_cancel_req",
              "cl_waiting_cancel_req", "sv_active", "sv_active_cancel", "sv_being_canceled",
              "sv_idle", "sv_used", "sv_tested", "sv_login", "maxwait", "maxwait_us",
              "pool_mode"],
    "STATS": ["database", "total_xact_count", "total_query_count", "total_received",
              "total_sent", "total_xact_time", "total_query_time", "total_wait_time",
              "avg_xact_count", "avg_query_count", "avg_recv", "avg_sent", "avg_xact_time",
              "avg_query_time", "avg_wait_time"],
    "SERVERS": PGBOUNCER_SOCKET_COLUMNS,
    "CLIENTS": PGBOUNCER_SOCKET_COLUMNS,
    "DATABASES": ["name", "host", "port", "database", "force_user", "pool_size",
                  "min_pool_size", "reserve_pool", "pool_mode", "max_connections",
                  "current_connections", "paused", "disabled"],
}


@pytest.mark.parametrize("command", sorted(PGBOUNCER_COLUMNS))
def test_columns_match_pgbouncer(pooler, command):
    p = pooler(pool_size=3)
    with p.connect() as c:
        c.execute("select 1")
        with admin(p) as a:
            cols, r = rows(a, "SHOW " + command)
    want = PGBOUNCER_COLUMNS[command]
    assert cols[:len(want)] == want, cols
    assert r, "SHOW %s returned no rows" % command
    assert all(len(row) == len(cols) for row in r)


def test_show_commands_answer(pooler):
    p = pooler(pool_size=3)
    with p.connect() as c:
        c.execute("select 1")
    with admin(p) as a:
        cols, r = rows(a, "SHOW POOLS")
        assert any(row[0] == "app" and row[1] == "app" for row in r), r
        cols, r = rows(a, "show nodes")
        assert {row[0] for row in r} == {"primary", "replica1"}
        cols, r = rows(a, "SHOW DATABASES")
        assert r[0][0] == "app" and r[0][5] == 3
        cols, r = rows(a, "SHOW CLIENTS")
        assert "admin" in {row[1] for row in r}
        cols, r = rows(a, "SHOW CONFIG")
        config = {row[0]: row[1] for row in r}
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
            assert r[0][5] == 7
        assert c.execute("select 2").fetchone() == (2,)  # still connected
    with admin(p) as a:
        with open(ini, "w") as f:
            f.write(text.replace("pool_mode = transaction", "pool_mode = sideways"))
        with pytest.raises(psycopg.Error):
            rows(a, "RELOAD")  # a bad file keeps the running config
        cols, r = rows(a, "SHOW DATABASES")
        assert r[0][5] == 7


def column(cols, r, col, **match):
    """Values of column `col` in the rows whose other columns equal `match`."""
    return [row[cols.index(col)] for row in r
            if all(row[cols.index(k)] == v for k, v in match.items())]


def test_pools_and_stats_have_one_row_per_key_as_pgbouncer(pooler):
    """With a replica, a (database, user) has a pool per node. Tools built for PgBouncer
    key SHOW POOLS on (database, user) and SHOW STATS on database, so those views sum the
    nodes' pools; SHOW NODE_POOLS keeps one row per node."""
    p = pooler(pool_size=4, node_overrides={"primary": {"weight": 0}},
               extra_pooler={"health_interval": "200ms"})
    with p.connect() as c:
        # reads go to the replica once a probe has found it healthy
        wait_for(lambda: c.execute("select pg_is_in_recovery()").fetchone()[0],
                 what="a read on the replica")
        c.execute("begin")  # a read-write transaction: the primary's
        c.execute("select 1")
        c.execute("commit")
    with admin(p) as a:
        ncols, nr = rows(a, "SHOW NODE_POOLS")
        app = [r for r in nr if r[0] == "app" and r[1] == "app"]
        assert sorted(r[ncols.index("node")] for r in app) == ["primary", "replica1"], nr
        cols, r = rows(a, "SHOW POOLS")
        keys = [(row[0], row[1]) for row in r]
        assert len(keys) == len(set(keys)), r  # no (database, user) twice
        row = [row for row in r if tuple(row[:2]) == ("app", "app")][0]
        assert sorted(row[cols.index("nodes")].split(",")) == ["primary", "replica1"], r
        for col in ("sv_idle", "sv_active", "cl_active", "cl_waiting"):
            assert int(row[cols.index(col)]) == sum(int(n[ncols.index(col)]) for n in app), col
        scols, sr = rows(a, "SHOW STATS")
        assert [row[0] for row in sr].count("app") == 1, sr
        xacts = int(column(scols, sr, "total_xact_count", database="app")[0])
        assert xacts >= 2, sr  # one on each node at least


def test_show_values_follow_the_load(pooler):
    """Two clients in pg_sleep show up as active clients and servers; a burst of
    transactions moves SHOW STATS; SHOW CLIENTS knows each client's address and name."""
    p = pooler(pool_size=4, with_replica=False)
    with admin(p) as a:
        with p.connect() as c:
            c.execute("select 1")
        cols, r = rows(a, "SHOW STATS")
        before = int(column(cols, r, "total_xact_count", database="app")[0])

        def sleeper():
            with p.connect(application_name="sleeper") as s:
                s.execute("select pg_sleep(1.5)")

        threads = [threading.Thread(target=sleeper) for _ in range(2)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 5
        while True:
            cols, r = rows(a, "SHOW POOLS")
            active = column(cols, r, "sv_active", database="app", user="app")
            if active and int(active[0]) == 2 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert column(cols, r, "cl_active", database="app", user="app") == [2], r
        assert column(cols, r, "sv_active", database="app", user="app") == [2], r
        ccols, cr = rows(a, "SHOW CLIENTS")
        sleepers = [row for row in cr if row[ccols.index("application_name")] == "sleeper"]
        assert len(sleepers) == 2, cr
        assert all(row[ccols.index("state")] == "active" and row[ccols.index("link")]
                   and row[ccols.index("addr")] == "127.0.0.1"
                   and int(row[ccols.index("port")]) > 0
                   and int(row[ccols.index("local_port")]) == p.port for row in sleepers)
        scols, sr = rows(a, "SHOW SERVERS")
        busy = [row for row in sr if row[scols.index("state")] == "active"]
        assert len(busy) == 2 and all(int(row[scols.index("remote_pid")]) > 0 for row in busy)
        assert {row[scols.index("link")] for row in busy} == \
            {row[ccols.index("ptr")] for row in sleepers}
        for t in threads:
            t.join(10)
        with p.connect() as c:
            for i in range(25):
                c.execute("select %s::int", (i,))
            # as PgBouncer counts: an idle client is active in the pool it last used
            cols, r = rows(a, "SHOW POOLS")
            assert column(cols, r, "cl_active", database="app", user="app") == [1], r
            assert column(cols, r, "sv_active", database="app", user="app") == [0], r
        cols, r = rows(a, "SHOW STATS")
        after = int(column(cols, r, "total_xact_count", database="app")[0])
        assert after >= before + 27
        queries = int(column(cols, r, "total_query_count", database="app")[0])
        assert queries >= 27
        # the two sleeps alone held servers for 3 s
        assert int(column(cols, r, "total_xact_time", database="app")[0]) >= 3e6
        assert int(column(cols, r, "total_received", database="app")[0]) > 0
        dcols, dr = rows(a, "SHOW DATABASES")
        assert int(column(dcols, dr, "current_connections", name="app")[0]) >= 2


@pytest.mark.timeout(60)
def test_pause_waits_for_running_transactions_and_loses_no_client(pooler, cluster):
    """Six clients loop over short transactions; PAUSE answers only after a transaction
    already running (pg_sleep 1 s) has ended; a query sent while paused runs only after
    RESUME; no client sees an error."""
    p = pooler(pool_size=4, with_replica=False)
    stop = threading.Event()
    errors, done = [], [0] * 6

    def loop(i):
        try:
            with p.connect() as c:
                while not stop.is_set():
                    with c.transaction():
                        c.execute("select %s::int", (i,))
                        c.execute("select 1")
                    done[i] += 1
        except Exception as e:  # reported below
            errors.append(e)

    workers = [threading.Thread(target=loop, args=(i,)) for i in range(6)]
    for t in workers:
        t.start()
    with admin(p) as a, p.connect() as slow, p.connect() as late:
        time.sleep(0.5)
        sleeper = threading.Thread(target=lambda: slow.execute("select pg_sleep(1)"))
        sleeper.start()
        wait_for(lambda: cluster.scalar(
            "select count(*) from pg_stat_activity where state = 'active'"
            " and query = 'select pg_sleep(1)'", db="postgres"), what="pg_sleep running")
        started = time.monotonic()
        rows(a, "PAUSE")
        paused_after = time.monotonic() - started
        assert not sleeper.is_alive(), "PAUSE answered while a transaction ran"
        assert paused_after >= 0.3, paused_after
        cols, r = rows(a, "SHOW POOLS")
        assert column(cols, r, "sv_active", database="app") == [0], r
        assert column(cols, r, "paused", database="app") == ["yes"]
        time.sleep(0.2)  # let the loops count what finished before PAUSE answered
        frozen = sum(done)
        answer = {}

        def late_query():
            answer["v"] = late.execute("select 'after resume'").fetchone()[0]
            answer["at"] = time.monotonic()

        t = threading.Thread(target=late_query)
        t.start()
        time.sleep(0.7)
        assert "v" not in answer, "a query ran while paused"
        assert sum(done) == frozen, "transactions ran while paused"
        resumed = time.monotonic()
        rows(a, "RESUME")
        t.join(10)
        assert answer.get("v") == "after resume" and answer["at"] >= resumed
        time.sleep(0.5)
    stop.set()
    for t in workers:
        t.join(10)
    assert not errors, errors
    assert sum(done) > frozen


@pytest.mark.parametrize("target", ["", "app"])
def test_pause_holds_new_users_of_the_paused_database(pooler, target):
    """A user that had no pool yet gets one that is paused too: its login (which needs a
    server's parameters) and its query wait for RESUME."""
    p = pooler(pool_size=2, with_replica=False)
    with p.connect() as c, admin(p) as a:
        c.execute("select 1")
        rows(a, ("PAUSE " + target).strip())
        got = {}

        def newcomer():
            with p.connect(user="md5user") as n:
                got["v"] = n.execute("select current_user").fetchone()[0]

        t = threading.Thread(target=newcomer, daemon=True)
        t.start()
        t.join(0.8)
        assert "v" not in got, "a new user's pool was not paused"
        rows(a, ("RESUME " + target).strip())
        t.join(10)
        assert got.get("v") == "app"  # the pooler logs in to PostgreSQL as app


def test_a_tab_in_a_value_stays_in_its_column(pooler):
    """Each value is its own DataRow field: a tab in a client's application_name does not
    move the columns after it. (The pooler keeps the name as the client sent it until a
    server reports it back, with the tab replaced, after the first query.)"""
    p = pooler(with_replica=False)
    name = "tab\there\tand there"
    with p.connect(application_name=name), admin(p) as a:
        cols, r = rows(a, "SHOW CLIENTS")
    mine = [row for row in r if row[cols.index("application_name")] == name]
    assert len(mine) == 1, r
    assert len(mine[0]) == len(cols)
    row = dict(zip(cols, mine[0]))
    assert (row["type"], row["user"], row["database"]) == ("C", "app", "app"), row
    assert (row["pinned"], row["node"]) == ("", ""), row
    assert row["id"] == int(row["ptr"], 16), row


def test_a_connect_error_with_a_tab_stays_in_last_error(pooler):
    """libpq's "Connection refused" message goes on a line that starts with a tab; SHOW
    NODES keeps it whole in last_error, and the breaker column after it."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    closed_port = s.getsockname()[1]
    s.close()
    p = pooler(node_overrides={"replica1": {"port": closed_port}},
               extra_pooler={"health_interval": "100ms"})
    with admin(p) as a:
        def down():
            cols, r = rows(a, "SHOW NODES")
            return [dict(zip(cols, row)) for row in r
                    if row[0] == "replica1" and row[cols.index("last_error")]]
        node = wait_for(down, what="a failed probe of replica1")[0]
    assert "Connection refused\n\tIs the server running" in node["last_error"], node
    assert node["breaker"] in ("closed", "open", "half-open"), node
    assert (node["up"], node["usable"]) == ("no", "no"), node


# The type each column is sent with: PgBouncer 1.18's where it has the column (int4 for
# counts and ports, numeric for statistics, as a running pgbouncer 1.18.0 describes them),
# int8 for ours, text for the rest; so that exporters read them as numbers.
INT4, INT8, TEXT, NUMERIC = 23, 20, 25, 1700
COLUMN_TYPES = {
    "POOLS": {"database": TEXT, "cl_active": INT4, "sv_idle": INT4, "maxwait": INT4,
              "maxwait_us": INT4, "pool_mode": TEXT, "nodes": TEXT, "paused": TEXT},
    "NODE_POOLS": {"user": TEXT, "sv_login": INT4, "node": TEXT, "node_role": TEXT},
    "STATS": {"database": TEXT, "total_xact_count": NUMERIC, "total_wait_time": NUMERIC,
              "avg_query_time": NUMERIC},
    "SERVERS": {"type": TEXT, "port": INT4, "local_port": INT4, "wait": INT4, "ptr": TEXT,
                "link": TEXT, "remote_pid": INT4, "node": TEXT, "id": INT8},
    "CLIENTS": {"addr": TEXT, "port": INT4, "wait_us": INT4, "close_needed": INT4,
                "application_name": TEXT, "id": INT8, "pinned": TEXT},
    "DATABASES": {"name": TEXT, "port": INT4, "pool_size": INT4, "current_connections": INT4,
                  "paused": INT4, "nodes": TEXT},
    "NODES": {"name": TEXT, "port": INT8, "role": TEXT, "up": TEXT, "lag_bytes": INT8,
              "lag_ms": INT8, "weight": INT8, "probes_failed": INT8, "breaker": TEXT},
    "CONFIG": {"key": TEXT, "value": TEXT, "default": TEXT, "changeable": TEXT},
}


@pytest.mark.parametrize("command", sorted(COLUMN_TYPES))
def test_numbers_are_sent_as_numbers(pooler, command):
    p = pooler(pool_size=3)
    with p.connect() as c:
        c.execute("select 1")
        with admin(p) as a:
            cur = psycopg.ClientCursor(a)
            cur.execute("SHOW " + command)
            types = {d.name: d.type_code for d in cur.description}
            r = cur.fetchall()
    for col, oid in COLUMN_TYPES[command].items():
        assert types[col] == oid, (col, types[col])
    for row in r:
        for (col, oid), value in zip(types.items(), row):
            want = str if oid == TEXT else (Decimal if oid == NUMERIC else int)
            assert value is None or isinstance(value, want), (col, value)
