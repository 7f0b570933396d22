"""Prepared statements shared between clients on a server connection.

The pooler names every protocol-level prepared statement on the servers by a hash of its
query text and parameter types: clients that prepare the same statement, whatever they
call it, share one server-side statement per server connection. A client's Close drops
only its own name. Each server connection keeps at most prepared_statement_cache_size
statements and closes the least recently used beyond that."""
import struct

import psycopg
import pytest

from pgwire import RawConn, message, parse_fields, parse_data_row
from test_metrics import metrics_port, value, wait_metrics


# ---- extended-protocol messages --------------------------------------------------

def cstr(s):
    return s.encode() + b"\0"


def parse(name, sql, types=()):
    body = cstr(name) + cstr(sql) + struct.pack("!H", len(types))
    body += b"".join(struct.pack("!I", t) for t in types)
    return message(b"P", body)


def bind(stmt, params=(), portal=""):
    body = cstr(portal) + cstr(stmt) + struct.pack("!H", 0) + struct.pack("!H", len(params))
    for p in params:
        v = str(p).encode()
        body += struct.pack("!i", len(v)) + v
    return message(b"B", body + struct.pack("!H", 0))


def describe(kind, name):
    return message(b"D", kind + cstr(name))


def execute(portal=""):
    return message(b"E", cstr(portal) + struct.pack("!i", 0))


def close(kind, name):
    return message(b"C", kind + cstr(name))


SYNC = message(b"S")


def run(conn, data):
    """Send data and read up to ReadyForQuery: (message types, rows, errors)."""
    conn.send(data)
    msgs, _ = conn.read_until("Z")
    kinds = "".join(k for k, _ in msgs)
    rows = [parse_data_row(p) for k, p in msgs if k == "D"]
    errors = [parse_fields(p) for k, p in msgs if k == "E"]
    return kinds, rows, errors


def login(p):
    c = RawConn(p.host, p.port)
    c.login_trust("app", "app")
    return c


def server_statements(p):
    """Statements the (only) server connection holds, seen through the pooler."""
    with RawConn(p.host, p.port) as c:
        c.login_trust("app", "app")
        rows, _, errors = c.simple_query(
            "select name, statement from pg_prepared_statements order by name")
        assert not errors
        return rows


@pytest.fixture
def trust_pooler(pooler):
    def start(**kw):
        kw.setdefault("with_replica", False)
        return pooler(pool_size=1, auth_type="trust", **kw)
    return start


def test_clients_share_one_server_statement(trust_pooler):
    p = trust_pooler()
    sql = "select $1::int * 7"
    with login(p) as a, login(p) as b:
        kinds, rows, _ = run(a, parse("P1", sql) + bind("P1", [2]) + execute() + SYNC)
        assert kinds == "12DCZ" and rows == [["14"]]
        kinds, rows, _ = run(b, parse("S_1", sql) + bind("S_1", [3]) + execute() + SYNC)
        assert kinds == "12DCZ" and rows == [["21"]]
        # a different text is a different statement, even under the same client name
        kinds, rows, _ = run(b, parse("S_2", "select $1::int * 8") + bind("S_2", [3]) +
                             execute() + SYNC)
        assert rows == [["24"]]
        stmts = server_statements(p)
        names = [r[0] for r in stmts]
        assert all(n.startswith("pooler_") for n in names)
        assert [r[1] for r in stmts].count(sql) == 1, stmts
        assert len(names) == 2

        # Describe of a client's own statement works under its own name
        kinds, _, _ = run(a, describe(b"S", "P1") + SYNC)
        assert kinds == "tTZ"

        # a's Close drops only a's name: b keeps using the shared statement
        kinds, _, errors = run(a, close(b"S", "P1") + SYNC)
        assert kinds == "3Z" and not errors
        kinds, rows, _ = run(b, bind("S_1", [4]) + execute() + SYNC)
        assert rows == [["28"]]
        kinds, _, errors = run(a, bind("P1", [1]) + execute() + SYNC)
        assert kinds == "EZ" and errors[0]["C"] == "26000"
        assert '"P1"' in errors[0]["M"]
        # closing what does not exist is no error, as in PostgreSQL
        kinds, _, errors = run(a, close(b"S", "never") + SYNC)
        assert kinds == "3Z"
        # prepared again after its Close: the server already has it
        kinds, rows, _ = run(a, parse("P1", sql) + bind("P1", [5]) + execute() + SYNC)
        assert kinds == "12DCZ" and rows == [["35"]]
        assert [r[1] for r in server_statements(p)].count(sql) == 1


def test_unnamed_statements_pass_through(trust_pooler):
    p = trust_pooler()
    with login(p) as a:
        kinds, rows, _ = run(a, parse("", "select $1::int + 1") + bind("", [1]) + execute() +
                             parse("", "select $1::text || 'x'") + bind("", ["a"]) +
                             execute() + SYNC)
        assert kinds == "12DC12DCZ" and rows == [["2"], ["ax"]]
    assert server_statements(p) == []


def test_error_in_a_batch_forgets_statements_that_were_never_made(trust_pooler):
    p = trust_pooler()
    with login(p) as a, login(p) as b:
        kinds, _, errors = run(a, parse("bad", "select * from no_such_table_x") +
                               parse("later", "select 42") + SYNC)
        assert kinds == "EZ" and errors[0]["C"] == "42P01"
        # the same texts from another client must be prepared anew, not assumed there
        kinds, rows, errors = run(b, parse("x", "select 42") + bind("x") + execute() + SYNC)
        assert kinds == "12DCZ" and rows == [["42"]], errors


def test_cache_size_bounds_statements_per_server(trust_pooler):
    p = trust_pooler(extra_pooler={"prepared_statement_cache_size": "3"})
    with login(p) as a, login(p) as b:
        for i in range(6):
            kinds, rows, _ = run(a, parse("s%d" % i, "select %d + $1::int" % i) +
                                 bind("s%d" % i, [1]) + execute() + SYNC)
            assert kinds == "12DCZ" and rows == [[str(i + 1)]]
        assert len(server_statements(p)) <= 3
        # evicted statements come back on use, transparently, for every client
        for rnd in range(2):
            for i in range(6):
                kinds, rows, errors = run(a, bind("s%d" % i, [rnd]) + execute() + SYNC)
                assert kinds == "2DCZ" and rows == [[str(i + rnd)]], errors
                kinds, rows, _ = run(b, parse("t%d" % i, "select %d + $1::int" % i) +
                                     bind("t%d" % i, [10]) + execute() + close(b"S", "t%d" % i)
                                     + SYNC)
                assert kinds == "12DC3Z" and rows == [[str(i + 10)]]
        assert len(server_statements(p)) <= 3
    s = wait_metrics(metrics_port(p), lambda s: value(
        s, "pooler_prepared_statements_total", event="evicted") > 0)
    assert value(s, "pooler_prepared_statements_total", event="evicted") > 0
    assert value(s, "pooler_prepared_statements_total", event="shared") > 0


def test_cache_size_zero_passes_named_statements_through(trust_pooler):
    p = trust_pooler(extra_pooler={"prepared_statement_cache_size": "0"})
    with login(p) as a:
        kinds, rows, _ = run(a, parse("mine", "select 5") + bind("mine") + execute() + SYNC)
        assert rows == [["5"]]
        rows, _, _ = a.simple_query("select name from pg_prepared_statements")
        assert rows == [["mine"]]


# ---- DDL under a prepared statement -------------------------------------------------

def test_result_type_change_is_retried_with_psycopg(pooler, cluster):
    """psycopg prepares the SELECT; a column is added between executions. PostgreSQL
    refuses to run the old plan (0A000 "cached plan must not change result type"); the
    pooler prepares it again and retries, so the client just sees the new column."""
    p = pooler(pool_size=2)
    with psycopg.connect(p.dsn(), autocommit=True) as ddl:
        ddl.execute("drop table if exists ps_ddl; create table ps_ddl(a int)")
        ddl.execute("insert into ps_ddl values (1)")
        with psycopg.connect(p.dsn(), autocommit=True) as c:
            q = "/* pooler:primary */ select * from ps_ddl where a = %s"
            for _ in range(3):
                assert c.execute(q, (1,), prepare=True).fetchall() == [(1,)]
            ddl.execute("alter table ps_ddl add column b int default 9")
            for _ in range(3):
                assert c.execute(q, (1,), prepare=True).fetchall() == [(1, 9)]
            ddl.execute("alter table ps_ddl drop column b")
            assert c.execute(q, (1,), prepare=True).fetchall() == [(1,)]
    s = wait_metrics(metrics_port(p), lambda s: value(
        s, "pooler_prepared_statements_total", event="retried") >= 2)
    assert value(s, "pooler_prepared_statements_total", event="retried") >= 2


def test_result_type_change_with_raw_extended_protocol(trust_pooler):
    p = trust_pooler()
    with login(p) as a, login(p) as ddl:
        ddl.simple_query("drop table if exists ps_raw; create table ps_raw(a int)")
        ddl.simple_query("insert into ps_raw values (3)")
        kinds, rows, _ = run(a, parse("q", "select * from ps_raw") + bind("q") + execute() +
                             SYNC)
        assert rows == [["3"]]
        ddl.simple_query("alter table ps_raw add column b text default 'x'")
        # outside a transaction, nothing sent yet: prepared anew and retried
        kinds, rows, errors = run(a, bind("q") + execute() + SYNC)
        assert kinds == "2DCZ" and rows == [["3", "x"]], errors
        # inside a transaction block the error is PostgreSQL's, and the next
        # transaction prepares the statement again
        ddl.simple_query("alter table ps_raw drop column b")
        _, _, errors = a.simple_query("begin")
        assert not errors
        kinds, _, errors = run(a, bind("q") + execute() + SYNC)
        assert kinds == "EZ" and errors[0]["C"] == "0A000"
        a.simple_query("rollback")
        kinds, rows, errors = run(a, bind("q") + execute() + SYNC)
        assert kinds == "2DCZ" and rows == [["3"]], errors


def test_sql_deallocate_drops_only_the_clients_own_name(trust_pooler):
    p = trust_pooler()
    with login(p) as a, login(p) as b:
        sql = "select $1::int - 1"
        run(a, parse("_pg3_0", sql) + SYNC)
        run(b, parse("mine", sql) + SYNC)
        rows, tags, errors = a.simple_query("DEALLOCATE _pg3_0")
        assert tags == ["DEALLOCATE"] and not errors
        kinds, rows, _ = run(b, bind("mine", [10]) + execute() + SYNC)
        assert rows == [["9"]]
        _, _, errors = a.simple_query("deallocate prepare _pg3_0;")
        assert errors and errors[0]["C"] == "26000"  # gone, as PostgreSQL says
        # inside a transaction block too
        run(a, parse("again", sql) + SYNC)
        a.simple_query("begin")
        rows, tags, errors = a.simple_query('deallocate "again"')
        assert tags == ["DEALLOCATE"] and not errors
        a.simple_query("commit")
        assert [r[1] for r in server_statements(p)].count(sql) == 1


def test_psycopg_statement_cache_overflow_deallocates(pooler):
    """psycopg keeps prepared_max statements and DEALLOCATEs the oldest by SQL."""
    p = pooler(pool_size=1, with_replica=False)
    with psycopg.connect(p.dsn(), autocommit=True) as c, \
            psycopg.connect(p.dsn(), autocommit=True) as d:
        c.prepared_max = 2
        for rnd in range(3):
            for i in range(5):
                q = "select %%s::int + %d" % i
                assert c.execute(q, (rnd,), prepare=True).fetchone() == (rnd + i,)
                assert d.execute(q, (rnd,), prepare=True).fetchone() == (rnd + i,)


def test_eviction_inside_one_pipelined_batch(trust_pooler):
    """More statements in one batch than the cache holds: each is closed and prepared
    again as the batch goes, in order."""
    p = trust_pooler(extra_pooler={"prepared_statement_cache_size": "2"})
    with login(p) as a:
        names = ["e%d" % i for i in range(5)]
        data = b"".join(parse(n, "select %d" % i) for i, n in enumerate(names))
        for rnd in range(2):
            data += b"".join(bind(n) + execute() for n in names)
        kinds, rows, errors = run(a, data + SYNC)
        assert not errors, errors
        assert rows == [[str(i)] for i in range(5)] * 2
        assert kinds == "1" * 5 + "2DC" * 10 + "Z"
        assert len(server_statements(p)) <= 2


def test_psycopg_pipeline_with_prepared_statements(pooler):
    p = pooler(pool_size=1, with_replica=False)
    with psycopg.connect(p.dsn(), autocommit=True) as c, \
            psycopg.connect(p.dsn(), autocommit=True) as d:
        for rnd in range(3):
            with c.pipeline():
                curs = [c.execute("select %s::int * 10", (i,), prepare=True)
                        for i in range(6)]
            assert [cur.fetchone() for cur in curs] == [(i * 10,) for i in range(6)]
            assert d.execute("select %s::int * 10", (rnd,), prepare=True).fetchone() == (
                rnd * 10,)


@pytest.mark.parametrize("bad", [
    message(b"C", b"S"),                       # Close without a name
    message(b"C", b"Sno_nul"),                 # name without its NUL
    message(b"D", b"X" + cstr("P1")),          # neither statement nor portal
    message(b"P", b"P1"),                      # Parse cut short
    message(b"B", cstr("") + b"P1"),           # Bind cut short
])
def test_malformed_statement_messages_get_an_error_not_a_crash(trust_pooler, bad):
    p = trust_pooler()
    with login(p) as a:
        run(a, parse("P1", "select 1") + SYNC)
        a.send(bad + SYNC)
        kind, fields = a.eof_or_error()
        assert kind in ("E", "EOF")
        if kind == "E":
            assert fields["C"] == "08P01", fields  # protocol_violation
    # the pooler serves on
    with login(p) as b:
        kinds, rows, _ = run(b, parse("P1", "select 1") + bind("P1") + execute() + SYNC)
        assert rows == [["1"]]
