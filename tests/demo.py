#!/usr/bin/python3
"""`make run`: a throwaway PostgreSQL 15 primary + streaming replica, with the pooler in
front, configured from conf/pooler.ini. Prints how to connect; Ctrl-C stops everything
and removes the temporary files.

The servers use ports 5432/5433 as conf/pooler.ini says when those are free, and free
ports otherwise (the generated ini then differs from conf/pooler.ini only in ports).
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

from pgcluster import Cluster, port_open, PG_BIN  # noqa: E402


def pick(port):
    return port if not port_open(port) else None


def free_near(port):
    """port when nothing listens there, else the next free one (a fixed port the banner
    can print, rather than one that only shows in the log)."""
    for p in range(port, port + 100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", p))
                return p
            except OSError:
                continue
    raise RuntimeError("no free port in %d-%d" % (port, port + 99))


def main():
    base = tempfile.mkdtemp(prefix="pooler-demo-")
    os.chmod(base, 0o755)
    cluster = Cluster(os.path.join(base, "pg"), primary_port=pick(5432), replica_port=pick(5433))
    pooler = None
    stopping = []

    def stop(*_):
        stopping.append(True)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        print("starting PostgreSQL 15 primary and streaming replica ...", flush=True)
        cluster.start()
        env = dict(os.environ, PGPASSWORD="app")
        subprocess.run([os.path.join(PG_BIN, "pgbench"), "-i", "-q", "-s", "1", "-h", "127.0.0.1",
                        "-p", str(cluster.primary_port), "-U", "app", "app"],
                       env=env, check=True, capture_output=True)

        with open(os.path.join(ROOT, "conf", "pooler.ini")) as f:
            ini = f.read()
        listen_port = 6432 if not port_open(6432) else cluster.primary_port + 1000
        ini = re.sub(r"(?m)^(\[node\.primary\][^\[]*?^port = )\d+", r"\g<1>%d" % cluster.primary_port, ini)
        ini = re.sub(r"(?m)^(\[node\.replica1\][^\[]*?^port = )\d+", r"\g<1>%d" % cluster.replica_port, ini)
        ini = re.sub(r"(?m)^listen_port = \d+", "listen_port = %d" % listen_port, ini)
        ini = re.sub(r"(?m)^unix_socket_dir = .*", "unix_socket_dir = %s" % base, ini)
        metrics_port = free_near(9930)
        ini = re.sub(r"(?m)^metrics_listen = .*", "metrics_listen = 127.0.0.1:%d" % metrics_port, ini)
        ini_path = os.path.join(base, "pooler.ini")
        with open(ini_path, "w") as f:
            f.write(ini)
        shutil.copy(os.path.join(ROOT, "conf", "users.txt"), os.path.join(base, "users.txt"))

        binary = os.environ.get("POOLER_BIN", os.path.join(ROOT, "build", "pooler"))
        pooler = subprocess.Popen([binary, "-c", ini_path])
        deadline = time.time() + 10
        while not port_open(listen_port):
            if pooler.poll() is not None or time.time() > deadline:
                raise RuntimeError("the pooler did not start; see its messages above")
            time.sleep(0.05)

        print("""
pooler is running on 127.0.0.1:%(port)d in front of
  primary 127.0.0.1:%(p)d and replica 127.0.0.1:%(r)d  (database app, user app, password app)

  connect:        psql "host=127.0.0.1 port=%(port)d dbname=app user=app password=app"
  admin console:  psql "host=127.0.0.1 port=%(port)d dbname=pooler user=admin password=admin" -c "SHOW POOLS"
                  (SHOW HELP lists the commands: SHOW STATS, SHOW NODES, RELOAD, ...)
  metrics:        curl http://127.0.0.1:%(m)d/metrics   (also /health and /ready)
  load:           PGPASSWORD=app pgbench -n -S -c 20 -T 10 -h 127.0.0.1 -p %(port)d -U app app
  reload config:  kill -HUP %(pid)d   (after editing %(ini)s)

  config: %(ini)s  (copied from conf/pooler.ini; users from conf/users.txt)
To stop: press Ctrl-C here (stops the pooler and both servers, removes the files).""" % {
            "port": listen_port, "p": cluster.primary_port, "r": cluster.replica_port,
            "ini": ini_path, "m": metrics_port, "pid": pooler.pid}, flush=True)
        while not stopping and pooler.poll() is None:
            time.sleep(0.2)
        if pooler.poll() is not None and not stopping:
            print("the pooler exited with code %s" % pooler.returncode)
    finally:
        if pooler is not None and pooler.poll() is None:
            pooler.send_signal(signal.SIGTERM)
            try:
                pooler.wait(10)
            except subprocess.TimeoutExpired:
                pooler.kill()
                pooler.wait()
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)
        print("stopped; temporary files removed.")


if __name__ == "__main__":
    main()
