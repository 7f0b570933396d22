"""Backend connects retry with exponential backoff and jitter; repeated failures open the
node's circuit, after which clients get an immediate, clear error instead of waiting."""
import socket
import threading
import time

import psycopg

from pgcluster import free_port
from test_metrics import metrics_port, samples, value, get


class FlakyProxy:
    """Loopback TCP proxy to the primary that drops the first `drops` connections."""

    def __init__(self, target_port, drops):
        self.target = target_port
        self.drops = drops
        self.seen = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.stop = False
        self.links = []  # (client side, server side) of each piped connection
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            self.handle(c)

    def handle(self, c):
        """One accepted connection: dropped, or piped to the target."""
        self.seen += 1
        if self.seen <= self.drops:
            c.close()
            return
        s = socket.create_connection(("127.0.0.1", self.target))
        self.links.append((c, s))
        for a, b in ((c, s), (s, c)):
            threading.Thread(target=self.pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def pipe(a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        finally:
            for x in (a, b):
                try:
                    x.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self):
        """Break every connection piped so far, as a server going away does."""
        for pair in self.links:
            for x in pair:
                try:
                    x.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self.links = []

    def close(self):
        self.stop = True
        self.sock.close()


def test_connect_failures_are_retried_with_backoff(cluster, pooler):
    proxy = FlakyProxy(cluster.primary_port, drops=3)
    try:
        p = pooler(with_replica=False, node_overrides={"primary": {"port": proxy.port}},
                   extra_pooler={"retry_base": "20ms", "retry_max": "200ms",
                                 "retry_max_tries": "6", "health_interval": "10s",
                                 "breaker_failure_threshold": "10"})
        t0 = time.monotonic()
        with p.connect() as c:  # its login needs a server: the pooler retries for it
            assert c.execute("select 1").fetchone() == (1,)
        assert time.monotonic() - t0 < 10
        assert proxy.seen >= 4
        assert "retry" in p.log() or p.log().count("login to") >= 2
    finally:
        proxy.close()


def test_open_circuit_fails_clients_at_once(pooler):
    dead = free_port()  # nothing listens there
    p = pooler(with_replica=False, node_overrides={"primary": {"port": dead}},
               extra_pooler={"retry_base": "10ms", "retry_max": "50ms", "retry_max_tries": "2",
                             "health_interval": "100ms", "breaker_failure_threshold": "3",
                             "breaker_recovery": "30s"})
    port = metrics_port(p)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        s = samples(get(port, "/metrics")[1])
        if value(s, "pooler_breaker_state", node="primary") == 1:
            break
        time.sleep(0.1)
    assert value(s, "pooler_breaker_state", node="primary") == 1, "circuit never opened"
    t0 = time.monotonic()
    try:
        psycopg.connect(p.dsn(), connect_timeout=5).close()
        raise AssertionError("connected through an open circuit")
    except psycopg.OperationalError as e:
        assert "circuit open" in str(e), str(e)
    assert time.monotonic() - t0 < 1.0, "an open circuit must answer at once"
    assert "circuit open" in p.log()


def test_an_outage_is_an_error_not_a_disconnect(cluster, pooler):
    """A logged-in client whose next transaction cannot get a server (the node went away,
    then its circuit opened) gets an ErrorResponse with the reason and keeps its
    connection: its application's pool does not lose it."""
    proxy = FlakyProxy(cluster.primary_port, drops=0)
    p = pooler(with_replica=False, node_overrides={"primary": {"port": proxy.port}},
               extra_pooler={"retry_base": "10ms", "retry_max": "50ms", "retry_max_tries": "2",
                             "health_interval": "100ms", "breaker_failure_threshold": "3",
                             "breaker_recovery": "30s"})
    with p.connect() as c:
        assert c.execute("select 1").fetchone() == (1,)
        proxy.close()
        for a, b in proxy.links:  # the server connections break too
            for x in (a, b):
                try:
                    x.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        time.sleep(0.3)  # the pooler sees its idle server connection end
        errors = []
        for _ in range(6):  # connect failures, then the open circuit: errors, no disconnect
            try:
                c.execute("select 1")
            except psycopg.OperationalError as e:
                errors.append(e)
                assert e.sqlstate == "08006", e
            time.sleep(0.1)
        assert len(errors) >= 5, errors
        assert not c.closed and c.info.status == psycopg.pq.ConnStatus.OK
    assert "circuit open" in p.log()
