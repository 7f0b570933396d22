"""Read/write routing (transaction pool mode): which server runs each statement or transaction.

How a test proves where a statement ran
---------------------------------------
Most tests here share one pooler (module fixture `rt`) that logs in to PostgreSQL as the
role `rt_app` (a member of `app`, trusted on loopback) whose sessions have
`log_statement = all`.  Each statement sent through the pooler carries a unique trailing
marker comment (`/* rtmark_N_ */`); after the answer arrives, the statement is found in
primary.log and/or replica.log of the session cluster (PostgreSQL logs a statement before it
runs it, so the line is there by the time the client has its answer).  That works for every
kind of statement, including those that cannot return `inet_server_port()`, and it also
shows a statement that was tried on a replica first and then retried on the primary.
Other tests use `select inet_server_port()` in the same statement or transaction.

The shared pooler gives the primary weight 0 (no share of reads while the replica is usable)
and runs with read_your_writes = off, so that a client's reads right after its
own writes still show plain routing (read-your-writes is tested in test_replica_health.py).

Only the session cluster is used here; nothing is stopped or promoted (see
test_replica_health.py and test_failover.py for that).
"""

import itertools
import os
import re
import struct
import subprocess
import threading
import time

import pytest

import pgcluster
from conftest import POOLER_BIN, Pooler, wait_for, write_ini
from pgwire import ConnectionClosed, RawConn, message, parse_data_row, parse_fields, query_message

HEALTH_INTERVAL = "200ms"
ROUTE_ROLE = "rt_app"
SECONDS = int(os.environ.get("POOLER_TEST_BENCH_SECONDS", "10"))
PGBENCH = os.path.join(pgcluster.PG_BIN, "pgbench")

# What PostgreSQL says when a write reaches a server in recovery (SQLSTATE 25006 and kin).
WRITE_ON_REPLICA_RE = re.compile(
    r"ERROR:\s+(cannot execute .* (in a read-only transaction|during recovery)"
    r"|recovery is in progress|cannot assign TransactionIds during recovery)")

SETUP_SQL = r"""
drop table if exists rt_t, rt_log, rt_trunc, rt_ddl, rt_into, rt_ctas cascade;
drop view if exists rt_where, rt_v2;
drop sequence if exists rt_seq;
create table rt_t(id int primary key, v text);
insert into rt_t select g, 'v' || g from generate_series(1, 10) g;
create table rt_log(id bigserial primary key, note text, n int);
create table rt_trunc(a int);
create sequence rt_seq;
create view rt_where as select inet_server_port() as port, pg_is_in_recovery() as replica;
create or replace function rt_stable_port() returns int language sql stable
    as 'select inet_server_port()';
create or replace function rt_immutable_add(int) returns int language sql immutable
    as 'select $1 + 1';
create or replace function rt_volatile_port() returns int language sql volatile
    as 'select inet_server_port()';
create or replace function rt_ro_listed_port() returns int language sql volatile
    as 'select inet_server_port()';
create or replace function rt_write_listed_port() returns int language sql stable
    as 'select inet_server_port()';
create or replace function rt_volatile_write(text) returns int language plpgsql volatile as $$
begin
    insert into rt_log(note) values ($1);
    return inet_server_port();
end $$;
create or replace procedure rt_proc() language plpgsql as $$
begin
    insert into rt_log(note) values ('proc');
end $$;
"""

# The primary also takes a share of reads by its weight (conf/pooler.ini); weight 0 keeps
# reads off it while a replica is usable, so that "runs on the replica" is deterministic.
PRIMARY_NO_READS = {"primary": {"weight": 0}}

_markers = itertools.count(1)


def new_marker():
    return "rtmark_%d_%d_" % (os.getpid(), next(_markers))


# ---- evidence: the servers' statement logs ---------------------------------------------

class ServerLogs:
    """New text in primary.log / replica.log since the last mark()."""

    def __init__(self, cluster):
        self.paths = {"primary": os.path.join(cluster.base, "primary.log"),
                      "replica": os.path.join(cluster.base, "replica.log")}
        self.pos = {}
        self.mark()

    def mark(self):
        for k, p in self.paths.items():
            self.pos[k] = os.path.getsize(p)

    def read(self):
        out = {}
        for k, p in self.paths.items():
            with open(p, "rb") as f:
                f.seek(self.pos[k])
                out[k] = f.read().decode(errors="replace")
        return out

    def where(self, marker, texts=None):
        """Set of 'primary'/'replica' whose log shows marker."""
        texts = texts if texts is not None else self.read()
        return {k for k, t in texts.items() if marker in t}


def write_errors_on_replica(text):
    return [line for line in text.splitlines() if WRITE_ON_REPLICA_RE.search(line)]


# ---- a raw protocol client (simple and extended query, COPY) ---------------------------

class Result:
    def __init__(self):
        self.rows, self.tags, self.errors, self.notices = [], [], [], []
        self.status = None

    @property
    def sqlstates(self):
        return [e.get("C") for e in self.errors]

    def __repr__(self):
        return "Result(rows=%r, tags=%r, errors=%r)" % (self.rows[:5], self.tags, self.errors)


def _row(payload):
    return parse_data_row(payload)


def parse_msg(sql, name=""):
    return message(b"P", name.encode() + b"\0" + sql.encode() + b"\0" + struct.pack("!H", 0))


def bind_msg(params=(), stmt="", portal=""):
    body = portal.encode() + b"\0" + stmt.encode() + b"\0" + struct.pack("!H", 0)
    body += struct.pack("!H", len(params))
    for p in params:
        if p is None:
            body += struct.pack("!i", -1)
        else:
            b = str(p).encode()
            body += struct.pack("!i", len(b)) + b
    return message(b"B", body + struct.pack("!H", 0))


def describe_portal(portal=""):
    return message(b"D", b"P" + portal.encode() + b"\0")


def execute_msg(portal=""):
    return message(b"E", portal.encode() + b"\0" + struct.pack("!I", 0))


def sync_msg():
    return message(b"S")


def extended(sql, params=(), stmt=""):
    """Parse/Bind/Describe/Execute/Sync for one statement."""
    return (parse_msg(sql, stmt) + bind_msg(params, stmt) + describe_portal() + execute_msg()
            + sync_msg())


def bind_execute(stmt, params=()):
    return bind_msg(params, stmt) + describe_portal() + execute_msg() + sync_msg()


class Client(RawConn):
    """RawConn logged in to a trust-auth pooler as app/app."""

    def __init__(self, pooler, timeout=10.0, options=None, **params):
        super().__init__(pooler.host, pooler.port, timeout=timeout)
        extra = dict(params)
        if options:
            extra["options"] = options
        self.login_trust("app", "app", extra)

    def read_result(self, copy_data=None):
        """Messages up to ReadyForQuery; answers CopyIn with copy_data then CopyDone."""
        r = Result()
        while True:
            kind, payload = self.read_msg()
            if kind == "D":
                r.rows.append(_row(payload))
            elif kind == "C":
                r.tags.append(payload.rstrip(b"\0").decode())
            elif kind == "E":
                r.errors.append(parse_fields(payload))
            elif kind == "N":
                r.notices.append(parse_fields(payload))
            elif kind == "G":
                self.send((message(b"d", copy_data) if copy_data else b"") + message(b"c"))
            elif kind == "Z":
                r.status = payload
                return r

    def simple(self, sql, copy_data=None):
        self.send(query_message(sql))
        return self.read_result(copy_data)

    def ext(self, sql, params=()):
        self.send(extended(sql, params))
        return self.read_result()

    def run(self, proto, sql, copy_data=None):
        return self.simple(sql, copy_data) if proto == "simple" else self.ext(sql)


def port_of(result):
    assert not result.errors, result
    return int(result.rows[0][0])


def node_name(cluster, port):
    return {cluster.primary_port: "primary", cluster.replica_port: "replica"}.get(port, port)


# ---- the shared pooler -------------------------------------------------------------------

def launch(directory, cluster, **kw):
    """Start a pooler outside the function-scoped `pooler` fixture; returns Pooler."""
    assert os.path.exists(POOLER_BIN), "pooler binary not found: %s" % POOLER_BIN
    port = pgcluster.free_port()
    ini = write_ini(directory, cluster, port, **kw)
    log_path = os.path.join(directory, "pooler.stderr")
    with open(log_path, "wb") as logf:
        proc = subprocess.Popen([POOLER_BIN, "-c", ini], stdin=subprocess.DEVNULL,
                                stdout=logf, stderr=subprocess.STDOUT, cwd=directory)
    p = Pooler(directory, ini, port, proc, log_path)
    deadline = time.monotonic() + 10
    while not pgcluster.port_open(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            p.startup_failed = True
            p.stop()
            raise RuntimeError("pooler did not start (rc=%s):\n%s" % (proc.poll(), p.log_tail()))
        time.sleep(0.05)
    return p


class RoutingEnv:
    def __init__(self, cluster, pooler):
        self.cluster = cluster
        self.pooler = pooler
        self.logs = ServerLogs(cluster)
        self._catalog_ok = None

    def client(self, **kw):
        return Client(self.pooler, **kw)

    def read_port(self, sql="select inet_server_port()"):
        with self.client(timeout=5) as c:
            return port_of(c.simple(sql))

    def wait_replica_reads(self, sql="select inet_server_port()", timeout=15.0, what=None):
        """Wait (bounded) until sql, sent alone, runs on the replica."""
        last = []

        def probe():
            try:
                port = self.read_port(sql)
                last[:] = [node_name(self.cluster, port)]
                return port == self.cluster.replica_port
            except (AssertionError, OSError, ConnectionClosed) as e:
                last[:] = [repr(e)]
                return False
        try:
            wait_for(probe, timeout=timeout, interval=0.1, what=what or "%r on the replica" % sql)
        except AssertionError as e:
            raise AssertionError("%s; last attempt: %s\n--- pooler log ---\n%s"
                                 % (e, last, self.pooler.log_tail(30))) from None

    def wait_catalog(self):
        """The pooler reads function volatility from pg_proc after it starts: wait until a
        STABLE user function's call lands on the replica (once per module)."""
        if self._catalog_ok is None:
            try:
                self.wait_replica_reads("select rt_stable_port()", timeout=15.0,
                                        what="a STABLE function's call to reach the replica")
                self._catalog_ok = True
            except AssertionError as e:
                self._catalog_ok = e
        if self._catalog_ok is not True:
            raise self._catalog_ok

    def route(self, sql, proto="simple", copy_data=None, client_kw=None):
        """Run sql once on a fresh client; returns (result, nodes its marker shows up on,
        new log text)."""
        marker = new_marker()
        text = "%s\n/* %s */" % (sql, marker)
        self.logs.mark()
        with self.client(**(client_kw or {})) as c:
            result = c.run(proto, text, copy_data)
        texts = self.logs.read()
        return result, self.logs.where(marker, texts), texts


@pytest.fixture(scope="module")
def rt(cluster, tmp_path_factory):
    su = dict(db="postgres")
    cluster.psql(cluster.primary_port,
                 "do $$ begin if not exists (select from pg_roles where rolname = '%s') then"
                 " create role %s login in role app; end if; end $$;"
                 " alter role %s set log_statement = 'all'" % ((ROUTE_ROLE,) * 3), **su)
    cluster.psql(cluster.primary_port, SETUP_SQL, user="app")
    cluster.wait_replay()
    d = str(tmp_path_factory.mktemp("rtpooler"))
    p = launch(d, cluster, pool_size=4, auth_type="trust", node_overrides=PRIMARY_NO_READS,
               extra_database={"server_user": ROUTE_ROLE, "server_password": "unused"},
               extra_pooler={"health_interval": HEALTH_INTERVAL,
                             "read_your_writes": "off",
                             "read_only_functions": "rt_ro_listed_port",
                             "write_functions": "rt_write_listed_port"})
    env = RoutingEnv(cluster, p)
    try:
        env.wait_replica_reads(what="plain reads to reach the replica")
        yield env
    finally:
        problems = p.stop()
        cluster.psql(cluster.primary_port, "alter role %s reset log_statement" % ROUTE_ROLE, **su)
    if problems:
        pytest.fail("shared routing pooler: %s\n%s" % ("; ".join(problems), p.log_tail(60)),
                    pytrace=False)


# ---- the corpus --------------------------------------------------------------------------

R, P = "replica", "primary"
BOTH = ("simple", "extended")
SIMPLE = ("simple",)


class Case:
    def __init__(self, cid, sql, target, protos=BOTH, copy=None, cleanup=None, error=None,
                 catalog=False):
        self.id, self.sql, self.target, self.protos = cid, sql, target, protos
        self.copy, self.cleanup, self.error, self.catalog = copy, cleanup, error, catalog


CASES = [
    # plain reads
    Case("select-1", "select 1", R),
    Case("select-port", "SELECT inet_server_port()", R),
    Case("select-where", "select * from rt_t where id = 3", R),
    Case("select-count", "select count(*) from rt_t", R),
    Case("odd-spacing-case", "  SeLeCt   v  FROM   rt_t   WHERE id=1  ", R),
    Case("newlines-tabs", "select\n\tv\nfrom rt_t\n\twhere id = 2", R),
    Case("line-comment-first", "-- what is in there\nselect v from rt_t", R),
    Case("block-comment-first", "/* list them */ select v from rt_t", R),
    Case("trailing-semicolon", "select 1;", R),
    Case("trailing-line-comment", "select 1 -- done", R),
    Case("parenthesised", "(select 1)", R),
    Case("union", "select id from rt_t union all select id from rt_t", R),
    Case("join", "select * from rt_t a join rt_t b using (id)", R),
    Case("subquery", "select (select count(*) from rt_t) as n, exists(select 1 from rt_t)", R),
    Case("read-cte", "with x as (select id from rt_t) select count(*) from x", R),
    Case("recursive-cte", "with recursive r(n) as (select 1 union all select n + 1 from r"
         " where n < 5) select sum(n) from r", R),
    Case("values", "values (1, 'a'), (2, 'b')", R),
    Case("values-port", "VALUES (inet_server_port())", R),
    Case("table", "table rt_t", R),
    Case("table-view", "TABLE rt_where", R),
    Case("show", "show work_mem", R),
    Case("show-hot-standby", "SHOW in_hot_standby", R),
    Case("show-all", "show all", R),
    Case("explain", "explain (costs off) select * from rt_t where id = 1", R),
    Case("explain-analyze-select", "explain analyze select count(*) from rt_t", R),
    Case("catalog-read", "select count(*) from pg_class", R),
    Case("write-words-in-literal", "select 'insert into rt_t values (1); drop table rt_t' as s", R),
    Case("write-words-dollar-quoted", "select $q$update rt_t set v = 'x'$q$ as s", R),
    Case("keyword-alias", "select 1 as \"insert\", 2 as \"delete\"", R),
    Case("quote-escapes", "select 'it''s', \"v\" from rt_t where v like 'v%'", R),
    # volatile functions known to only read
    Case("random", "select random() < 2", R),
    Case("clock-timestamp", "select clock_timestamp() is not null, now()", R),
    Case("pg-is-in-recovery", "select pg_is_in_recovery()", R),
    Case("backend-pid", "select pg_backend_pid() > 0", R),
    Case("current-setting", "select current_setting('work_mem')", R),
    Case("pg-sleep", "select pg_sleep(0.01)", R),
    # user functions by volatility (learned from pg_proc) and by config lists
    Case("fn-stable", "select rt_stable_port()", R, catalog=True),
    Case("fn-immutable", "select rt_immutable_add(1)", R, catalog=True),
    Case("fn-immutable-in-where", "select v from rt_t where id = rt_immutable_add(1)", R,
         catalog=True),
    Case("fn-volatile-in-read-only-functions", "select rt_ro_listed_port()", R),
    Case("fn-volatile-read", "select rt_volatile_port()", P),
    Case("fn-stable-in-write-functions", "select rt_write_listed_port()", P, catalog=True),
    Case("fn-volatile-write", "select rt_volatile_write('fn')", P),
    Case("fn-unknown", "select rt_no_such_function()", P, error="42883"),
    Case("set-config", "select set_config('work_mem', '8MB', false)", P),
    # multi-statement strings
    Case("multi-reads", "select 1; select count(*) from rt_t; show work_mem", R, SIMPLE),
    Case("multi-read-then-insert", "select 1; insert into rt_log(note) values ('ms1')", P, SIMPLE),
    Case("multi-insert-then-read", "insert into rt_log(note) values ('ms2'); select 1", P, SIMPLE),
    Case("multi-read-then-nextval", "select 1; select nextval('rt_seq')", P, SIMPLE),
    Case("multi-begin-commit", "begin; select 1; commit", P, SIMPLE),
    Case("multi-begin-read-only", "begin read only; select inet_server_port(); commit", R, SIMPLE),
    Case("multi-start-read-only", "START TRANSACTION READ ONLY; select 1; COMMIT;", R, SIMPLE),
    # DML
    Case("insert", "insert into rt_log(note) values ('ins')", P),
    Case("insert-returning", "INSERT INTO rt_log(note) VALUES ('ret') RETURNING id", P),
    Case("insert-on-conflict", "insert into rt_t values (1, 'v1') on conflict do nothing", P),
    Case("insert-select", "insert into rt_log(note) select v from rt_t where id = 1", P),
    Case("update", "update rt_t set v = v where id = 1", P),
    Case("update-odd-case", "  UpDaTe\n rt_t   SET v=v   WHERE id=2", P),
    Case("delete", "delete from rt_log where note = 'nothing'", P),
    Case("merge", "merge into rt_t t using (select 1 as id) s on t.id = s.id"
         " when matched then update set v = t.v", P),
    Case("truncate", "truncate rt_trunc", P),
    Case("explain-analyze-insert", "explain analyze insert into rt_log(note) values ('ea')", P),
    Case("comment-then-insert", "/* just a note */ insert into rt_log(note) values ('c')", P),
    # row locks, SELECT INTO, data-modifying CTEs
    Case("for-update", "select * from rt_t where id = 1 for update", P),
    Case("for-share", "select * from rt_t where id = 1 for share", P),
    Case("for-no-key-update", "select * from rt_t for no key update", P),
    Case("for-key-share", "select * from rt_t for key share", P),
    Case("for-update-skip-locked", "SELECT id FROM rt_t FOR UPDATE SKIP LOCKED LIMIT 1", P),
    Case("for-update-of", "select a.id from rt_t a join rt_t b using (id) for update of a", P),
    Case("select-into", "select * into rt_into from rt_t", P,
         cleanup="drop table if exists rt_into"),
    Case("create-table-as", "create table rt_ctas as select * from rt_t", P,
         cleanup="drop table if exists rt_ctas"),
    Case("cte-insert", "with w as (insert into rt_log(note) values ('cte') returning id)"
         " select count(*) from w", P),
    Case("cte-delete", "with d as (delete from rt_log where note = 'none' returning 1)"
         " select 1", P),
    Case("cte-update", "with u as (update rt_t set v = v where id = 1 returning 1)"
         " select count(*) from u", P),
    # DDL and maintenance
    Case("create-table", "create table if not exists rt_ddl(a int)", P,
         cleanup="drop table if exists rt_ddl"),
    Case("alter-table", "alter table rt_t alter column v set default 'd'", P),
    Case("create-index", "create index if not exists rt_t_v on rt_t(v)", P,
         cleanup="drop index if exists rt_t_v"),
    Case("comment-on", "comment on table rt_t is 'routing test table'", P),
    Case("drop-if-exists", "drop table if exists rt_nothing_here", P),
    Case("create-view", "create or replace view rt_v2 as select 1 as a", P,
         cleanup="drop view if exists rt_v2"),
    Case("grant", "grant select on rt_t to public", P),
    Case("create-temp-table", "create temp table if not exists rt_tmp(a int)", P),
    Case("analyze", "analyze rt_t", P),
    Case("vacuum", "vacuum rt_trunc", P, SIMPLE),
    # sequences, transaction ids, WAL
    Case("nextval", "select nextval('rt_seq')", P),
    Case("setval", "select setval('rt_seq', 100)", P),
    Case("txid-current", "select txid_current()", P),
    Case("pg-current-xact-id", "select pg_current_xact_id()", P),
    Case("pg-current-wal-lsn", "select pg_current_wal_lsn()", P),
    # advisory locks, LISTEN/NOTIFY, SET/RESET, LOCK
    Case("advisory-xact-lock", "select pg_advisory_xact_lock(4242)", P),
    Case("try-advisory-xact-lock", "select pg_try_advisory_xact_lock(4243)", P),
    Case("advisory-lock-unlock", "select pg_advisory_lock(4244), pg_advisory_unlock(4244)", P),
    Case("listen", "listen rt_chan", P),
    Case("notify", "notify rt_chan, 'hello'", P),
    Case("pg-notify", "select pg_notify('rt_chan', 'x')", P),
    Case("set", "set work_mem = '8MB'", P),
    Case("set-application-name", "SET application_name TO 'rt'", P),
    Case("reset", "reset work_mem", P),
    Case("lock-outside-transaction", "lock table rt_t in access share mode", P, error="25P01"),
    # COPY, CALL, DO
    Case("copy-from-stdin", "copy rt_log(note) from stdin", P, SIMPLE, copy=b"c1\nc2\n"),
    Case("copy-to-stdout", "copy rt_t to stdout", R, SIMPLE),
    Case("copy-select-to-stdout", "copy (select * from rt_t) to stdout", R, SIMPLE),
    Case("copy-insert-returning-to-stdout",
         "copy (insert into rt_log(note) values ('c') returning id) to stdout", P, SIMPLE),
    Case("begin-serializable-read-only",
         "begin isolation level serializable read only; select 1; commit", P, SIMPLE),
    Case("set-transaction-serializable",
         "begin read only; set transaction isolation level serializable; select 1; commit",
         P, SIMPLE),
    Case("call", "call rt_proc()", P),
    Case("do", "do $$ begin perform 1; end $$", P),
    Case("do-writes", "DO $$BEGIN INSERT INTO rt_log(note) VALUES ('do'); END$$", P),
    # hints
    Case("hint-primary", "/* pooler:primary */ select inet_server_port()", P),
    Case("hint-primary-no-spaces", "/*pooler:primary*/select 1", P),
    Case("hint-primary-after-newline", "\n   /* pooler:primary */\nSELECT count(*) FROM rt_t", P),
    Case("hint-replica-volatile", "/* pooler:replica */ select rt_volatile_port()", R),
    Case("hint-replica-read", "/* pooler:replica */ select 1", R),
    Case("hint-primary-multi-read-only", "/* pooler:primary */ begin read only; select 1; commit",
         P, SIMPLE),
]


def _params():
    out = []
    for c in CASES:
        for proto in c.protos:
            out.append(pytest.param(c, proto, id="%s-%s-%s" % (c.target, c.id, proto)))
    return out


@pytest.mark.parametrize("case,proto", _params())
def test_statement_routing(rt, case, proto):
    if case.catalog:
        rt.wait_catalog()
    result, where, texts = rt.route(case.sql, proto, case.copy)
    try:
        if case.error:
            assert case.error in result.sqlstates, "expected SQLSTATE %s, got %r" % (
                case.error, result)
        else:
            assert not result.errors, "client got an error: %r" % result.errors
        assert where == {case.target}, (
            "%r (%s protocol) ran on %s, expected only the %s"
            % (case.sql, proto, sorted(where) or "no server (not in either log)", case.target))
        bad = write_errors_on_replica(texts["replica"])
        assert not bad, "a write reached the replica: %s" % bad
    finally:
        if case.cleanup:
            rt.cluster.psql(rt.cluster.primary_port, case.cleanup, user="app")


def test_hint_replica_sends_even_a_write_to_the_replica(rt):
    """`/* pooler:replica */` is obeyed as written: the replica refuses the write (25006)."""
    result, where, _ = rt.route("/* pooler:replica */ insert into rt_log(note) values ('hint')")
    assert where == {"replica"}, where
    assert "25006" in result.sqlstates, result


# ---- transactions ------------------------------------------------------------------------

TX_CASES = [
    ("begin read only", R),
    ("BEGIN TRANSACTION READ ONLY", R),
    ("begin work read only", R),
    ("start transaction read only", R),
    ("START TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", R),
    ("begin isolation level repeatable read read only", R),
    ("  BeGiN   rEaD   oNlY  ", R),
    ("begin", P),
    ("BEGIN TRANSACTION", P),
    ("begin read write", P),
    ("start transaction", P),
    ("start transaction isolation level serializable", P),
    ("/* pooler:replica */ begin", R),
    ("/* pooler:primary */ begin read only", P),
]


@pytest.mark.parametrize("begin,target", TX_CASES, ids=[b.strip() for b, _ in TX_CASES])
@pytest.mark.parametrize("end", ["commit", "rollback"])
@pytest.mark.parametrize("proto", BOTH)
def test_transaction_routing(rt, begin, target, end, proto):
    """Every statement of the transaction runs on one backend of the expected node; the
    next autocommit write of the same client still goes to the primary.  proto: how the
    BEGIN is sent (psycopg sends its BEGIN with the extended protocol)."""
    want = rt.cluster.replica_port if target == R else rt.cluster.primary_port
    with rt.client() as c:
        r = c.run(proto, begin)
        assert not r.errors and r.status == b"T", r
        seen = set()
        for i in range(3):
            r = c.simple("select inet_server_port(), pg_backend_pid(), %d" % i)
            assert not r.errors, r
            seen.add((int(r.rows[0][0]), r.rows[0][1]))
        r = c.ext("select inet_server_port(), pg_backend_pid()")
        assert not r.errors, r
        seen.add((int(r.rows[0][0]), r.rows[0][1]))
        assert len(seen) == 1, "transaction %r ran on several backends: %s" % (begin, seen)
        port = seen.pop()[0]
        assert port == want, "%r: transaction ran on the %s, expected the %s" % (
            begin, node_name(rt.cluster, port), target)
        r = c.simple(end)
        assert not r.errors and r.status == b"I", r
        r = c.simple("insert into rt_log(note) values ('after tx') returning inet_server_port()")
        assert port_of(r) == rt.cluster.primary_port


def test_write_inside_plain_begin_lands_on_primary(rt):
    n = "tx-%d" % time.monotonic_ns()
    with rt.client() as c:
        for sql in ("begin", "select count(*) from rt_t",
                    "insert into rt_log(note) values ('%s')" % n, "commit"):
            r = c.simple(sql)
            assert not r.errors, (sql, r)
    assert rt.cluster.scalar("select count(*) from rt_log where note = %s", (n,)) == 1


def test_psycopg_transactions(rt):
    """psycopg with autocommit off sends BEGIN (primary) or, with read_only, BEGIN READ ONLY
    (replica); its queries use the extended protocol."""
    cl = rt.cluster
    with rt.pooler.connect(autocommit=False, prepare_threshold=None) as conn:
        assert conn.execute("select inet_server_port() where %s", (True,)).fetchone()[0] \
            == cl.primary_port
        conn.commit()
        conn.read_only = True
        for _ in range(3):
            assert conn.execute("select inet_server_port() where %s", (True,)).fetchone()[0] \
                == cl.replica_port
            assert conn.execute("select count(*) from rt_t").fetchone()[0] == 10
            conn.commit()
        conn.read_only = False
        cur = conn.execute("insert into rt_log(note) values (%s) returning inet_server_port()",
                           ("psycopg tx",))
        assert cur.fetchone()[0] == cl.primary_port
        conn.commit()


def test_consecutive_transactions_route_independently(rt):
    cl = rt.cluster
    with rt.client() as c:
        for i in range(5):
            assert port_of(c.simple("select inet_server_port()")) == cl.replica_port
            r = c.simple("insert into rt_log(note, n) values ('seq', %d)"
                         " returning inet_server_port()" % i)
            assert port_of(r) == cl.primary_port
            for sql in ("begin read only", "select inet_server_port()", "commit"):
                r = c.simple(sql)
                assert not r.errors, r
                if sql.startswith("select"):
                    assert port_of(r) == cl.replica_port


# ---- session read-only and the forced route -------------------------------------------

def test_startup_option_default_transaction_read_only(rt):
    cl = rt.cluster
    with rt.client(options="-c default_transaction_read_only=on") as c:
        for _ in range(3):
            assert port_of(c.simple("select inet_server_port()")) == cl.replica_port
            assert port_of(c.ext("select inet_server_port()")) == cl.replica_port
            rows = []
            for sql in ("begin", "select inet_server_port()", "show transaction_read_only",
                        "commit"):
                r = c.simple(sql)
                assert not r.errors, (sql, r)
                rows += r.rows
            assert rows == [[str(cl.replica_port)], ["on"]], rows
    with rt.pooler.connect(options="-c default_transaction_read_only=on") as conn:
        assert conn.execute("select inet_server_port() where %s", (True,)).fetchone()[0] \
            == cl.replica_port


@pytest.mark.parametrize("on,off", [
    ("set default_transaction_read_only = on", "set default_transaction_read_only = off"),
    ("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
     "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE"),
    ("set default_transaction_read_only to true", "reset default_transaction_read_only"),
], ids=["set", "session-characteristics", "set-true-reset"])
def test_session_read_only_set_at_runtime(rt, on, off):
    cl = rt.cluster

    def tx_port(c):
        ports = []
        for sql in ("begin", "select inet_server_port()", "select 1", "commit"):
            r = c.simple(sql)
            assert not r.errors, (sql, r)
            if sql.startswith("select inet"):
                ports.append(int(r.rows[0][0]))
        return ports[0]

    with rt.client() as c:
        assert tx_port(c) == cl.primary_port
        r = c.simple(on)
        assert not r.errors, r
        for _ in range(3):
            assert tx_port(c) == cl.replica_port, "plain BEGIN in a read-only session"
            assert port_of(c.simple("select inet_server_port()")) == cl.replica_port
        r = c.simple(off)
        assert not r.errors, r
        assert tx_port(c) == cl.primary_port, "plain BEGIN after the session went read-write"
        r = c.simple("insert into rt_log(note) values ('rw again') returning inet_server_port()")
        assert port_of(r) == cl.primary_port


def test_startup_option_pooler_route(rt):
    cl = rt.cluster
    with rt.client(options="-c pooler.route=replica") as c:
        assert port_of(c.simple("select rt_volatile_port()")) == cl.replica_port
        for sql in ("begin", "select inet_server_port()", "commit"):
            r = c.simple(sql)
            assert not r.errors, r
            if sql.startswith("select"):
                assert port_of(r) == cl.replica_port
    with rt.client(options="-c pooler.route=primary") as c:
        for _ in range(3):
            assert port_of(c.simple("select inet_server_port()")) == cl.primary_port
            assert port_of(c.ext("select inet_server_port()")) == cl.primary_port
        for sql in ("begin read only", "select inet_server_port()", "commit"):
            r = c.simple(sql)
            assert not r.errors, r
            if sql.startswith("select"):
                assert port_of(r) == cl.primary_port
    with rt.pooler.connect(options="-c pooler.route=primary") as conn:
        assert conn.execute("select inet_server_port()").fetchone()[0] == cl.primary_port


# ---- extended protocol -------------------------------------------------------------------

def test_psycopg_parameters_route_like_literals(rt):
    cl = rt.cluster
    with rt.pooler.connect(prepare_threshold=None) as conn:
        for i in range(5):
            assert conn.execute("select inet_server_port(), %s::int", (i,)).fetchone()[0] \
                == cl.replica_port
            assert conn.execute("select v, inet_server_port() from rt_t where id = %s",
                                (i + 1,)).fetchone()[1] == cl.replica_port
            cur = conn.execute("insert into rt_log(note, n) values (%s, %s)"
                               " returning inet_server_port()", ("param", i))
            assert cur.fetchone()[0] == cl.primary_port
            assert conn.execute("select id from rt_t where id = %s for update", (1,)).fetchone() \
                == (1,)


def test_psycopg_prepared_statements(rt):
    """Named statements (prepare=True): later Bind-only executions keep their verdict."""
    cl = rt.cluster
    with rt.pooler.connect() as conn:
        for i in range(6):
            got = conn.execute("select inet_server_port(), %s::int", (i,), prepare=True).fetchone()
            assert got == (cl.replica_port, i)
            got = conn.execute("insert into rt_log(note, n) values ('prep', %s)"
                               " returning inet_server_port()", (i,), prepare=True).fetchone()
            assert got == (cl.primary_port,)
            got = conn.execute("select nextval('rt_seq') > 0, inet_server_port()", prepare=True)
            assert got.fetchone() == (True, cl.primary_port)


def test_psycopg_auto_prepared_statement_runs_on_either_node(rt):
    """psycopg prepares a query after 5 executions (prepare_threshold=5, the default).  Once
    prepared while its transactions ran on the replica, the same query inside a plain BEGIN
    (the primary) must still work: the pooler carries protocol-level prepared statements
    to whichever server runs them (DESIGN.md, transaction pooling rules)."""
    cl = rt.cluster
    with rt.pooler.connect() as conn:
        sql = "select inet_server_port(), %s::int as k"
        for i in range(8):
            assert conn.execute(sql, (i,)).fetchone() == (cl.replica_port, i)
        with conn.transaction():
            assert conn.execute(sql, (100,)).fetchone() == (cl.primary_port, 100)
        for i in range(3):
            assert conn.execute(sql, (i,)).fetchone() == (cl.replica_port, i)


def test_raw_named_statements_bound_in_later_transactions(rt):
    cl = rt.cluster
    with rt.client() as c:
        c.send(parse_msg("select inet_server_port(), $1::int", "s_read")
               + parse_msg("insert into rt_log(note) values ($1) returning inet_server_port()",
                           "s_write") + sync_msg())
        r = c.read_result()
        assert not r.errors, r
        for i in range(4):
            c.send(bind_execute("s_read", (i,)))
            r = c.read_result()
            assert r.rows == [[str(cl.replica_port), str(i)]], r
            c.send(bind_execute("s_write", ("raw named %d" % i,)))
            r = c.read_result()
            assert not r.errors and port_of(r) == cl.primary_port, r


def test_pipeline_read_batch_then_write_batch(rt):
    """Two Sync-terminated batches sent in one write: the read may run on the replica, the
    write must run on the primary; no 25006 reaches the client."""
    cl = rt.cluster
    rt.logs.mark()
    for round_ in range(5):
        with rt.client() as c:
            c.send(extended("select inet_server_port(), $1::int", (round_,))
                   + extended("insert into rt_log(note, n) values ('pipe', $1)"
                              " returning inet_server_port()", (round_,))
                   + extended("select inet_server_port(), $1::int", (round_,)))
            first, second, third = c.read_result(), c.read_result(), c.read_result()
            assert not first.errors and not second.errors and not third.errors, (
                first, second, third)
            assert port_of(first) == cl.replica_port
            assert port_of(second) == cl.primary_port
            assert int(third.rows[0][1]) == round_
    assert not write_errors_on_replica(rt.logs.read()["replica"])


def test_pipeline_read_and_write_in_one_batch_go_to_primary(rt):
    """Messages up to one Sync are one implicit transaction: a read followed by a write
    before the Sync runs entirely on the primary."""
    cl = rt.cluster
    with rt.client() as c:
        c.send(parse_msg("select inet_server_port()") + bind_msg() + describe_portal()
               + execute_msg()
               + parse_msg("insert into rt_log(note) values ('one batch') returning"
                           " inet_server_port()") + bind_msg() + describe_portal() + execute_msg()
               + sync_msg())
        r = c.read_result()
        assert not r.errors, r
        assert [int(row[0]) for row in r.rows] == [cl.primary_port, cl.primary_port], r


def test_psycopg_pipeline_read_then_write(rt):
    cl = rt.cluster
    rt.logs.mark()
    with rt.pooler.connect(prepare_threshold=None) as conn:
        for i in range(3):
            with conn.pipeline() as p:
                reads = [conn.execute("select inet_server_port(), %s::int", (k,)) for k in range(3)]
                p.sync()
                writes = [conn.execute("insert into rt_log(note, n) values ('ppipe', %s)"
                                       " returning inet_server_port()", (k,)) for k in range(3)]
                p.sync()
                last = conn.execute("select %s::int", (i,))
            assert {c.fetchone()[0] for c in reads} <= {cl.replica_port, cl.primary_port}
            assert [c.fetchone()[0] for c in writes] == [cl.primary_port] * 3
            assert last.fetchone() == (i,)
    assert not write_errors_on_replica(rt.logs.read()["replica"])


# ---- no write ever reaches a replica ------------------------------------------------------

def test_mixed_workload_sends_no_write_to_the_replica(rt):
    """Four clients, mixed reads and writes over both protocols; the replica never sees a
    write (its log has no 'read-only transaction'/'during recovery' error) and every client
    statement succeeds."""
    tag = "mix-%d" % time.monotonic_ns()
    errors, inserted = [], []
    lock = threading.Lock()

    def worker(k):
        try:
            with rt.pooler.connect(prepare_threshold=None) as conn:
                for i in range(40):
                    n = k * 1000 + i
                    op = i % 8
                    if op == 0:
                        conn.execute("insert into rt_log(note, n) values ('%s', %d)" % (tag, n))
                    elif op == 1:
                        conn.execute("insert into rt_log(note, n) values (%s, %s)", (tag, n))
                    elif op == 2:
                        conn.execute("with w as (insert into rt_log(note, n) values (%s, %s)"
                                     " returning 1) select count(*) from w", (tag, n))
                    elif op == 3:
                        conn.execute("select rt_volatile_write(%s)", (tag,))
                        n = None
                    elif op == 4:
                        with conn.transaction():
                            conn.execute("select count(*) from rt_t")
                            conn.execute("insert into rt_log(note, n) values (%s, %s)", (tag, n))
                    elif op == 5:
                        conn.execute("select nextval('rt_seq'), inet_server_port()")
                        n = None
                    elif op == 6:
                        with conn.pipeline() as p:
                            conn.execute("select %s::int", (n,))
                            p.sync()
                            conn.execute("insert into rt_log(note, n) values (%s, %s)", (tag, n))
                    else:
                        conn.execute("select count(*) from rt_log where note = %s", (tag,))
                        n = None
                    if n is not None:
                        with lock:
                            inserted.append(n)
        except Exception as e:
            with lock:
                errors.append(repr(e))

    rt.logs.mark()
    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(45)
    assert not any(t.is_alive() for t in threads), "workers still running after 45 s"
    assert not errors, errors
    bad = write_errors_on_replica(rt.logs.read()["replica"])
    assert not bad, "writes reached the replica:\n" + "\n".join(bad[:10])
    got = sorted(r[0] for r in rt.cluster.query(
        "select n from rt_log where note = %s and n is not null", (tag,)))
    assert got == sorted(inserted)


# ---- session pool mode -------------------------------------------------------------------

def test_session_mode_sends_everything_to_the_primary(pooler, cluster):
    p = pooler(pool_mode="session", extra_pooler={"health_interval": HEALTH_INTERVAL})
    time.sleep(1.0)            # the replica has been probed healthy by now
    with p.connect() as conn:
        for _ in range(3):
            assert conn.execute("select inet_server_port()").fetchone()[0] == cluster.primary_port
            assert conn.execute("select inet_server_port() where %s", (True,)).fetchone()[0] \
                == cluster.primary_port
        conn.execute("begin read only")
        assert conn.execute("select inet_server_port()").fetchone()[0] == cluster.primary_port
        conn.execute("commit")


# ---- pgbench -S: both nodes serve, nothing fails -------------------------------------------

def pgbench(host, port, *args, timeout):
    env = dict(os.environ, PGPASSWORD="app", PGCONNECT_TIMEOUT="5")
    cmd = [PGBENCH, "-h", host, "-p", str(port), "-U", "app"] + list(args) + ["app"]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def xact_commits(cluster, port):
    return cluster.scalar("select xact_commit from pg_stat_database where datname = 'app'",
                          port=port, db="postgres")


@pytest.mark.timeout(SECONDS + 90)
def test_pgbench_select_only_uses_the_replica(pooler, cluster):
    if cluster.scalar("select to_regclass('public.pgbench_accounts') is null"):
        r = pgbench(cluster.host, cluster.primary_port, "-i", "-s", "1", "-q", timeout=120)
        assert r.returncode == 0, r.stderr
    cluster.wait_replay()
    # default weights: the primary takes no reads while the replica serves
    p = pooler(pool_size=10, extra_pooler={"health_interval": HEALTH_INTERVAL})
    time.sleep(1.2)   # the replica is probed healthy; backends flush their statistics
    before = {port: xact_commits(cluster, port) for port in (cluster.primary_port,
                                                             cluster.replica_port)}
    r = pgbench(p.host, p.port, "-n", "-S", "-c", "50", "-j", "2", "-T", str(SECONDS),
                timeout=SECONDS + 60)
    out = r.stdout + r.stderr
    assert r.returncode == 0, "pgbench failed (rc=%d):\n%s\n--- pooler ---\n%s" % (
        r.returncode, out[-3000:], p.log_tail(40))
    processed = re.search(r"number of transactions actually processed: (\d+)", out)
    failed = re.search(r"number of failed transactions: (\d+)", out)
    assert processed and int(processed.group(1)) > 0, out
    assert failed and int(failed.group(1)) == 0, out
    processed = int(processed.group(1))
    time.sleep(1.5)
    after = {port: xact_commits(cluster, port) for port in before}
    d_primary = after[cluster.primary_port] - before[cluster.primary_port]
    d_replica = after[cluster.replica_port] - before[cluster.replica_port]
    share = d_replica / processed
    print("pgbench -S: %d transactions; xact_commit delta primary %d, replica %d;"
          " replica share %.0f%%" % (processed, d_primary, d_replica, 100 * share))
    assert share > 0.9, "the replica ran only %d of %d pgbench transactions (primary %d)" % (
        d_replica, processed, d_primary)


# ---- explicit requests for a replica, with the default weights ----------------------------

def test_explicit_replica_requests_use_the_replica_with_default_weights(pooler, cluster):
    """With default weights the primary takes a share of plain reads, but a replica hint,
    `pooler.route=replica`, BEGIN READ ONLY and a read-only session ask for a replica: with a
    healthy, idle replica they run there (README: "a replica, for the whole transaction")."""
    p = pooler(auth_type="trust", extra_pooler={"health_interval": HEALTH_INTERVAL})
    time.sleep(1.0)                # the replica has been probed healthy by now
    cases = {
        "hint": ([], "/* pooler:replica */ select inet_server_port()"),
        "pooler.route=replica": (["-c", "pooler.route=replica"], "select inet_server_port()"),
        "begin read only": ([], "begin read only; select inet_server_port(); commit"),
        "read-only session": (["-c", "default_transaction_read_only=on"],
                              "begin; select inet_server_port(); commit"),
    }
    wrong = {}
    for name, (options, sql) in cases.items():
        for _ in range(5):
            with Client(p, options=" ".join(options) or None) as c:
                port = port_of(c.simple(sql))
            if port != cluster.replica_port:
                wrong.setdefault(name, []).append(node_name(cluster, port))
    assert not wrong, "explicit replica requests ran elsewhere: %s" % wrong
