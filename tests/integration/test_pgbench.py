"""pgbench through the pooler: 50 clients on a pool of 10, no failed transactions,
and never more than 10 server connections on the primary."""

import os
import re
import subprocess

import pytest

import pgcluster
from conftest import BackendSampler, wait_no_app_backends

PGBENCH = os.path.join(pgcluster.PG_BIN, "pgbench")
SECONDS = int(os.environ.get("POOLER_TEST_BENCH_SECONDS", "10"))
POOL = 10


def pgbench(host, port, *args, timeout):
    env = dict(os.environ, PGPASSWORD="app", PGCONNECT_TIMEOUT="5")
    cmd = [PGBENCH, "-h", host, "-p", str(port), "-U", "app"] + list(args) + ["app"]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def initialized(cluster):
    r = pgbench(cluster.host, cluster.primary_port, "-i", "-s", "1", "-q", timeout=120)
    assert r.returncode == 0, r.stderr
    return True


def parse(out):
    processed = re.search(r"number of transactions actually processed: (\d+)", out)
    failed = re.search(r"number of failed transactions: (\d+)", out)
    tps = re.search(r"tps = ([\d.]+)", out)
    return (int(processed.group(1)) if processed else None,
            int(failed.group(1)) if failed else None,
            float(tps.group(1)) if tps else None)


@pytest.mark.timeout(SECONDS + 60)
@pytest.mark.parametrize("args", [
    pytest.param(["-S"], id="select-only"),
    pytest.param([], id="tpcb"),
    pytest.param(["-M", "extended", "-S"], id="extended-select-only"),
], )
def test_pgbench_through_pooler(pooler, cluster, initialized, args):
    wait_no_app_backends(cluster)
    p = pooler(pool_size=POOL)
    with BackendSampler(cluster, interval=0.1) as sampler:
        r = pgbench(p.host, p.port, "-n", "-c", "50", "-j", "2", "-T", str(SECONDS), *args,
                    timeout=SECONDS + 45)
    out = r.stdout + r.stderr
    assert r.returncode == 0, "pgbench failed (rc=%d):\n%s\n--- pooler ---\n%s" % (
        r.returncode, out[-3000:], p.log_tail(40))
    processed, failed, tps = parse(out)
    assert processed is not None and processed > 0, out
    assert failed == 0, out
    assert not sampler.errors, sampler.errors
    assert sampler.peak <= POOL, "primary saw %d app backends (pool_size=%d): %s" % (
        sampler.peak, POOL, sampler.peak_rows[:12])
    print("pgbench %s: %d transactions, tps %.0f, peak backends %d"
          % (" ".join(args) or "tpcb", processed, tps or 0, sampler.peak))
