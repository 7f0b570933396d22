"""Wire-protocol edge cases at startup, spoken with raw sockets (auth_type = trust)."""

import socket
import struct
import time

import pytest

from pgwire import (PROTOCOL_3_0, RawConn, gssenc_request, ssl_request,
                    startup_message, wait_closed)


@pytest.fixture
def p(pooler):
    return pooler(auth_type="trust")


def assert_serves(p):
    """A well-behaved client can still log in and query."""
    with RawConn(p.host, p.port) as c:
        c.login_trust("app", "app")
        rows, tags, errors = c.simple_query("select 6 * 7")
        assert rows == [["42"]] and not errors


def test_plain_v3_startup_and_query(p):
    with RawConn(p.host, p.port) as c:
        status = c.login_trust("app", "app")
        assert status == b"I"
        assert c.backend_key is not None, "no BackendKeyData"
        assert c.params.get("server_version", "").startswith("15")
        rows, tags, errors = c.simple_query("select 'hello'")
        assert rows == [["hello"]] and tags == ["SELECT 1"] and not errors


@pytest.mark.parametrize("version", [(2 << 16) | 0, (4 << 16) | 0, (1 << 16) | 0])
def test_unsupported_protocol_version_is_rejected(p, version):
    with RawConn(p.host, p.port) as c:
        c.send(startup_message({"user": "app", "database": "app"}, version=version))
        kind, fields = c.eof_or_error()
        assert kind == "E", "expected ErrorResponse, got %r" % kind
        # v3 ErrorResponse with a SQLSTATE, or (to a v2 client) PostgreSQL's v2-style error
        assert fields.get("C") in ("08P01", "0A000") or (
            fields.get("v2") and "protocol" in fields.get("M", "")), fields
        assert wait_closed(c.sock), "connection left open after protocol error"
    assert_serves(p)


def test_newer_minor_version_is_negotiated_or_rejected(p):
    """3.99: PostgreSQL answers NegotiateProtocolVersion ('v') and carries on with 3.0;
    a clean ErrorResponse is acceptable too."""
    with RawConn(p.host, p.port) as c:
        c.send(startup_message({"user": "app", "database": "app"}, version=(3 << 16) | 99))
        kind, payload = c.eof_or_error()
        if kind == "E":
            assert payload.get("C") in ("08P01", "0A000"), payload
        else:
            assert kind in ("v", "R"), "unexpected reply %r" % kind
            c.finish_login()
            rows, _, errors = c.simple_query("select 1")
            assert rows == [["1"]] and not errors


def test_ssl_request_answered_N_then_startup_on_same_socket(p):
    with RawConn(p.host, p.port) as c:
        c.send(ssl_request())
        assert c.read_bytes(1) == b"N"
        c.login_trust("app", "app")
        rows, _, errors = c.simple_query("select 1")
        assert rows == [["1"]] and not errors


def test_gssenc_request_answered_N_then_startup_on_same_socket(p):
    with RawConn(p.host, p.port) as c:
        c.send(gssenc_request())
        assert c.read_bytes(1) == b"N"
        c.login_trust("app", "app")
        rows, _, errors = c.simple_query("select 1")
        assert rows == [["1"]] and not errors


def test_startup_without_user_is_rejected(p):
    with RawConn(p.host, p.port) as c:
        c.send(startup_message({"database": "app"}))
        kind, fields = c.eof_or_error()
        assert kind == "E", "expected ErrorResponse, got %r" % kind
        assert fields.get("C") in ("08P01", "28000"), fields
    assert_serves(p)


@pytest.mark.parametrize("blob", [
    pytest.param(struct.pack("!I", 0x7FFFFFFF) + struct.pack("!I", PROTOCOL_3_0), id="huge-length"),
    pytest.param(struct.pack("!I", 4), id="length-4"),
    pytest.param(struct.pack("!I", 0), id="length-0"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", id="http"),
    pytest.param(bytes(range(256)) * 4, id="binary-garbage"),
    pytest.param(struct.pack("!II", 16, PROTOCOL_3_0) + b"user\0app", id="unterminated-params"),
])
def test_garbage_startup_closes_cleanly_while_others_are_served(p, blob):
    with RawConn(p.host, p.port) as good:
        good.login_trust("app", "app")
        with socket.create_connection((p.host, p.port), timeout=5) as bad:
            try:
                bad.sendall(blob)
            except (BrokenPipeError, ConnectionResetError):
                pass
            bad.settimeout(5)
            try:
                data = bad.recv(65536)
            except ConnectionResetError:
                data = b""
            except socket.timeout:
                pytest.fail("pooler neither answered nor closed after %d bogus bytes" % len(blob))
            if data:
                assert data[:1] == b"E", "unexpected answer %r" % data[:20]
                assert wait_closed(bad), "connection left open after an error"
        rows, _, errors = good.simple_query("select 'alive'")
        assert rows == [["alive"]] and not errors
    assert_serves(p)
    assert p.alive()


def test_half_sent_startup_does_not_block_others(p):
    """A client that sends half a startup packet and stalls must not stop the pooler
    from serving others meanwhile."""
    stall = socket.create_connection((p.host, p.port), timeout=5)
    try:
        stall.sendall(startup_message({"user": "app", "database": "app"})[:7])
        t0 = time.monotonic()
        for _ in range(5):
            assert_serves(p)
        assert time.monotonic() - t0 < 5
    finally:
        stall.close()


def test_terminate_after_login_closes(p):
    with RawConn(p.host, p.port) as c:
        c.login_trust("app", "app")
        c.send(b"X" + struct.pack("!I", 4))
        assert wait_closed(c.sock), "pooler did not close after Terminate"
    assert_serves(p)


def test_unknown_message_type_after_login_gets_error(p):
    """An unknown frontend message type is a protocol violation: ErrorResponse (or close)."""
    with RawConn(p.host, p.port) as c:
        c.login_trust("app", "app")
        c.send(b"?" + struct.pack("!I", 4))
        kind, fields = c.eof_or_error()
        assert kind in ("E", "EOF"), kind
        if kind == "E":
            assert fields.get("C") == "08P01", fields
    assert_serves(p)
