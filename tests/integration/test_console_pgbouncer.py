"""The admin console as PgBouncer users meet it: the database `pgbouncer` reaches it as
well as `pooler`; the queries a Prometheus exporter written for PgBouncer runs (SHOW
VERSION, STATS_TOTALS, POOLS, DATABASES, LISTS, CONFIG) answer with PgBouncer 1.18's
columns, read by name, their numbers parseable as numbers; psql users get the other
commands (SHOW USERS, SOCKETS, ...; RECONNECT, WAIT_CLOSE, DISABLE, ENABLE, KILL_CLIENT);
commands naming an unknown database fail; commands that change things are logged."""
import subprocess
import threading
import time
from decimal import Decimal

import psycopg
import pytest

import tlscerts
import pgcluster
from conftest import POOLER_BIN, wait_for, write_ini

INT4, INT8, TEXT, NUMERIC, BYTEA = 23, 20, 25, 1700, 17

# Column names and types as a running pgbouncer 1.18.0 describes them (psycopg's
# cursor.description against its console): ours must begin with exactly these.
SOCKET = [("type", TEXT), ("user", TEXT), ("database", TEXT), ("state", TEXT),
          ("addr", TEXT), ("port", INT4), ("local_addr", TEXT), ("local_port", INT4),
          ("connect_time", TEXT), ("request_time", TEXT), ("wait", INT4), ("wait_us", INT4),
          ("close_needed", INT4), ("ptr", TEXT), ("link", TEXT), ("remote_pid", INT4),
          ("tls", TEXT), ("application_name", TEXT)]
STATS_HALF = [("database", TEXT)] + [(c, NUMERIC) for c in (
    "xact_count", "query_count", "bytes_received", "bytes_sent", "xact_time", "query_time",
    "wait_time")]
PGBOUNCER_118 = {
    "LISTS": [("list", TEXT), ("items", INT4)],
    "STATS_TOTALS": STATS_HALF,
    "STATS_AVERAGES": STATS_HALF,
    "TOTALS": [("name", TEXT), ("value", NUMERIC)],
    "USERS": [("name", TEXT), ("pool_mode", TEXT)],
    "MEM": [("name", TEXT), ("size", INT4), ("used", INT4), ("free", INT4),
            ("memtotal", INT4)],
    "FDS": [("fd", INT4), ("task", TEXT), ("user", TEXT), ("database", TEXT), ("addr", TEXT),
            ("port", INT4), ("cancel", INT8), ("link", INT4), ("client_encoding", TEXT),
            ("std_strings", TEXT), ("datestyle", TEXT), ("timezone", TEXT),
            ("password", TEXT), ("scram_client_key", BYTEA), ("scram_server_key", BYTEA)],
    "SOCKETS": SOCKET + [(c, INT4) for c in ("recv_pos", "pkt_pos", "pkt_remain", "send_pos",
                                             "send_remain", "pkt_avail", "send_avail")],
    "DNS_HOSTS": [("hostname", TEXT), ("ttl", INT8), ("addrs", TEXT)],
    "DNS_ZONES": [("zonename", TEXT), ("serial", INT8), ("count", INT4)],
    "CONFIG": [("key", TEXT), ("value", TEXT), ("default", TEXT), ("changeable", TEXT)],
    "VERSION": [("version", TEXT)],
    "DATABASES": [("name", TEXT), ("host", TEXT), ("port", INT4), ("database", TEXT),
                  ("force_user", TEXT), ("pool_size", INT4), ("min_pool_size", INT4),
                  ("reserve_pool", INT4), ("pool_mode", TEXT), ("max_connections", INT4),
                  ("current_connections", INT4), ("paused", INT4), ("disabled", INT4)],
    "POOLS": [("database", TEXT), ("user", TEXT)] + [(c, INT4) for c in (
        "cl_active", "cl_waiting", "cl_active_cancel_req", "cl_waiting_cancel_req",
        "sv_active", "sv_active_cancel", "sv_being_canceled", "sv_idle", "sv_used",
        "sv_tested", "sv_login", "maxwait", "maxwait_us")] + [("pool_mode", TEXT)],
}
PGBOUNCER_118["ACTIVE_SOCKETS"] = PGBOUNCER_118["SOCKETS"]

# What the exporter reads of each answer, by column name: the label columns, and the
# columns it turns into numbers (it parses every one of them as a float).
EXPORTER = {
    "SHOW STATS_TOTALS": (["database"], ["xact_count", "query_count", "bytes_received",
                                         "bytes_sent", "xact_time", "query_time",
                                         "wait_time"]),
    "SHOW POOLS": (["database", "user", "pool_mode"],
                   ["cl_active", "cl_waiting", "cl_active_cancel_req", "cl_waiting_cancel_req",
                    "sv_active", "sv_active_cancel", "sv_being_canceled", "sv_idle",
                    "sv_used", "sv_tested", "sv_login", "maxwait", "maxwait_us"]),
    "SHOW DATABASES": (["name", "host", "port", "database", "force_user", "pool_mode"],
                       ["pool_size", "min_pool_size", "reserve_pool", "max_connections",
                        "current_connections", "paused", "disabled"]),
    "SHOW LISTS": (["list"], ["items"]),
}
EXPORTER_LISTS = ["databases", "users", "pools", "free_clients", "used_clients",
                  "login_clients", "free_servers", "used_servers", "dns_names", "dns_zones",
                  "dns_queries", "dns_pending"]


def console(p, user="admin", password="admin", dbname="pgbouncer"):
    return psycopg.connect(p.dsn(user=user, password=password, dbname=dbname),
                           autocommit=True, prepare_threshold=None)


def query(conn, sql):
    """(description, rows as dicts by column name), over the simple protocol."""
    cur = psycopg.ClientCursor(conn)
    cur.execute(sql)
    if cur.description is None:
        return [], []
    names = [d.name for d in cur.description]
    return cur.description, [dict(zip(names, row)) for row in cur.fetchall()]


def as_float(value):
    """What an exporter does with a number column: parse its text as a float."""
    return float(str(value))


def held_until_resume(p, a, db="app"):
    """A new client's first transaction (its login too, when no server has logged in yet to
    tell the pooler the server's parameters) waits while db is paused, and runs after
    RESUME."""
    started = time.monotonic()
    done = []

    def run():
        with p.connect() as late:
            done.append(late.execute("select 1").fetchone())

    t = threading.Thread(target=run)
    t.start()
    time.sleep(0.5)
    held = not done
    query(a, "RESUME " + db)
    t.join(5)
    assert held, "a transaction ran on a paused database before RESUME"
    assert done == [(1,)] and time.monotonic() - started >= 0.5


def test_exporter_scrape_on_database_pgbouncer(pooler):
    p = pooler(pool_size=3, extra_pooler={"stats_users": "app"})
    with p.connect() as c:
        for _ in range(3):
            c.execute("select 1")
        with console(p, user="app", password="app") as a:
            _, version = query(a, "SHOW VERSION;")
            assert len(version) == 1 and version[0]["version"].startswith("pooler ")
            for sql, (labels, numbers) in EXPORTER.items():
                desc, rows = query(a, sql + ";")
                names = [d.name for d in desc]
                for col in labels + numbers:
                    assert col in names, (sql, col, names)
                assert rows, sql
                for row in rows:
                    for col in numbers:
                        as_float(row[col])
                    for col in labels:
                        assert row[col] is None or isinstance(row[col], (str, int)), (sql, col)
            _, stats = query(a, "SHOW STATS_TOTALS")
            app = [r for r in stats if r["database"] == "app"]
            assert app and as_float(app[0]["xact_count"]) >= 3
            assert as_float(app[0]["bytes_received"]) > 0
            _, lists = query(a, "SHOW LISTS")
            items = {r["list"]: r["items"] for r in lists}
            assert list(items) == EXPORTER_LISTS
            assert items["databases"] == 1 and items["pools"] >= 1
            assert items["used_clients"] >= 2  # this client and the console
            _, config = query(a, "SHOW CONFIG")
            by_key = {r["key"]: r for r in config}
            assert as_float(by_key["max_client_conn"]["value"]) == 10000
            assert as_float(by_key["max_user_connections"]["value"]) == 0


@pytest.mark.parametrize("command", sorted(PGBOUNCER_118))
def test_columns_and_types_are_pgbouncers(pooler, command):
    p = pooler(pool_size=3)
    with p.connect() as c:
        c.execute("select 1")
        with console(p) as a:
            desc, rows = query(a, "SHOW " + command)
    got = [(d.name, d.type_code) for d in desc]
    want = PGBOUNCER_118[command]
    assert got[:len(want)] == want, got


def test_every_number_column_parses_as_a_number(pooler):
    """Every SHOW that SHOW HELP lists, with traffic flowing: every cell of a column sent
    as a number parses as one, and no text column hides a number type."""
    p = pooler(pool_size=3)
    with p.connect() as c, p.connect() as c2:
        c.execute("select 1")
        c2.execute("begin")
        c2.execute("select 1")
        with console(p) as a:
            _, help_rows = query(a, "SHOW HELP")
            shows = [r["command"] for r in help_rows if r["command"].startswith("SHOW ")]
            assert len(shows) >= 24, shows
            seen_numbers = 0
            for sql in shows:
                desc, rows = query(a, sql)
                for d in desc:
                    for row in rows:
                        v = row[d.name]
                        if v is None:
                            continue
                        if d.type_code in (INT4, INT8, NUMERIC):
                            assert isinstance(v, (int, Decimal)), (sql, d.name, v)
                            as_float(v)
                            seen_numbers += 1
                        else:
                            assert isinstance(v, str), (sql, d.name, v)
            assert seen_numbers > 100


def test_admin_db_names_and_psql(pooler):
    p = pooler(extra_pooler={"stats_users": "app"})
    for dbname in ("pooler", "pgbouncer"):
        out = subprocess.run(
            ["psql", "-X", "-A", "-t", "-h", p.host, "-p", str(p.port), "-U", "app",
             "-d", dbname, "-c", "SHOW LISTS"],
            capture_output=True, text=True, timeout=20, env={"PGPASSWORD": "app"})
        assert out.returncode == 0, out.stderr
        assert "databases|1" in out.stdout.splitlines(), out.stdout
    q = pooler(extra_pooler={"admin_db": "console"})
    with console(q, dbname="console") as a:
        query(a, "SHOW VERSION")
    with pytest.raises(psycopg.OperationalError) as e:
        console(q, dbname="pgbouncer").close()
    assert "does not exist" in str(e.value)


def test_show_config_has_default_and_changeable(pooler):
    p = pooler(extra_pooler={"max_client_conn": 500})
    with console(p) as a:
        _, rows = query(a, "SHOW CONFIG")
        by_key = {r["key"]: r for r in rows}
        assert by_key["max_client_conn"] == {"key": "max_client_conn", "value": "500",
                                             "default": "10000", "changeable": "yes"}
        assert by_key["listen_port"]["changeable"] == "no"
        assert by_key["query_wait_timeout"]["value"] == by_key["query_wait_timeout"]["default"]
        assert by_key["auth_hba_file"]["default"] is None
        _, one = query(a, "SHOW CONFIG max_client_conn")
        assert [r["value"] for r in one] == ["500"]
        _, node = query(a, "SHOW CONFIG node.primary.port")
        assert len(node) == 1 and node[0]["default"] == "5432"


@pytest.mark.parametrize("command", ["PAUSE", "RESUME", "KILL", "RECONNECT", "WAIT_CLOSE",
                                     "DISABLE", "ENABLE"])
def test_unknown_database_is_an_error(pooler, command):
    p = pooler()
    with console(p) as a:
        with pytest.raises(psycopg.errors.InvalidCatalogName) as e:
            query(a, command + " nosuchdb")
        assert "no such database: nosuchdb" in str(e.value)
        query(a, "SHOW VERSION")  # the console goes on


def test_kill_keeps_the_database_paused_until_resume_and_is_logged(pooler):
    p = pooler(pool_size=3)
    victim = p.connect()
    victim.execute("select 1")
    with console(p) as a:
        query(a, "KILL app")
        with pytest.raises(psycopg.OperationalError):
            victim.execute("select 1")
        _, dbs = query(a, "SHOW DATABASES")
        assert dbs[0]["paused"] == 1
        # a new client may log in, but its transaction waits for RESUME
        held_until_resume(p, a)
        _, dbs = query(a, "SHOW DATABASES")
        assert dbs[0]["paused"] == 0
    log = p.log()
    for what in ("admin command: KILL app", "admin command: RESUME app"):
        assert what in log and "user=admin" in log, log[-2000:]


def test_pause_of_a_database_without_pools_holds_its_first_client(pooler):
    p = pooler(pool_size=3)
    with console(p) as a:
        query(a, "PAUSE app")
        _, dbs = query(a, "SHOW DATABASES")
        assert dbs[0]["paused"] == 1
        held_until_resume(p, a)
        _, dbs = query(a, "SHOW DATABASES")
        assert dbs[0]["paused"] == 0


def test_reconnect_and_wait_close_replace_the_servers(pooler):
    p = pooler(pool_size=2, pool_mode="session")
    with p.connect() as c:
        pid = c.execute("select pg_backend_pid()").fetchone()[0]
    with console(p) as a:
        query(a, "RECONNECT app")
        query(a, "WAIT_CLOSE app")
        _, servers = query(a, "SHOW SERVERS")
        assert pid not in {s["remote_pid"] for s in servers}
    with p.connect() as c:
        assert c.execute("select pg_backend_pid()").fetchone()[0] != pid


def test_wait_close_answers_when_the_busy_server_is_given_back(pooler):
    p = pooler(pool_size=2, pool_mode="session")
    busy = p.connect()
    pid = busy.execute("select pg_backend_pid()").fetchone()[0]
    with console(p) as a:
        query(a, "RECONNECT")
        answered = []
        t = threading.Thread(target=lambda: answered.append(query(a, "WAIT_CLOSE")))
        t.start()
        time.sleep(0.4)
        assert not answered, "WAIT_CLOSE answered while the old server was in use"
        busy.close()
        t.join(5)
        assert answered
    with p.connect() as c:
        assert c.execute("select pg_backend_pid()").fetchone()[0] != pid


def test_disable_refuses_new_clients_until_enable(pooler):
    p = pooler()
    stays = p.connect()
    with console(p) as a:
        query(a, "DISABLE app")
        _, dbs = query(a, "SHOW DATABASES")
        assert dbs[0]["disabled"] == 1
        with pytest.raises(psycopg.OperationalError) as e:
            p.connect().close()
        assert "not currently accepting connections" in str(e.value)
        assert stays.execute("select 1").fetchone() == (1,)
        query(a, "ENABLE app")
        with p.connect() as c:
            assert c.execute("select 2").fetchone() == (2,)
    stays.close()
    assert "admin command: DISABLE app" in p.log()


def test_kill_client_closes_one_client(pooler):
    p = pooler()
    one, two = p.connect(), p.connect()
    one.execute("select 1")
    two.execute("select 1")
    with console(p) as a:
        _, clients = query(a, "SHOW CLIENTS")
        app = [r for r in clients if r["database"] == "app"]
        assert len(app) == 2
        query(a, "KILL_CLIENT %d" % app[0]["id"])
        with pytest.raises(psycopg.errors.SyntaxError):
            query(a, "KILL_CLIENT")
        with pytest.raises(psycopg.errors.UndefinedObject):
            query(a, "KILL_CLIENT 999999")
        wait_for(lambda: len([r for r in query(a, "SHOW CLIENTS")[1]
                              if r["database"] == "app"]) == 1, what="one client left")
    alive = 0
    for c in (one, two):
        try:
            c.execute("select 1")
            alive += 1
        except psycopg.OperationalError:
            pass
    assert alive == 1
    one.close()
    two.close()


def test_set_changes_a_key_until_restart(pooler):
    p = pooler(pool_size=3)
    with console(p) as a:
        def value(key):
            return query(a, "SHOW CONFIG " + key)[1][0]["value"]

        query(a, "SET max_client_conn = 3")
        assert value("max_client_conn") == "3"
        query(a, "SET server_reset_query = 'DISCARD ''ALL'''")
        assert value("server_reset_query") == "DISCARD 'ALL'"
        query(a, "RELOAD")  # the file says nothing of it: SET still holds
        assert value("max_client_conn") == "3"
        # it acts: with the console and two clients connected, a fourth is turned away
        with p.connect(), p.connect():
            with pytest.raises(psycopg.OperationalError) as e:
                psycopg.connect(p.dsn(sslmode="disable")).close()
            assert "max_client_conn" in str(e.value), e.value
        with pytest.raises(psycopg.errors.InvalidParameterValue):
            query(a, "SET max_client_conn = many")
        assert value("max_client_conn") == "3"
        for sql in ("SET listen_port = 5", "SET auth_password = Sekret-4f1e", "SET nosuch = 1"):
            with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
                query(a, sql)
        with pytest.raises(psycopg.errors.SyntaxError):
            query(a, "SET max_client_conn")
    assert "admin command: SET max_client_conn = 3" in p.log()
    assert "Sekret-4f1e" not in p.log()  # a secret SET is refused, and never logged


def test_suspend_is_not_supported_and_state_shows_pause(pooler):
    p = pooler()
    with console(p) as a:
        with pytest.raises(psycopg.errors.FeatureNotSupported):
            query(a, "SUSPEND")
        _, state = query(a, "SHOW STATE")
        assert {r["key"]: r["value"] for r in state} == {
            "active": "yes", "paused": "no", "suspended": "no"}
        query(a, "PAUSE")
        _, state = query(a, "SHOW STATE")
        assert {r["key"]: r["value"] for r in state}["paused"] == "yes"
        query(a, "RESUME")


def test_users_lists_the_auth_file(pooler):
    p = pooler()
    with console(p) as a:
        _, users = query(a, "SHOW USERS")
    assert {"app", "md5user", "scramuser", "admin"} <= {u["name"] for u in users}
    assert all(u["pool_mode"] is None for u in users)


def test_stats_averages_before_the_first_period(pooler):
    """The averages are not 0 during the first stats_period: they cover the time so far."""
    p = pooler(extra_pooler={"stats_period": "1h"})
    with p.connect() as c:
        for _ in range(3):
            c.execute("select pg_sleep(0.01)")
    with console(p) as a:
        _, avg = query(a, "SHOW STATS_AVERAGES")
        _, stats = query(a, "SHOW STATS")
    app = [r for r in avg if r["database"] == "app"][0]
    assert app["xact_time"] >= 10000 and app["query_time"] >= 10000, app
    assert app["xact_count"] >= 1 and app["bytes_received"] > 0, app
    assert [r for r in stats if r["database"] == "app"][0]["avg_xact_time"] >= 10000


def test_tls_column_names_protocol_and_cipher(pooler, tmp_path):
    certs = tlscerts.make_certs(str(tmp_path / "certs"))
    p = pooler(extra_pooler={"client_tls_sslmode": "prefer",
                             "client_tls_cert_file": certs.server_cert,
                             "client_tls_key_file": certs.server_key})
    with psycopg.connect(p.dsn("app", sslmode="require"), autocommit=True) as tls_client, \
            psycopg.connect(p.dsn("md5user", sslmode="disable"), autocommit=True) as plain:
        tls_client.execute("select 1")
        plain.execute("select 1")
        with console(p, dbname="pooler") as a:
            _, clients = query(a, "SHOW CLIENTS")
            _, sockets = query(a, "SHOW SOCKETS")
    tls = {r["user"]: r["tls"] for r in clients}
    assert tls["app"].startswith("TLSv1.") and "/" in tls["app"], tls
    assert tls["md5user"] == "", tls
    # SHOW SOCKETS names PgBouncer's lists: an idle logged-in client is on cl_active
    states = {(r["type"], r["user"]): r["state"] for r in sockets}
    assert states[("C", "app")] == "cl_active", states
    assert all(s.startswith("sv_") for (t, _), s in states.items() if t == "S"), states


def test_a_database_named_like_the_console_is_a_config_error(cluster, tmp_path):
    ini = write_ini(str(tmp_path), cluster, pgcluster.free_port(),
                    extra_sections={"database.pgbouncer": {"dbname": "app"}})
    out = subprocess.run([POOLER_BIN, "-c", ini, "--check-config"], capture_output=True,
                         text=True, timeout=20)
    assert out.returncode != 0
    assert "[database.pgbouncer]" in out.stderr and "admin_db" in out.stderr, out.stderr
