"""Settings changed without a plain SET never reach another client, and RESET gives a client
back what it logged in with.

PostgreSQL 15 reports only a few settings with ParameterStatus, so the pooler reads the SQL:
`set_config(..., false)` and code that visibly sets something (a DO block, a function whose
body has SET or set_config) keep the client on its server like SET does; code whose effect
cannot be seen (a DO block, a CALL, a function the catalog does not know yet) gets its server
restored (RESET ALL) before anyone else uses it. RESET, RESET ALL and DISCARD ALL bring back
the client's login values in both pool modes, as PostgreSQL does. The unnamed statement
follows its client to another server (psql's \\gdesc sends Parse+Sync, then Describe+Sync).
"""
import subprocess
import threading

import psycopg
import pytest

from conftest import ONE_WORKER, wait_for
from test_limits import await_metric

DEFAULT_PATH = '"$user", public'


def show(conn, name):
    return conn.execute("show " + name).fetchone()[0]


def leak_check(p, setup, name, default):
    """Client a runs setup and leaves; b, on the same single server, must see default."""
    with p.connect(prepare_threshold=None) as a:
        a.execute(setup)
    with p.connect(prepare_threshold=None) as b:
        assert show(b, name) == default, "a setting of another client reached this one"


def test_set_config_session_wide_pins_and_never_leaks(pooler):
    p = pooler(pool_size=2, with_replica=False)
    with p.connect(prepare_threshold=None) as a, p.connect(prepare_threshold=None) as b:
        a.execute("select set_config('search_path', ' ', false)")
        for _ in range(5):  # a keeps it in later transactions: it stays on its server
            assert show(a, "search_path") == ' '
            assert show(b, "search_path") == DEFAULT_PATH
    assert "(set)" in p.log()
    p1 = pooler(pool_size=1, with_replica=False)
    leak_check(p1, "select set_config('work_mem', '1234kB', false)", "work_mem", "4MB")
    # the third argument from a parameter is not a literal: judged as session-wide
    with p1.connect() as a:
        a.execute("select set_config('work_mem', '2345kB', %s)", (False,))
    with p1.connect() as b:
        assert show(b, "work_mem") == "4MB"
    # is_local = true ends with the transaction: no pin
    with p1.connect() as a:
        a.execute("select set_config('work_mem', '3456kB', true)")
        assert show(a, "work_mem") == "4MB"


def test_do_block_with_set_pins_and_never_leaks(pooler):
    p = pooler(pool_size=1, with_replica=False)
    with p.connect() as a:
        a.execute("do $$ begin set enable_bitmapscan = 0; end $$")
        assert show(a, "enable_bitmapscan") == "off"
        assert show(a, "enable_bitmapscan") == "off"
    with p.connect() as b:
        assert show(b, "enable_bitmapscan") == "on"


def test_do_block_calling_a_setter_is_restored_before_reuse(pooler, cluster):
    """The DO body shows no SET, but the function it calls sets something: the server is
    restored (RESET ALL) before the next client."""
    cluster.psql(cluster.primary_port,
                 "create or replace function public.sl_hidden() returns void language sql "
                 "as $$ select set_config('statement_timeout', '7777', false) $$; "
                 "grant execute on function public.sl_hidden() to app")
    cluster.wait_replay()
    p = pooler(pool_size=1, with_replica=False)
    with p.connect() as a:
        a.execute("do $$ begin perform public.sl_hidden(); end $$")
    with p.connect() as b:
        assert show(b, "statement_timeout") == "0"
    await_metric(p, "pooler_servers_restored_total", lambda v: v >= 1)


def test_function_whose_body_sets_pins_once_the_catalog_knows_it(pooler, cluster):
    cluster.psql(cluster.primary_port,
                 "create or replace function public.sl_setter() returns int language plpgsql "
                 "as $$ begin set lock_timeout = 4242; return 1; end $$; "
                 "create or replace procedure public.sl_proc() language plpgsql "
                 "as $$ begin perform set_config('idle_in_transaction_session_timeout', "
                 "'5151', false); end $$; "
                 "grant execute on function public.sl_setter() to app; "
                 "grant execute on procedure public.sl_proc() to app")
    p = pooler(pool_size=1, with_replica=False)
    wait_for(lambda: "change settings" in p.log(), timeout=10, what="the function catalog")
    with p.connect() as a:
        assert a.execute("select public.sl_setter()").fetchone() == (1,)
        assert show(a, "lock_timeout") == "4242ms"  # a keeps its own setting
    with p.connect() as b:
        assert show(b, "lock_timeout") == "0"
    with p.connect() as a:
        a.execute("call public.sl_proc()")
        assert show(a, "idle_in_transaction_session_timeout") == "5151ms"
    with p.connect() as b:
        assert show(b, "idle_in_transaction_session_timeout") == "0"


def test_function_unknown_to_the_catalog_gets_its_server_restored(pooler, cluster):
    """A function created after the catalog was read: whatever it does, the server is
    restored before another client gets it."""
    p = pooler(pool_size=1, with_replica=False)
    wait_for(lambda: "change settings" in p.log(), timeout=10, what="the function catalog")
    cluster.psql(cluster.primary_port,
                 "create or replace function public.sl_new() returns int language sql "
                 "as $$ select 1 from (select set_config('work_mem', '999kB', false)) s $$; "
                 "grant execute on function public.sl_new() to app")
    with p.connect() as a:
        a.execute("select public.sl_new()")
    with p.connect() as b:
        assert show(b, "work_mem") == "4MB"


@pytest.mark.parametrize("mode", ["transaction", "session"])
def test_reset_gives_back_the_login_values(pooler, mode):
    p = pooler(pool_size=2, pool_mode=mode, with_replica=False)
    opts = dict(options="-c DateStyle=Postgres,MDY -c TimeZone=America/Los_Angeles "
                        "-c search_path=pg_catalog,public",
                application_name="sl_app", prepare_threshold=None)
    with psycopg.connect(p.dsn(), autocommit=True, **opts) as a:
        assert show(a, "DateStyle") == "Postgres, MDY"
        a.execute("set DateStyle = 'ISO, DMY'")
        a.execute("reset DateStyle")
        assert show(a, "DateStyle") == "Postgres, MDY"
        assert a.info.parameter_status("DateStyle") == "Postgres, MDY"
        a.execute("set TimeZone = 'UTC'")
        a.execute("set application_name = 'other'")
        a.execute("reset all")
        assert show(a, "TimeZone") == "America/Los_Angeles"
        assert show(a, "application_name") == "sl_app"
        assert show(a, "search_path") == "pg_catalog,public"  # as PostgreSQL shows an option
        assert a.info.parameter_status("application_name") == "sl_app"
        a.execute("set TimeZone = 'UTC'")
        a.execute("discard all")
        assert show(a, "TimeZone") == "America/Los_Angeles"
        # a RESET with more statements in one Query: the client sees only its own results
        # (the login value comes back after the whole Query: see the README's limits)
        a.execute("set DateStyle = 'ISO'")
        cur = a.execute("reset DateStyle; select 7")
        assert cur.statusmessage == "RESET"
        assert cur.nextset()
        assert cur.fetchone() == (7,)
        assert not cur.nextset()  # nothing of the pooler's own reaches the client
        assert show(a, "DateStyle") == "Postgres, MDY"
        # a RESET inside a transaction, rolled back
        a.execute("begin")
        a.execute("set local TimeZone = 'UTC'")
        a.execute("reset TimeZone")
        assert show(a, "TimeZone") == "America/Los_Angeles"
        a.execute("rollback")
        # an error in the batch still ends in one ReadyForQuery
        with pytest.raises(psycopg.errors.UndefinedObject):
            a.execute("reset no_such_setting_here")
        assert show(a, "TimeZone") == "America/Los_Angeles"
    await_metric(p, "pooler_login_settings_restored_total", lambda v: v >= 3)


def test_session_mode_never_pins(pooler):
    p = pooler(pool_size=2, pool_mode="session", with_replica=False)
    with p.connect() as a:
        a.execute("set work_mem = '1MB'")
        a.execute("create temp table sl_t(a int)")
        a.execute("select set_config('work_mem', '2MB', false)")
    assert "keeps its server connection" not in p.log()
    await_metric(p, "pooler_pinned_clients_total", lambda v: v == 0, reason="set")
    await_metric(p, "pooler_pinned_clients_total", lambda v: v == 0, reason="temp table")


def test_unnamed_statement_follows_its_client_across_syncs(pooler):
    """Parse+Sync, then another client takes a server, then Describe+Sync and Bind of the
    unnamed statement: they run wherever the client lands."""
    p = pooler(pool_size=2, with_replica=False, extra_pooler=ONE_WORKER)
    with p.connect() as a, p.connect() as b:
        for _ in range(10):
            pg = a.pgconn
            pg.send_prepare(b"", b"select $1::int + 1 as sl_x")
            assert pg.get_result().status == psycopg.pq.ExecStatus.COMMAND_OK
            assert pg.get_result() is None
            b.execute("begin")
            b.execute("select pg_backend_pid()")  # holds a server meanwhile
            pg.send_describe_prepared(b"")
            r = pg.get_result()
            assert r.status == psycopg.pq.ExecStatus.COMMAND_OK, r.error_message
            assert r.fname(0) == b"sl_x"
            assert pg.get_result() is None
            pg.send_query_prepared(b"", [b"41"])
            r = pg.get_result()
            assert r.status == psycopg.pq.ExecStatus.TUPLES_OK, r.error_message
            assert r.get_value(0, 0) == b"42"
            assert pg.get_result() is None
            b.execute("commit")
    await_metric(p, "pooler_unnamed_statement_replays_total", lambda v: v >= 1)


def test_psql_gdesc_under_contention(pooler, cluster):
    """psql's \\gdesc from several clients at once over a small pool: never 'unnamed
    prepared statement does not exist'."""
    p = pooler(pool_size=2, with_replica=False)
    script = "select 1 as a, 'x'::text as b \\gdesc\n" * 20
    env = {"PGPASSWORD": "app", "PATH": "/usr/bin:/bin"}
    errors = []

    def run():
        out = subprocess.run(
            ["psql", "-X", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(p.port),
             "-U", "app", "-d", "app"], input=script, capture_output=True, text=True,
            timeout=60, env=env)
        if out.returncode != 0 or "does not exist" in out.stderr:
            errors.append(out.stderr)

    threads = [threading.Thread(target=run) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert errors == []


# ---- session SETs carried, not pinned ---------------------------------------------------

def backend(conn):
    return conn.execute("select pg_backend_pid()").fetchone()[0]


def test_session_sets_are_carried_across_servers_and_never_leak(pooler):
    """A plain SET in its own transaction (statement_timeout, search_path, work_mem...) does
    not pin: the client moves between server connections and keeps its values on each;
    another client on the same servers sees the defaults; RESET forgets the value."""
    p = pooler(pool_size=2, with_replica=False, extra_pooler=ONE_WORKER)
    with p.connect(prepare_threshold=None, autocommit=True) as a, \
            p.connect(prepare_threshold=None, autocommit=True) as b:
        a.execute("set statement_timeout = 4321")
        a.execute("SET Search_Path TO CarriedSchema")  # folds, as PostgreSQL folds it
        a.execute("set work_mem = '5MB'")
        seen = set()
        for i in range(12):
            # both hold a server at once, opening in turns: a lands on both servers
            first, second = (a, b) if i % 2 else (b, a)
            with first.transaction():
                first.execute("select 1")
                with second.transaction():
                    second.execute("select 1")
                    seen.add(backend(a))
                    assert show(a, "statement_timeout") == "4321ms"
                    assert show(a, "search_path") == "carriedschema"
                    assert show(a, "work_mem") == "5MB"
                    assert show(b, "statement_timeout") == "0", "a's setting reached b"
                    assert show(b, "search_path") == DEFAULT_PATH
                    assert show(b, "work_mem") == "4MB"
        assert len(seen) == 2, "the client stayed on one server: it was pinned"
        a.execute("reset statement_timeout")
        for _ in range(4):
            assert show(a, "statement_timeout") == "0"
            assert show(a, "work_mem") == "5MB"
    assert "keeps its server connection" not in p.log()
    await_metric(p, "pooler_settings_carried_total", lambda v: v == 3)
    await_metric(p, "pooler_pinned_clients_total", lambda v: v == 0)


def test_a_refused_session_set_is_an_error_and_is_not_carried(pooler):
    """SET statement_timeout = 'soon': the server's own error, the session goes on, and
    nothing of it follows the client to other servers."""
    p = pooler(pool_size=2, with_replica=False)
    with p.connect(prepare_threshold=None, autocommit=True) as a, \
            p.connect(prepare_threshold=None, autocommit=True) as b:
        with pytest.raises(psycopg.errors.InvalidParameterValue):
            a.execute("set statement_timeout = 'soon'")
        for _ in range(6):
            with b.transaction():
                b.execute("select 1")
                assert show(a, "statement_timeout") == "0"
            assert show(b, "statement_timeout") == "0"
    assert "keeps its server connection" not in p.log()


def test_what_a_carried_set_cannot_be_still_pins(pooler):
    """A list value, SET LOCAL outside a transaction, and the settings that decide routing
    or identity (default_transaction_isolation) keep pinning, as before."""
    p = pooler(pool_size=2, with_replica=False)
    with p.connect(prepare_threshold=None, autocommit=True) as a:
        a.execute("set default_transaction_isolation = 'repeatable read'")
        first = backend(a)
        for _ in range(4):
            assert backend(a) == first
    assert "keeps its server connection" in p.log()
    leak_check(pooler(pool_size=1, with_replica=False), "set search_path = a1, b1",
               "search_path", DEFAULT_PATH)


def test_show_clients_lists_the_settings_carried_for_a_client(pooler):
    """SHOW CLIENTS' settings column: what the client SET in its session and the pooler
    carries for it; empty for a client that set nothing."""
    from test_admin import admin, rows
    p = pooler(pool_size=2, with_replica=False)
    with p.connect(prepare_threshold=None, autocommit=True, application_name="carrier") as a, \
            p.connect(prepare_threshold=None, autocommit=True, application_name="plain"):
        a.execute("set statement_timeout = 2500")
        a.execute("set lock_timeout = '1s'")
        with admin(p) as adm:
            cols, r = rows(adm, "SHOW CLIENTS")
    by_app = {row[cols.index("application_name")]: row[cols.index("settings")] for row in r}
    assert set(by_app["carrier"].split(", ")) == {"statement_timeout=2500", "lock_timeout=1s"}
    assert by_app["plain"] == ""
