"""What an operator plugs in: conf/grafana-dashboard.json and conf/alerts.yml only name
metrics that /metrics serves, the alert rules pass promtool's checks and their own unit
tests (conf/alerts_test.yml), and the process_* and build figures are true."""

import json
import os
import re
import subprocess
import time

import pytest

from conftest import POOLER_BIN, REPO_ROOT
from test_metrics import get, metrics_port, samples

CONF = os.path.join(REPO_ROOT, "conf")
NAME = re.compile(r"\b((?:pooler|process)_[a-z0-9_]+)")


def promtool(*args):
    r = subprocess.run(["promtool"] + list(args), capture_output=True, text=True,
                       timeout=60, cwd=CONF)
    return r.returncode, r.stdout + r.stderr


def test_alert_rules_check_and_unit_tests_pass():
    rc, out = promtool("check", "rules", "alerts.yml")
    assert rc == 0 and "SUCCESS: 6 rules found" in out, out
    rc, out = promtool("test", "rules", "alerts_test.yml")
    assert rc == 0, out


def test_alert_unit_tests_can_fail(tmp_path):
    """The rule tests are real: a rule with a changed threshold fails them."""
    rules = open(os.path.join(CONF, "alerts.yml")).read()
    (tmp_path / "alerts.yml").write_text(rules.replace("pooler_replica_lag_seconds > 30",
                                                       "pooler_replica_lag_seconds > 60"))
    tests = open(os.path.join(CONF, "alerts_test.yml")).read()
    (tmp_path / "alerts_test.yml").write_text(tests)
    r = subprocess.run(["promtool", "test", "rules", "alerts_test.yml"], capture_output=True,
                       text=True, timeout=60, cwd=str(tmp_path))
    assert r.returncode != 0 and "PoolerReplicaLagHigh" in r.stdout + r.stderr


def dashboard_exprs():
    with open(os.path.join(CONF, "grafana-dashboard.json")) as f:
        dash = json.load(f)
    exprs = []
    for p in dash["panels"]:
        if p["type"] == "row":
            continue
        assert p.get("targets"), "panel without a query: %s" % p["title"]
        exprs += [t["expr"] for t in p["targets"]]
        if p["type"] == "heatmap":
            assert all(t.get("format") == "heatmap" and "_bucket" in t["expr"]
                       for t in p["targets"]), p["title"]
    titles = " ".join(p["title"] for p in dash["panels"])
    for needed in ("Clients waiting", "Routing decisions", "Replica lag", "Circuit breaker",
                   "Rate-limited", "Query duration"):
        assert needed in titles, needed
    return exprs


def alert_exprs():
    text = open(os.path.join(CONF, "alerts.yml")).read()
    names = re.findall(r"(?m)^\s+- alert: (\w+)", text)
    assert names == ["PoolerNoPrimary", "PoolerReplicaLagHigh", "PoolerClientsWaiting",
                     "PoolerCircuitOpen", "PoolerNearMaxClientConn", "PoolerLoginFailures"]
    return [text]


def served_names(text):
    """Every family and series name /metrics serves."""
    names = set(re.findall(r"(?m)^# TYPE (\S+)", text))
    names |= set(re.findall(r"(?m)^([a-z_:][a-z0-9_:]*)[{ ]", text))
    return names


def scrape(port):
    """/metrics once the daemon has published its first figures."""
    deadline = time.monotonic() + 5
    while True:
        status, text = get(port, "/metrics")
        if status == 200 and "pooler_up 1" in text:
            return text
        assert time.monotonic() < deadline, (status, text)
        time.sleep(0.05)


def test_dashboard_and_alerts_name_only_served_metrics(pooler):
    p = pooler()
    port = metrics_port(p)
    with p.connect() as c:
        c.execute("select 1")
    text = scrape(port)
    served = served_names(text)
    used = set()
    for expr in dashboard_exprs() + alert_exprs():
        used |= set(NAME.findall(expr))
    assert len(used) > 25, used
    missing = sorted(n for n in used if n not in served)
    assert not missing, "named by the dashboard or the alerts, not in /metrics: %s" % missing
    # the labels the dashboard groups routing by
    s = samples(text)
    routed = [dict(l) for (n, l) in s if n == "pooler_routing_decisions_total"]
    assert routed and all({"target", "reason"} <= set(r) for r in routed), routed


def test_process_and_build_metrics(pooler):
    p = pooler()
    port = metrics_port(p)
    version = subprocess.run([POOLER_BIN, "--version"], capture_output=True, text=True,
                             timeout=10).stdout.split()[-1]
    s = samples(scrape(port))

    def one(name):
        found = [v for (n, _), v in s.items() if n == name]
        assert len(found) == 1, (name, found)
        return found[0]

    assert s[("pooler_build_info", frozenset({("version", version)}))] == 1
    with open("/proc/%d/status" % p.proc.pid) as f:
        rss_kb = int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1))
    assert 0.5 < one("process_resident_memory_bytes") / (rss_kb * 1024) < 2
    assert one("process_virtual_memory_bytes") >= one("process_resident_memory_bytes")
    fds = len(os.listdir("/proc/%d/fd" % p.proc.pid))
    assert abs(one("process_open_fds") - fds) <= 3, (one("process_open_fds"), fds)
    assert one("process_max_fds") >= one("process_open_fds") > 3
    started = one("process_start_time_seconds")
    assert time.time() - 30 < started <= time.time() + 1, started
    assert one("process_cpu_seconds_total") >= 0
    assert one("pooler_max_client_connections") == 10000

    # CPU time moves with work
    before = one("process_cpu_seconds_total")
    deadline = time.monotonic() + 20
    with p.connect() as c:
        while time.monotonic() < deadline:
            for _ in range(200):
                c.execute("select 1")
            s = samples(get(port, "/metrics")[1])
            if one("process_cpu_seconds_total") > before:
                break
    assert one("process_cpu_seconds_total") > before
