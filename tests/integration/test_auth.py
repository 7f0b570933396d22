"""Client authentication at the pooler: scram-sha-256, md5, trust, and the errors
a client gets for a wrong password, an unknown user or an unknown database."""

import asyncio

import asyncpg
import psycopg
import pytest


def login(p, user, password, dbname="app"):
    """Connect with psycopg and return current_database() (the pooler logs in as app)."""
    with psycopg.connect(p.dsn(user, password, dbname), autocommit=True) as conn:
        return conn.execute("select current_database(), 1").fetchone()


def alogin_error(p, user, password, dbname="app"):
    """Try an asyncpg login; return the exception (asyncpg maps SQLSTATE to classes)."""
    async def main():
        try:
            conn = await p.aconnect(user, password, dbname)
        except Exception as e:
            return e
        await conn.close()
        return None
    return asyncio.run(main())


@pytest.mark.parametrize("user,password", [("app", "app"), ("scramuser", "secret")])
def test_scram_login(pooler, user, password):
    p = pooler(auth_type="scram-sha-256")
    assert login(p, user, password) == ("app", 1)


def test_scram_login_with_asyncpg(pooler):
    p = pooler(auth_type="scram-sha-256")

    async def main():
        conn = await p.aconnect("scramuser", "secret")
        try:
            return await conn.fetchval("select 1")
        finally:
            await conn.close()

    assert asyncio.run(main()) == 1


@pytest.mark.parametrize("user,password", [("app", "app"), ("md5user", "secret")])
def test_md5_login(pooler, user, password):
    p = pooler(auth_type="md5")
    assert login(p, user, password) == ("app", 1)


def test_md5_auth_type_with_scram_secret_uses_scram(pooler):
    """As in PostgreSQL and PgBouncer: auth_type md5 with a SCRAM verifier on file
    authenticates that user with SCRAM."""
    p = pooler(auth_type="md5")
    assert login(p, "scramuser", "secret") == ("app", 1)


def test_trust_needs_no_password(pooler):
    p = pooler(auth_type="trust")
    with psycopg.connect(host=p.host, port=p.port, user="app", dbname="app",
                         connect_timeout=5, autocommit=True) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


@pytest.mark.parametrize("auth_type,user", [("scram-sha-256", "app"),
                                            ("scram-sha-256", "scramuser"),
                                            ("md5", "md5user"),
                                            ("md5", "app")])
def test_wrong_password_is_28P01(pooler, auth_type, user):
    p = pooler(auth_type=auth_type)
    err = alogin_error(p, user, "wrong-password")
    assert isinstance(err, asyncpg.InvalidPasswordError), repr(err)
    assert err.sqlstate == "28P01"
    with pytest.raises(psycopg.OperationalError) as ei:
        login(p, user, "wrong-password")
    assert "password authentication failed" in str(ei.value)
    assert login(p, user, "app" if user == "app" else "secret") == ("app", 1)


def test_unknown_user_is_28P01(pooler):
    p = pooler()
    err = alogin_error(p, "nobody", "whatever")
    assert isinstance(err, asyncpg.InvalidPasswordError), repr(err)
    assert err.sqlstate == "28P01"


def test_unknown_database_is_3D000(pooler):
    p = pooler()
    err = alogin_error(p, "app", "app", dbname="no_such_db")
    assert isinstance(err, asyncpg.InvalidCatalogNameError), repr(err)
    assert err.sqlstate == "3D000"
    with pytest.raises(psycopg.OperationalError) as ei:
        login(p, "app", "app", dbname="no_such_db")
    assert "no_such_db" in str(ei.value)


def test_failed_logins_do_not_disturb_others(pooler):
    p = pooler()
    with p.connect() as conn:
        for _ in range(5):
            assert isinstance(alogin_error(p, "app", "bad"), asyncpg.InvalidPasswordError)
        assert conn.execute("select 1").fetchone() == (1,)
