"""--check-config refuses what would otherwise be silently wrong, each time with
file:line, the key or section, and what to do instead."""

import re

import pytest

from test_cli import run

GOOD_TAIL = "\n[node.primary]\nrole = primary\n\n[database.app]\nnodes = primary\n"


def refused(tmp_path, text, line):
    ini = tmp_path / "strict.ini"
    ini.write_text(text)
    (tmp_path / "users.txt").write_text('"app" "app"\n')
    r = run("-c", str(ini), "--check-config", cwd=tmp_path)
    err = r.stdout + r.stderr
    assert r.returncode == 1, "accepted:\n%s\n%s" % (text, err)
    assert "strict.ini:%d: " % line in err, "not at line %d: %r" % (line, err)
    assert len(err) < 300, "too long for one line: %r" % err
    return err


@pytest.mark.parametrize("text,line,words", [
    ("", 1, ["no [database.NAME] section"]),
    ("; nothing but comments\n\n", 2, ["no [database.NAME] section"]),
    ("[pooler]\nlisten_port = 6432\n\n[node.primary]\n", 4, ["no [database.NAME] section"]),
    ("[pooler]\nlisten_port = 6432\nlisten_port = 6433\n" + GOOD_TAIL, 3,
     ["listen_port", "set twice", "first on line 2"]),
    ("[pooler]\n[node.primary]\nport = 5432\n[node.primary]\nport = 5433\n"
     "[database.app]\n", 4, ["[node.primary]", "twice", "first on line 2"]),
    ("[pooler]\nlisten_port = 7432\nmetrics_listen = 127.0.0.1:7432\n" + GOOD_TAIL, 3,
     ["metrics_listen", "listen_port"]),
    ("[pooler]\nlisten_prot = 6432\n" + GOOD_TAIL, 2,
     ["listen_prot", "did you mean listen_port?"]),
    ("[pooler]\nauth_file = users.txt\nclient_tls_sslmode = require\n" + GOOD_TAIL, 3,
     ["client_tls_cert_file", "client_tls_sslmode"]),
])
def test_refused_with_line_and_key(tmp_path, text, line, words):
    err = refused(tmp_path, text, line)
    for w in words:
        assert w in err, (w, err)


def test_unknown_key_names_no_list(tmp_path):
    """A key that resembles none is refused without listing seventy keys."""
    err = refused(tmp_path, "[pooler]\ncolour = red\n" + GOOD_TAIL, 2)
    assert "colour" in err and "pooler.ini(5)" in err, err
    assert "listen_addr" not in err, err


def test_directory_is_not_a_config(tmp_path):
    r = run("-c", str(tmp_path), "--check-config", cwd=tmp_path)
    assert r.returncode == 1
    assert re.search(r"%s: is a directory" % re.escape(str(tmp_path)), r.stderr), r.stderr


def test_distinct_ports_and_addresses_pass(tmp_path):
    (tmp_path / "users.txt").write_text('"app" "app"\n')
    ini = tmp_path / "ok.ini"
    ini.write_text("[pooler]\nlisten_addr = 127.0.0.2\nlisten_port = 7432\n"
                   "metrics_listen = 127.0.0.1:7432\n" + GOOD_TAIL)
    r = run("-c", str(ini), "--check-config", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
