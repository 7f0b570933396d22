"""Clients that vanish mid-transaction must not leave a dirty server behind:
the open transaction is rolled back and the server never reaches another client
with it still open."""

import select
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid

import pytest

from conftest import wait_for
from pgwire import RawConn, query_message

CHILD = r"""
import sys, time, psycopg
conn = psycopg.connect(sys.argv[1], autocommit=False)
conn.execute("insert into dirty_t values (%s)", (sys.argv[2],))
print("ready", flush=True)
time.sleep(60)
"""


@pytest.fixture
def dirty_table(cluster):
    cluster.psql(cluster.primary_port, "drop table if exists dirty_t;"
                 " create table dirty_t(marker text)", user="app")
    cluster.wait_replay()  # reads through the pooler may use the replica
    yield
    cluster.psql(cluster.primary_port, "drop table if exists dirty_t", user="app")


def idle_in_tx(cluster):
    return [r for r in cluster.app_backends() if r[1] and r[1].startswith("idle in transaction")]


@pytest.mark.parametrize("pool_mode", ["transaction", "session"])
def test_client_killed_mid_transaction(pooler, cluster, dirty_table, pool_mode):
    p = pooler(pool_size=2, pool_mode=pool_mode)
    marker = "killed-" + uuid.uuid4().hex
    child = subprocess.Popen([sys.executable, "-c", CHILD, p.dsn(), marker],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        ready, _, _ = select.select([child.stdout], [], [], 15)
        assert ready, "child client did not get its transaction going"
        line = child.stdout.readline()
        assert line.strip() == b"ready", (line, child.stderr.read() if child.poll() is not None else "")
        # the transaction really is open on the primary right now
        wait_for(lambda: idle_in_tx(cluster), timeout=5, what="idle in transaction backend")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        child.stdout.close()
        child.stderr.close()
    wait_for(lambda: not idle_in_tx(cluster), timeout=5,
             what="the killed client's transaction to end on the primary")
    assert cluster.scalar("select count(*) from dirty_t where marker = %s", (marker,)) == 0
    with p.connect() as conn:
        assert conn.execute("select count(*) from dirty_t").fetchone() == (0,)
        assert conn.execute("select 1").fetchone() == (1,)
    assert p.alive()


def test_client_resets_connection_while_query_runs(pooler, cluster, dirty_table):
    """A client sends BEGIN; INSERT; a slow query, then drops the TCP connection with
    a RST. The next client on the same single-server pool sees a clean server."""
    p = pooler(pool_size=1, auth_type="trust")
    marker = "reset-" + uuid.uuid4().hex
    c = RawConn(p.host, p.port)
    c.login_trust("app", "app")
    c.send(query_message("begin; insert into dirty_t values ('%s'); select pg_sleep(2)" % marker))
    time.sleep(0.3)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()                                   # RST instead of FIN
    t0 = time.monotonic()
    with p.connect() as conn:
        assert conn.execute("select 1").fetchone() == (1,)
        # whatever server we got, it is not inside the dead client's transaction
        assert conn.execute("select count(*) from dirty_t").fetchone() == (0,)
        assert conn.execute("select pg_current_xact_id_if_assigned() is null").fetchone() == (True,)
    assert time.monotonic() - t0 < 10
    wait_for(lambda: not idle_in_tx(cluster), timeout=5, what="no idle-in-transaction app backend")
    assert cluster.scalar("select count(*) from dirty_t where marker = %s", (marker,)) == 0


def test_client_closes_inside_transaction_with_terminate(pooler, cluster, dirty_table):
    """A polite client that sends Terminate while its transaction is open: same rules."""
    p = pooler(pool_size=1)
    marker = "terminate-" + uuid.uuid4().hex
    conn = p.connect(autocommit=False)
    conn.execute("insert into dirty_t values (%s)", (marker,))
    conn.close()                                # libpq sends 'X' without COMMIT
    with p.connect() as c2:
        assert c2.execute("select count(*) from dirty_t").fetchone() == (0,)
        c2.execute("insert into dirty_t values ('after')")
    wait_for(lambda: not idle_in_tx(cluster), timeout=5, what="no idle-in-transaction app backend")
    assert cluster.query("select marker from dirty_t") == [("after",)]
