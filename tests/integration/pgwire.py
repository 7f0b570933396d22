"""Minimal PostgreSQL v3 wire-protocol client pieces for raw-socket tests,
and helpers that build auth-file secrets (md5 and SCRAM-SHA-256 verifiers)."""

import base64
import hashlib
import hmac
import os
import socket
import struct
import time

PROTOCOL_3_0 = 3 << 16          # 196608
SSL_REQUEST_CODE = 80877103
GSSENC_REQUEST_CODE = 80877104
CANCEL_REQUEST_CODE = 80877102


# ---- auth-file secrets -----------------------------------------------------------

def md5_secret(user, password):
    """PostgreSQL's stored md5 form: 'md5' + md5hex(password + user)."""
    return "md5" + hashlib.md5((password + user).encode()).hexdigest()


def scram_verifier(password, salt=None, iterations=4096):
    """SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey> as PostgreSQL stores it (RFC 5802/7677)."""
    salt = salt if salt is not None else os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    b64 = lambda b: base64.b64encode(b).decode()
    return "SCRAM-SHA-256$%d:%s$%s:%s" % (iterations, b64(salt), b64(stored_key), b64(server_key))


# ---- message builders ------------------------------------------------------------

def startup_message(params, version=PROTOCOL_3_0):
    body = struct.pack("!I", version)
    for k, v in params.items():
        body += k.encode() + b"\0" + v.encode() + b"\0"
    body += b"\0"
    return struct.pack("!I", len(body) + 4) + body


def ssl_request():
    return struct.pack("!II", 8, SSL_REQUEST_CODE)


def gssenc_request():
    return struct.pack("!II", 8, GSSENC_REQUEST_CODE)


def cancel_request(pid, key):
    return struct.pack("!IIII", 16, CANCEL_REQUEST_CODE, pid, key)


def message(kind, payload=b""):
    return kind + struct.pack("!I", len(payload) + 4) + payload


def query_message(sql):
    return message(b"Q", sql.encode() + b"\0")


def terminate_message():
    return message(b"X")


def parse_fields(payload):
    """ErrorResponse/NoticeResponse payload -> {'C': sqlstate, 'M': message, ...}."""
    fields = {}
    for part in payload.split(b"\0"):
        if part:
            fields[chr(part[0])] = part[1:].decode(errors="replace")
    return fields



def parse_data_row(payload):
    """The column values of a DataRow body, as text (None for NULL)."""
    (n,) = struct.unpack("!H", payload[:2])
    pos, row = 2, []
    for _ in range(n):
        (ln,) = struct.unpack("!i", payload[pos:pos + 4])
        pos += 4
        if ln < 0:
            row.append(None)
        else:
            row.append(payload[pos:pos + ln].decode())
            pos += ln
    return row

class ConnectionClosed(Exception):
    pass


class RawConn:
    """A blocking socket speaking just enough of the protocol for tests."""

    def __init__(self, host, port, timeout=5.0, source=None, rcvbuf=None):
        """source: local address to connect from (e.g. "127.0.0.2"), to look like another
        client machine on loopback. rcvbuf: a small receive buffer makes a slow reader."""
        if rcvbuf is None:
            self.sock = socket.create_connection(
                (host, port), timeout=timeout, source_address=(source, 0) if source else None)
        else:
            self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.settimeout(timeout)
            if source:
                self.sock.bind((source, 0))
            self.sock.connect((host, port))
        self.sock.settimeout(timeout)
        self.buf = b""
        self.params = {}
        self.backend_key = None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, n):
        while len(self.buf) < n:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                raise ConnectionClosed("connection closed by peer")
            self.buf += chunk

    def read_bytes(self, n):
        self._fill(n)
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_msg(self):
        """Next backend message as (type_char, payload). Raises ConnectionClosed on EOF."""
        self._fill(5)
        kind = chr(self.buf[0])
        (length,) = struct.unpack("!I", self.buf[1:5])
        if length < 4 or length > 64 * 1024 * 1024:
            raise ValueError("implausible message length %d for %r" % (length, kind))
        self._fill(1 + length)
        payload = self.buf[5:1 + length]
        self.buf = self.buf[1 + length:]
        return kind, payload

    def read_until(self, kinds, limit=10000):
        """Read messages until one whose type is in `kinds`; returns (all_msgs, last)."""
        msgs = []
        for _ in range(limit):
            m = self.read_msg()
            msgs.append(m)
            if m[0] in kinds:
                return msgs, m
        raise AssertionError("no message of type %r within %d messages" % (kinds, limit))

    def eof_or_error(self, timeout=5.0):
        """After a bad request: return ('E', fields) if an ErrorResponse came first,
        ('EOF', None) if the peer just closed. Anything else is returned as-is.
        Raises socket.timeout if the peer neither answers nor closes."""
        self.sock.settimeout(timeout)
        try:
            self._fill(5)
        except ConnectionClosed:
            return "EOF", None
        if self.buf[:1] == b"E" and struct.unpack("!I", self.buf[1:5])[0] > 64 * 1024:
            # a protocol-2 style error (PostgreSQL answers a v2 startup this way):
            # 'E' followed by a NUL-terminated text, no length word
            try:
                while b"\0" not in self.buf[1:]:
                    self._fill(len(self.buf) + 1)
            except ConnectionClosed:
                pass
            text = self.buf[1:].split(b"\0")[0].decode(errors="replace")
            self.buf = b""
            return "E", {"M": text, "v2": True}
        try:
            kind, payload = self.read_msg()
        except ConnectionClosed:
            return "EOF", None
        if kind == "E":
            return "E", parse_fields(payload)
        return kind, payload

    def login_trust(self, user, database, extra=None):
        """Send a v3 startup and expect AuthenticationOk without a password, then
        read ParameterStatus/BackendKeyData up to ReadyForQuery."""
        params = {"user": user, "database": database}
        params.update(extra or {})
        self.send(startup_message(params))
        return self.finish_login()

    def finish_login(self):
        while True:
            kind, payload = self.read_msg()
            if kind == "R":
                (code,) = struct.unpack("!I", payload[:4])
                if code != 0:
                    raise AssertionError("server asked for authentication code %d" % code)
            elif kind == "S":
                k, v, _ = payload.split(b"\0", 2)
                self.params[k.decode()] = v.decode()
            elif kind == "K":
                self.backend_key = struct.unpack("!II", payload[:8])
            elif kind == "Z":
                return payload
            elif kind == "E":
                raise AssertionError("login failed: %r" % parse_fields(payload))
            elif kind in ("N", "v"):
                pass
            else:
                raise AssertionError("unexpected message %r during login" % kind)

    def simple_query(self, sql):
        """Run one simple query; return (rows as lists of str/None, command tags, errors)."""
        self.send(query_message(sql))
        rows, tags, errors = [], [], []
        while True:
            kind, payload = self.read_msg()
            if kind == "D":
                rows.append(parse_data_row(payload))
            elif kind == "C":
                tags.append(payload.rstrip(b"\0").decode())
            elif kind == "E":
                errors.append(parse_fields(payload))
            elif kind == "Z":
                return rows, tags, errors


def wait_closed(sock, timeout=5.0):
    """True if the peer closes `sock` (EOF/reset) within timeout; False on timeout.
    Data received meanwhile is discarded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            return True
        if not chunk:
            return True
    return False
