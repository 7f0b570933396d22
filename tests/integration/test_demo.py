"""`make run`'s demo: its banner's lines work as printed (connect, admin console, metrics
URL), and Ctrl-C stops everything."""

import os
import re
import select
import signal
import subprocess
import sys
import time
import urllib.request

import psycopg
import pytest

from conftest import POOLER_BIN, REPO_ROOT


def read_until(proc, marker, timeout, seen=""):
    """The demo's output so far (seen, then more) once it holds marker. Reads the pipe's
    descriptor directly: a buffered reader could hold the marker while select() waits."""
    out = seen
    deadline = time.monotonic() + timeout
    fd = proc.stdout.fileno()
    while marker not in out:
        left = deadline - time.monotonic()
        assert left > 0, "no %r in the demo's output:\n%s" % (marker, out)
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 65536)
            assert chunk or marker in out, "the demo exited; output:\n%s" % out
            out += chunk.decode(errors="replace")
    return out


@pytest.mark.timeout(120)
def test_demo_banner_lines_work_and_ctrl_c_stops():
    proc = subprocess.Popen([sys.executable, os.path.join(REPO_ROOT, "tests", "demo.py")],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, POOLER_BIN=POOLER_BIN))
    try:
        banner = read_until(proc, "To stop", 90)
        connect = re.search(r'connect:\s+psql "([^"]+)"', banner).group(1)
        admin = re.search(r'admin console:\s+psql "([^"]+)" -c "SHOW POOLS"', banner).group(1)
        url = re.search(r"metrics:\s+curl (http://\S+/metrics)", banner).group(1)
        assert "Ctrl-C" in banner

        with psycopg.connect(connect, autocommit=True, connect_timeout=5) as c:
            assert c.execute("select 1").fetchone() == (1,)
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as c:
            cur = psycopg.ClientCursor(c)
            cur.execute("SHOW POOLS")
            assert "cl_active" in [d.name for d in cur.description]
        deadline = time.monotonic() + 5
        while True:
            with urllib.request.urlopen(url, timeout=5) as r:
                text = r.read().decode()
            if "pooler_up 1" in text or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert "pooler_up 1" in text

        proc.send_signal(signal.SIGINT)
        rest = read_until(proc, "stopped; temporary files removed.", 60, banner)
        assert proc.wait(timeout=30) == 0, rest
    finally:
        if proc.poll() is None:  # a failed check: still stop the servers the demo started
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)
