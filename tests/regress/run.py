#!/usr/bin/python3
"""`make regress`: PostgreSQL 15's own regression suite through the pooler.

pg_regress runs the unmodified parallel_schedule of the installed server's minor version
three times, each against a freshly initdb'd PostgreSQL 15 server on a free loopback port:

  direct        straight to the server (the suite's baseline: must pass),
  session       through the pooler, pool_mode = session,
  transaction   through the pooler, pool_mode = transaction (pool_size 10, so that the
                20 concurrent test clients really share server connections).

Then it prints a summary (also written to build/regress/summary.txt): per run the tests
passed out of the total, the failing tests and, for the pooler runs, the failures the
direct run did not have.  Each run keeps pg_regress's output under build/regress/<run>/
(regression.diffs, regression.out, pg_regress.log, results/, the server's log and, for
pooler runs, pooler.ini and pooler.log).

What it needs, fetched once and cached under build/regress/ (re-runs skip it):
  * the regression tests, from Debian's source package of the installed postgresql-15,
    same version (`apt-get source`; a deb-src entry is added to /etc/apt/sources.list.d/
    when apt does not know the source package yet);
  * postgresql-server-dev-15 pinned to the server's version (pg_regress, PGXS, headers),
    to build regress.so; refint.so and autoinc.so (contrib/spi) come with postgresql-15.

The servers run as the OS user `postgres` (see tests/integration/pgcluster.py), and so
does pg_regress: the tests COPY from and to absolute paths on the server side, so the
input files and the output folder live in a temporary folder owned by `postgres`.
Everything started here (servers, pooler, pg_regress) is stopped by its PID at the end,
also on an error, Ctrl-C or SIGTERM.

Exit status: 0 when the direct run passed and every pooler run completed (pg_regress
ran to its end, the pooler stayed up, exited cleanly on SIGTERM and printed no sanitizer
report); failures of pooler runs are printed, not fatal.  With REGRESS_STRICT=1 a pooler
run also fails the target when it has a failure that tests/regress/expected_failures.txt
does not list for its mode.

Environment:
  POOLER_BIN        pooler binary (default build/pooler), e.g. build/asan/pooler
  REGRESS_MODES     runs to do, comma- or space-separated (default
                    "direct session transaction"); a mode given twice runs twice
                    (the second one's output goes to build/regress/<mode>-2/)
  REGRESS_STRICT    1: unexpected pooler-run failures fail the target
  REGRESS_TIMEOUT   seconds one pg_regress run may take (default 900)
  REGRESS_TX_POOL_SIZE  pool_size of the transaction-mode run (default 10)
  POOLER_WORKERS    when set and not empty, the pooler runs with `workers = <value>`
                    (servers then move between the workers' pools)
  PG_BIN            PostgreSQL binaries (default /usr/lib/postgresql/15/bin)
"""

import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.dont_write_bytecode = True  # no __pycache__ in tests/integration

import pgcluster  # noqa: E402

OUT = os.path.join(ROOT, "build", "regress")
SRC_CACHE = os.path.join(OUT, "src")
LIB_BUILD = os.path.join(OUT, "lib")
PG_BIN = pgcluster.PG_BIN
PG_CONFIG = os.path.join(PG_BIN, "pg_config")
SERVER_PKG = "postgresql-15"
DEV_PKG = "postgresql-server-dev-15"
DEB_SRC_FILE = "/etc/apt/sources.list.d/pooler-src.sources"
DEB_SRC = """\
# Added by pooler's tests/regress/run.py (make regress): Debian's source packages, for the
# PostgreSQL regression tests of the installed server version (apt-get source).
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""
EXPECTED_FAILURES = os.path.join(HERE, "expected_failures.txt")
POOLER_BIN = os.path.abspath(os.environ.get("POOLER_BIN", os.path.join(ROOT, "build", "pooler")))
TIMEOUT = int(os.environ.get("REGRESS_TIMEOUT", "900"))
TX_POOL_SIZE = int(os.environ.get("REGRESS_TX_POOL_SIZE", "10"))
WORKERS = os.environ.get("POOLER_WORKERS", "").strip()
MODES = ("direct", "session", "transaction")
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:",
                     "ThreadSanitizer", "MemorySanitizer")


def log(msg):
    print("regress: %s" % msg, flush=True)


def run(cmd, **kw):
    """Run a command (root's side: apt, make); raise with its output on failure."""
    kw.setdefault("stdin", subprocess.DEVNULL)
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise RuntimeError("%s failed (rc=%d)\n%s%s" % (" ".join(cmd), r.returncode,
                                                        r.stdout[-3000:], r.stderr[-3000:]))
    return r.stdout


def as_root(cmd):
    return cmd if os.geteuid() == 0 else ["sudo"] + cmd


def apt_env():
    env = dict(os.environ)
    env["DEBIAN_FRONTEND"] = "noninteractive"
    return env


def pkg_version(pkg):
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}\t${Version}", pkg],
                       capture_output=True, text=True)
    if r.returncode != 0 or "ok installed" not in r.stdout:
        return None
    return r.stdout.split("\t", 1)[1].strip()


# ---- preparation: sources, pinned dev package, regress.so ----------------------------

def srcsrc_known(version):
    r = subprocess.run(["apt-cache", "showsrc", SERVER_PKG], capture_output=True, text=True)
    return ("Version: %s\n" % version) in r.stdout


def ensure_source(version):
    """The PostgreSQL source tree of `version`, unpacked under build/regress/src (once)."""
    stamp = os.path.join(SRC_CACHE, "VERSION")
    if os.path.exists(stamp):
        with open(stamp) as f:
            got_version, _, tree = f.read().strip().partition("\t")
        if got_version == version and os.path.isdir(os.path.join(SRC_CACHE, tree)):
            return os.path.join(SRC_CACHE, tree)
    log("fetching the source package %s=%s (apt-get source)" % (SERVER_PKG, version))
    if pkg_version("dpkg-dev") is None:
        run(as_root(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "dpkg-dev"]),
            env=apt_env())
    if not srcsrc_known(version):
        if not os.path.exists(DEB_SRC_FILE):
            log("adding %s (deb-src entries) and running apt-get update" % DEB_SRC_FILE)
            if os.geteuid() == 0:
                with open(DEB_SRC_FILE, "w") as f:
                    f.write(DEB_SRC)
            else:
                subprocess.run(["sudo", "tee", DEB_SRC_FILE], input=DEB_SRC, text=True,
                               stdout=subprocess.DEVNULL, check=True)
        run(as_root(["apt-get", "update", "-qq"]), env=apt_env())
        if not srcsrc_known(version):
            raise RuntimeError("apt knows no source package %s=%s (the installed server's "
                               "version); see %s" % (SERVER_PKG, version, DEB_SRC_FILE))
    shutil.rmtree(SRC_CACHE, ignore_errors=True)
    os.makedirs(SRC_CACHE)
    run(["apt-get", "source", "-qq", "%s=%s" % (SERVER_PKG, version)], cwd=SRC_CACHE)
    trees = [d for d in os.listdir(SRC_CACHE)
             if os.path.isfile(os.path.join(SRC_CACHE, d, "src", "test", "regress",
                                            "parallel_schedule"))]
    if len(trees) != 1:
        raise RuntimeError("no single source tree in %s after apt-get source: %s"
                           % (SRC_CACHE, os.listdir(SRC_CACHE)))
    with open(stamp, "w") as f:
        f.write("%s\t%s\n" % (version, trees[0]))
    return os.path.join(SRC_CACHE, trees[0])


def ensure_server_dev(version):
    """postgresql-server-dev-15 at exactly the server's version (nothing else upgraded)."""
    if pkg_version(DEV_PKG) == version:
        return
    log("installing %s=%s" % (DEV_PKG, version))
    run(as_root(["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                 "%s=%s" % (DEV_PKG, version)]), env=apt_env())


def pg_regress_binary():
    pgxs = run([PG_CONFIG, "--pgxs"]).strip()  # .../lib/pgxs/src/makefiles/pgxs.mk
    path = os.path.join(os.path.dirname(os.path.dirname(pgxs)), "test", "regress", "pg_regress")
    if not os.access(path, os.X_OK):
        raise RuntimeError("pg_regress not found at %s (package %s)" % (path, DEV_PKG))
    return path


def build_libs(tree):
    """regress.so built with PGXS from this tree's regress.c; refint.so and autoinc.so
    (contrib/spi) as the installed postgresql-15 ships them. Returns their folder."""
    os.makedirs(LIB_BUILD, exist_ok=True)
    src = os.path.join(tree, "src", "test", "regress", "regress.c")
    dst = os.path.join(LIB_BUILD, "regress.c")
    if not os.path.exists(dst) or open(src, "rb").read() != open(dst, "rb").read():
        shutil.copyfile(src, dst)
    run(["make", "-s", "-f", os.path.join(HERE, "pgxs.mk"), "-C", LIB_BUILD,
         "PG_CONFIG=" + PG_CONFIG, "with_llvm=no"])
    pkglibdir = run([PG_CONFIG, "--pkglibdir"]).strip()
    for name in ("refint.so", "autoinc.so"):
        shutil.copyfile(os.path.join(pkglibdir, name), os.path.join(LIB_BUILD, name))
    return LIB_BUILD


# ---- one run ---------------------------------------------------------------------

class Server(pgcluster.Cluster):
    """pgcluster's primary alone: the suite needs no replica (and with one the pooler
    would route reads, which is not what this measures)."""

    def _start_replica(self):
        pass

    def wait_streaming(self, timeout=60):
        pass


def write_pooler_ini(directory, port, server_port, mode):
    """Trust for every user (the tests \\c as several regress_* roles); no server_user, so
    the pooler logs in to the server as the client's own user (trusted on loopback).
    `regression` is the suite's database, `postgres` where pg_regress drops and creates
    it; both on the one primary node."""
    pool_size = 30 if mode == "session" else TX_POOL_SIZE
    text = """\
; written by tests/regress/run.py (%(mode)s run)
[pooler]
listen_addr = 127.0.0.1
listen_port = %(port)d
unix_socket_dir =
auth_type = trust
auth_file = users.txt
metrics_listen =
log_level = info
stats_period = 0
health_user = postgres
health_dbname = postgres
%(workers)s
[node.primary]
host = 127.0.0.1
port = %(server_port)d
role = primary
pool_size = 150

[database.regression]
nodes = primary
pool_mode = %(mode)s
pool_size = %(pool_size)d

[database.postgres]
nodes = primary
pool_mode = %(mode)s
pool_size = %(pool_size)d
""" % {"mode": mode, "port": port, "server_port": server_port, "pool_size": pool_size,
       "workers": "workers = %s\n" % WORKERS if WORKERS else ""}
    with open(os.path.join(directory, "users.txt"), "w") as f:
        f.write("")
    path = os.path.join(directory, "pooler.ini")
    with open(path, "w") as f:
        f.write(text)
    return path


class Pooler:
    def __init__(self, directory, server_port, mode):
        self.port = pgcluster.free_port()
        self.ini = write_pooler_ini(directory, self.port, server_port, mode)
        self.log_path = os.path.join(directory, "pooler.log")
        self.proc = None
        self.problems = []

    def start(self):
        if not os.access(POOLER_BIN, os.X_OK):
            raise RuntimeError("pooler binary not found: %s (POOLER_BIN)" % POOLER_BIN)
        with open(self.log_path, "wb") as logf:
            # its own session: a Ctrl-C on the terminal reaches us, and we stop it
            self.proc = subprocess.Popen([POOLER_BIN, "-c", self.ini], stdin=subprocess.DEVNULL,
                                         stdout=logf, stderr=subprocess.STDOUT,
                                         cwd=os.path.dirname(self.ini), start_new_session=True)
        deadline = time.monotonic() + 10
        while not pgcluster.port_open(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("pooler did not start (rc=%s); log:\n%s"
                                   % (self.proc.poll(), self.log_text()[-3000:]))
            time.sleep(0.05)

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        """SIGTERM (SIGKILL after 10 s); records what went wrong in self.problems."""
        if self.proc is None:
            return
        if self.proc.poll() is not None:
            self.problems.append("pooler exited during the run (rc=%s)" % self.proc.returncode)
        else:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
                self.problems.append("pooler did not exit within 10 s of SIGTERM (SIGKILLed)")
            if self.proc.returncode not in (0, -signal.SIGTERM, 128 + signal.SIGTERM,
                                            -signal.SIGKILL):
                self.problems.append("pooler ended with returncode %s" % self.proc.returncode)
        text = self.log_text()
        for m in SANITIZER_MARKERS:
            if m in text:
                self.problems.append("sanitizer report in the pooler's log (%r)" % m)
        self.proc = None


RESULT_RE = re.compile(r"^(?:test\s+|\s+)(\S+)\s+\.\.\.\s+(ok|FAILED|failed \(ignored\))(.*)$")


def parse_results(text):
    """{test: 'ok' | 'FAILED' | 'failed (ignored)'} from pg_regress's output, in order."""
    results = {}
    for line in text.splitlines():
        m = RESULT_RE.match(line)
        if m:
            results[m.group(1)] = m.group(2)
    return results


def schedule_tests(inputdir):
    names = []
    with open(os.path.join(inputdir, "parallel_schedule")) as f:
        for line in f:
            if line.startswith("test:"):
                names.extend(line.split()[1:])
    return names


class Run:
    def __init__(self, mode, label):
        self.mode = mode
        self.label = label
        self.outdir = os.path.join(OUT, label)
        self.results = {}
        self.seconds = 0.0
        self.completed = False
        self.problems = []

    @property
    def failed(self):
        return [t for t, s in self.results.items() if s != "ok"]

    @property
    def passed(self):
        return sum(1 for s in self.results.values() if s == "ok")


def pg_regress_env(home):
    env = {"PATH": "%s:/usr/local/bin:/usr/bin:/bin" % PG_BIN, "HOME": home,
           "USER": "postgres", "LOGNAME": "postgres", "LANG": "C.UTF-8", "PGCONNECT_TIMEOUT": "30"}
    if os.geteuid() != 0:
        env["USER"] = env["LOGNAME"] = os.environ.get("USER", "")
    return env


def kill_group(proc):
    """End pg_regress and the psql processes it started (its own process group)."""
    if proc.poll() is None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except OSError:
                pass
            try:
                proc.wait(timeout=10)
                return
            except subprocess.TimeoutExpired:
                pass


def run_one(r, tmp, inputdir, libdir, pg_regress, ids, total):
    """initdb + start a server, maybe a pooler in front, run pg_regress, keep the output."""
    shutil.rmtree(r.outdir, ignore_errors=True)
    os.makedirs(r.outdir)
    base = os.path.join(tmp, r.label)
    os.makedirs(base)
    outputdir = os.path.join(base, "out")
    os.makedirs(outputdir)
    if ids is not None:
        os.chown(base, ids[0], ids[1])
        os.chown(outputdir, ids[0], ids[1])
    server = Server(os.path.join(base, "pg"))
    pooler = None
    proc = None
    log_path = os.path.join(r.outdir, "pg_regress.log")
    try:
        server.start()
        port = server.primary_port
        if r.mode != "direct":
            pooler = Pooler(r.outdir, server.primary_port, r.mode)
            pooler.start()
            port = pooler.port
        log("%s: pg_regress, %d tests, port %d%s" % (r.label, total, port,
            "" if pooler is None else " (pooler, pool_mode = %s)" % r.mode))
        cmd = [pg_regress, "--inputdir=" + inputdir, "--outputdir=" + outputdir,
               "--bindir=" + PG_BIN, "--dlpath=" + libdir, "--max-concurrent-tests=20",
               "--schedule=" + os.path.join(inputdir, "parallel_schedule"),
               "--host=127.0.0.1", "--port=%d" % port]
        kw = {}
        if ids is not None:
            kw.update(user=ids[0], group=ids[1], extra_groups=[])
        t0 = time.monotonic()
        with open(log_path, "wb") as logf:
            proc = subprocess.Popen(cmd, cwd=outputdir, env=pg_regress_env(base),
                                    stdin=subprocess.DEVNULL, stdout=logf,
                                    stderr=subprocess.STDOUT, start_new_session=True, **kw)
            try:
                proc.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                r.problems.append("pg_regress did not finish within %d s (REGRESS_TIMEOUT); "
                                  "killed" % TIMEOUT)
                kill_group(proc)
        r.seconds = time.monotonic() - t0
        with open(log_path, errors="replace") as f:
            text = f.read()
        r.results = parse_results(text)
        r.completed = (not r.problems and
                       re.search(r"All \d+ tests passed|\d+ of \d+ tests failed", text) is not None
                       and len(r.results) == total)
        if not r.completed and not r.problems:
            r.problems.append("pg_regress did not complete (rc=%s, %d of %d results); see %s"
                              % (proc.returncode, len(r.results), total, log_path))
    finally:
        if proc is not None:
            kill_group(proc)
        if pooler is not None:
            pooler.stop()
            r.problems.extend(pooler.problems)
            if pooler.problems:
                r.completed = False
        for name in ("regression.diffs", "regression.out"):
            p = os.path.join(outputdir, name)
            if os.path.exists(p):
                shutil.copyfile(p, os.path.join(r.outdir, name))
        if os.path.isdir(os.path.join(outputdir, "results")):
            shutil.copytree(os.path.join(outputdir, "results"), os.path.join(r.outdir, "results"))
        p = os.path.join(server.base, "primary.log")
        if os.path.exists(p):
            shutil.copyfile(p, os.path.join(r.outdir, "postgresql.log"))
        server.stop()
    if not r.completed:
        r.problems = r.problems or ["run did not complete"]


# ---- summary ---------------------------------------------------------------------

def load_expected():
    """{(mode, test): reason} from expected_failures.txt ('mode test  # reason' lines)."""
    expected = {}
    if not os.path.exists(EXPECTED_FAILURES):
        return expected
    with open(EXPECTED_FAILURES) as f:
        for n, line in enumerate(f, 1):
            body, _, reason = line.partition("#")
            words = body.split()
            if not words:
                continue
            if len(words) != 2 or words[0] not in MODES[1:]:
                raise RuntimeError("%s:%d: expected 'session|transaction TEST  # reason'"
                                   % (EXPECTED_FAILURES, n))
            expected[(words[0], words[1])] = reason.strip()
    return expected


def summarize(runs, total, strict, expected, version):
    lines = ["PostgreSQL %s regression suite (parallel_schedule, %d tests); pooler %s"
             % (version, total, POOLER_BIN), ""]
    lines.append("%-14s %9s %7s %8s %10s  %s" % ("run", "passed", "failed", "seconds",
                                                 "completed", "failing tests"))
    direct = next((r for r in runs if r.mode == "direct"), None)
    for r in runs:
        lines.append("%-14s %5d/%-3d %7d %8.0f %10s  %s"
                     % (r.label, r.passed, total, total - r.passed, r.seconds,
                        "yes" if r.completed else "NO", " ".join(r.failed) or "-"))
    lines.append("")
    ok = True
    for r in runs:
        for p in r.problems:
            lines.append("%s: PROBLEM: %s" % (r.label, p))
        missing = total - len(r.results)
        if r.completed and missing:
            lines.append("%s: %d tests have no result" % (r.label, missing))
        if r.mode == "direct":
            if not r.completed or r.failed:
                ok = False
                lines.append("%s: the direct run must pass: the setup, not the pooler, is "
                             "broken (see %s/regression.diffs)" % (r.label, r.outdir))
            continue
        if not r.completed:
            ok = False
        if direct is not None:
            new = [t for t in r.failed if t not in direct.failed]
            lines.append("%s: failing only through the pooler: %s"
                         % (r.label, " ".join(new) or "none"))
        unexpected = [t for t in r.failed if (r.mode, t) not in expected]
        now_passing = [t for (m, t) in sorted(expected) if m == r.mode and t not in r.failed
                       and t in r.results]
        lines.append("%s: not in expected_failures.txt: %s"
                     % (r.label, " ".join(unexpected) or "none"))
        if now_passing:
            lines.append("%s: listed as expected failures but passed: %s"
                         % (r.label, " ".join(now_passing)))
        if strict and unexpected:
            ok = False
    lines.append("")
    lines.append("diffs: %s/<run>/regression.diffs; exit status: %s%s"
                 % (os.path.relpath(OUT, ROOT), "ok" if ok else "FAILED",
                    " (REGRESS_STRICT=1)" if strict else ""))
    text = "\n".join(lines) + "\n"
    with open(os.path.join(OUT, "summary.txt"), "w") as f:
        f.write(text)
    print(text, end="", flush=True)
    return ok


def parse_modes():
    words = os.environ.get("REGRESS_MODES", " ".join(MODES)).replace(",", " ").split()
    runs, seen = [], {}
    for w in words:
        if w not in MODES:
            raise SystemExit("REGRESS_MODES: unknown mode %r (allowed: %s)" % (w, ", ".join(MODES)))
        seen[w] = seen.get(w, 0) + 1
        runs.append(Run(w, w if seen[w] == 1 else "%s-%d" % (w, seen[w])))
    return runs


def on_signal(signum, frame):
    # the first signal stops the run; more of them must not interrupt the cleanup
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt("signal %d" % signum)


def main():
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    runs = parse_modes()
    strict = os.environ.get("REGRESS_STRICT", "") not in ("", "0")
    expected = load_expected()
    version = pkg_version(SERVER_PKG)
    if version is None:
        raise SystemExit("regress: %s is not installed (make deps)" % SERVER_PKG)
    os.makedirs(OUT, exist_ok=True)
    t0 = time.monotonic()
    tree = ensure_source(version)
    ensure_server_dev(version)
    pg_regress = pg_regress_binary()
    libs = build_libs(tree)
    log("prepared in %.0f s (source %s)" % (time.monotonic() - t0, os.path.relpath(tree, ROOT)))

    ids = pgcluster._server_user()
    pgcluster._become_subreaper()
    tmp = tempfile.mkdtemp(prefix="pooler-regress-")
    try:
        # Inputs the server reads (COPY FROM data/*.data, LOAD of the .so files) and
        # pg_regress reads, where the server's OS user can read them.
        regress_src = os.path.join(tree, "src", "test", "regress")
        inputdir = os.path.join(tmp, "input")
        os.makedirs(inputdir)
        for name in ("sql", "expected", "data"):
            shutil.copytree(os.path.join(regress_src, name), os.path.join(inputdir, name))
        for name in ("parallel_schedule", "resultmap"):
            shutil.copyfile(os.path.join(regress_src, name), os.path.join(inputdir, name))
        libdir = os.path.join(tmp, "lib")
        os.makedirs(libdir)
        for name in ("regress.so", "refint.so", "autoinc.so"):
            shutil.copyfile(os.path.join(libs, name), os.path.join(libdir, name))
        os.chmod(tmp, 0o755)
        if ids is not None:
            pgcluster._chown_tree(tmp, ids)
        total = len(schedule_tests(inputdir))
        for r in runs:
            run_one(r, tmp, inputdir, libdir, pg_regress, ids, total)
            log("%s: %d/%d passed in %.0f s%s" % (r.label, r.passed, total, r.seconds,
                "" if r.completed else " (INCOMPLETE)"))
    except KeyboardInterrupt:
        log("interrupted; everything started was stopped")
        return 130
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if summarize(runs, total, strict, expected, version) else 1


if __name__ == "__main__":
    sys.exit(main())
