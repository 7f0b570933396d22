"""The command line: --version, --help, and --check-config with good and bad files."""

import os
import re
import subprocess


from conftest import POOLER_BIN, write_ini


def run(*args, cwd=None):
    assert os.path.exists(POOLER_BIN), "pooler binary not found: %s" % POOLER_BIN
    return subprocess.run([POOLER_BIN] + list(args), capture_output=True, text=True,
                          timeout=10, cwd=cwd, stdin=subprocess.DEVNULL)


def test_version(tmp_path):
    r = run("--version", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert re.search(r"\d+\.\d+", r.stdout + r.stderr), (r.stdout, r.stderr)


def test_help(tmp_path):
    r = run("--help", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    text = r.stdout + r.stderr
    assert "-c" in text and "--check-config" in text, text


def test_check_config_accepts_good_file(cluster, tmp_path):
    ini = write_ini(str(tmp_path), cluster, 6432)
    r = run("-c", ini, "--check-config", cwd=tmp_path)
    assert r.returncode == 0, r.stderr


def test_check_config_accepts_minimal_design_file(tmp_path):
    """The minimal file from DESIGN.md (pool_size = auto) is valid as is."""
    (tmp_path / "users.txt").write_text('"app" "app"\n')
    ini = tmp_path / "pooler.ini"
    ini.write_text("""[pooler]
listen_addr = 127.0.0.1
listen_port = 6432
auth_type = scram-sha-256        ; scram-sha-256 | md5 | trust
auth_file = users.txt            ; PgBouncer's userlist.txt format: "user" "secret" per line
admin_users = admin
metrics_listen = 127.0.0.1:9930
log_level = info

[node.primary]
host = 127.0.0.1
port = 5432
role = primary                   ; primary | replica | auto

[node.replica1]
host = 127.0.0.1
port = 5433
role = replica

[database.app]
dbname = app                     ; database name on the servers
nodes = primary, replica1
server_user = app
server_password = app
pool_mode = transaction          ; transaction | session
pool_size = auto                 ; cores * 2 + effective_spindle_count
""")
    r = run("-c", str(ini), "--check-config", cwd=tmp_path)
    assert r.returncode == 0, r.stderr


def check_bad(tmp_path, text, line, key):
    ini = tmp_path / "bad.ini"
    ini.write_text(text)
    (tmp_path / "users.txt").write_text('"app" "app"\n')
    r = run("-c", str(ini), "--check-config", cwd=tmp_path)
    err = r.stdout + r.stderr
    assert r.returncode != 0, "bad config accepted:\n" + text
    assert "bad.ini" in err, "error does not name the file: %r" % err
    assert re.search(r"(?<![\d.])%d(?![\d.])" % line, err), \
        "error does not name line %d: %r" % (line, err)
    assert key in err, "error does not name key %r: %r" % (key, err)
    return err


def test_check_config_rejects_unknown_key(tmp_path):
    check_bad(tmp_path, "[pooler]\nlisten_addr = 127.0.0.1\ncolour = red\n"
              "auth_file = users.txt\n", 3, "colour")


def test_check_config_rejects_bad_value(tmp_path):
    text = ("[pooler]\nlisten_addr = 127.0.0.1\nauth_file = users.txt\n\n"
            "[node.primary]\nhost = 127.0.0.1\nport = 5432\nrole = primary\n\n"
            "[database.app]\ndbname = app\nnodes = primary\nserver_user = app\n"
            "server_password = app\npool_mode = sideways\n")
    assert text.splitlines()[14] == "pool_mode = sideways"
    check_bad(tmp_path, text, 15, "pool_mode")


def test_check_config_rejects_bad_port(tmp_path):
    check_bad(tmp_path, "[pooler]\nlisten_port = seventy\nauth_file = users.txt\n", 2,
              "listen_port")


def test_missing_config_file_fails(tmp_path):
    r = run("-c", str(tmp_path / "nope.ini"), "--check-config", cwd=tmp_path)
    assert r.returncode != 0
    assert "nope.ini" in r.stdout + r.stderr
