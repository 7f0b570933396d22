"""Protocol-level prepared statements in transaction mode: a client's named statements
follow it to whichever server connection (and node) runs its next transaction."""
import asyncio

import psycopg

from conftest import ONE_WORKER


def test_psycopg_auto_prepared_statements_on_a_shared_server(pooler):
    """psycopg prepares a query as "_pg3_0" after 5 executions. Two clients doing so
    on one shared server connection must not collide (the pooler tracks statements
    per client)."""
    p = pooler(pool_size=1)
    with p.connect() as a, p.connect() as b:
        for i in range(10):
            assert a.execute("select %s::int + 1", (i,)).fetchone() == (i + 1,)
            assert b.execute("select %s::int + 2", (i,)).fetchone() == (i + 2,)
            assert b.execute("select %s::text", ("b%d" % i,)).fetchone() == ("b%d" % i,)


def test_prepared_statement_survives_moving_to_another_server(pooler):
    """Transaction pooling: a statement asyncpg prepared on one server keeps working
    when the next transaction of that client runs on a different server."""
    p = pooler(pool_size=2, with_replica=False,  # both clients' servers on one node
               extra_pooler=ONE_WORKER)

    async def main():
        a = await p.aconnect()               # default statement cache: named statements
        b = await p.aconnect(statement_cache_size=0)
        try:
            sql = "select pg_backend_pid(), $1::int * 3"
            pid_a, v = await a.fetchrow(sql, 1)
            assert v == 3
            moved = False
            for attempt in range(6):
                tx = b.transaction()
                await tx.start()
                pid_b = await b.fetchval("select pg_backend_pid()")
                if pid_b == pid_a:
                    # a's server is busy in b's transaction: a must run elsewhere
                    pid2, v = await a.fetchrow(sql, 5)
                    assert v == 15
                    assert pid2 != pid_a
                    moved = True
                await tx.rollback()
                if moved:
                    break
                pid_a, v = await a.fetchrow(sql, attempt)
                assert v == attempt * 3
            assert moved, "could not arrange for the client to change servers"
        finally:
            await a.close()
            await b.close()

    asyncio.run(main())


