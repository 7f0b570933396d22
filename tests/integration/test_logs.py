"""Logging: one line per event in logfmt, starting ts=... pid=... level=...; a one-line
key=value stats summary every stats_period; log_file instead of stderr, reopened on reload
so that log rotation works."""
import os
import re
import signal
import subprocess
import time

from conftest import POOLER_BIN, wait_for, write_ini

LINE = re.compile(r"ts=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z pid=\d+ "
                  r"level=(error|warning|info|debug) \S")


# logfmt: key=value pairs, values bare or double-quoted with backslash escapes
LOGFMT = re.compile(r'ts=\S+ pid=\d+ level=\w+( [a-z_][a-z0-9_.]*=("([^"\\]|\\.)*"|[^\s"]*))*')
PAIR = re.compile(r'([a-z_][a-z0-9_.]*)=("(?:[^"\\]|\\.)*"|[^\s"]*)')


def logfmt(line):
    return {k: v[1:-1].replace('\\"', '"') if v.startswith('"') else v
            for k, v in PAIR.findall(line)}


def stats_lines(text):
    return [dict(kv.split("=", 1) for kv in line.split(" level=info ")[1].split())
            for line in text.splitlines() if " event=stats " in line]


def test_every_line_has_time_pid_and_level(pooler):
    p = pooler(with_replica=False)
    with p.connect() as c:
        c.execute("select 1")
    lines = [l for l in p.log().splitlines() if l.strip()]
    assert lines
    bad = [l for l in lines if not LINE.match(l)]
    assert not bad, bad[:5]


def test_every_line_is_logfmt_even_with_libpq_messages(pooler):
    """libpq's error texts span lines and quote names; each event must still be one
    logfmt line, its free text in msg="..."."""
    p = pooler(with_replica=False, node_overrides={"primary": {"port": 1}},
               extra_pooler={"retry_max_tries": "1", "retry_base": "10ms"})
    import psycopg
    try:
        psycopg.connect(p.dsn(), connect_timeout=5).close()
    except psycopg.OperationalError:
        pass
    wait_for(lambda: "Connection refused" in p.log(), what="a failed connect in the log")
    lines = [l for l in p.log().splitlines() if l.strip()]
    bad = [l for l in lines if not LOGFMT.fullmatch(l)]
    assert not bad, bad[:5]
    refused = [logfmt(l) for l in lines if "Connection refused" in l]
    assert refused and all("msg" in f for f in refused), refused
    # libpq's "..." and its line break before "Is the server running" are escaped
    libpq = [l for l in lines if "Is the server running" in l]
    assert libpq, lines[-5:]
    assert all('\\n\\tIs the server running' in l and '\\"127.0.0.1\\"' in l
               for l in libpq), libpq


def test_stats_summary_every_stats_period(pooler):
    import psycopg
    p = pooler(with_replica=False, extra_pooler={"stats_period": "1s"})
    with p.connect() as c, p.connect(user="admin", dbname="pooler",
                                     prepare_threshold=None) as a:
        deadline = time.monotonic() + 2.5  # traffic through at least two whole periods
        while time.monotonic() < deadline:
            c.execute("select 1")
        # SHOW STATS averages roll with the same period: the last one saw traffic
        cur = psycopg.ClientCursor(a)
        cur.execute("SHOW STATS")
        cols = [d.name for d in cur.description]
        row = cur.fetchall()[0]
    assert int(row[cols.index("avg_xact_count")]) > 10, list(zip(cols, row))
    assert int(row[cols.index("avg_query_time")]) > 0
    busy = [s for s in stats_lines(p.log()) if int(s["xacts_per_s"]) > 0]
    assert busy, p.log_tail(20)
    busy = busy[-1]
    assert set(busy) >= {"event", "period_s", "xacts_per_s", "queries_per_s",
                         "in_bytes_per_s", "out_bytes_per_s", "avg_xact_us", "avg_query_us",
                         "avg_wait_us", "clients", "servers"}, busy
    assert 0.8 <= float(busy["period_s"]) <= 2.5
    # (a transaction counts when it starts, a query when it ends: they may differ by one)
    assert int(busy["queries_per_s"]) > 10 and int(busy["xacts_per_s"]) > 10
    assert int(busy["in_bytes_per_s"]) > 0 and int(busy["out_bytes_per_s"]) > 0
    assert int(busy["avg_query_us"]) > 0


def test_no_summary_when_stats_period_is_zero(pooler):
    p = pooler(with_replica=False, extra_pooler={"stats_period": "0"})
    time.sleep(1.2)
    assert not stats_lines(p.log())


def test_log_file_and_reopen_on_reload(pooler):
    p = pooler(with_replica=False, extra_pooler={"log_file": "pooler.log"})
    path = os.path.join(p.dir, "pooler.log")
    wait_for(lambda: os.path.exists(path) and "started" in open(path).read(),
             what="the start line in log_file")
    assert "started" not in p.log()  # stderr is the file now
    os.rename(path, path + ".1")  # what logrotate does
    p.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: os.path.exists(path) and "reloaded" in open(path).read(),
             what="a fresh log_file after SIGHUP")
    with p.connect() as c:
        c.execute("select 1")
    assert "reloaded" not in open(path + ".1").read()


def test_unwritable_log_file_stops_the_start(cluster, tmp_path):
    ini = write_ini(str(tmp_path), cluster, 6999,
                    extra_pooler={"log_file": "/nonexistent/dir/pooler.log"})
    r = subprocess.run([POOLER_BIN, "-c", ini], capture_output=True, text=True, timeout=10,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 1
    assert "log_file" in r.stderr and "pooler.ini" in r.stderr, r.stderr
