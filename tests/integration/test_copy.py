"""COPY through the pooler: both directions, and an error in the middle of a COPY."""

import psycopg
import pytest

ROWS = 100000


@pytest.fixture
def copy_table(cluster):
    cluster.psql(cluster.primary_port, "drop table if exists copy_t;"
                 " create table copy_t(id int, label text)", user="app")
    cluster.wait_replay()  # reads through the pooler may use the replica
    yield "copy_t"
    cluster.psql(cluster.primary_port, "drop table if exists copy_t", user="app")


def test_copy_from_stdin_100k_rows(pooler, cluster, copy_table):
    p = pooler()
    with p.connect() as conn:
        with conn.cursor() as cur:
            with cur.copy("COPY copy_t (id, label) FROM STDIN") as copy:
                for i in range(ROWS):
                    copy.write_row((i, "row %d" % i))
        assert conn.execute("select count(*), sum(id) from copy_t").fetchone() == \
            (ROWS, ROWS * (ROWS - 1) // 2)
        assert conn.execute("select 1").fetchone() == (1,)
    assert cluster.scalar("select count(*) from copy_t") == ROWS


def test_copy_to_stdout_100k_rows(pooler):
    p = pooler()
    with p.connect() as conn:
        lines = 0
        data = bytearray()
        with conn.cursor() as cur:
            with cur.copy("COPY (select g, 'v' || g from generate_series(1, %d) g) TO STDOUT"
                          % ROWS) as copy:
                for chunk in copy:
                    data += chunk
        lines = data.count(b"\n")
        assert lines == ROWS
        assert data.startswith(b"1\tv1\n") and data.endswith(b"%d\tv%d\n" % (ROWS, ROWS))
        assert conn.execute("select 2").fetchone() == (2,)


def test_copy_with_bad_row_fails_and_connection_stays_usable(pooler, cluster, copy_table):
    p = pooler()
    with p.connect() as conn:
        with pytest.raises(psycopg.errors.InvalidTextRepresentation):
            with conn.cursor() as cur:
                with cur.copy("COPY copy_t (id, label) FROM STDIN") as copy:
                    for i in range(1000):
                        copy.write(b"%d\tok\n" % i)
                    copy.write(b"not-a-number\tbad\n")
                    for i in range(1000):
                        copy.write(b"%d\tok\n" % i)
        # the whole COPY was rolled back, and the session carries on
        assert conn.execute("select count(*) from copy_t").fetchone() == (0,)
        with conn.cursor() as cur:
            with cur.copy("COPY copy_t (id, label) FROM STDIN") as copy:
                copy.write_row((1, "after"))
        assert conn.execute("select label from copy_t").fetchall() == [("after",)]
    assert cluster.scalar("select count(*) from copy_t") == 1


def test_copy_inside_transaction_then_rollback(pooler, cluster, copy_table):
    p = pooler()
    with p.connect(autocommit=False) as conn:
        with conn.cursor() as cur:
            with cur.copy("COPY copy_t (id, label) FROM STDIN") as copy:
                for i in range(100):
                    copy.write_row((i, "tx"))
        assert conn.execute("select count(*) from copy_t").fetchone() == (100,)
        conn.rollback()
        assert conn.execute("select count(*) from copy_t").fetchone() == (0,)
        conn.rollback()
    assert cluster.scalar("select count(*) from copy_t") == 0
