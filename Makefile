# netreload - a uWSGI plugin that reloads on a network ping, and its host client.
#
#   make            build build/netreload_plugin.so and build/netreload
#   make demo       install what is missing, run a demo app and show a live reload
#   make test       install what is missing, run the C unit tests and the pytest suite
#   make bench      side-by-side reload latency (bench/results/)
#   make install    PREFIX=/usr/local DESTDIR= (plugin into uWSGI's plugin dir)

CC ?= cc
PREFIX ?= /usr/local
DESTDIR ?=
BUILD := build
PYTHON := /usr/bin/python3
UWSGI_CFLAGS = $(shell uwsgi --cflags)
UWSGI_PLUGIN_DIR = $(shell uwsgi --cflags | sed -n 's/.*-DUWSGI_PLUGIN_DIR="\\"\([^"\\]*\)\\"".*/\1/p')
WARN := -Wall -Wextra -Werror
CFLAGS ?= -O2 -g
CLIENT_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS)
PLUGIN_CFLAGS = $(UWSGI_CFLAGS) -I$(BUILD) -std=gnu11 -fPIC $(WARN)

COMMON_SRC := common/nr_proto.c common/nr_auth.c common/nr_files.c
PLUGIN_SRC := plugin/netreload.c plugin/listen.c plugin/reload.c plugin/logtap.c plugin/handover.c \
	plugin/share.c
PLUGIN_HDR := plugin/netreload.h plugin/handover.h plugin/share.h common/nr_proto.h common/nr_auth.h \
	common/nr_files.h
CLIENT_SRC := $(wildcard client/*.c)
CLIENT_HDR := $(wildcard client/*.h) common/nr_proto.h common/nr_auth.h common/nr_files.h

# Debian packages each target needs; `make deps-*` installs only what is missing.
BUILD_PKGS := gcc make uwsgi-core uwsgi-dev uwsgi-plugin-python3 python3 libssl-dev
TEST_PKGS := $(BUILD_PKGS) python3-pytest netcat-openbsd curl inotify-tools python3-django \
	bindfs fuse3 iproute2 sshfs socat openssh-sftp-server
DEMO_PKGS := $(BUILD_PKGS) curl
FUZZ_PKGS := clang libclang-rt-14-dev libssl-dev
BENCH_PKGS := $(TEST_PKGS) inotify-tools gnuplot-nox bindfs fuse3 iproute2 python3-django
FUZZ_SECONDS ?= 30
# make check-asan: everything built with these into build-asan/, then the whole suite
SAN ?=
ASAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer

.PHONY: all plugin client test check unit pytest bench bench-reload bench-client bench-vm bench-stale bench-share test-vm demo \
	format install \
	clean deps-build deps-test deps-demo deps-fuzz fuzz check-asan \
	$(addprefix fuzz-run-,$(FUZZ_TARGETS))

all: plugin client

plugin: $(BUILD)/netreload_plugin.so
client: $(BUILD)/netreload

$(BUILD)/uwsgi.h: | deps-build
	@mkdir -p $(BUILD)
	uwsgi --dot-h > $@

$(BUILD)/netreload_plugin.so: $(PLUGIN_SRC) $(COMMON_SRC) $(PLUGIN_HDR) $(BUILD)/uwsgi.h
	$(CC) -shared $(PLUGIN_CFLAGS) $(SAN) -o $@ $(PLUGIN_SRC) $(COMMON_SRC) -lpthread -lcrypto

$(BUILD)/netreload: $(CLIENT_SRC) $(COMMON_SRC) $(CLIENT_HDR)
	@mkdir -p $(BUILD)
	$(CC) $(CLIENT_CFLAGS) $(SAN) -o $@ $(CLIENT_SRC) $(COMMON_SRC) -lcrypto

# test-only: preloaded into uWSGI to widen the fork window (tests/shim/slowfork.c)
$(BUILD)/slowfork.so: tests/shim/slowfork.c
	@mkdir -p $(BUILD)
	$(CC) -shared -fPIC $(CLIENT_CFLAGS) -o $@ $< -lpthread

$(BUILD)/test_filter: tests/unit/test_filter.c tests/unit/check.h client/filter.c client/filter.h
	@mkdir -p $(BUILD)
	$(CC) $(CLIENT_CFLAGS) $(SAN) -o $@ tests/unit/test_filter.c client/filter.c

# unit tests of plugin files that know nothing of uWSGI
$(BUILD)/test_handover $(BUILD)/test_share: $(BUILD)/test_%: tests/unit/test_%.c tests/unit/check.h \
		plugin/%.c plugin/%.h $(COMMON_SRC) common/nr_proto.h common/nr_files.h
	@mkdir -p $(BUILD)
	$(CC) $(CLIENT_CFLAGS) $(SAN) -o $@ $< plugin/$*.c $(COMMON_SRC) -lcrypto -lpthread

$(BUILD)/test_%: tests/unit/test_%.c tests/unit/check.h $(COMMON_SRC) common/nr_proto.h common/nr_auth.h \
		common/nr_files.h
	@mkdir -p $(BUILD)
	$(CC) $(CLIENT_CFLAGS) $(SAN) -o $@ $< $(COMMON_SRC) -lcrypto

deps-build:
	@sh tools/ensure-deps.sh $(BUILD_PKGS)
deps-test:
	@sh tools/ensure-deps.sh $(TEST_PKGS)
deps-demo:
	@sh tools/ensure-deps.sh $(DEMO_PKGS)
deps-fuzz:
	@sh tools/ensure-deps.sh $(FUZZ_PKGS)
deps-bench:
	@sh tools/ensure-deps.sh $(BENCH_PKGS)

UNIT_TESTS := $(patsubst tests/unit/%.c,$(BUILD)/%,$(wildcard tests/unit/test_*.c))

unit: $(UNIT_TESTS)
	@rc=0; for t in $(UNIT_TESTS); do echo "$$t"; $$t || rc=1; done; exit $$rc

# A private temp root: concurrent pytest sessions share /tmp/pytest-of-$USER and
# prune each other's directories, pulling files from under running servers.
pytest: all $(BUILD)/slowfork.so
	@d=$$(mktemp -d /tmp/netreload-test.XXXXXX); \
	$(PYTHON) -m pytest -q --basetemp=$$d tests; rc=$$?; \
	[ $$rc -eq 0 ] && rm -rf $$d || echo "test files kept in $$d"; exit $$rc

test: deps-test
	$(MAKE) unit pytest

check: test

# uWSGI itself is not instrumented: preload libasan into it for the plugin's sake.
check-asan: deps-test
	$(MAKE) BUILD=build-asan SAN="$(ASAN_FLAGS)" all unit build-asan/slowfork.so
	@d=$$(mktemp -d /tmp/netreload-asan.XXXXXX); \
	NETRELOAD_BUILD=build-asan NETRELOAD_PRELOAD="$$($(CC) -print-file-name=libasan.so)" \
		$(PYTHON) -m pytest -q --basetemp=$$d tests; rc=$$?; \
	[ $$rc -eq 0 ] && rm -rf $$d || echo "test files kept in $$d"; exit $$rc

demo: deps-demo
	$(MAKE) all
	$(PYTHON) tools/demo.py

# libFuzzer over every parser of bytes from the network or the user's tools: each
# tests/fuzz/fuzz_NAME.c runs FUZZ_SECONDS (default 30) from its seeds in
# tests/fuzz/corpus/NAME/, adds what it finds to build/fuzz-corpus/NAME/ and fails on a
# crash, a sanitizer report or a unit slower than FUZZ_TIMEOUT s (crash files in build/).
FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_FLAGS := -std=c11 -D_GNU_SOURCE $(WARN) -g -O1 \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ_SRC := $(COMMON_SRC) client/filter.c client/watch-stdin.c client/paths.c plugin/handover.c
FUZZ_TIMEOUT ?= 10
FUZZ_MAX_LEN ?= 4096
FUZZ_MAX_LEN_proto := 1024
# past PATH_MAX, where --stdin drops an over-long line whole
FUZZ_MAX_LEN_stdin := 10000

.PRECIOUS: $(BUILD)/fuzz_%
$(BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_SRC) $(CLIENT_HDR)
	@mkdir -p $(BUILD)
	clang $(FUZZ_FLAGS) -o $@ $< $(FUZZ_SRC) -lcrypto

fuzz-run-%: $(BUILD)/fuzz_%
	@mkdir -p $(BUILD)/fuzz-corpus/$*
	$(BUILD)/fuzz_$* -max_total_time=$(FUZZ_SECONDS) -timeout=$(FUZZ_TIMEOUT) \
		-max_len=$(or $(FUZZ_MAX_LEN_$*),$(FUZZ_MAX_LEN)) -print_final_stats=1 \
		-artifact_prefix=$(BUILD)/fuzz-$*- $(BUILD)/fuzz-corpus/$* tests/fuzz/corpus/$*

# -k: every target runs even when one fails; the exit status still says so.
fuzz: deps-fuzz
	$(MAKE) -k $(addprefix fuzz-run-,$(FUZZ_TARGETS))

bench: deps-bench
	$(MAKE) all
	$(PYTHON) bench/reload.py
	$(PYTHON) bench/django.py
	$(PYTHON) bench/vm.py
	$(PYTHON) bench/stale.py
	$(PYTHON) bench/client.py
	$(PYTHON) bench/plot.py

bench-reload: deps-bench
	$(MAKE) all
	$(PYTHON) bench/reload.py

# The simulated VM: two network namespaces and a FUSE share (root needed; skips otherwise).
test-vm: deps-test
	$(MAKE) all
	$(PYTHON) -m pytest -q tests/test_vm.py

bench-vm: deps-bench
	$(MAKE) all
	$(PYTHON) bench/vm.py

# Stale shares (tests/share.py): save -> live, and stale lives, with and without file lists.
bench-stale: deps-bench
	$(MAKE) all
	$(PYTHON) bench/stale.py

# How long host edits stay invisible through those shares, per way of looking.
bench-share: deps-bench
	$(PYTHON) bench/share.py

bench-client: deps-bench
	$(MAKE) all
	$(PYTHON) bench/client.py

format:
	clang-format -i common/*.[ch] plugin/*.[ch] client/*.[ch] tests/unit/*.c

install: all
	install -d $(DESTDIR)$(UWSGI_PLUGIN_DIR) $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 0644 $(BUILD)/netreload_plugin.so $(DESTDIR)$(UWSGI_PLUGIN_DIR)/
	install -m 0755 $(BUILD)/netreload $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 client/netreload.1 $(DESTDIR)$(PREFIX)/share/man/man1/

clean:
	rm -rf $(BUILD) build-asan netreload_plugin.so tests/__pycache__ .pytest_cache
