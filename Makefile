# pooler — build, test, run, lint, install.
# `make` builds build/pooler; `make test` installs what is missing, builds with ASan+UBSan
# and runs the unit and integration tests; `make run` installs only what the demo needs and
# starts it; `make install` (PREFIX, DESTDIR) installs the binary, the man pages, an example
# config and the systemd unit.

CC       ?= cc
PKGS     := libpq inih libssl libcrypto libmicrohttpd
# libev and libpg_query ship no pkg-config file on Debian; fall back to plain flags.
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -lpq -linih -lssl -lcrypto -lmicrohttpd)
EV_LIBS    := $(shell pkg-config --libs libev 2>/dev/null || echo -lev)
PGQ_LIBS   := $(shell pkg-config --libs libpg_query 2>/dev/null || echo -lpg_query)

WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-unused-parameter
CFLAGS   ?= -O2 -g
CFLAGS   += -std=gnu11 $(WARN) -Iinclude $(PKG_CFLAGS) -D_GNU_SOURCE -pthread
LDLIBS   := $(PKG_LIBS) $(EV_LIBS) $(PGQ_LIBS) -pthread

SAN_FLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
# ThreadSanitizer cannot share a binary with ASan: its own build, objects and test target.
TSAN_FLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=thread

SRCS     := $(wildcard pooler/*.c)
OBJS     := $(SRCS:pooler/%.c=build/obj/%.o)
SAN_OBJS := $(SRCS:pooler/%.c=build/asan/obj/%.o)
TSAN_OBJS := $(SRCS:pooler/%.c=build/tsan/obj/%.o)
# Modules without I/O, linked into the unit tests (peer for its cancel key layout).
PURE     := util log buf proto result patroni config config_keys config_check config_peers config_show config_man peer auth params classify classify_tree classify_text batch prepared backoff breaker ratelimit hba tls histogram
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=build/asan/tests/%)

Q        ?= @
PYTHON   := /usr/bin/python3
PYTEST_ARGS ?=

# What `make run` needs: the build and PostgreSQL 15. The tests need the rest: test
# frameworks, client drivers in several languages, promtool (prometheus), systemd-analyze
# (systemd) and groff for the unit file, the rules and the man pages.
DEMO_PACKAGES := build-essential pkg-config libev-dev libinih-dev libpg-query-dev libprotobuf-c-dev \
	libssl-dev libpq-dev libmicrohttpd-dev postgresql-15 postgresql-client-15 python3
DEB_PACKAGES := $(DEMO_PACKAGES) libcmocka-dev python3-pytest \
	python3-psycopg python3-asyncpg pgbouncer gnuplot-nox prometheus clang-format cppcheck \
	openssl libpostgresql-jdbc-java openjdk-17-jdk-headless golang-go golang-github-jackc-pgx-v4-dev \
	clang libclang-rt-14-dev systemd groff-base patroni etcd-server python3-etcd

# make install: PREFIX=/usr puts the config in /etc; DESTDIR stages a package.
PREFIX     ?= /usr/local
DESTDIR    ?=
BINDIR     ?= $(PREFIX)/bin
MANDIR     ?= $(PREFIX)/share/man
DOCDIR     ?= $(PREFIX)/share/doc/pooler
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
UNITDIR    ?= $(PREFIX)/lib/systemd/system
MAN_PAGES  := build/man/pooler.1 build/man/pooler.ini.5

# libFuzzer targets, built with clang and linked with the pure modules.
FUZZ_CC      ?= clang
FUZZ_TIME    ?= 60
FUZZ_SAN     := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS    := $(FUZZ_TARGETS:%=build/fuzz/fuzz_%)
FUZZ_OBJS    := $(PURE:%=build/fuzz/obj/%.o)

.PHONY: all deps deps-run asan tsan unit integration test tsan-test ha-test run bench soak fuzz \
	format lint clean check-format regress man install uninstall
# the fuzz objects are only inputs of the fuzz targets; keep them between runs
.SECONDARY: $(FUZZ_OBJS)

all: build/pooler

build/pooler: $(OBJS)
	@echo "  LINK $@"
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

build/obj/%.o: pooler/%.c $(wildcard include/*.h pooler/*.h) | build/obj
	@echo "  CC   $<"
	$(Q)$(CC) $(CFLAGS) -c -o $@ $<

build/asan/pooler: $(SAN_OBJS)
	@echo "  LINK $@"
	$(Q)$(CC) $(CFLAGS) $(SAN_FLAGS) -o $@ $^ $(LDLIBS)

build/asan/obj/%.o: pooler/%.c $(wildcard include/*.h pooler/*.h) | build/asan/obj
	@echo "  CC   $< (asan)"
	$(Q)$(CC) $(CFLAGS) $(SAN_FLAGS) -c -o $@ $<

build/tsan/pooler: $(TSAN_OBJS)
	@echo "  LINK $@"
	$(Q)$(CC) $(CFLAGS) $(TSAN_FLAGS) -o $@ $^ $(LDLIBS)

build/tsan/obj/%.o: pooler/%.c $(wildcard include/*.h pooler/*.h) | build/tsan/obj
	@echo "  CC   $< (tsan)"
	$(Q)$(CC) $(CFLAGS) $(TSAN_FLAGS) -c -o $@ $<

build/asan/tests/test_%: tests/unit/test_%.c $(PURE:%=build/asan/obj/%.o) | build/asan/tests
	@echo "  LINK $@"
	$(Q)$(CC) $(CFLAGS) $(SAN_FLAGS) -o $@ $^ $(LDLIBS) -lcmocka

build/fuzz/obj/%.o: pooler/%.c $(wildcard include/*.h pooler/*.h) | build/fuzz/obj
	@echo "  CC   $< (fuzz)"
	$(Q)$(FUZZ_CC) $(CFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer-no-link -c -o $@ $<

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(FUZZ_OBJS)
	@echo "  LINK $@"
	$(Q)$(FUZZ_CC) $(CFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $< $(FUZZ_OBJS) $(LDLIBS)

build/obj build/asan/obj build/asan/tests build/tsan/obj build/fuzz/obj build/man:
	mkdir -p $@

# The man pages come from the binary's own key table and --help (pooler --print-man).
man: $(MAN_PAGES)

build/man/pooler.1: build/pooler | build/man
	$(Q)build/pooler --print-man 1 > $@.tmp && mv $@.tmp $@

build/man/pooler.ini.5: build/pooler | build/man
	$(Q)build/pooler --print-man 5 > $@.tmp && mv $@.tmp $@

# The unit gets this install's paths; an existing config or users file is kept. The config
# puts the Unix socket in /run/pooler, which the unit creates (PrivateTmp hides /tmp).
install: all man
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 \
		$(DESTDIR)$(UNITDIR) $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(SYSCONFDIR)/pooler
	install -m 755 build/pooler $(DESTDIR)$(BINDIR)/pooler
	install -m 644 build/man/pooler.1 $(DESTDIR)$(MANDIR)/man1/pooler.1
	install -m 644 build/man/pooler.ini.5 $(DESTDIR)$(MANDIR)/man5/pooler.ini.5
	sed -e 's|/usr/local/bin/pooler|$(BINDIR)/pooler|' \
		-e 's|/usr/local/etc/pooler|$(SYSCONFDIR)/pooler|g' conf/pooler.service \
		> $(DESTDIR)$(UNITDIR)/pooler.service
	chmod 644 $(DESTDIR)$(UNITDIR)/pooler.service
	install -m 644 conf/pooler.ini conf/users.txt conf/grafana-dashboard.json conf/alerts.yml \
		$(DESTDIR)$(DOCDIR)/examples/
	install -m 644 README.md LICENSE $(DESTDIR)$(DOCDIR)/
	@ini=$(DESTDIR)$(SYSCONFDIR)/pooler/pooler.ini; users=$(DESTDIR)$(SYSCONFDIR)/pooler/users.txt; \
	if [ -e $$ini ]; then echo "kept $$ini"; else \
		sed 's|^unix_socket_dir = .*|unix_socket_dir = /run/pooler|' conf/pooler.ini > $$ini && \
		chmod 644 $$ini && echo "wrote $$ini"; fi; \
	if [ -e $$users ]; then echo "kept $$users"; else \
		grep -v '^"' conf/users.txt > $$users && chmod 640 $$users && echo "wrote $$users (no users yet)"; fi

# Leaves $(SYSCONFDIR)/pooler alone: it holds the operator's config and secrets.
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/pooler $(DESTDIR)$(MANDIR)/man1/pooler.1 \
		$(DESTDIR)$(MANDIR)/man5/pooler.ini.5 $(DESTDIR)$(UNITDIR)/pooler.service
	rm -rf $(DESTDIR)$(DOCDIR)

asan: build/asan/pooler

tsan: build/tsan/pooler

# Install the Debian packages that are missing (only those), as root or through sudo:
# deps for the tests, deps-run for the demo.
deps:
	$(call apt_missing,$(DEB_PACKAGES))

deps-run:
	$(call apt_missing,$(DEMO_PACKAGES))

define apt_missing
	@missing=""; for p in $(1); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		SUDO=""; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi
endef

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

integration: build/asan/pooler
	POOLER_BIN=$(CURDIR)/build/asan/pooler \
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
	$(PYTHON) -m pytest -q -p no:cacheprovider tests/integration $(PYTEST_ARGS)

# The one test command: what CI runs, what the README gives.
test: deps
	$(MAKE) all asan
	$(MAKE) unit
	$(MAKE) integration

# The integration tests with the most clients, pools and cross-client paths (about 2.5 min),
# against the ThreadSanitizer build with TSAN_WORKERS event loops (POOLER_WORKERS, see
# tests/integration/conftest.py). A build whose `workers` key does not take that value yet
# (--check-config of a minimal config says so) runs with its default instead. TSan reports
# go to the daemon's stderr, where the harness's sanitizer scan fails the test.
TSAN_WORKERS ?= 2
TSAN_TESTS   := workers pool cancel admin reload shutdown pgbench routing limits metrics prepared_clients
TSAN_PROBE   := [pooler]\nworkers = %s\nauth_file = users.txt\n[node.a]\nhost = 127.0.0.1\n[database.a]\nnodes = a\n
TSAN_RUN_OPTIONS := log_path=stderr:halt_on_error=0:second_deadlock_stack=1:suppressions=$(CURDIR)/tests/tsan.supp

tsan-test: deps tsan
	@workers=$(TSAN_WORKERS); d=$$(mktemp -d); : > $$d/users.txt; \
	printf '$(TSAN_PROBE)' "$$workers" > $$d/probe.ini; \
	if [ -n "$$workers" ] && \
		! why=$$(build/tsan/pooler --check-config -c $$d/probe.ini 2>&1 >/dev/null); then \
		echo "tsan-test: workers = $$workers not taken ($$why); running with the default"; \
		workers=; \
	fi; rm -rf $$d; \
	echo "tsan-test: POOLER_WORKERS=$${workers:-(unset)}"; \
	POOLER_BIN=$(CURDIR)/build/tsan/pooler POOLER_WORKERS=$$workers \
	TSAN_OPTIONS=$(TSAN_RUN_OPTIONS) $(PYTHON) -m pytest -q -p no:cacheprovider \
		$(TSAN_TESTS:%=tests/integration/test_%.py) $(PYTEST_ARGS)

# Only the Patroni tests (a three-member cluster and its etcd, about a minute); they are
# part of `make test` too.
ha-test: deps asan
	POOLER_BIN=$(CURDIR)/build/asan/pooler \
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
	$(PYTHON) -m pytest -q -s -p no:cacheprovider tests/integration/test_patroni.py $(PYTEST_ARGS)

run: deps-run all
	$(PYTHON) tests/demo.py

bench: deps all
	bench/run

# Long pgbench run watching the pooler's RSS and fds (SOAK_SECONDS, default 600); not in test.
soak: deps all
	bench/soak

# PostgreSQL 15's regression suite (pg_regress, unmodified parallel_schedule) against a
# throwaway server: directly, then through the pooler in session and in transaction mode;
# prints a summary (also build/regress/summary.txt), diffs in build/regress/<run>/. Fetches
# the tests once (apt-get source of the installed server version; pinned
# postgresql-server-dev-15). POOLER_BIN overrides the binary; REGRESS_STRICT=1 also fails
# on pooler-run failures not in tests/regress/expected_failures.txt. Not in test.
regress: deps all
	$(PYTHON) tests/regress/run.py

# Run each fuzz target for FUZZ_TIME seconds from its seed corpus (tests/fuzz/corpus, read
# only; what the run finds goes to build/fuzz/corpus). A crash, leak, UB or an assertion of
# the harness fails the run and leaves the input as build/fuzz/<target>-crash-*.
fuzz: deps $(FUZZ_BINS)
	@set -e; for t in $(FUZZ_TARGETS); do \
		mkdir -p build/fuzz/corpus/$$t; \
		dict=""; [ -f tests/fuzz/$$t.dict ] && dict="-dict=tests/fuzz/$$t.dict"; \
		log=build/fuzz/$$t.log; \
		if build/fuzz/fuzz_$$t -max_total_time=$(FUZZ_TIME) -timeout=10 -rss_limit_mb=2048 \
			-print_final_stats=1 -artifact_prefix=build/fuzz/$$t- $$dict \
			build/fuzz/corpus/$$t tests/fuzz/corpus/$$t >$$log 2>&1; then \
			runs=$$(sed -n 's/^stat::number_of_executed_units: *//p' $$log); \
			cov=$$(grep -o 'cov: [0-9]*' $$log | tail -1); \
			echo "fuzz_$$t: $$runs runs in $(FUZZ_TIME) s, $$cov, corpus $$(ls build/fuzz/corpus/$$t | wc -l) new"; \
		else \
			tail -60 $$log; echo "fuzz_$$t FAILED (log: $$log)"; exit 1; \
		fi; \
	done

format:
	clang-format -i pooler/*.c pooler/*.h include/*.h tests/unit/*.c tests/fuzz/*.c tests/fuzz/*.h

check-format:
	clang-format --dry-run -Werror pooler/*.c pooler/*.h include/*.h tests/unit/*.c tests/fuzz/*.c \
		tests/fuzz/*.h

lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
		--inline-suppr --suppress=missingIncludeSystem -Iinclude pooler/*.c

clean:
	rm -rf build
