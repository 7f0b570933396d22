"""A throw-away Patroni cluster on loopback: a one-member etcd and three PostgreSQL 15
instances, each managed by its own Patroni, all under one temp dir.

    from patronicluster import PatroniCluster
    pc = PatroniCluster(tempfile.mkdtemp(), members=3, synchronous=True)
    pc.start()                  # etcd, then the Patronis; waits for a leader and replicas
    pc.leader()                 # member name of the leader, from GET /cluster
    pc.switchover("pg2")        # patronictl switchover
    pc.stop()                   # every process we started, by its PID; removes the dir

Timeouts are small (ttl 10 s, loop_wait 1 s, retry_timeout 3 s) so that a failover takes
seconds, and master_start_timeout is 0: when the leader's postmaster dies, Patroni gives
up the leader key at once instead of restarting PostgreSQL in place, so a replica is
promoted. etcd speaks the v2 API that Debian's python3-etcd client uses.

As root, Patroni (and so PostgreSQL) runs as the OS user `postgres`. Role `app` (password
`app`) owns database `app`; everything else on loopback is trusted.
"""

import json
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.request

import pgcluster
from pgcluster import HOST, PG_BIN, free_port

ETCD = "/usr/bin/etcd"
PATRONI = "/usr/bin/patroni"
PATRONICTL = "/usr/bin/patronictl"
SCOPE = "pooltest"


def _yaml(obj, indent=0):
    """Patroni reads YAML, and JSON is YAML: no PyYAML needed to write its config."""
    return json.dumps(obj, indent=2)


class Member:
    def __init__(self, name, pg_port, api_port):
        self.name = name
        self.pg_port = pg_port
        self.api_port = api_port
        self.proc = None
        self.config = None

    @property
    def api_url(self):
        return "http://%s:%d" % (HOST, self.api_port)


def _reap_postmasters(stop):
    """Collect postmasters that died as our children. The test process is a subreaper
    (pgcluster makes it one), so a postmaster Patroni started is re-parented to us when it
    exits; left a zombie, Patroni sees it alive and waits forever for it to stop (a demote
    never ends). Only zombie children named postgres are reaped."""
    me = os.getpid()
    while not stop.wait(0.1):
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % pid) as f:
                    stat = f.read()
            except OSError:
                continue
            comm, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:]
            fields = rest.split()
            if fields[0] == "Z" and int(fields[1]) == me and comm.startswith("postgres"):
                try:
                    os.waitpid(int(pid), os.WNOHANG)
                except ChildProcessError:
                    pass


class PatroniCluster:
    def __init__(self, base_dir, members=3, synchronous=False):
        self.base = os.path.abspath(base_dir)
        self.synchronous = synchronous
        self.ids = pgcluster._server_user()
        self.etcd_port = free_port()
        self.etcd_peer_port = free_port()
        self.etcd = None
        self.timings = {}
        self.members = {}
        for i in range(1, members + 1):
            self._new_member("pg%d" % i)

    def _new_member(self, name):
        m = Member(name, free_port(), free_port())
        self.members[name] = m
        return m

    # ---- processes ---------------------------------------------------------
    def _env(self):
        env = pgcluster._client_env()
        env["LC_ALL"] = env["LANG"] = "C.UTF-8"
        if self.ids is not None:
            env["HOME"] = self.base
            env["USER"] = env["LOGNAME"] = self.ids[2]
        return env

    def _as_server_user(self):
        if self.ids is None:
            return {}
        uid, gid, _ = self.ids
        return dict(user=uid, group=gid, extra_groups=[])

    def _start_etcd(self):
        data = os.path.join(self.base, "etcd")
        log = open(os.path.join(self.base, "etcd.log"), "w")
        peer = "http://%s:%d" % (HOST, self.etcd_peer_port)
        client = "http://%s:%d" % (HOST, self.etcd_port)
        self.etcd = subprocess.Popen(
            [ETCD, "--name", "e1", "--data-dir", data, "--enable-v2=true",
             "--listen-client-urls", client, "--advertise-client-urls", client,
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", "e1=" + peer, "--initial-cluster-state", "new"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        log.close()
        self._wait(lambda: self._http_ok(client + "/health"), 30, "etcd up")

    def _member_config(self, m, tags=None):
        d = os.path.join(self.base, m.name)
        conf = {
            "scope": SCOPE,
            "name": m.name,
            "log": {"level": "INFO", "dir": d},
            "restapi": {"listen": "%s:%d" % (HOST, m.api_port),
                        "connect_address": "%s:%d" % (HOST, m.api_port)},
            "etcd": {"host": "%s:%d" % (HOST, self.etcd_port)},
            "bootstrap": {
                "dcs": {
                    "ttl": 10, "loop_wait": 1, "retry_timeout": 3,
                    "maximum_lag_on_failover": 16 * 1024 * 1024,
                    "master_start_timeout": 0,
                    "synchronous_mode": self.synchronous,
                    "postgresql": {
                        "use_pg_rewind": True,
                        "parameters": {
                            "max_connections": 200, "wal_log_hints": "on",
                            "max_wal_senders": 10, "max_replication_slots": 10,
                            "hot_standby": "on", "wal_keep_size": "128MB",
                            "fsync": "off", "full_page_writes": "on",
                            "shared_buffers": "32MB",
                        },
                    },
                },
                "initdb": [{"encoding": "UTF8"}, {"locale": "C"}, "data-checksums"],
            },
            "postgresql": {
                "listen": "%s:%d" % (HOST, m.pg_port),
                "connect_address": "%s:%d" % (HOST, m.pg_port),
                "data_dir": os.path.join(d, "data"),
                "bin_dir": PG_BIN,
                "pgpass": os.path.join(d, "pgpass"),
                "basebackup": [{"checkpoint": "fast"}],
                "authentication": {
                    "superuser": {"username": "postgres", "password": "postgres"},
                    "replication": {"username": "postgres", "password": "postgres"},
                    "rewind": {"username": "postgres", "password": "postgres"},
                },
                "pg_hba": [
                    "local all all trust",
                    "host replication all 127.0.0.1/32 trust",
                    "host all app 127.0.0.1/32 scram-sha-256",
                    "host all all 127.0.0.1/32 trust",
                ],
                "parameters": {
                    "unix_socket_directories": d,
                    "password_encryption": "scram-sha-256",
                    "log_line_prefix": "%m [%p] %u@%d ",
                },
            },
            "tags": dict(tags or {}),
        }
        os.makedirs(d, exist_ok=True)
        m.config = os.path.join(d, "patroni.yml")
        with open(m.config, "w") as f:
            f.write(_yaml(conf))
        pgcluster._chown_tree(d, self.ids)
        return m.config

    def start_member(self, name, tags=None):
        """Start (or start again) the Patroni of one member."""
        m = self.members.get(name) or self._new_member(name)
        if m.config is None or tags is not None:
            self._member_config(m, tags)
        log = open(os.path.join(self.base, m.name + ".patroni.log"), "a")
        m.proc = subprocess.Popen([PATRONI, m.config], stdout=log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, cwd=self.base, env=self._env(),
                                  start_new_session=True, **self._as_server_user())
        log.close()
        return m

    def start(self, timeout=120):
        t0 = time.monotonic()
        pgcluster._become_subreaper()
        self._reaper_stop = threading.Event()
        self._reaper = threading.Thread(target=_reap_postmasters, args=(self._reaper_stop,),
                                        daemon=True)
        self._reaper.start()
        os.makedirs(self.base, exist_ok=True)
        pgcluster._chown_tree(self.base, self.ids)
        self._start_etcd()
        names = list(self.members)
        self.start_member(names[0])
        self._wait(lambda: self.leader() == names[0], timeout, "first leader")
        self.timings["leader"] = time.monotonic() - t0
        port = self.members[names[0]].pg_port
        pgcluster.psql(port, "CREATE ROLE app LOGIN PASSWORD 'app'", db="postgres")
        pgcluster.psql(port, "CREATE DATABASE app OWNER app", db="postgres")
        for name in names[1:]:
            self.start_member(name)
        self.wait_members(len(names), timeout)
        self.timings["all"] = time.monotonic() - t0

    # ---- looking at it -----------------------------------------------------
    @staticmethod
    def _http_ok(url):
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def cluster_json(self):
        """GET /cluster from the first member that answers, or None."""
        for m in self.members.values():
            try:
                with urllib.request.urlopen(m.api_url + "/cluster", timeout=2) as r:
                    return json.loads(r.read())
            except (OSError, ValueError):
                continue
        return None

    def leader(self):
        c = self.cluster_json() or {}
        for mem in c.get("members", []):
            if mem.get("role") == "leader" and mem.get("state") == "running":
                return mem["name"]
        return None

    def running_replicas(self):
        c = self.cluster_json() or {}
        return sorted(mem["name"] for mem in c.get("members", [])
                      if mem.get("role") in ("replica", "sync_standby")
                      and mem.get("state") in ("running", "streaming"))

    def wait_members(self, n, timeout=120):
        """n members running, one of them the leader (and one the sync standby in
        synchronous mode)."""
        self._wait(lambda: self.leader() is not None and len(self.running_replicas()) >= n - 1
                   and (not self.synchronous or self.sync_standby() is not None),
                   timeout, "%d running members" % n)

    @staticmethod
    def _wait(pred, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return
            time.sleep(0.2)
        raise TimeoutError("timed out waiting for " + what)

    def patronictl(self, *args, timeout=60):
        m = next(iter(self.members.values()))
        return subprocess.run([PATRONICTL, "-c", m.config] + list(args), capture_output=True,
                              text=True, timeout=timeout, env=self._env(), cwd=self.base,
                              stdin=subprocess.DEVNULL, check=True, **self._as_server_user())

    def sync_standby(self):
        c = self.cluster_json() or {}
        return next((m["name"] for m in c.get("members", []) if m.get("role") == "sync_standby"),
                    None)

    def switchover(self, candidate):
        """patronictl switchover to candidate (in synchronous mode it must be the sync
        standby); raises when Patroni refuses it (patronictl exits 0 even then)."""
        leader = self.leader()
        r = self.patronictl("switchover", SCOPE, "--leader", leader, "--candidate",
                            candidate, "--force")
        if "failed" in r.stdout.lower():
            raise RuntimeError("switchover refused: " + r.stdout[-300:])
        return r

    def postmaster_pid(self, name):
        path = os.path.join(self.base, name, "data", "postmaster.pid")
        with open(path) as f:
            return int(f.readline().strip())

    # ---- stopping -----------------------------------------------------------
    def stop_member(self, name, timeout=30):
        """Stop one Patroni (which stops its PostgreSQL) by its PID: SIGTERM, then
        SIGKILL of it and of its postmaster if either is still there."""
        m = self.members[name]
        if m.proc is None:
            return
        try:
            pm = self.postmaster_pid(name)
        except (OSError, ValueError):
            pm = None
        m.proc.send_signal(signal.SIGTERM)
        try:
            m.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            m.proc.kill()
            m.proc.wait(10)
        m.proc = None
        if pm is not None:
            try:
                os.kill(pm, 0)
                os.kill(pm, signal.SIGKILL)
            except OSError:
                pass
            pgcluster._reap(pm)

    def stop(self):
        for name in list(self.members):
            try:
                self.stop_member(name)
            except Exception:
                pass
        if self.etcd is not None:
            self.etcd.terminate()
            try:
                self.etcd.wait(10)
            except subprocess.TimeoutExpired:
                self.etcd.kill()
                self.etcd.wait(10)
            self.etcd = None
        if getattr(self, "_reaper", None) is not None:
            self._reaper_stop.set()
            self._reaper.join(5)
            self._reaper = None
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()


if __name__ == "__main__":
    import tempfile
    pc = PatroniCluster(tempfile.mkdtemp(prefix="patroni-"), synchronous=True)
    t = time.monotonic()
    try:
        pc.start()
        print("up in %.1fs" % (time.monotonic() - t), pc.timings)
        print(json.dumps(pc.cluster_json(), indent=1))
    finally:
        pc.stop()
