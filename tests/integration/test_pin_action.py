"""pin_action = error: in transaction mode, a statement that would tie the client to its
server connection (temporary table, LISTEN, session SET, advisory lock, WITH HOLD
cursor, SQL PREPARE, SET ROLE) is refused with SQLSTATE 0A000 instead, before it runs
anywhere, and the session stays unpinned. Inside a transaction block the refusal aborts
the transaction, as any error in PostgreSQL does."""
import psycopg
import pytest

from test_metrics import metrics_port, value, wait_metrics


def error_pooler(pooler, **kw):
    return pooler(pool_size=1, with_replica=False,
                  extra_database={"pin_action": "error"}, **kw)


@pytest.mark.parametrize("sql,reason", [
    ("create temp table pa_tmp(a int)", "temp table"),
    ("listen pa_chan", "listen"),
    ("set search_path = pa_a, public", "set"),  # a list: not carried, it would pin
    ("select pg_advisory_lock(4242)", "advisory lock"),
    ("prepare pa_plan as select 1", "prepare"),
])
def test_pinning_statement_is_refused_outside_a_transaction(pooler, sql, reason):
    p = error_pooler(pooler)
    with psycopg.connect(p.dsn(), autocommit=True) as a:
        with pytest.raises(psycopg.errors.FeatureNotSupported) as ei:
            a.execute(sql)
        msg = str(ei.value)
        assert "pin_action = error" in msg and reason in msg
        # the session goes on, unpinned: nothing of the statement ran
        assert a.execute("select 1").fetchone() == (1,)
        assert a.execute("show work_mem").fetchone() != ("7MB",)
        assert a.execute(
            "select count(*) from pg_locks where locktype = 'advisory'").fetchone() == (0,)
        assert a.execute("select count(*) from pg_prepared_statements "
                         "where name = 'pa_plan'").fetchone() == (0,)
    with psycopg.connect(p.dsn(), autocommit=True) as b:
        assert b.execute("show work_mem").fetchone() != ("7MB",)
        b.execute("create table if not exists pa_chk(a int)")  # plain DDL is fine
    assert "keeps its server connection" not in p.log()
    s = wait_metrics(metrics_port(p),
                     lambda s: value(s, "pooler_pin_refusals_total", reason=reason) == 1)
    assert value(s, "pooler_pin_refusals_total", reason=reason) == 1
    assert value(s, "pooler_pinned_clients_total") == 0


def test_pinning_statement_inside_a_transaction_aborts_it(pooler):
    p = error_pooler(pooler)
    with psycopg.connect(p.dsn(), autocommit=True) as a:
        a.execute("create table if not exists pa_rows(a int)")
        a.execute("truncate pa_rows")
        a.execute("begin")
        a.execute("insert into pa_rows values (1)")
        with pytest.raises(psycopg.errors.FeatureNotSupported) as ei:
            a.execute("set statement_timeout = 1234")
        assert "pin_action = error" in str(ei.value)
        assert a.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            a.execute("select 1")
        a.execute("rollback")
        assert a.execute("select count(*) from pa_rows").fetchone() == (0,)
        assert a.execute("show statement_timeout").fetchone() == ("0",)
    # the one server connection is clean for the next client
    with psycopg.connect(p.dsn(), autocommit=True) as b:
        assert b.execute("show statement_timeout").fetchone() == ("0",)
    assert "keeps its server connection" not in p.log()


def test_transaction_local_state_is_still_allowed(pooler):
    """SET LOCAL, transaction-level advisory locks and temp tables dropped at commit
    leave nothing behind: they neither pin nor fail."""
    p = error_pooler(pooler)
    with psycopg.connect(p.dsn(), autocommit=True) as a:
        with a.transaction():
            a.execute("set local statement_timeout = 999")
            assert a.execute("show statement_timeout").fetchone() == ("999ms",)
            a.execute("select pg_advisory_xact_lock(5)")
        assert a.execute("show statement_timeout").fetchone() == ("0",)


def test_pin_action_pin_is_the_default(pooler):
    p = pooler(pool_size=1, with_replica=False)
    with psycopg.connect(p.dsn(), autocommit=True) as a:
        a.execute("set search_path = pa_a, public")
        assert a.execute("show search_path").fetchone() == ("pa_a, public",)
    assert "keeps its server connection" in p.log()
    s = wait_metrics(metrics_port(p),
                     lambda s: value(s, "pooler_pinned_clients_total", reason="set") == 1)
    assert value(s, "pooler_pinned_clients_total", reason="set") == 1
