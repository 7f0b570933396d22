"""auth_query: users missing from auth_file are looked up on the primary (as auth_user),
their verifier cached for auth_query_cache_ttl; an expired VALID UNTIL fails the login."""

import asyncio

import asyncpg
import psycopg
import pytest

PW = "Aq-secret-91b2"


@pytest.fixture
def roles(cluster):
    def sql(s, check=True):
        cluster.psql(cluster.primary_port, s, check=check)
    sql("drop role if exists aq_user; create role aq_user login password '%s'" % PW)
    sql("drop role if exists aq_expired; create role aq_expired login password '%s' "
        "valid until '2001-01-01 00:00:00+00'" % PW)
    sql("drop role if exists aq_later; create role aq_later login password '%s' "
        "valid until 'infinity'" % PW)
    verifier = cluster.scalar("select passwd from pg_shadow where usename = 'aq_user'")
    assert verifier.startswith("SCRAM-SHA-256$")
    yield verifier
    sql("drop role if exists aq_user; drop role if exists aq_expired; "
        "drop role if exists aq_later", check=False)


def aq_pooler(pooler, **extra):
    settings = {"auth_user": "postgres", "auth_dbname": "postgres"}
    settings.update(extra)
    return pooler(extra_pooler=settings)


def login_error(p, user, password):
    async def go():
        try:
            conn = await asyncpg.connect(host=p.host, port=p.port, user=user, password=password,
                                         database="app", ssl=False, timeout=5)
        except asyncpg.PostgresError as e:
            return e.sqlstate, str(e)
        await conn.close()
        return None
    return asyncio.run(go())


def test_user_from_the_primary_logs_in(pooler, roles):
    p = aq_pooler(pooler)
    with p.connect("aq_user", password=PW) as conn:
        # the server login is the database's server_user; the client is who auth_query found
        assert conn.execute("select 1").fetchone() == (1,)
    assert login_error(p, "aq_user", "wrong") == (
        "28P01", 'password authentication failed for user "aq_user"')
    # a user the primary does not know gets the same answer as a wrong password
    assert login_error(p, "aq_nobody", "wrong") == (
        "28P01", 'password authentication failed for user "aq_nobody"')
    # and auth_file users do not need the primary
    with p.connect("scramuser") as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_valid_until(pooler, roles):
    p = aq_pooler(pooler)
    assert login_error(p, "aq_expired", PW)[0] == "28P01"
    assert "password expired" in p.log()
    assert login_error(p, "aq_later", PW) is None


def test_answers_are_cached_until_reload(pooler, roles, cluster):
    p = aq_pooler(pooler, auth_query_cache_ttl="60s")
    assert login_error(p, "aq_user", PW) is None
    cluster.psql(cluster.primary_port, "alter role aq_user password 'changed-pw'")
    # the cached verifier still answers, without asking the primary
    assert login_error(p, "aq_user", PW) is None
    assert login_error(p, "aq_user", "changed-pw")[0] == "28P01"
    with p.connect("admin", dbname="pooler") as admin:
        admin.execute("reload")
    assert login_error(p, "aq_user", "changed-pw") is None


def test_no_cache_asks_every_time(pooler, roles, cluster):
    p = aq_pooler(pooler, auth_query_cache_ttl="0")
    assert login_error(p, "aq_user", PW) is None
    cluster.psql(cluster.primary_port, "alter role aq_user password 'changed-pw'")
    assert login_error(p, "aq_user", "changed-pw") is None


def test_many_logins_at_once(pooler, roles):
    """Lookups run on the event loop side by side with other clients' traffic."""
    p = aq_pooler(pooler, auth_query_cache_ttl="0")

    async def one(i):
        conn = await asyncpg.connect(host=p.host, port=p.port, user="aq_user", password=PW,
                                     database="app", ssl=False, timeout=10)
        try:
            return await conn.fetchval("select $1::int", i)
        finally:
            await conn.close()

    async def all_of_them():
        return await asyncio.gather(*(one(i) for i in range(20)))
    assert asyncio.run(all_of_them()) == list(range(20))


def test_verifier_never_logged(pooler, roles):
    p = aq_pooler(pooler, log_level="debug")
    assert login_error(p, "aq_user", PW) is None
    assert login_error(p, "aq_user", "bad") is not None
    with p.connect("admin", dbname="pooler") as admin:
        shown = str(admin.execute("show config").fetchall())
    for secret in (roles, roles.split("$")[2], PW):
        assert secret not in p.log()
        assert secret not in shown


def test_failed_lookup_fails_the_login_cleanly(pooler, roles):
    p = pooler(extra_pooler={"auth_user": "postgres", "auth_dbname": "no_such_database"})
    assert login_error(p, "aq_user", PW)[0] == "28P01"
    assert "auth_query failed" in p.log()
    with pytest.raises(psycopg.OperationalError):
        p.connect("aq_user", password=PW)


LOOKUP_PW = "Lookup-pw-3a7c1d"


@pytest.fixture
def lookup_role(cluster, roles):
    """A plain role that may only call a SECURITY DEFINER lookup function."""
    def sql(s, check=True):
        cluster.psql(cluster.primary_port, s, db="app", check=check)
    sql("drop function if exists pooler_lookup(text);"
        "drop role if exists aq_lookup;"
        "create role aq_lookup login password '%s';"
        "create function pooler_lookup(name text, out usename name, out passwd text,"
        "  out valuntil timestamptz) security definer language sql as "
        "$$ select usename, passwd, valuntil from pg_shadow where usename = name $$;"
        "revoke all on function pooler_lookup(text) from public;"
        "grant execute on function pooler_lookup(text) to aq_lookup" % LOOKUP_PW)
    yield
    sql("drop function if exists pooler_lookup(text); drop role if exists aq_lookup",
        check=False)


def test_lookup_through_a_security_definer_function(pooler, lookup_role):
    p = pooler(log_level="debug",
               extra_pooler={"auth_user": "aq_lookup", "auth_password": LOOKUP_PW,
                             "auth_dbname": "app",
                             "auth_query": "SELECT * FROM pooler_lookup($1)"})
    assert login_error(p, "aq_user", PW) is None
    assert login_error(p, "aq_expired", PW)[0] == "28P01"
    with p.connect("admin", dbname="pooler") as admin:
        shown = str(admin.execute("show config").fetchall())
    assert "auth_password" in shown
    assert LOOKUP_PW not in shown and LOOKUP_PW not in p.log()
