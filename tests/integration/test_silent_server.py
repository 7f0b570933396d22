"""A server that accepts the TCP connection and then never says a word (a hung host, a
stopped process whose socket still accepts): each of the pooler's own libpq connections
(the server login, the health probe, auth_query) gives up at its deadline, says why in the
log, and the client gets an error instead of waiting for ever."""

import socket
import threading
import time

import psycopg
import pytest

from conftest import wait_for
from test_auth_query import PW, login_error
from test_limits import metric


class SilentServer:
    """Accepts connections on a loopback port and keeps them open without reading."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted = []
        self.stop = False
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted.append(c)

    def closed_by_peer(self):
        """How many accepted connections the pooler has closed."""
        n = 0
        for c in self.accepted:
            c.setblocking(False)
            try:
                while c.recv(65536):  # what the pooler sent (its startup packet)
                    pass
                n += 1  # then the end of the stream
            except BlockingIOError:
                pass
            except OSError:
                n += 1
        return n

    def close(self):
        self.stop = True
        self.sock.close()
        for c in self.accepted:
            c.close()


@pytest.fixture
def silent():
    s = SilentServer()
    yield s
    s.close()


def on_silent_primary(pooler, silent, **settings):
    return pooler(with_replica=False, node_overrides={"primary": {"port": silent.port}},
                  extra_pooler=settings)


def test_server_login_gives_up_at_server_connect_timeout(pooler, silent):
    """The login waits server_connect_timeout for the server's answer, then fails: the
    client hears of it, the pooler's connection is closed."""
    p = on_silent_primary(pooler, silent, server_connect_timeout="400ms", retry_max_tries="0",
                          health_interval="1h", health_timeout="1h")
    t0 = time.monotonic()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(p.dsn(), connect_timeout=5).close()
    took = time.monotonic() - t0
    assert 0.4 <= took < 4, took
    assert "failed: timed out connecting to the server (server_connect_timeout)" in p.log()
    wait_for(lambda: metric(p, "pooler_server_login_failures_total") >= 1,
             what="the failed login to be counted")
    # of the probe's connection (still waiting) and the login's, the login's is closed
    wait_for(lambda: silent.closed_by_peer() >= 1, what="the login's connection to close")


def test_probe_gives_up_at_health_timeout_and_tries_again(pooler, silent):
    """A probe that gets no answer fails at health_timeout and closes its connection; the
    next one opens a new connection."""
    p = on_silent_primary(pooler, silent, health_interval="100ms", health_timeout="300ms")
    wait_for(lambda: "probe failed: probe timed out" in p.log(), timeout=5,
             what="the probe to time out")
    wait_for(lambda: metric(p, "pooler_health_probes_total", node="primary",
                            result="failed") >= 2, timeout=5, what="a second failed probe")
    assert metric(p, "pooler_node_up", node="primary") == 0
    assert len(silent.accepted) >= 2
    wait_for(lambda: silent.closed_by_peer() >= 1, what="a timed-out probe's connection to close")
    # the same reason is logged once, not at every probe
    assert p.log().count("probe failed: probe timed out") == 1


def test_auth_query_gives_up_at_server_connect_timeout(pooler, silent):
    """auth_query on a primary that does not answer: the lookup fails at
    server_connect_timeout and the login with it, as when the lookup fails otherwise."""
    p = on_silent_primary(pooler, silent, auth_user="postgres", auth_dbname="postgres",
                          server_connect_timeout="400ms", health_interval="1h",
                          health_timeout="1h")
    t0 = time.monotonic()
    err = login_error(p, "aq_user", PW)
    took = time.monotonic() - t0
    assert err is not None and err[0] == "28P01", err
    assert 0.4 <= took < 4, took
    assert "auth_query failed: timed out (server_connect_timeout)" in p.log()
