"""Real drivers using prepared statements through transaction pooling: many clients share
a pool of 2 server connections (with a replica taking reads), every execution returns its
own right answer, and nothing fails. pgbench -M prepared, asyncpg (50 coroutines),
psycopg 3 (prepare=True), pgjdbc (named statements after prepareThreshold), Go pgx (its
statement cache prepares every query under a name of its own)."""
import asyncio
import os
import subprocess

import psycopg
import pytest

from conftest import wait_no_app_backends
from test_metrics import metrics_port, value, wait_metrics
from test_pgbench import initialized, parse, pgbench  # noqa: F401 (fixture)

JDBC_JAR = "/usr/share/java/postgresql.jar"
GOPATH = "/usr/share/gocode"  # Debian's golang-github-jackc-pgx-v4-dev installs here
SECONDS = 5


@pytest.mark.timeout(120)
@pytest.mark.parametrize("args", [
    pytest.param(["-S", "-c", "20", "-j", "2"], id="select-only"),
    # pgbench 15 prepares with a blocking call: one thread per client (see README)
    pytest.param(["-c", "8", "-j", "8"], id="tpcb"),
])
def test_pgbench_prepared(pooler, cluster, initialized, args):  # noqa: F811
    wait_no_app_backends(cluster)
    p = pooler(pool_size=2)
    r = pgbench(p.host, p.port, "-n", "-M", "prepared", "-T", str(SECONDS), *args,
                timeout=SECONDS + 60)
    out = r.stdout + r.stderr
    assert r.returncode == 0, "pgbench failed:\n%s\n--- pooler ---\n%s" % (
        out[-3000:], p.log_tail(40))
    processed, failed, _ = parse(out)
    assert processed and processed > 0 and failed == 0, out
    # far fewer server statements than clients: they share them
    s = wait_metrics(metrics_port(p), lambda s: value(
        s, "pooler_prepared_statements_total", event="shared") > 0)
    assert value(s, "pooler_prepared_statements_total", event="shared") > 0


@pytest.mark.timeout(90)
def test_asyncpg_fifty_coroutines(pooler):
    p = pooler(pool_size=2)

    async def worker(n):
        conn = await p.aconnect()
        try:
            stmt = await conn.prepare("select $1::int * 2, $2::text")
            for i in range(10):
                row = await stmt.fetchrow(n * 100 + i, "w%d" % n)
                assert tuple(row) == ((n * 100 + i) * 2, "w%d" % n)
                # the statement cache of asyncpg: the same text, prepared implicitly
                v = await conn.fetchval("select $1::int + 1", i)
                assert v == i + 1
            async with conn.transaction():
                v = await conn.fetchval("select $1::int - 1", n)
                assert v == n - 1
        finally:
            await conn.close()

    async def main():
        await asyncio.gather(*(worker(n) for n in range(50)))

    asyncio.run(main())


def test_psycopg_prepare_true_many_clients(pooler):
    p = pooler(pool_size=2)
    conns = [psycopg.connect(p.dsn(), autocommit=True) for _ in range(8)]
    try:
        for rnd in range(10):
            for n, c in enumerate(conns):
                q = "select %s::int + %s::int" if n % 2 else "select %s::int * %s::int"
                a, b = rnd, n
                want = a + b if n % 2 else a * b
                assert c.execute(q, (a, b), prepare=True).fetchone() == (want,)
        with conns[0].transaction():
            assert conns[0].execute("select %s::int", (5,), prepare=True).fetchone() == (5,)
    finally:
        for c in conns:
            c.close()


JAVA = r"""
import java.sql.*;
import java.util.*;

public class PreparedThroughPooler {
    public static void main(String[] args) throws Exception {
        String url = args[0];
        int threads = 6, rounds = 20;
        List<Thread> ts = new ArrayList<>();
        List<Throwable> errors = Collections.synchronizedList(new ArrayList<>());
        for (int t = 0; t < threads; t++) {
            final int id = t;
            Thread th = new Thread(() -> {
                try (Connection c = DriverManager.getConnection(url, "app", "app")) {
                    PreparedStatement ps = c.prepareStatement("select ?::int * 3, ?::text");
                    for (int i = 0; i < rounds; i++) {
                        ps.setInt(1, id * 1000 + i);
                        ps.setString(2, "t" + id);
                        try (ResultSet rs = ps.executeQuery()) {
                            rs.next();
                            if (rs.getInt(1) != (id * 1000 + i) * 3 || !rs.getString(2).equals("t" + id))
                                throw new RuntimeException("wrong answer in thread " + id);
                        }
                    }
                    c.setAutoCommit(false);
                    PreparedStatement q = c.prepareStatement("select ?::int + 1");
                    for (int i = 0; i < rounds; i++) {
                        q.setInt(1, i);
                        try (ResultSet rs = q.executeQuery()) {
                            rs.next();
                            if (rs.getInt(1) != i + 1)
                                throw new RuntimeException("wrong answer in transaction");
                        }
                        if (i % 4 == 3)
                            c.commit();
                    }
                    c.commit();
                } catch (Throwable e) {
                    errors.add(e);
                }
            });
            ts.add(th);
            th.start();
        }
        for (Thread th : ts)
            th.join();
        for (Throwable e : errors)
            e.printStackTrace();
        System.out.println(errors.isEmpty() ? "OK" : "FAILED " + errors.size());
        System.exit(errors.isEmpty() ? 0 : 1);
    }
}
"""


@pytest.mark.timeout(120)
def test_jdbc_named_statements(pooler, tmp_path):
    """pgjdbc switches to named server-side statements ("S_1", ...) after 5 executions of
    a PreparedStatement; six connections do 20 each over 2 server connections."""
    assert os.path.exists(JDBC_JAR), "libpostgresql-jdbc-java is not installed (make deps)"
    src = tmp_path / "PreparedThroughPooler.java"
    src.write_text(JAVA)
    r = subprocess.run(["javac", "-cp", JDBC_JAR, "-d", str(tmp_path), str(src)],
                       capture_output=True, text=True, timeout=90)
    assert r.returncode == 0, r.stderr
    p = pooler(pool_size=2)
    # pgjdbc's defaults: it sends SET extra_float_digits = 3 after login, which the
    # pooler carries instead of pinning
    url = "jdbc:postgresql://%s:%d/app?sslmode=disable" % (p.host, p.port)
    r = subprocess.run(["java", "-cp", "%s:%s" % (JDBC_JAR, tmp_path), "PreparedThroughPooler",
                        url], capture_output=True, text=True, timeout=90)
    assert r.returncode == 0 and "OK" in r.stdout, (r.stdout + r.stderr)[-4000:]
    assert "keeps its server connection" not in p.log()
    s = wait_metrics(metrics_port(p), lambda s: value(
        s, "pooler_prepared_statements_total", event="shared") > 0)
    assert value(s, "pooler_prepared_statements_total", event="shared") > 0


GO = r"""
package main

import (
	"context"
	"fmt"
	"os"
	"sync"

	"github.com/jackc/pgx/v4/pgxpool"
)

// 50 goroutines over a pgx pool of 20 connections, each doing 40 rounds of two cached
// (named, prepared) queries and a short transaction; every answer is checked.
func main() {
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(os.Args[1])
	if err != nil {
		panic(err)
	}
	cfg.MaxConns = 20
	pool, err := pgxpool.ConnectConfig(ctx, cfg)
	if err != nil {
		panic(err)
	}
	defer pool.Close()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	for g := 0; g < 50; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 40; i++ {
				var v int
				if err := pool.QueryRow(ctx, "select $1::int + 1", i).Scan(&v); err != nil {
					fail(err)
					return
				} else if v != i+1 {
					fail(fmt.Errorf("select $1::int + 1 with %d gave %d", i, v))
				}
				var s string
				want := fmt.Sprintf("%d-%d", g, i)
				if err := pool.QueryRow(ctx, "select $1::text", want).Scan(&s); err != nil {
					fail(err)
					return
				} else if s != want {
					fail(fmt.Errorf("select $1::text with %s gave %s", want, s))
				}
				tx, err := pool.Begin(ctx)
				if err != nil {
					fail(err)
					return
				}
				if _, err := tx.Exec(ctx, "select pg_advisory_xact_lock($1)", g); err != nil {
					fail(err)
				}
				if err := tx.Commit(ctx); err != nil {
					fail(err)
				}
			}
		}(g)
	}
	wg.Wait()
	for i, e := range errs {
		if i < 5 {
			fmt.Println("error:", e)
		}
	}
	if len(errs) > 0 {
		fmt.Println("errors:", len(errs))
		os.Exit(1)
	}
	fmt.Println("OK")
}
"""


@pytest.mark.timeout(180)
def test_pgx_statement_cache(pooler, tmp_path):
    """Go pgx prepares each query under its own name on every connection it opens (20
    here) and runs them over a pooler pool of 2 server connections with a replica."""
    assert os.path.isdir(os.path.join(GOPATH, "src/github.com/jackc/pgx/v4")), \
        "golang-github-jackc-pgx-v4-dev is not installed (make deps)"
    (tmp_path / "main.go").write_text(GO)
    env = dict(os.environ, GO111MODULE="off", GOPATH=GOPATH, GOCACHE=str(tmp_path / "cache"))
    r = subprocess.run(["go", "build", "-o", str(tmp_path / "pgx_client"), "."],
                       cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=150)
    assert r.returncode == 0, r.stderr[-4000:]
    p = pooler(pool_size=2)
    r = subprocess.run([str(tmp_path / "pgx_client"), p.dsn() + " sslmode=disable"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "OK" in r.stdout, (r.stdout + r.stderr)[-4000:]
    assert "keeps its server connection" not in p.log()
    s = wait_metrics(metrics_port(p), lambda s: value(
        s, "pooler_prepared_statements_total", event="shared") > 0)
    assert value(s, "pooler_prepared_statements_total", event="shared") > 0
