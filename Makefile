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

COMMON_SRC := common/nr_proto.c common/nr_auth.c
PLUGIN_SRC := plugin/netreload.c plugin/listen.c plugin/reload.c plugin/logtap.c
PLUGIN_HDR := plugin/netreload.h common/nr_proto.h common/nr_auth.h
CLIENT_SRC := $(wildcard client/*.c)
CLIENT_HDR := $(wildcard client/*.h) common/nr_proto.h common/nr_auth.h

# Debian packages each target needs; `make deps-*` installs only what is missing.
BUILD_PKGS := gcc make uwsgi-core uwsgi-dev uwsgi-plugin-python3 python3 libssl-dev
TEST_PKGS := $(BUILD_PKGS) python3-pytest netcat-openbsd curl
DEMO_PKGS := $(BUILD_PKGS) curl

.PHONY: all plugin client test check unit pytest bench bench-reload demo format install \
	clean deps-build deps-test deps-demo

all: plugin client

plugin: $(BUILD)/netreload_plugin.so
client: $(BUILD)/netreload

$(BUILD)/uwsgi.h: | deps-build
	@mkdir -p $(BUILD)
	uwsgi --dot-h > $@

$(BUILD)/netreload_plugin.so: $(PLUGIN_SRC) $(COMMON_SRC) $(PLUGIN_HDR) $(BUILD)/uwsgi.h
	$(CC) -shared $(PLUGIN_CFLAGS) -o $@ $(PLUGIN_SRC) $(COMMON_SRC) -lpthread -lcrypto

$(BUILD)/netreload: $(CLIENT_SRC) $(COMMON_SRC) $(CLIENT_HDR)
	@mkdir -p $(BUILD)
	$(CC) $(CLIENT_CFLAGS) -o $@ $(CLIENT_SRC) $(COMMON_SRC) -lcrypto

$(BUILD)/test_%: tests/unit/test_%.c $(COMMON_SRC) common/nr_proto.h common/nr_auth.h
	@mkdir -p $(BUILD)
	$(CC) $(CLIENT_CFLAGS) -o $@ $< $(COMMON_SRC) -lcrypto

deps-build:
	@sh tools/ensure-deps.sh $(BUILD_PKGS)
deps-test:
	@sh tools/ensure-deps.sh $(TEST_PKGS)
deps-demo:
	@sh tools/ensure-deps.sh $(DEMO_PKGS)

UNIT_TESTS := $(patsubst tests/unit/%.c,$(BUILD)/%,$(wildcard tests/unit/test_*.c))

unit: $(UNIT_TESTS)
	@rc=0; for t in $(UNIT_TESTS); do echo "$$t"; $$t || rc=1; done; exit $$rc

pytest: all
	$(PYTHON) -m pytest -q tests

test: deps-test
	$(MAKE) unit pytest

check: test

demo: deps-demo
	$(MAKE) all
	$(PYTHON) tools/demo.py

bench: bench-reload

bench-reload: deps-test
	$(MAKE) all
	$(PYTHON) bench/reload.py

format:
	clang-format -i common/*.[ch] plugin/*.[ch] client/*.[ch] tests/unit/*.c

install: all
	install -d $(DESTDIR)$(UWSGI_PLUGIN_DIR) $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 0644 $(BUILD)/netreload_plugin.so $(DESTDIR)$(UWSGI_PLUGIN_DIR)/
	install -m 0755 $(BUILD)/netreload $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 client/netreload.1 $(DESTDIR)$(PREFIX)/share/man/man1/

clean:
	rm -rf $(BUILD) netreload_plugin.so tests/__pycache__ .pytest_cache
