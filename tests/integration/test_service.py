"""Running under a service manager: readiness and state over $NOTIFY_SOCKET (systemd's
sd_notify datagrams), the pidfile, the systemd unit, the man pages, `make install`."""

import os
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest

import pgcluster
from conftest import POOLER_BIN, REPO_ROOT, SANITIZER_MARKERS, write_ini


@pytest.fixture(autouse=True)
def _no_sanitizer_reports(tmp_path):
    """The daemons these tests start write to pooler.stderr files: none may hold a
    sanitizer report."""
    yield
    for log in tmp_path.rglob("pooler.stderr"):
        text = log.read_text(errors="replace")
        for marker in SANITIZER_MARKERS:
            assert marker not in text, "%s:\n%s" % (log, text[-3000:])


class Manager:
    """A stand-in for systemd: an AF_UNIX datagram socket the daemon reports to."""

    def __init__(self, directory):
        self.path = os.path.join(directory, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)

    def next(self, timeout=10.0):
        """The next datagram as {key: value}; fails after timeout seconds."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096).decode()
        except socket.timeout:
            raise AssertionError("no notification within %s s" % timeout)
        return dict(line.split("=", 1) for line in data.split("\n") if "=" in line)

    def close(self):
        self.sock.close()


def start(tmp_path, cluster, env=None, **kw):
    """The daemon on a free port (not waiting for it: readiness is what is tested)."""
    port = pgcluster.free_port()
    ini = write_ini(str(tmp_path), cluster, port, **kw)
    log = open(str(tmp_path / "pooler.stderr"), "wb")
    proc = subprocess.Popen([POOLER_BIN, "-c", ini], stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT, env=dict(os.environ, **(env or {})))
    log.close()
    return proc, port


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
        raise AssertionError("the pooler did not exit within 10 s of SIGTERM")


def test_notify_ready_reload_stopping(cluster, tmp_path):
    """READY=1 comes once the listener accepts and every node was probed; a SIGHUP is
    framed by RELOADING=1 and READY=1; SIGTERM sends STOPPING=1 and the daemon exits 0."""
    mgr = Manager(str(tmp_path))
    proc, port = start(tmp_path, cluster, env={"NOTIFY_SOCKET": mgr.path})
    try:
        msg = mgr.next()
        assert msg.get("READY") == "1", msg
        assert pgcluster.port_open(port), "READY=1 sent before the listener accepts"
        assert msg.get("MAINPID") == str(proc.pid), msg
        assert "2 of 2 nodes probed" in msg.get("STATUS", ""), msg

        proc.send_signal(signal.SIGHUP)
        msg = mgr.next()
        assert msg.get("RELOADING") == "1", msg
        assert int(msg["MONOTONIC_USEC"]) > 0, msg
        msg = mgr.next()
        assert msg.get("READY") == "1", msg
        assert "reloaded" in msg.get("STATUS", ""), msg

        proc.send_signal(signal.SIGTERM)
        msg = mgr.next()
        assert msg.get("STOPPING") == "1", msg
        assert proc.wait(timeout=10) == 0
    finally:
        stop(proc)
        mgr.close()


def test_notify_abstract_socket_and_failed_reload(cluster, tmp_path):
    """An abstract socket (@name) works too; a reload of a broken file still ends with
    READY=1 (the old config keeps serving), saying so."""
    name = "pooler-test-%d-%d" % (os.getpid(), time.monotonic_ns())
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(10)
    proc, port = start(tmp_path, cluster, env={"NOTIFY_SOCKET": "@" + name})
    try:
        assert b"READY=1" in sock.recv(4096)
        ini = tmp_path / "pooler.ini"
        ini.write_text(ini.read_text() + "\nlisten_prot = 1\n")
        proc.send_signal(signal.SIGHUP)
        assert b"RELOADING=1" in sock.recv(4096)
        msg = sock.recv(4096).decode()
        assert "READY=1" in msg and "reload failed" in msg, msg
        assert pgcluster.port_open(port)
    finally:
        assert stop(proc) == 0
        sock.close()


def test_pidfile_written_locked_removed(cluster, tmp_path):
    """pidfile holds the pid while the daemon runs, a second daemon given the same file
    refuses to start (naming the holder), and the file is gone after SIGTERM."""
    first = tmp_path / "a"
    second = tmp_path / "b"
    first.mkdir()
    second.mkdir()
    pidfile = str(tmp_path / "pooler.pid")
    proc, port = start(first, cluster, extra_pooler={"pidfile": pidfile})
    try:
        deadline = time.monotonic() + 10
        while not (os.path.exists(pidfile) and pgcluster.port_open(port)):
            assert proc.poll() is None and time.monotonic() < deadline, \
                (first / "pooler.stderr").read_text()
            time.sleep(0.05)
        with open(pidfile) as f:
            assert f.read() == "%d\n" % proc.pid

        other, _ = start(second, cluster, extra_pooler={"pidfile": pidfile})
        rc = other.wait(timeout=10)
        log = (second / "pooler.stderr").read_text()
        assert rc == 1, log
        assert "held by a running pooler (pid %d)" % proc.pid in log, log
        with open(pidfile) as f:
            assert f.read() == "%d\n" % proc.pid, "the second daemon overwrote the pidfile"
    finally:
        assert stop(proc) == 0
    assert not os.path.exists(pidfile)


def test_stale_pidfile_is_taken_over(cluster, tmp_path):
    """A pidfile left by a daemon that died (nobody holds its lock) is no obstacle."""
    pidfile = tmp_path / "pooler.pid"
    pidfile.write_text("999999\n")
    proc, port = start(tmp_path, cluster, extra_pooler={"pidfile": str(pidfile)})
    try:
        deadline = time.monotonic() + 10
        while pidfile.read_text() != "%d\n" % proc.pid:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        assert stop(proc) == 0


# ---- man pages, unit file, install ---------------------------------------------------

def man_pages(directory):
    """pooler(1) and pooler.ini(5) from the binary, in a man tree under directory."""
    pages = {}
    for section, name in ((1, "pooler.1"), (5, "pooler.ini.5")):
        d = os.path.join(directory, "man%d" % section)
        os.makedirs(d, exist_ok=True)
        r = subprocess.run([POOLER_BIN, "--print-man", str(section)], capture_output=True,
                           text=True, timeout=10)
        assert r.returncode == 0, r.stderr
        pages[section] = os.path.join(d, name)
        with open(pages[section], "w") as f:
            f.write(r.stdout)
    return pages


def test_man_pages_render_without_warnings(tmp_path):
    for path in man_pages(str(tmp_path)).values():
        r = subprocess.run(["groff", "-man", "-ww", "-z", path], capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 0 and r.stderr == "", (path, r.stderr)


def test_man_pages_follow_the_key_table_and_help(cluster, tmp_path):
    """Every key --check-config prints is documented in pooler.ini(5) with its default, and
    every option of --help is in pooler(1): both are written from the same sources."""
    pages = man_pages(str(tmp_path))
    ini5 = open(pages[5]).read().replace("\\-", "-")
    ini = write_ini(str(tmp_path), cluster, 6432)
    r = subprocess.run([POOLER_BIN, "-c", ini, "--check-config"], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    keys = re.findall(r"(?m)^(\w+) = ", r.stdout)
    assert len(keys) > 60, r.stdout
    for key in set(keys):
        assert re.search(r"(?m)^\.B %s$" % key, ini5), "%s is not in pooler.ini(5)" % key
    assert ".B listen_port\nTCP port.\n.br\ninteger from 1 to 65535; default: 6432." in ini5
    assert ".B pidfile\n" in ini5

    cmd1 = open(pages[1]).read().replace("\\-", "-")
    help_text = subprocess.run([POOLER_BIN, "--help"], capture_output=True, text=True,
                               timeout=10).stdout
    options = re.findall(r"(?m)^\s+((?:-\w, )?--[\w-]+)", help_text)
    assert "--check-config" in options and "-c, --config" in options, help_text
    for option in options:
        assert ".B %s" % option in cmd1, "%s is not in pooler(1)" % option


def unit_with_binary(tmp_path):
    text = open(os.path.join(REPO_ROOT, "conf", "pooler.service")).read()
    assert "ExecStart=/usr/local/bin/pooler " in text
    path = tmp_path / "pooler.service"
    path.write_text(text.replace("/usr/local/bin/pooler", os.path.abspath(POOLER_BIN)))
    return path


def test_systemd_unit_verifies(tmp_path):
    """systemd-analyze verify finds nothing to say about the unit, its Documentation= man
    pages included (found through MANPATH)."""
    unit = unit_with_binary(tmp_path)
    man_pages(str(tmp_path / "man"))
    env = dict(os.environ, MANPATH=str(tmp_path / "man") + ":")
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                       text=True, timeout=60, env=env)
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr
    text = unit.read_text()
    for line in ("Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "KillSignal=SIGTERM",
                 "NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes",
                 "RuntimeDirectory=pooler"):
        assert re.search(r"(?m)^%s$" % re.escape(line), text), line


def test_systemd_unit_verify_catches_a_mistake(tmp_path):
    """The check above can fail: a misspelt key is reported."""
    unit = unit_with_binary(tmp_path)
    unit.write_text(unit.read_text().replace("PrivateTmp=", "PrivateTemp="))
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)],
                       capture_output=True, text=True, timeout=60)
    assert "PrivateTemp" in r.stderr, r.stderr


@pytest.mark.timeout(120)
def test_make_install_and_uninstall(tmp_path):
    """make install DESTDIR=… PREFIX=/usr lays out the binary, both man pages, the unit
    with this install's paths, the example files and a config that --check-config accepts
    (its Unix socket in /run/pooler, as the unit expects); uninstall leaves only the
    operator's config."""
    dest = tmp_path / "root"
    make = ["make", "-s", "-C", REPO_ROOT, "DESTDIR=%s" % dest, "PREFIX=/usr"]
    # not the jobserver of a `make test` this runs under: its descriptors are not passed
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    r = subprocess.run(make + ["install"], capture_output=True, text=True, timeout=110, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    for f in ("usr/bin/pooler", "usr/share/man/man1/pooler.1",
              "usr/share/man/man5/pooler.ini.5", "usr/lib/systemd/system/pooler.service",
              "usr/share/doc/pooler/LICENSE", "usr/share/doc/pooler/examples/pooler.ini",
              "usr/share/doc/pooler/examples/alerts.yml",
              "usr/share/doc/pooler/examples/grafana-dashboard.json",
              "etc/pooler/pooler.ini", "etc/pooler/users.txt"):
        assert (dest / f).exists(), f
    assert os.access(str(dest / "usr/bin/pooler"), os.X_OK)
    unit = (dest / "usr/lib/systemd/system/pooler.service").read_text()
    assert "ExecStart=/usr/bin/pooler -c /etc/pooler/pooler.ini" in unit, unit
    assert oct(os.stat(str(dest / "etc/pooler/users.txt")).st_mode & 0o777) == "0o640"
    ini = (dest / "etc/pooler/pooler.ini").read_text()
    assert "\nunix_socket_dir = /run/pooler\n" in ini
    r = subprocess.run([str(dest / "usr/bin/pooler"), "-c", str(dest / "etc/pooler/pooler.ini"),
                        "--check-config"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr

    (dest / "etc/pooler/pooler.ini").write_text(ini + "; edited\n")
    r = subprocess.run(make + ["install"], capture_output=True, text=True, timeout=110, env=env)
    assert r.returncode == 0 and "kept" in r.stdout, r.stdout + r.stderr
    assert (dest / "etc/pooler/pooler.ini").read_text().endswith("; edited\n")

    r = subprocess.run(make + ["uninstall"], capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    left = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert left == ["etc/pooler/pooler.ini", "etc/pooler/users.txt"], left
    shutil.rmtree(str(dest))


def test_make_run_installs_only_what_the_demo_needs():
    """`make run` asks apt for the build and PostgreSQL, not the test toolchains."""
    r = subprocess.run(["make", "-n", "-s", "-C", REPO_ROOT, "deps-run"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "postgresql-15" in r.stdout and "libev-dev" in r.stdout, r.stdout
    for heavy in ("openjdk", "golang", "clang", "cppcheck", "prometheus", "pgbouncer",
                  "pytest"):
        assert heavy not in r.stdout, heavy
    r = subprocess.run(["make", "-n", "-s", "-C", REPO_ROOT, "deps"], capture_output=True,
                       text=True, timeout=30)
    for needed in ("prometheus", "systemd", "groff-base", "openjdk"):
        assert needed in r.stdout, needed
