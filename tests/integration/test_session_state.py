"""Transaction pooling and session state: state the pooler cannot carry from one server
connection to another (temporary tables, LISTEN, session SET, session advisory locks,
WITH HOLD cursors, SQL PREPARE) keeps the client on its server connection for the rest of
its session, and is wiped (DISCARD ALL) before anyone else gets that server. Nothing one
client sets is ever visible to another."""
import time

import psycopg
import pytest

from conftest import ONE_WORKER


def two_clients(p):
    kw = dict(autocommit=True, prepare_threshold=None)
    return psycopg.connect(p.dsn(), **kw), psycopg.connect(p.dsn(), **kw)


def test_temp_table_stays_with_its_client_and_leaks_to_no_one(pooler):
    p = pooler(pool_size=1, with_replica=False)
    with psycopg.connect(p.dsn(), autocommit=True) as a:
        a.execute("create temp table st_tmp(a int)")
        for i in range(5):  # later transactions still see it: same server
            a.execute("insert into st_tmp values (%s)", (i,))
        assert a.execute("select count(*) from st_tmp").fetchone() == (5,)
    # a left: its server was reset before reuse
    with psycopg.connect(p.dsn(), autocommit=True) as b:
        b.execute("create temp table st_tmp(a int)")  # would fail if a's table survived
        assert b.execute("select count(*) from st_tmp").fetchone() == (0,)
    assert "temp table" in p.log()


def test_pinned_client_leaving_inside_a_transaction_leaves_nothing_behind(pooler):
    """A client pinned by its session state that disconnects inside a transaction: a
    rollback alone would hand its prepared statement and temp table to the next client, so
    the server is closed instead."""
    p = pooler(pool_size=1, with_replica=False, extra_pooler=ONE_WORKER)
    a = psycopg.connect(p.dsn(), autocommit=True, prepare_threshold=None)
    a.execute("prepare st_left_plan as select 1")
    a.execute("create temp table st_left_tmp(a int)")
    a.execute("begin")
    a.execute("insert into st_left_tmp values (1)")
    a.close()
    with psycopg.connect(p.dsn(), autocommit=True) as b:
        assert b.execute("select count(*) from pg_prepared_statements").fetchone() == (0,)
        b.execute("create temp table st_left_tmp(a int)")  # would fail if a's survived
    assert p.alive()


def test_session_set_does_not_leak_to_other_clients(pooler):
    p = pooler(pool_size=1, with_replica=False)
    with psycopg.connect(p.dsn(), autocommit=True) as a:
        a.execute("set search_path = pg_catalog, public")
        a.execute("set statement_timeout = 4321")
        assert a.execute("show statement_timeout").fetchone() == ("4321ms",)
        assert a.execute("show search_path").fetchone() == ("pg_catalog, public",)
    with psycopg.connect(p.dsn(), autocommit=True) as b:
        assert b.execute("show statement_timeout").fetchone() == ("0",)
        assert b.execute("show search_path").fetchone() == ('"$user", public',)


def test_pinned_client_keeps_its_server_while_others_wait_for_the_rest(pooler):
    """A pinned client holds one server; the others share what is left."""
    p = pooler(pool_size=2, with_replica=False)
    a = psycopg.connect(p.dsn(), autocommit=True)
    got = []
    a.add_notify_handler(lambda n: got.append(n.payload))
    try:
        a.execute("listen st_chan")
        pid_a = a.execute("select pg_backend_pid()").fetchone()[0]
        others = [psycopg.connect(p.dsn(), autocommit=True, prepare_threshold=None)
                  for _ in range(3)]
        try:
            pids = {o.execute("select pg_backend_pid()").fetchone()[0] for o in others
                    for _ in range(3)}
            assert pid_a not in pids, "another client ran on the pinned server"
            assert len(pids) == 1
            # notifications reach the listener on its own server
            others[0].execute("notify st_chan, 'hello'")
            for _ in range(20):  # bounded: the notification arrives with a reply
                a.execute("select 1")
                if got:
                    break
                time.sleep(0.1)
            assert got == ["hello"]
        finally:
            for o in others:
                o.close()
    finally:
        a.close()


@pytest.mark.parametrize("sql", [
    "select pg_advisory_lock(77)",
    "declare st_cur cursor with hold for select 1",
    "prepare st_plan as select 1",
])
def test_other_session_state_pins(pooler, sql):
    p = pooler(pool_size=2, with_replica=False)
    with psycopg.connect(p.dsn(), autocommit=True) as a:
        a.execute(sql)
        pid = a.execute("select pg_backend_pid()").fetchone()[0]
        for _ in range(3):
            assert a.execute("select pg_backend_pid()").fetchone()[0] == pid
    assert "keeps its server connection" in p.log()


def test_set_of_a_carried_parameter_does_not_pin(pooler):
    """TimeZone is reported by the server and carried by the pooler: no pin needed."""
    p = pooler(pool_size=1, with_replica=False)
    with psycopg.connect(p.dsn(), autocommit=True) as a:
        a.execute("set timezone = 'Asia/Tokyo'")
        assert a.execute("show timezone").fetchone() == ("Asia/Tokyo",)
    with psycopg.connect(p.dsn(), autocommit=True) as b:
        assert b.execute("show timezone").fetchone()[0] != "Asia/Tokyo"
    assert "keeps its server connection" not in p.log()


@pytest.mark.parametrize("sql,check,clean", [
    ("listen st_leak", "select count(*) from pg_listening_channels()", "0"),
    ("select pg_advisory_lock(4711)",
     "select count(*) from pg_locks where locktype = 'advisory' and objid = 4711", "0"),
    ("prepare st_leak_plan as select 1",
     "select count(*) from pg_prepared_statements where name = 'st_leak_plan'", "0"),
    ("declare st_leak_cur cursor with hold for select 1",
     "select count(*) from pg_cursors where name = 'st_leak_cur'", "0"),
    ("set role app", "select current_user = session_user", "t"),
])
def test_session_state_is_gone_for_the_next_client(pooler, sql, check, clean):
    """Client A leaves state on the one server connection; client B, on the same server
    connection, finds none of it."""
    p = pooler(pool_size=1, with_replica=False)
    with psycopg.connect(p.dsn(), autocommit=True) as a:
        pid = a.execute("select pg_backend_pid()").fetchone()[0]
        a.execute(sql)
    with psycopg.connect(p.dsn(), autocommit=True) as b:
        assert b.execute("select pg_backend_pid()").fetchone()[0] == pid  # same server
        assert str(b.execute(check).fetchone()[0]).lower()[:1] == clean[:1]


def test_set_extra_float_digits_is_carried_not_pinned(pooler):
    """pgjdbc runs SET extra_float_digits = 3 right after login: the pooler carries that
    value to every server connection the client gets, resets it for the next client, and
    does not pin."""
    p = pooler(pool_size=2, with_replica=False, extra_pooler=ONE_WORKER)
    with psycopg.connect(p.dsn(), autocommit=True) as a, \
            psycopg.connect(p.dsn(), autocommit=True) as other:
        a.execute("SET extra_float_digits = 3")
        seen = set()
        for _ in range(4):
            # other holds one server in a transaction, so a moves between the two
            with other.transaction():
                other.execute("select 1")
                assert a.execute("show extra_float_digits").fetchone() == ("3",)
                seen.add(a.execute("select pg_backend_pid()").fetchone()[0])
            assert a.execute("show extra_float_digits").fetchone() == ("3",)
            seen.add(a.execute("select pg_backend_pid()").fetchone()[0])
        assert len(seen) == 2, "a never changed servers"
        assert other.execute("show extra_float_digits").fetchone() == ("1",)
    with psycopg.connect(p.dsn(), autocommit=True) as b:
        for _ in range(3):
            assert b.execute("show extra_float_digits").fetchone() == ("1",)
    assert "keeps its server connection" not in p.log()
