"""Hostile clients: malformed startup packets, garbage after login, broken SASL exchanges,
slow drips, connection floods and clients that vanish mid-COPY or mid-result.

In every case a well-behaved client keeps querying through the same pooler for the whole
test and must never see an error, the pooler must keep running (the fixture also fails the
test on any ASan/UBSan report), and the hostile client gets the answer PostgreSQL would
give it: an ErrorResponse with the right SQLSTATE, or a clean close."""

import os
import random
import socket
import struct
import threading
import time

import pytest

from conftest import wait_for
from pgwire import (PROTOCOL_3_0, RawConn, message, parse_fields, query_message,
                    startup_message, wait_closed)

SSL_CODE = 80877103
CANCEL_CODE = 80877102


class GoodClient:
    """A thread that runs `select <n>` on one pooled connection (reconnecting every 20
    queries) until stopped; any error or wrong answer is recorded. Bounded in count and
    time so that a stuck pooler fails the test instead of hanging it."""

    def __init__(self, p, max_queries=20000, pause=0.005):
        self.p = p
        self.max_queries = max_queries
        self.pause = pause
        self.done = 0
        self.errors = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        conn = None
        try:
            while not self._stop.is_set() and self.done < self.max_queries:
                if conn is None or self.done % 20 == 0:
                    if conn is not None:
                        conn.close()
                    conn = self.p.connect()
                n = self.done
                t0 = time.monotonic()
                row = conn.execute("select %s::int" % n).fetchone()
                if row != (n,):
                    self.errors.append("wrong answer %r to select %d" % (row, n))
                if time.monotonic() - t0 > 5:
                    self.errors.append("select took %.1f s" % (time.monotonic() - t0))
                self.done += 1
                self._stop.wait(self.pause)
        except Exception as e:  # reported through .errors
            self.errors.append(repr(e))
        finally:
            if conn is not None:
                conn.close()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=15)
        assert not self._thread.is_alive(), "the good client is stuck"
        if exc[0] is None:
            self.check()

    def check(self):
        assert not self.errors, "the well-behaved client saw: %s" % self.errors[:3]
        assert self.done > 0, "the well-behaved client ran no query"


def answer(sock, timeout=5.0):
    """What the pooler says to a bad request: ('E', fields), ('EOF', None) or the first
    other message type. Fails if it neither answers nor closes within timeout."""
    if isinstance(sock, RawConn):
        c = sock
    else:
        c = RawConn.__new__(RawConn)
        c.sock, c.buf = sock, b""
    try:
        return c.eof_or_error(timeout)
    except socket.timeout:
        pytest.fail("the pooler neither answered nor closed within %.0f s" % timeout)


def send_quietly(sock, data):
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass


def expect_error(sock, sqlstates):
    kind, fields = answer(sock)
    assert kind == "E", "expected an ErrorResponse, got %r" % kind
    assert fields.get("C") in sqlstates, fields
    assert wait_closed(getattr(sock, "sock", sock)), "connection left open after a FATAL error"
    return fields


def raw_startup(body_after_version, version=PROTOCOL_3_0, length=None):
    body = struct.pack("!I", version) + body_after_version
    return struct.pack("!I", len(body) + 4 if length is None else length) + body


@pytest.fixture
def trust(pooler):
    return pooler(auth_type="trust", pool_size=4)


# ---- malformed startup packets ---------------------------------------------------------

U32 = lambda v: struct.pack("!I", v & 0xFFFFFFFF)  # noqa: E731

BAD_STARTUPS = [
    # (id, bytes, SQLSTATEs the answer may carry)
    ("negative-length", U32(-1) + U32(PROTOCOL_3_0), {"08P01"}),
    ("length-int-min", U32(0x80000000) + U32(PROTOCOL_3_0), {"08P01"}),
    ("length-3", U32(3) + U32(PROTOCOL_3_0), {"08P01"}),
    ("length-7", U32(7) + U32(PROTOCOL_3_0), {"08P01"}),
    ("length-over-10k", U32(10001) + U32(PROTOCOL_3_0) + b"user\0", {"08P01"}),
    ("length-1M", U32(1 << 20) + U32(PROTOCOL_3_0) + b"user\0app\0" * 100, {"08P01"}),
    ("version-0.0", raw_startup(b"user\0app\0\0", version=0), {"0A000"}),
    ("version-65535.65535", raw_startup(b"user\0app\0\0", version=0xFFFFFFFF), {"0A000"}),
    ("version-5.0", raw_startup(b"user\0app\0\0", version=5 << 16), {"0A000"}),
    ("ssl-request-with-payload", raw_startup(b"xxxx", version=SSL_CODE), {"08P01"}),
    ("cancel-request-short", raw_startup(b"\0\0\0\1", version=CANCEL_CODE), {"08P01"}),
    ("cancel-request-long", raw_startup(b"\0" * 12, version=CANCEL_CODE), {"08P01"}),
    ("no-final-terminator", raw_startup(b"user\0app\0database\0app\0"), {"08P01"}),
    ("odd-key-value-count", raw_startup(b"user\0app\0database\0\0"), {"08P01"}),
    ("value-without-nul", raw_startup(b"user\0app"), {"08P01"}),
    ("trailing-garbage", raw_startup(b"user\0app\0\0garbage"), {"08P01"}),
    ("empty-user", raw_startup(b"user\0\0database\0app\0\0"), {"28000"}),
    ("no-user", raw_startup(b"database\0app\0application_name\0x\0\0"), {"28000"}),
    ("only-terminator", raw_startup(b"\0"), {"28000"}),
    ("bad-param-name", raw_startup(b"user\0app\0bad name!\0x\0\0"), {"08P01"}),
    ("server-owned-param", raw_startup(b"user\0app\0server_version\0 1\0\0"), {"08P01"}),
    ("bad-options", raw_startup(b"user\0app\0options\0-x\0\0"), {"08P01"}),
    ("replication", raw_startup(b"user\0app\0replication\0database\0\0"), {"0A000"}),
    # a named limit, not a layout error
    ("65-parameters",
     raw_startup(b"user\0app\0" + b"".join(b"p%d\0v\0" % i for i in range(64)) + b"\0"),
     {"54000"}),
]


@pytest.mark.parametrize("blob,sqlstates", [pytest.param(b, s, id=i) for i, b, s in BAD_STARTUPS])
def test_malformed_startup_gets_error_and_close(trust, blob, sqlstates):
    with GoodClient(trust):
        for _ in range(3):
            with socket.create_connection((trust.host, trust.port), timeout=5) as bad:
                send_quietly(bad, blob)
                expect_error(bad, sqlstates)
    assert trust.alive()


def test_startup_at_the_size_limit_with_a_huge_value(trust):
    """A startup packet of exactly 10000 bytes is allowed; one byte more is not."""
    head = b"user\0app\0database\0app\0application_name\0"
    pad = 10000 - 4 - 4 - len(head) - 2
    ok = raw_startup(head + b"a" * pad + b"\0\0")
    assert len(ok) == 10000
    too_big = raw_startup(head + b"a" * (pad + 1) + b"\0\0")
    with GoodClient(trust):
        with socket.create_connection((trust.host, trust.port), timeout=5) as bad:
            send_quietly(bad, too_big)
            expect_error(bad, {"08P01"})
        with RawConn(trust.host, trust.port) as c:
            c.send(ok)
            c.finish_login()
            rows, _, errors = c.simple_query("select length(current_setting('application_name'))")
            # PostgreSQL truncates application_name to NAMEDATALEN - 1
            assert not errors, errors
            assert rows == [["63"]], rows


def test_many_small_parameters_within_the_limit(trust):
    params = {"user": "app", "database": "app"}
    params.update({"pooler_t.p%d" % i: "v" for i in range(60)})
    with GoodClient(trust):
        with RawConn(trust.host, trust.port) as c:
            c.send(startup_message(params))
            kind, _ = c.eof_or_error()
            # custom (dotted) settings are accepted by PostgreSQL; either way: no crash
            assert kind in ("R", "E"), kind


@pytest.mark.timeout(90)
def test_startup_split_byte_by_byte(trust):
    data = startup_message({"user": "app", "database": "app", "application_name": "drip"})
    with GoodClient(trust):
        with RawConn(trust.host, trust.port) as c:
            c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for i in range(len(data)):
                c.send(data[i:i + 1])
                time.sleep(0.002)
            c.finish_login()
            rows, _, errors = c.simple_query("select current_setting('application_name')")
            assert rows == [["drip"]] and not errors


# ---- garbage after login ------------------------------------------------------------------

def logged_in(p):
    c = RawConn(p.host, p.port)
    c.login_trust("app", "app")
    return c


@pytest.mark.parametrize("blob", [
    pytest.param(b"Q" + U32(0x7FFFFFFF) + b"select 1\0", id="length-0x7fffffff"),
    pytest.param(b"Q" + U32(-1) + b"select 1\0", id="length-negative"),
    pytest.param(b"Q" + U32(0x80000000), id="length-int-min"),
    pytest.param(b"Q" + U32(3), id="length-3"),
    pytest.param(b"Q" + U32(0), id="length-0"),
    pytest.param(b"S" + U32(2), id="sync-length-2"),
    # one past PostgreSQL's own limit (MaxAllocSize - 1): refused from the header alone
    pytest.param(b"Q" + U32(0x40000000) + b"select", id="length-1GiB"),
    pytest.param(b"Q" + U32(0x3FFFFFFF) + b"select", id="length-1GiB-minus-1"),
])
def test_absurd_message_length_after_login(trust, blob):
    with GoodClient(trust):
        for _ in range(3):
            with logged_in(trust) as c:
                send_quietly(c.sock, blob)
                fields = expect_error(c.sock, {"08P01"})
                assert "length" in fields.get("M", ""), fields
    assert trust.alive()


@pytest.mark.parametrize("kind", [b"\0", b"?", b"p", b"Z", b"v", b"\xff", b"A"])
def test_unknown_message_types_after_login(trust, kind):
    with GoodClient(trust):
        with logged_in(trust) as c:
            send_quietly(c.sock, message(kind, b"junk\0"))
            expect_error(c.sock, {"08P01"})
        # the same inside a transaction, while the client holds a server
        with logged_in(trust) as c:
            _, tags, errors = c.simple_query("begin")
            assert tags == ["BEGIN"] and not errors
            send_quietly(c.sock, message(kind, b"junk\0"))
            expect_error(c.sock, {"08P01"})


@pytest.mark.parametrize("first", [b"\0", b"\xff", b"!", b"~", b"z"])
def test_garbage_bytes_after_login(trust, first):
    """2000 random bytes (seeded) starting with a byte that is no message type: whatever
    length the next four bytes declare, the answer is 08P01 and a close."""
    rng = random.Random(first)
    with GoodClient(trust):
        for _ in range(4):
            with logged_in(trust) as c:
                send_quietly(c.sock, first + bytes(rng.getrandbits(8) for _ in range(1999)))
                expect_error(c.sock, {"08P01"})


@pytest.mark.timeout(90)
def test_messages_split_byte_by_byte(trust):
    """A simple query and a Parse/Bind/Execute/Sync, sent one byte per write."""
    def drip(c, data):
        for i in range(len(data)):
            c.send(data[i:i + 1])
            time.sleep(0.002)

    parse = message(b"P", b"\0select $1::int + 1\0\0\0")
    bind = message(b"B", b"\0\0\0\0\0\1" + U32(1) + b"9" + b"\0\0")
    execute = message(b"E", b"\0" + U32(0))
    with GoodClient(trust):
        with logged_in(trust) as c:
            c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            drip(c, query_message("select 'split' || 42"))
            msgs, last = c.read_until("Z")
            assert ("D", b"\0\1\0\0\0\7split42") in msgs, msgs
            drip(c, parse + bind + execute + message(b"S"))
            msgs, last = c.read_until("Z")
            kinds = [m[0] for m in msgs]
            assert kinds == ["1", "2", "D", "C", "Z"], msgs
            assert msgs[2][1] == b"\0\1\0\0\0\x0210", msgs


def test_truncated_message_then_close_inside_transaction(trust, cluster):
    """A client inside a transaction sends half a Query and vanishes: its server is closed
    (it is mid-message) and the pool goes on with fresh servers."""
    p = trust
    with GoodClient(p):
        for _ in range(3):
            c = logged_in(p)
            _, tags, errors = c.simple_query("begin; select 1")
            assert not errors
            q = query_message("select 'never finished'")
            c.send(q[:12])
            time.sleep(0.1)
            c.close()
        with logged_in(p) as c:
            # a huge declared Query (under 1 GiB) with a few bytes, then gone
            c.send(b"Q" + U32(0x3FFFFFF0) + b"select")
            time.sleep(0.1)
    wait_for(lambda: not [r for r in cluster.app_backends()
                          if r[1] and r[1].startswith("idle in transaction")],
             timeout=5, what="no app backend idle in transaction")


# ---- SASL (SCRAM-SHA-256) ----------------------------------------------------------------

@pytest.fixture
def scram(pooler):
    return pooler(auth_type="scram-sha-256", pool_size=4)


def sasl_start(p, user="scramuser"):
    """Open a connection and read up to the AuthenticationSASL request."""
    c = RawConn(p.host, p.port)
    c.send(startup_message({"user": user, "database": "app"}))
    kind, payload = c.read_msg()
    assert kind == "R" and struct.unpack("!I", payload[:4])[0] == 10, (kind, payload)
    assert b"SCRAM-SHA-256\0" in payload
    return c


def sasl_initial(mech=b"SCRAM-SHA-256", data=b"n,,n=,r=abcdefghijklmnop", length=None):
    n = len(data) if length is None else length
    return message(b"p", mech + b"\0" + U32(n) + data)


@pytest.mark.parametrize("blob", [
    pytest.param(sasl_initial(length=-2), id="data-length-negative"),
    pytest.param(sasl_initial(length=-0x80000000), id="data-length-int-min"),
    pytest.param(sasl_initial(length=1000), id="data-length-past-end"),
    pytest.param(sasl_initial(length=0x7FFFFFFF), id="data-length-huge"),
    pytest.param(message(b"p", b"SCRAM-SHA-256\0\0\0"), id="length-word-truncated"),
    pytest.param(message(b"p", b"SCRAM-SHA-256"), id="mechanism-unterminated"),
    pytest.param(message(b"p", b""), id="empty"),
    pytest.param(sasl_initial(mech=b"SCRAM-SHA-1"), id="wrong-mechanism"),
    pytest.param(sasl_initial(mech=b"SCRAM-SHA-256-PLUS"), id="plus-without-tls"),
    pytest.param(sasl_initial(data=b""), id="client-first-empty"),
    pytest.param(sasl_initial(data=b"n,,"), id="client-first-truncated"),
    pytest.param(sasl_initial(data=b"n,,n=,r="), id="client-first-empty-nonce"),
    pytest.param(sasl_initial(data=b"n,,n="), id="client-first-no-nonce"),
    pytest.param(sasl_initial(data=b"p=tls-server-end-point,,n=,r=abc"), id="channel-binding"),
    pytest.param(sasl_initial(data=b"x,,n=,r=abc"), id="bad-gs2-flag"),
    pytest.param(sasl_initial(data=b"n,,n=,r=a\0b"), id="nul-inside"),
    pytest.param(sasl_initial(data=b"n,,n=,r=" + b"a" * 5000), id="nonce-5000-bytes"),
    pytest.param(message(b"p", b"x" * 9000), id="message-over-8k"),
    pytest.param(b"p" + U32(0x7FFFFFFF), id="declared-length-huge"),
    pytest.param(b"p" + U32(-1), id="declared-length-negative"),
    pytest.param(query_message("select 1"), id="query-instead-of-sasl"),
])
def test_broken_sasl_initial_response(scram, blob):
    with GoodClient(scram):
        for _ in range(2):
            with sasl_start(scram) as c:
                send_quietly(c.sock, blob)
                expect_error(c.sock, {"08P01", "28000", "28P01"})
    assert scram.alive()


def sasl_to_final(p):
    """Run the exchange up to the client-final message; returns (conn, server nonce)."""
    c = sasl_start(p)
    c.send(sasl_initial(data=b"n,,n=,r=clientnonce0123456789"))
    kind, payload = c.read_msg()
    assert kind == "R" and struct.unpack("!I", payload[:4])[0] == 11, (kind, payload)
    attrs = dict(a.split("=", 1) for a in payload[4:].decode().split(","))
    assert attrs["r"].startswith("clientnonce0123456789")
    return c, attrs["r"]


FAKE_PROOF = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="


@pytest.mark.parametrize("make_final,sqlstates", [
    pytest.param(lambda r: "c=biws,r=%s,p=%s" % (r, FAKE_PROOF), {"28P01"}, id="bad-proof"),
    pytest.param(lambda r: "c=biws,r=%sX,p=%s" % (r, FAKE_PROOF), {"28P01", "08P01"},
                 id="bad-nonce"),
    pytest.param(lambda r: "c=biws,r=clientnonce0123456789,p=%s" % FAKE_PROOF,
                 {"28P01", "08P01"}, id="client-nonce-only"),
    pytest.param(lambda r: "c=eSws,r=%s,p=!!!notbase64!!!" % r, {"28P01", "08P01"},
                 id="proof-not-base64"),
    pytest.param(lambda r: "c=cD10bHM=,r=%s,p=%s" % (r, FAKE_PROOF), {"28P01", "08P01"},
                 id="channel-binding-mismatch"),
    pytest.param(lambda r: "r=%s" % r, {"28P01", "08P01"}, id="no-proof"),
    pytest.param(lambda r: "", {"28P01", "08P01"}, id="empty"),
    pytest.param(lambda r: "c=biws,r=%s,p=%s" % (r, "QUFB" * 400), {"28P01", "08P01"},
                 id="proof-too-long"),
])
def test_broken_sasl_client_final(scram, make_final, sqlstates):
    with GoodClient(scram):
        c, nonce = sasl_to_final(scram)
        with c:
            send_quietly(c.sock, message(b"p", make_final(nonce).encode()))
            expect_error(c.sock, sqlstates)


def test_sasl_final_with_bad_declared_length(scram):
    with GoodClient(scram):
        for blob in (b"p" + U32(-1), b"p" + U32(2), b"p" + U32(1 << 30)):
            c, _ = sasl_to_final(scram)
            with c:
                send_quietly(c.sock, blob)
                expect_error(c.sock, {"08P01"})


def test_sasl_messages_pipelined_in_one_write(scram):
    """client-first and a (wrong) client-final in one write: both are read, the login
    fails as it should instead of waiting for more bytes."""
    with GoodClient(scram):
        with sasl_start(scram) as c:
            final = "c=biws,r=clientnonce0123456789,p=%s" % FAKE_PROOF
            c.send(sasl_initial(data=b"n,,n=,r=clientnonce0123456789") +
                   message(b"p", final.encode()))
            kind, payload = c.read_msg()
            assert kind == "R", kind
            expect_error(c, {"28P01", "08P01"})


def test_md5_password_message_malformed(pooler):
    p = pooler(auth_type="md5", pool_size=2)
    with GoodClient(p):
        for blob in (message(b"p", b"md5abc"),            # no terminating NUL
                     message(b"p", b""),
                     b"p" + U32(-1)):
            with RawConn(p.host, p.port) as c:
                c.send(startup_message({"user": "md5user", "database": "app"}))
                kind, payload = c.read_msg()
                assert kind == "R" and struct.unpack("!I", payload[:4])[0] == 5
                send_quietly(c.sock, blob)
                expect_error(c.sock, {"08P01", "28P01"})


# ---- slow drips and floods -----------------------------------------------------------------

@pytest.mark.timeout(60)
def test_slow_drip_logins_are_closed_by_client_login_timeout(pooler):
    p = pooler(auth_type="scram-sha-256", pool_size=4,
               extra_pooler={"client_login_timeout": "1s"})
    data = startup_message({"user": "scramuser", "database": "app"})
    with GoodClient(p) as good:
        dripping = [socket.create_connection((p.host, p.port), timeout=5) for _ in range(20)]
        stalled = [sasl_start(p) for _ in range(5)]      # never answer the challenge
        t0 = time.monotonic()
        for i in range(3):                               # a byte every 0.3 s
            for s in dripping:
                send_quietly(s, data[i:i + 1])
            time.sleep(0.3)
        for s in dripping:
            kind, fields = answer(s, timeout=5)
            assert kind == "E" and fields.get("C") == "08P01", (kind, fields)
            assert "client_login_timeout" in fields.get("M", "")
            s.close()
        for c in stalled:
            kind, fields = answer(c.sock, timeout=5)
            assert kind == "E" and fields.get("C") == "08P01", (kind, fields)
            c.close()
        elapsed = time.monotonic() - t0
        assert elapsed < 6, "login timeouts took %.1f s" % elapsed
        served = good.done
        time.sleep(0.3)
        assert good.done > served


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


@pytest.mark.timeout(120)
def test_connection_flood_with_resets(trust):
    """2000 connections opened and reset (SO_LINGER 0), some after half a startup packet,
    in a few seconds: the good client is still served and the fds come back."""
    p = trust
    pid = p.proc.pid
    with logged_in(p) as c:
        c.simple_query("select 1")
    time.sleep(0.2)
    baseline = fd_count(pid)
    half = startup_message({"user": "app", "database": "app"})[:9]
    full = startup_message({"user": "app", "database": "app"})
    linger0 = struct.pack("ii", 1, 0)
    t0 = time.monotonic()
    with GoodClient(p) as good:
        for i in range(2000):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger0)
            s.settimeout(5)
            try:
                s.connect((p.host, p.port))
                if i % 3 == 1:
                    send_quietly(s, half)
                elif i % 3 == 2:
                    send_quietly(s, full)
            except OSError:
                pass
            s.close()
        flood_s = time.monotonic() - t0
        time.sleep(0.5)
    assert good.done > 0
    after = wait_for(lambda: (lambda n: n if n <= baseline + 2 else None)(fd_count(pid)),
                     timeout=10, what="the pooler's fd count to return to %d" % baseline)
    print("flood of 2000 resets took %.1f s; fds %d before, %d after; good client ran %d"
          " queries" % (flood_s, baseline, after, good.done))
    assert flood_s < 60


# ---- clients that vanish mid-COPY and mid-result ----------------------------------------

@pytest.fixture
def vanish_table(cluster):
    cluster.psql(cluster.primary_port, "drop table if exists vanish_t;"
                 " create table vanish_t(x int, pad text)", user="app")
    cluster.wait_replay()
    yield
    cluster.psql(cluster.primary_port, "drop table if exists vanish_t", user="app")


def stuck_backends(cluster):
    """App backends idle in a transaction or still running a COPY/big select of ours."""
    rows = cluster.app_backends() + cluster.app_backends(port=cluster.replica_port)
    return [r for r in rows
            if (r[1] or "").startswith("idle in transaction")
            or (r[1] == "active" and ("vanish" in (r[3] or "") or "generate_series" in (r[3] or "")))]


def rst_close(c):
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()


@pytest.mark.parametrize("in_tx", [False, True], ids=["autocommit", "in-transaction"])
@pytest.mark.parametrize("how", ["fin", "rst"])
def test_client_vanishes_mid_copy_in(pooler, cluster, vanish_table, in_tx, how):
    p = pooler(auth_type="trust", pool_size=1)
    with GoodClient(p):
        c = logged_in(p)
        if in_tx:
            c.simple_query("begin")
        c.send(query_message("copy vanish_t from stdin"))
        kind, _ = c.read_msg()
        assert kind == "G", kind
        row = b"1\t" + b"x" * 100 + b"\n"
        for _ in range(50):
            c.send(message(b"d", row * 20))
        rst_close(c) if how == "rst" else c.close()
        time.sleep(0.2)
    wait_for(lambda: not stuck_backends(cluster), timeout=5, what="no stuck app backend")
    assert cluster.scalar("select count(*) from vanish_t") == 0
    with p.connect() as conn:      # the single pooled server (or its successor) is clean
        assert conn.execute("select count(*) from vanish_t").fetchone() == (0,)
        conn.execute("insert into vanish_t values (1, 'ok')")
    assert cluster.scalar("select count(*) from vanish_t") == 1


@pytest.mark.parametrize("sql", [
    "copy (select g, repeat('x', 200) from generate_series(1, 2000000) g) to stdout",
    "select g, repeat('x', 200) from generate_series(1, 2000000) g",
], ids=["copy-out", "big-select"])
@pytest.mark.parametrize("how", ["fin", "rst"])
def test_client_vanishes_mid_result(pooler, cluster, sql, how):
    p = pooler(auth_type="trust", pool_size=1)
    with GoodClient(p):
        for in_tx in (False, True):
            c = logged_in(p)
            if in_tx:
                c.simple_query("begin")
            c.send(query_message(sql))
            got = 0
            while got < 200000:
                chunk = c.sock.recv(65536)
                assert chunk, "result ended early"
                got += len(chunk)
            rst_close(c) if how == "rst" else c.close()
            time.sleep(0.2)
    wait_for(lambda: not stuck_backends(cluster), timeout=10,
             what="the abandoned query to stop on the primary")
    with p.connect() as conn:
        assert conn.execute("select 42").fetchone() == (42,)
        assert conn.execute("select pg_current_xact_id_if_assigned() is null").fetchone() == (True,)


# ---- everything in one write ---------------------------------------------------------------

def read_all_until_close(sock, timeout=5.0):
    sock.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data


@pytest.mark.parametrize("code", [SSL_CODE, 80877104], ids=["ssl", "gssenc"])
def test_a_second_encryption_request_is_refused_as_postgresql_does(trust, code):
    """One SSLRequest (or GSSENCRequest) gets 'N'; a second of the same kind is no protocol
    at all: FATAL 0A000, as PostgreSQL answers. One of each kind is fine."""
    request = struct.pack("!II", 8, code)
    with GoodClient(trust):
        with socket.create_connection((trust.host, trust.port), timeout=5) as bad:
            bad.sendall(request)
            assert bad.recv(1) == b"N"
            send_quietly(bad, request)
            fields = expect_error(bad, {"0A000"})
            assert "unsupported frontend protocol" in fields["M"], fields
        other = 80877104 if code == SSL_CODE else SSL_CODE
        with RawConn(trust.host, trust.port) as c:
            for req in (request, struct.pack("!II", 8, other)):
                c.sock.sendall(req)
                assert c.sock.recv(1) == b"N"
            c.send(startup_message({"user": "app", "database": "app"}))
            c.finish_login()
            rows, _, errors = c.simple_query("select 1")
            assert rows == [["1"]] and not errors, errors


@pytest.mark.parametrize("pool_mode", ["transaction", "session"])
def test_startup_queries_and_terminate_in_one_write(pooler, cluster, pool_mode):
    """SSLRequest, startup, two queries and Terminate in a single write: like PostgreSQL,
    the pooler answers both queries before it closes, and the transaction left open is not
    left behind on the server."""
    p = pooler(auth_type="trust", pool_size=1, pool_mode=pool_mode)
    with GoodClient(p):
        for i in range(3):
            with socket.create_connection((p.host, p.port), timeout=5) as s:
                s.sendall(struct.pack("!II", 8, SSL_CODE) +
                          startup_message({"user": "app", "database": "app"}) +
                          query_message("select 'first%d'" % i) +
                          query_message("begin; select 'second%d'" % i) +
                          message(b"X"))
                data = read_all_until_close(s)
            assert data[:1] == b"N", data[:10]
            assert b"first%d" % i in data and b"second%d" % i in data, data[-200:]
            assert data.endswith(b"Z\0\0\0\5T"), data[-20:]
    if pool_mode == "transaction":  # rolled back and kept (session mode closes it)
        assert "client left while the server was busy" not in p.log()
    wait_for(lambda: not [r for r in cluster.app_backends()
                          if (r[1] or "").startswith("idle in transaction")],
             timeout=5, what="no app backend idle in transaction")


def test_stray_copy_and_flush_messages_do_not_hold_a_server(pooler):
    """CopyData/CopyDone/CopyFail outside a COPY and a lone Flush get no answer from
    PostgreSQL; the one server of the pool must still serve the next client at once."""
    p = pooler(auth_type="trust", pool_size=1, with_replica=False)
    with GoodClient(p):
        for kind, body in ((b"d", b"abc"), (b"c", b""), (b"f", b"oops\0"), (b"H", b"")):
            with logged_in(p) as a:
                a.send(message(kind, body))
                time.sleep(0.1)
                with RawConn(p.host, p.port, timeout=3) as b:
                    b.login_trust("app", "app")
                    rows, _, errors = b.simple_query("select 1")
                    assert rows == [["1"]] and not errors
                rows, _, errors = a.simple_query("select 2")
                assert rows == [["2"]] and not errors


def test_thousands_of_pipelined_queries(trust):
    with GoodClient(trust):
        with logged_in(trust) as c:
            sender = threading.Thread(target=c.send,
                                      args=(query_message("select 1") * 5000,), daemon=True)
            sender.start()
            ready = 0
            while ready < 5000:
                kind, _ = c.read_msg()
                assert kind != "E"
                ready += kind == "Z"
            sender.join(5)
            rows, _, errors = c.simple_query("select 'after'")
            assert rows == [["after"]] and not errors


# ---- clients that leave while they wait ---------------------------------------------------

def test_clients_vanish_while_queued_for_a_server(pooler, cluster):
    """With the only server busy, 50 clients queue a query and vanish; when the server
    frees up it goes to a live client at once and never to a dead one."""
    p = pooler(auth_type="trust", pool_size=1, with_replica=False)
    with logged_in(p) as holder:
        _, _, errors = holder.simple_query("begin; select 1")
        assert not errors
        for i in range(50):
            c = logged_in(p)
            c.send(query_message("select %d" % i))
            if i % 2:
                rst_close(c)
            else:
                c.close()
        time.sleep(0.3)
        holder.simple_query("commit")
    t0 = time.monotonic()
    with logged_in(p) as c:
        rows, _, errors = c.simple_query("select 'served'")
        assert rows == [["served"]] and not errors
    assert time.monotonic() - t0 < 2


def test_cancel_request_flood_with_forged_keys(trust):
    with GoodClient(trust):
        with logged_in(trust) as victim:
            victim.send(query_message("select pg_sleep(0.5), 'not cancelled'"))
            for i in range(500):
                with socket.create_connection((trust.host, trust.port), timeout=5) as s:
                    pid, key = victim.backend_key
                    s.sendall(struct.pack("!IIII", 16, CANCEL_CODE, (pid + 1 + i) & 0x7FFFFFFF,
                                          key ^ 0x5A5A))
                    assert wait_closed(s), "cancel request connection left open"
            msgs, last = victim.read_until("Z")
            assert not [m for m in msgs if m[0] == "E"], msgs


# ---- messages larger than the socket's high-water mark ------------------------------------

@pytest.mark.parametrize("pool_mode", ["transaction", "session"])
@pytest.mark.parametrize("prepare", [False, True], ids=["unnamed", "named"])
def test_parse_larger_than_the_read_buffer_limit(pooler, prepare, pool_mode):
    """A Parse is kept whole (named statements are stored to prepare them again on other
    servers): ones of 300 kB to 2 MB, beyond the 256 kB the router looks ahead and the
    512 kB at which the pooler stops reading, must go through (they used to overflow the
    stack, or hang a session-mode client with the pooler spinning)."""
    trust = pooler(auth_type="trust", pool_size=4, pool_mode=pool_mode)
    with GoodClient(trust):
        with trust.connect() as conn:
            for n in (300_000, 600_000, 2_000_000):
                sql = "select length(%s::text) /*" + "x" * n + "*/"
                row = conn.execute(sql, ("abcd",), prepare=prepare).fetchone()
                assert row == (4,)
                if prepare:
                    assert conn.execute(sql, ("ab",), prepare=True).fetchone() == (2,)
    assert trust.alive()


def test_admin_query_larger_than_the_read_buffer_limit(pooler):
    p = pooler(auth_type="trust")
    with RawConn(p.host, p.port) as c:
        c.login_trust("admin", "pooler")
        c.send(query_message("show help /*" + "x" * 700_000))
        msgs, last = c.read_until("Z")
        assert any(m[0] == "E" for m in msgs), msgs[:3]
        rows, _, errors = c.simple_query("show clients")
        assert not errors and rows


# ---- malformed message bodies ---------------------------------------------------------------

MALFORMED_BODIES = {
    "query-without-nul": message(b"Q", b"select 1"),
    "query-empty-body": message(b"Q", b""),
    "query-two-strings": message(b"Q", b"select 1\0select 2\0"),
    "query-open-comment": message(b"Q", b"/* select 1"),
    "query-open-quote": message(b"Q", b"select 'abc"),
    "query-open-dollar-quote": message(b"Q", b"select $$abc"),
    "parse-name-without-nul": message(b"P", b"stmt") + message(b"S"),
    "parse-name-only": message(b"P", b"stmt\0") + message(b"S"),
    "parse-query-without-nul": message(b"P", b"stmt\0select 1") + message(b"S"),
    "parse-truncated-param-count": message(b"P", b"\0select 1\0\xff") + message(b"S"),
    "bind-empty": message(b"B", b"") + message(b"S"),
    "bind-statement-without-nul": message(b"B", b"\0stmt") + message(b"S"),
    "describe-empty": message(b"D", b"") + message(b"S"),
    "describe-name-without-nul": message(b"D", b"Sabc") + message(b"S"),
    "close-name-without-nul": message(b"C", b"Sabc") + message(b"S"),
    "execute-empty": message(b"E", b"") + message(b"S"),
    "function-call-empty": message(b"F", b""),
}


@pytest.mark.parametrize("blob", [pytest.param(b, id=i) for i, b in MALFORMED_BODIES.items()])
def test_malformed_message_bodies(trust, blob):
    """The pooler passes them on (it reads only what it needs, within the message) and the
    server refuses them with 08P01; the session goes on."""
    with GoodClient(trust):
        with logged_in(trust) as c:
            c.send(blob)
            msgs, last = c.read_until("Z")
            errors = [parse_fields(p) for k, p in msgs if k == "E"]
            assert [e.get("C") for e in errors] == ["08P01"], msgs
            rows, _, errors = c.simple_query("select 'still here'")
            assert rows == [["still here"]] and not errors


@pytest.mark.parametrize("size", [600_000, 1_000_000, 3_000_000])
def test_replica_row_larger_than_the_read_buffer_limit(pooler, cluster, size):
    """A read on a replica is guarded: its replies are held until the first row, in case
    the replica refuses the statement as a write, so that row is read whole (up to 1 MB).
    Rows past the 512 kB read high-water mark used to hang the client."""
    p = pooler(auth_type="trust", node_overrides={"primary": {"weight": 0}},
               extra_pooler={"health_interval": "200ms"})

    def on_replica():
        with logged_in(p) as c:
            return c.simple_query("select inet_server_port()")[0] == [[str(cluster.replica_port)]]
    wait_for(on_replica, timeout=15, what="reads to reach the replica")
    with GoodClient(p):
        for _ in range(3):
            with RawConn(p.host, p.port, timeout=10) as c:
                c.login_trust("app", "app")
                rows, _, errors = c.simple_query(
                    "select repeat('x', %d), inet_server_port()" % size)
                assert not errors, errors
                assert len(rows[0][0]) == size and rows[0][1] == str(cluster.replica_port)


def test_max_packet_size_refuses_a_longer_message_before_its_body(pooler):
    """max_packet_size = 64 kB: a 100 kB Query is refused (08P01) as soon as its header
    arrives, while one of 60 kB runs."""
    p = pooler(auth_type="trust", pool_size=2, with_replica=False,
               extra_pooler={"max_packet_size": 65536})
    with logged_in(p) as c:
        sql = "select length('%s')" % ("x" * 60000)
        _, tags, errors = c.simple_query(sql)
        assert not errors and tags == ["SELECT 1"], (tags, errors)
    with logged_in(p) as c:
        send_quietly(c.sock, b"Q" + U32(100000 + 4) + b"select")  # the header is enough
        fields = expect_error(c.sock, {"08P01"})
        assert "length" in fields.get("M", ""), fields
    assert p.alive()
