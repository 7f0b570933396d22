# Builds regress.so (src/test/regress/regress.c of the PostgreSQL source) against the
# installed server headers (postgresql-server-dev-15), as PGXS does for an extension.
# Used by tests/regress/run.py: make -f tests/regress/pgxs.mk -C <dir holding regress.c>
MODULES = regress
PG_CONFIG ?= /usr/lib/postgresql/15/bin/pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)
