"""Several poolers on one port (so_reuseport), each with its own peer_id, sharing one
[peers] list: the cancel key a client gets names the pooler that holds it, and a cancel
request that reaches another pooler of the group is sent on to that one."""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest

import pgcluster

from conftest import POOLER_BIN, Pooler, wait_for, write_ini
from pgwire import RawConn, cancel_request, wait_closed
from test_config_strict import GOOD_TAIL, refused
from test_metrics import get, metrics_port, value, wait_metrics

PEER_IDS = (1, 2, 3)
FORWARDED = "cancel request forwarded to peer %d"


def peer_of(pid):
    """The peer_id a BackendKeyData pid carries (bits 16-29)."""
    return (pid >> 16) & 0x3FFF


def sock_of(directory, port):
    return os.path.join(directory, ".s.PGSQL.%d" % port)


class Group:
    """Poolers started by hand: the `pooler` fixture gives each its own port and waits on
    it, while these share one. Each gets a short Unix socket folder of its own, which is
    its address in [peers]."""

    def __init__(self, cluster, tmp_path):
        self.cluster = cluster
        self.tmp_path = tmp_path
        self.started = []
        self.sock_dirs = []

    def sock_dir(self):
        d = tempfile.mkdtemp(prefix="pp", dir="/tmp")  # sun_path holds 107 bytes
        self.sock_dirs.append(d)
        return d

    def start(self, port, sock_dir, pooler_keys, peers=None, fails=False):
        """A pooler on 127.0.0.1:port and sock_dir; waits until it listens on TCP (or, with
        fails, until it exits)."""
        d = self.tmp_path / ("peer%d" % len(self.started))
        d.mkdir()
        sections = {"peers": {str(k): v for k, v in peers.items()}} if peers else None
        ini = write_ini(str(d), self.cluster, port, auth_type="trust", with_replica=False,
                        unix_socket_dir=sock_dir, extra_pooler=pooler_keys,
                        extra_sections=sections)
        log_path = str(d / "pooler.stderr")
        with open(log_path, "wb") as logf:
            proc = subprocess.Popen([POOLER_BIN, "-c", ini], stdin=subprocess.DEVNULL,
                                    stdout=logf, stderr=subprocess.STDOUT, cwd=str(d))
        p = Pooler(str(d), ini, port, proc, log_path)
        p.unix_dir = sock_dir
        self.started.append(p)
        if fails:
            p.startup_failed = True  # its exit is what the test looks at, not a problem
            proc.wait(timeout=10)
            return p
        listening = "listening on 127.0.0.1 port %d" % port
        deadline = time.monotonic() + 10
        while listening not in p.log():
            if proc.poll() is not None or time.monotonic() > deadline:
                p.startup_failed = True
                pytest.fail("pooler did not start (rc=%s):\n%s" % (proc.poll(), p.log_tail()))
            time.sleep(0.05)
        return p

    def stop(self):
        problems = []
        for p in self.started:
            problems += ["%s\n%s" % (problem, p.log_tail(60)) for problem in p.stop()]
        for d in self.sock_dirs:
            shutil.rmtree(d, ignore_errors=True)
        return problems


@pytest.fixture
def group(cluster, tmp_path):
    g = Group(cluster, tmp_path)
    yield g
    problems = g.stop()
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


def start_three(group, port):
    """Peers 1, 2 and 3 on one TCP port, each reachable on its own Unix socket."""
    dirs = {i: group.sock_dir() for i in PEER_IDS}
    peers = {i: "%s:%d" % (dirs[i], port) for i in PEER_IDS}
    return {i: group.start(port, dirs[i], {"so_reuseport": "on", "peer_id": i}, peers)
            for i in PEER_IDS}


def sleeping(cluster):
    return [r for r in cluster.app_backends()
            if r[1] == "active" and "pg_sleep(20)" in (r[3] or "")]


def cancel_once(cluster, port):
    """A client on the shared port sleeps; one raw CancelRequest with its key goes to the
    shared port from a new connection. Returns the peer_id that holds the client, after
    checking that the sleep ended with 57014 well before its 20 s."""
    c = RawConn("127.0.0.1", port)
    try:
        c.login_trust("app", "app")
        pid, key = c.backend_key
        owner = peer_of(pid)
        assert owner in PEER_IDS, "pid %#x names no peer of the group" % pid
        c.sock.settimeout(30)
        result = {}

        def run():
            t0 = time.monotonic()
            try:
                result["answer"] = c.simple_query("SELECT pg_sleep(20)")
            except Exception as e:  # reported below
                result["answer"] = e
            result["elapsed"] = time.monotonic() - t0

        t = threading.Thread(target=run, daemon=True)
        t.start()
        wait_for(lambda: sleeping(cluster), timeout=5, what="pg_sleep to run on the primary")
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        try:
            s.sendall(cancel_request(pid, key))
            assert wait_closed(s, timeout=5), "the CancelRequest connection stayed open"
        finally:
            s.close()
        t.join(10)
        assert not t.is_alive(), "pg_sleep(20) went on after the cancel request"
        rows, tags, errors = result["answer"]
        assert [e.get("C") for e in errors] == ["57014"], result
        assert result["elapsed"] < 5, "the cancel took %.1f s" % result["elapsed"]
        return owner
    finally:
        c.close()


@pytest.mark.timeout(150)
def test_cancel_reaches_the_pooler_that_holds_the_client(group, cluster):
    """The kernel spreads connections on the shared port by source port, so a cancel
    request lands on the client's own pooler about one time in three: rounds go on until
    one landed elsewhere (bounded), and that one must have been sent on."""
    port = pgcluster.free_port()
    poolers = start_three(group, port)
    for rnd in range(20):
        before = {i: poolers[i].log().count("cancel request forwarded to peer") for i in PEER_IDS}
        owner = cancel_once(cluster, port)
        wait_for(lambda: not sleeping(cluster), timeout=5, what="the sleep to end")
        forwarders = [i for i in PEER_IDS
                      if poolers[i].log().count("cancel request forwarded to peer") > before[i]]
        if not forwarders:
            continue  # it reached the owner itself, which cancelled locally
        assert forwarders != [owner] and len(forwarders) == 1, (owner, forwarders)
        sender = poolers[forwarders[0]]
        assert FORWARDED % owner in sender.log(), sender.log_tail()
        assert re.search(r"cancel request for c=\d+ forwarded to s=\d+", poolers[owner].log())
        # /metrics shows a snapshot taken every second
        s = wait_metrics(metrics_port(sender),
                         lambda s: value(s, "pooler_cancel_forwarded_total") > 0)
        assert value(s, "pooler_cancel_forwarded_total") == 1
        break
    else:
        pytest.fail("20 cancel requests all reached the client's own pooler")
    for p in poolers.values():
        assert p.alive()


def test_unknown_and_own_peer_ids_are_not_sent_on(group, cluster):
    """A key naming a peer missing from [peers] is dropped with a line; one naming this
    pooler itself is looked up here and never sent anywhere, even with a wrong key; a peer
    that does not answer costs a warning, not the daemon."""
    port = pgcluster.free_port()
    own, absent = group.sock_dir(), group.sock_dir()
    p = group.start(port, own, {"peer_id": 1},
                    {1: "%s:%d" % (own, port), 2: "%s:%d" % (absent, port)})
    for pid in (77 << 16 | 5, 1 << 16 | 5, 2 << 16 | 5):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(cancel_request(pid, 12345))
        assert wait_closed(s, timeout=5)
        s.close()
    wait_for(lambda: "cancel request for unknown peer 77 dropped" in p.log(), timeout=5,
             what="the unknown peer's line")
    wait_for(lambda: re.search(r"forwarding a cancel request to peer 2 at \S+ failed", p.log()),
             timeout=5, what="the failed forward's warning")
    assert "forwarded to peer" not in p.log()
    # over two snapshots of /metrics (one a second), nothing counted as sent on
    s = wait_metrics(metrics_port(p), lambda s: value(s, "pooler_cancel_forwarded_total") > 0,
                     timeout=2.5)
    assert value(s, "pooler_cancel_forwarded_total") == 0
    assert "# TYPE pooler_cancel_forwarded_total counter" in get(metrics_port(p), "/metrics")[1]
    with RawConn("127.0.0.1", port) as c:
        c.login_trust("app", "app")
        assert c.simple_query("SELECT 1")[0] == [["1"]]
    # the console lists the peers requests may go to: not this pooler's own line
    with RawConn("127.0.0.1", port) as c:
        c.login_trust("admin", "pooler")
        rows, _, errors = c.simple_query("SHOW PEERS")
        assert not errors and rows == [["2", absent, str(port), "0"]], (rows, errors)
    assert p.alive()


def test_second_pooler_on_a_port_fails_without_so_reuseport(group):
    """so_reuseport off (the default): the port stays one process's, as before."""
    port = pgcluster.free_port()
    first = group.start(port, group.sock_dir(), {})
    second = group.start(port, group.sock_dir(), {}, fails=True)
    assert second.proc.returncode == 1
    assert "cannot listen on 127.0.0.1 port %d: Address already in use" % port in second.log()
    assert first.alive()


@pytest.mark.parametrize("text,line,words", [
    ("[pooler]\npeer_id = 16384\n" + GOOD_TAIL, 2, ["peer_id", "0 to 16383"]),
    ("[pooler]\npeer_id = -1\n" + GOOD_TAIL, 2, ["peer_id", "0 to 16383"]),
    ("[pooler]\nso_reuseport = sometimes\n" + GOOD_TAIL, 2, ["so_reuseport", "on | off"]),
    ("[pooler]\npeer_id = 1\n[peers]\n2 = 127.0.0.1\n" + GOOD_TAIL, 4,
     ["[peers] 2", "not an address"]),
    ("[pooler]\npeer_id = 1\n[peers]\n2 = db.example.com:6432\n" + GOOD_TAIL, 4,
     ["[peers] 2", "numeric"]),
    ("[pooler]\npeer_id = 1\n[peers]\npeer2 = 127.0.0.1:6432\n" + GOOD_TAIL, 4,
     ["[peers] peer2", "not a peer id"]),
    ("[pooler]\npeer_id = 1\n[peers]\n2 = /tmp/a:6432\n2 = /tmp/b:6432\n" + GOOD_TAIL, 5,
     ["[peers] 2", "listed twice"]),
    ("[pooler]\n[peers]\n2 = /tmp/a:6432\n" + GOOD_TAIL, 2, ["[peers]", "peer_id"]),
    ("[pooler]\nlisten_port = 6432\nunix_socket_dir = /tmp/a\npeer_id = 1\n[peers]\n"
     "2 = /tmp/a:6432\n" + GOOD_TAIL, 6, ["[peers] 2", "listens there itself"]),
])
def test_bad_peer_settings_are_refused(tmp_path, text, line, words):
    err = refused(tmp_path, text, line)
    for w in words:
        assert w in err, (w, err)


def test_check_config_shows_the_peers(tmp_path):
    (tmp_path / "users.txt").write_text('"app" "app"\n')
    ini = tmp_path / "peers.ini"
    ini.write_text("[pooler]\nso_reuseport = on\npeer_id = 2\n[peers]\n1 = 127.0.0.1:7001\n"
                   "2 = /tmp/p2:6432\n3 = [::1]:7003\n" + GOOD_TAIL)
    r = subprocess.run([POOLER_BIN, "-c", str(ini), "--check-config"], capture_output=True,
                       text=True, timeout=10, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "so_reuseport = on" in r.stdout and "peer_id = 2" in r.stdout
    assert re.search(r"(?m)^1 = 127\.0\.0\.1:7001 .*go there$", r.stdout), r.stdout
    assert re.search(r"(?m)^2 = /tmp/p2:6432 .*this pooler", r.stdout), r.stdout
    assert re.search(r"(?m)^3 = \[::1\]:7003 ", r.stdout), r.stdout


def test_peer_id_stays_until_a_restart(pooler):
    """Keys already handed out name the peer_id of the start: a reload that changes it says
    so and keeps the old one, so that their cancel requests still come here. The new id's
    [peers] line (this pooler's own socket) is not sent anything either."""
    p = pooler(auth_type="trust", extra_pooler={"peer_id": 5})
    with RawConn(p.host, p.port) as c:
        c.login_trust("app", "app")
        assert peer_of(c.backend_key[0]) == 5
    with open(p.ini) as f:
        text = f.read()
    with open(p.ini, "w") as f:
        f.write(text.replace("peer_id = 5", "peer_id = 6")
                + "\n[peers]\n6 = %s:%d\n" % (p.unix_dir, p.port))
    p.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "reloaded" in p.log(), timeout=5, what="the reload")
    assert "peer_id 6: a restart is needed to change it; cancel keys keep peer_id 5" in p.log()
    with RawConn(p.host, p.port) as c:
        c.login_trust("app", "app")
        assert peer_of(c.backend_key[0]) == 5
    s = socket.create_connection((p.host, p.port), timeout=5)
    s.sendall(cancel_request(6 << 16 | 9, 1))
    assert wait_closed(s, timeout=5)
    s.close()
    time.sleep(0.3)  # a forward would be logged within a loop iteration or two
    assert "forwarded to peer" not in p.log() and "forwarding a cancel" not in p.log()
