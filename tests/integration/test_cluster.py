"""The harness itself: the primary and replica the other tests rely on (no pooler involved)."""

import base64

import pgcluster
from pgwire import scram_verifier


def test_primary_and_replica_accept_connections(cluster):
    assert cluster.scalar("select pg_is_in_recovery()") is False
    assert cluster.scalar("select pg_is_in_recovery()", port=cluster.replica_port) is True


def test_replica_is_streaming(cluster):
    rows = cluster.query("select application_name, state from pg_stat_replication", db="postgres")
    assert len(rows) == 1 and rows[0][1] == "streaming", rows


def test_app_role_needs_its_password_over_tcp(cluster):
    assert cluster.scalar("select current_user", user="app", password="app") == "app"
    import psycopg
    try:
        cluster.query("select 1", user="app", password="wrong")
    except psycopg.OperationalError as e:
        assert "password authentication failed" in str(e)
    else:
        raise AssertionError("wrong password for app was accepted by PostgreSQL")


def test_writes_reach_the_replica(cluster):
    cluster.psql(cluster.primary_port, "drop table if exists harness_t; create table harness_t(x int);"
                 " insert into harness_t values (42)", user="app")
    cluster.wait_replay()
    assert pgcluster.psql(cluster.replica_port, "select x from harness_t", user="app") == "42"
    cluster.psql(cluster.primary_port, "drop table harness_t", user="app")


def test_scram_verifier_helper_matches_postgres(cluster):
    """The SCRAM verifier we write into users.txt is computed the way PostgreSQL does it."""
    stored = cluster.scalar("select rolpassword from pg_authid where rolname = 'app'", db="postgres")
    method, rest = stored.split("$", 1)
    iter_salt, keys = rest.split("$")
    iterations, salt = iter_salt.split(":")
    assert method == "SCRAM-SHA-256"
    assert scram_verifier("app", base64.b64decode(salt), int(iterations)) == stored
