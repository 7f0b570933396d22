"""Open many idle PostgreSQL client connections and hold them (benchmark helper).

Each connection does the v3 startup and authentication (trust, cleartext, MD5 or
SCRAM-SHA-256 without channel binding) and waits for ReadyForQuery, then stays idle
until released. Standard library only.

Used by bench/run to measure memory per idle client connection of a pooler:

    async with IdleClients(host, port, user, password, dbname) as ic:
        ok = await ic.open(n)          # number of connections that reached ReadyForQuery
        ...                            # measure the pooler's RSS here
    # all connections closed

Standalone:  python3 bench/idle_clients.py --port 6432 -n 1000 --hold 10
"""

import argparse
import asyncio
import base64
import hashlib
import hmac
import os
import struct

PROTOCOL_V3 = 196608


class ProtocolError(Exception):
    pass


def _msg(kind, payload):
    return kind + struct.pack("!I", len(payload) + 4) + payload


def startup_message(user, dbname, app_name="bench-idle"):
    params = b""
    for k, v in (("user", user), ("database", dbname), ("application_name", app_name)):
        params += k.encode() + b"\0" + v.encode() + b"\0"
    payload = struct.pack("!I", PROTOCOL_V3) + params + b"\0"
    return struct.pack("!I", len(payload) + 4) + payload


class _ScramCache:
    """SaltedPassword depends only on (password, salt, iterations): compute it once."""

    def __init__(self):
        self._cache = {}

    def salted(self, password, salt, iterations):
        key = (password, salt, iterations)
        v = self._cache.get(key)
        if v is None:
            v = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
            self._cache[key] = v
        return v


_SCRAM = _ScramCache()


def _hmac(key, data):
    return hmac.new(key, data, hashlib.sha256).digest()


async def _read_message(reader):
    head = await reader.readexactly(5)
    kind = head[:1]
    (length,) = struct.unpack("!I", head[1:])
    if length < 4 or length > 1 << 24:
        raise ProtocolError("bad message length %d" % length)
    body = await reader.readexactly(length - 4)
    return kind, body


def _error_text(body):
    fields = {}
    for part in body.split(b"\0"):
        if part:
            fields[part[:1].decode()] = part[1:].decode(errors="replace")
    return "%s %s: %s" % (fields.get("S", "ERROR"), fields.get("C", "?"), fields.get("M", ""))


async def login(reader, writer, user, password, dbname):
    """Startup + authentication; returns when ReadyForQuery arrives."""
    writer.write(startup_message(user, dbname))
    await writer.drain()
    scram = None
    while True:
        kind, body = await _read_message(reader)
        if kind == b"E":
            raise ProtocolError(_error_text(body))
        if kind == b"Z":
            return
        if kind != b"R":
            continue  # ParameterStatus, BackendKeyData, NoticeResponse
        (code,) = struct.unpack("!I", body[:4])
        if code == 0:  # AuthenticationOk
            continue
        if code == 3:  # cleartext
            writer.write(_msg(b"p", password.encode() + b"\0"))
        elif code == 5:  # MD5
            inner = hashlib.md5(password.encode() + user.encode()).hexdigest()
            outer = hashlib.md5(inner.encode() + body[4:8]).hexdigest()
            writer.write(_msg(b"p", b"md5" + outer.encode() + b"\0"))
        elif code == 10:  # SASL: list of mechanisms
            mechs = [m for m in body[4:].split(b"\0") if m]
            if b"SCRAM-SHA-256" not in mechs:
                raise ProtocolError("no SCRAM-SHA-256 among %r" % mechs)
            nonce = base64.b64encode(os.urandom(18)).decode()
            first_bare = "n=,r=" + nonce
            first = ("n,," + first_bare).encode()
            payload = b"SCRAM-SHA-256\0" + struct.pack("!i", len(first)) + first
            writer.write(_msg(b"p", payload))
            scram = {"nonce": nonce, "first_bare": first_bare}
        elif code == 11:  # SASLContinue: server-first-message
            if scram is None:
                raise ProtocolError("SASLContinue before SASL")
            server_first = body[4:].decode()
            attrs = dict(item.split("=", 1) for item in server_first.split(","))
            if not attrs["r"].startswith(scram["nonce"]):
                raise ProtocolError("server nonce does not extend ours")
            salted = _SCRAM.salted(password, base64.b64decode(attrs["s"]), int(attrs["i"]))
            client_key = _hmac(salted, b"Client Key")
            stored_key = hashlib.sha256(client_key).digest()
            final_bare = "c=biws,r=" + attrs["r"]
            auth_message = ",".join((scram["first_bare"], server_first, final_bare)).encode()
            signature = _hmac(stored_key, auth_message)
            proof = bytes(a ^ b for a, b in zip(client_key, signature))
            scram["server_sig"] = _hmac(_hmac(salted, b"Server Key"), auth_message)
            final = final_bare + ",p=" + base64.b64encode(proof).decode()
            writer.write(_msg(b"p", final.encode()))
        elif code == 12:  # SASLFinal
            attrs = dict(item.split("=", 1) for item in body[4:].decode().split(","))
            if scram is None or base64.b64decode(attrs.get("v", "")) != scram["server_sig"]:
                raise ProtocolError("bad server signature")
        else:
            raise ProtocolError("unsupported authentication request %d" % code)
        await writer.drain()


class IdleClients:
    def __init__(self, host, port, user, password, dbname, concurrency=64, timeout=30.0):
        self.host, self.port = host, port
        self.user, self.password, self.dbname = user, password, dbname
        self.concurrency = concurrency
        self.timeout = timeout
        self.conns = []      # (reader, writer)
        self.errors = {}     # message -> count

    async def _one(self, sem):
        async with sem:
            writer = None
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(self.host, self.port), self.timeout)
                await asyncio.wait_for(
                    login(reader, writer, self.user, self.password, self.dbname),
                    self.timeout)
                self.conns.append((reader, writer))
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError,
                    ProtocolError, ValueError, KeyError) as e:
                msg = "%s: %s" % (type(e).__name__, e)
                self.errors[msg] = self.errors.get(msg, 0) + 1
                if writer is not None:
                    writer.close()

    async def open(self, n):
        """Open n connections (at most `concurrency` logging in at once); return how many
        reached ReadyForQuery."""
        sem = asyncio.Semaphore(self.concurrency)
        await asyncio.gather(*(self._one(sem) for _ in range(n)))
        return len(self.conns)

    async def close(self):
        for _, w in self.conns:
            try:
                w.write(_msg(b"X", b""))
            except Exception:
                pass
            w.close()
        for _, w in self.conns:
            try:
                await w.wait_closed()
            except Exception:
                pass
        self.conns = []

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=6432)
    ap.add_argument("--user", default="app")
    ap.add_argument("--password", default="app")
    ap.add_argument("--dbname", default="app")
    ap.add_argument("-n", type=int, default=1000)
    ap.add_argument("--hold", type=float, default=5.0, help="seconds to hold them open")
    a = ap.parse_args()

    async def run():
        async with IdleClients(a.host, a.port, a.user, a.password, a.dbname) as ic:
            ok = await ic.open(a.n)
            print("%d of %d connections idle; errors: %s" % (ok, a.n, ic.errors or "none"))
            await asyncio.sleep(a.hold)

    asyncio.run(run())


if __name__ == "__main__":
    main()
