# jabber-ha: one build for the common library, the three daemons and their tests.
#
#   make            libcommon.a and the binaries proxyd, spoolsync, hamon (in build/)
#   make check      install missing Debian packages, build, run every test
#   make demo       start the suite on loopback (see README.md)
#   make asan       unit tests under AddressSanitizer + UBSan (in build-asan/)
#   make install    PREFIX=/usr/local DESTDIR=
#   make CC=clang   the same with clang

CC	?= cc
BUILD	?= build
PREFIX	?= /usr/local
DESTDIR	?=
SYSCONFDIR ?= /etc/jabber-ha
UNITDIR	?= /lib/systemd/system
SYSUSERSDIR ?= /usr/lib/sysusers.d

WARN	 = -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes \
	   -Wmissing-prototypes -Wno-unused-parameter
# CFLAGS is yours (make CFLAGS="-O0 -g"); the language and warnings always apply.
CFLAGS	?= -O2 -g
override CFLAGS += -std=c11 -D_GNU_SOURCE -fno-strict-aliasing $(WARN) $(SAN)
CPPFLAGS += -Icommon -Ispoolsync -Ihamon -Iproxyd -I/usr/include/mariadb -MMD -MP
LDFLAGS	+= $(SAN) -Wl,--as-needed
LDLIBS	 = -levent_openssl -levent_pthreads -levent -lyaml -lexpat -lssl -lcrypto \
	   -lsqlite3 -lrsync -linotifytools -lmariadb -lpthread -lm

.DEFAULT_GOAL := all

DAEMONS	 = proxyd spoolsync hamon

COMMON_SRC	= $(wildcard common/*.c)
COMMON_OBJ	= $(COMMON_SRC:%.c=$(BUILD)/obj/%.o)
LIBCOMMON	= $(BUILD)/libcommon.a

# Each daemon: <d>/<d>.c holds main(); the rest is lib<d>.a, which tests link too.
define daemon_rules
$(1)_SRC	= $$(filter-out $(1)/$(1).c,$$(wildcard $(1)/*.c))
$(1)_OBJ	= $$($(1)_SRC:%.c=$$(BUILD)/obj/%.o)
$$(BUILD)/lib$(1).a: $$($(1)_OBJ)
	@mkdir -p $$(@D)
	@rm -f $$@ && ar rcs $$@ $$^
$$(BUILD)/$(1): $$(BUILD)/obj/$(1)/$(1).o $$(BUILD)/lib$(1).a $$(LIBCOMMON)
	@echo "LD $$@"
	@$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS)
endef
$(foreach d,$(DAEMONS),$(eval $(call daemon_rules,$(d))))

BINS		= $(DAEMONS:%=$(BUILD)/%)
DAEMON_LIBS	= $(DAEMONS:%=$(BUILD)/lib%.a)

UNIT_SRC	= $(wildcard tests/unit/test_*.c)
UNIT_BIN	= $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRC	= $(wildcard tests/fuzz/fuzz_*.c)

all: $(LIBCOMMON) $(BINS)

$(LIBCOMMON): $(COMMON_OBJ)
	@mkdir -p $(@D)
	@rm -f $@ && ar rcs $@ $^

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	@echo "CC $<"
	@$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

UNIT_UTIL	= $(BUILD)/obj/tests/unit/util.o

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(UNIT_UTIL) $(DAEMON_LIBS) $(LIBCOMMON)
	@mkdir -p $(@D)
	@echo "LD $@"
	@$(CC) $(LDFLAGS) -o $@ $< $(UNIT_UTIL) $(DAEMON_LIBS) $(LIBCOMMON) -lcmocka $(LDLIBS)

# Helper programs the system tests drive (tests/tools/NAME.c -> build/tests/NAME).
TOOL_SRC	= $(wildcard tests/tools/*.c)
TOOL_BIN	= $(TOOL_SRC:tests/tools/%.c=$(BUILD)/tests/%)

$(BUILD)/tests/%: $(BUILD)/obj/tests/tools/%.o $(DAEMON_LIBS) $(LIBCOMMON)
	@mkdir -p $(@D)
	@echo "LD $@"
	@$(CC) $(LDFLAGS) -o $@ $< $(DAEMON_LIBS) $(LIBCOMMON) $(LDLIBS)

unit: $(UNIT_BIN) $(TOOL_BIN)

# Every Debian package the build, the tests, the benchmarks and the demo need.
DEPS = build-essential clang pkg-config libinotifytools0-dev librsync-dev \
	libevent-dev libyaml-dev libexpat1-dev libssl-dev libsqlite3-dev \
	default-libmysqlclient-dev libcmocka-dev libclang-rt-14-dev \
	prosody mariadb-server haproxy python3-slixmpp python3-pytest \
	rsync lsyncd inotify-tools systemd openssl procps iproute2 util-linux
deps:
	@missing=$$(dpkg-query -W -f='$${db:Status-Abbrev} $${Package}\n' $(DEPS) 2>/dev/null \
		| awk '$$1 == "ii" { print $$2 }' | sort > $(BUILD).have; \
		echo $(DEPS) | tr ' ' '\n' | sort | comm -23 - $(BUILD).have); \
	rm -f $(BUILD).have; \
	if [ -n "$$missing" ]; then \
		echo "make deps: installing" $$missing; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing \
			>/dev/null || { echo "make deps: apt-get failed" >&2; exit 1; }; \
	fi

check: deps
	$(MAKE) all unit
	tests/run

# What CI and a person run: the unit tests, then the system tests, one summary line.
test: all unit
	tests/run

asan:
	$(MAKE) BUILD=build-asan SAN="-fsanitize=address,undefined -fno-omit-frame-pointer" \
		CFLAGS="-O1 -g" all unit
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
		tests/run --unit-only --build build-asan

# libFuzzer targets: the libraries instrumented, each tests/fuzz/fuzz_*.c linked to them.
FUZZ_BIN = $(FUZZ_SRC:tests/fuzz/%.c=build-fuzz/%)
fuzz:
	$(MAKE) BUILD=build-fuzz CC=clang CFLAGS="-O1 -g" \
		SAN="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined" \
		$(FUZZ_BIN)

FUZZ_LIBS = $(DAEMON_LIBS:$(BUILD)/%=build-fuzz/%) build-fuzz/libcommon.a
build-fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_LIBS)
	@echo "FUZZ $@"
	@$(CC) $(CPPFLAGS) $(CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_LIBS) $(LDLIBS)

demo: deps
	$(MAKE) all
	tests/demo

install: all
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(SYSCONFDIR) $(DESTDIR)$(UNITDIR) \
		$(DESTDIR)$(SYSUSERSDIR)
	install -m 0644 systemd/jabber-ha.sysusers.conf $(DESTDIR)$(SYSUSERSDIR)/jabber-ha.conf
	install -m 0755 $(BINS) $(DESTDIR)$(PREFIX)/sbin/
	for f in conf/*.yaml; do \
		t=$(DESTDIR)$(SYSCONFDIR)/$$(basename $$f); \
		[ -e $$t ] || install -m 0640 $$f $$t; \
	done
	for f in systemd/*.service; do \
		sed 's|@SBINDIR@|$(PREFIX)/sbin|g; s|@SYSCONFDIR@|$(SYSCONFDIR)|g' $$f \
			> $(DESTDIR)$(UNITDIR)/$$(basename $$f); \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$$(basename $$f); \
	done

uninstall:
	rm -f $(DAEMONS:%=$(DESTDIR)$(PREFIX)/sbin/%) \
		$(DAEMONS:%=$(DESTDIR)$(UNITDIR)/jabber-ha-%.service) \
		$(DESTDIR)$(SYSUSERSDIR)/jabber-ha.conf

clean:
	rm -rf build build-asan build-fuzz

# Keep test objects: they are intermediates of the test binaries.
.SECONDARY:

.PHONY: all unit deps check test asan fuzz demo install uninstall clean

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
