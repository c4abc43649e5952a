# SPDX-License-Identifier: Apache-2.0
# shoal build. `make` builds the binaries, `make test [T=PATTERN]` runs the tests,
# `make demo` runs the main job, `make bench BENCH=NAME [QUICK=1]` runs one benchmark.
#
# Every component folder is compiled into one static library (libshoal.a); a binary's main
# file is listed in MAINS and kept out of it. Tests are found by name: tests/*/test_*.c are
# compiled (under AddressSanitizer and UBSan) and linked against the sanitized library,
# tests/*/test_*.sh are run as they are.

CC      ?= gcc
CLANG   ?= clang
BPFTOOL ?= bpftool
BUILD   := build
V ?= 0
ifeq ($(V),0)
Q := @
else
Q :=
endif

PKGS    := libbpf libelf zlib jansson libmicrohttpd lmdb yaml-0.1 libcurl libnftnl libmnl
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

INCLUDES := -Icommon -Icontrolplane -Ischeduler -Idataplane -Iagent -Ifed -Icli \
	    -Ibpf/include -I$(BUILD)/skel
CFLAGS  ?= -g -O2
CFLAGS  += -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -pthread $(INCLUDES) $(PKG_CFLAGS)
LDLIBS  := $(PKG_LIBS) -lpthread -lm
SANITIZE ?= address,undefined
SANFLAGS := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=undefined

COMPONENTS := common controlplane scheduler dataplane agent fed cli
MAINS := controlplane/shoald.c cli/shoalctl.c agent/shoal_agent.c agent/shoal_shim.c
LIB_SRCS := $(filter-out $(MAINS),$(foreach c,$(COMPONENTS),$(wildcard $(c)/*.c)))
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
SAN_OBJS := $(LIB_SRCS:%.c=$(BUILD)/san/%.o)
BINS := $(foreach m,$(wildcard $(MAINS)),$(BUILD)/bin/$(subst _,-,$(basename $(notdir $(m)))))

# BPF programs: bpf/NAME.bpf.c -> build/bpf/NAME.bpf.o -> build/skel/NAME.skel.h
BPF_SRCS := $(wildcard bpf/*.bpf.c)
BPF_OBJS := $(BPF_SRCS:bpf/%.bpf.c=$(BUILD)/bpf/%.bpf.o)
SKELS    := $(BPF_SRCS:bpf/%.bpf.c=$(BUILD)/skel/%.skel.h)
VMLINUX  := $(BUILD)/vmlinux.h
ARCH     := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')
BPF_CFLAGS := -target bpf -g -O2 -Wall -Werror -D__TARGET_ARCH_$(ARCH) -I$(BUILD) -Ibpf/include -Ibpf

TEST_SRCS := $(wildcard tests/*/test_*.c)
TEST_BINS := $(TEST_SRCS:tests/%.c=$(BUILD)/test/%)
TEST_HELPERS := $(filter-out $(TEST_SRCS),$(wildcard tests/lib/*.c))
BENCH_SRCS := $(wildcard bench/*.c)
BENCH_BINS := $(BENCH_SRCS:bench/%.c=$(BUILD)/bench/%)

.PHONY: all test demo bench clean setup format
# BPF objects and skeletons are intermediate files: keep them, or every make rebuilds them.
.SECONDARY: $(BPF_OBJS) $(SKELS)
all: $(BINS) $(BENCH_BINS)

setup:
	$(Q)scripts/setup

$(VMLINUX):
	@mkdir -p $(@D)
	$(Q)$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $@.tmp && mv $@.tmp $@

$(BUILD)/bpf/%.bpf.o: bpf/%.bpf.c $(VMLINUX) $(wildcard bpf/include/*.h bpf/lib/*.h)
	@mkdir -p $(@D)
	@echo "  BPF     $@"
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/skel/%.skel.h: $(BUILD)/bpf/%.bpf.o
	@mkdir -p $(@D)
	@echo "  SKEL    $@"
	$(Q)$(BPFTOOL) gen skeleton $< name $(subst -,_,$*) > $@.tmp && mv $@.tmp $@

# Objects wait for the skeletons (order-only); the ones that include a skeleton depend on it
# through their -MMD dependency files, so a program change rebuilds only those.
$(BUILD)/obj/%.o: %.c | $(SKELS)
	@mkdir -p $(@D)
	@echo "  CC      $@"
	$(Q)$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/san/%.o: %.c | $(SKELS)
	@mkdir -p $(@D)
	@echo "  CC-SAN  $@"
	$(Q)$(CC) $(CFLAGS) $(SANFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/lib/libshoal.a: $(LIB_OBJS)
	@mkdir -p $(@D)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/lib/libshoal-san.a: $(SAN_OBJS)
	@mkdir -p $(@D)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/bin/shoald: $(BUILD)/obj/controlplane/shoald.o $(BUILD)/lib/libshoal.a
	@mkdir -p $(@D)
	@echo "  LD      $@"
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/bin/shoalctl: $(BUILD)/obj/cli/shoalctl.o $(BUILD)/lib/libshoal.a
	@mkdir -p $(@D)
	@echo "  LD      $@"
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/bin/shoal-agent: $(BUILD)/obj/agent/shoal_agent.o $(BUILD)/lib/libshoal.a
	@mkdir -p $(@D)
	@echo "  LD      $@"
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/bin/shoal-shim: $(BUILD)/obj/agent/shoal_shim.o $(BUILD)/lib/libshoal.a
	@mkdir -p $(@D)
	@echo "  LD      $@"
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# shoald under the sanitizers, for the integration tests.
$(BUILD)/san-bin/shoald: $(BUILD)/san/controlplane/shoald.o $(BUILD)/lib/libshoal-san.a
	@mkdir -p $(@D)
	@echo "  LD-SAN  $@"
	$(Q)$(CC) $(CFLAGS) $(SANFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/test/%: tests/%.c $(BUILD)/lib/libshoal-san.a $(TEST_HELPERS) $(wildcard tests/lib/*.h)
	@mkdir -p $(@D)
	@echo "  TEST    $@"
	$(Q)$(CC) $(CFLAGS) $(SANFLAGS) -Itests/lib -o $@ $< $(TEST_HELPERS) $(BUILD)/lib/libshoal-san.a $(LDLIBS) -lcmocka

$(BUILD)/bench/%: bench/%.c $(BUILD)/lib/libshoal.a
	@mkdir -p $(@D)
	@echo "  BENCH   $@"
	$(Q)$(CC) $(CFLAGS) -o $@ $< $(BUILD)/lib/libshoal.a $(LDLIBS)

test: setup
	$(Q)$(MAKE) --no-print-directory all $(TEST_BINS) $(BPF_OBJS) $(BUILD)/san-bin/shoald
	$(Q)tests/run "$(T)"

demo: setup
	$(Q)$(MAKE) --no-print-directory all
	$(Q)scripts/demo

bench: setup
	@test -n "$(BENCH)" || { echo "usage: make bench BENCH=NAME [QUICK=1]"; ls bench/ | grep -v '\.' ; exit 2; }
	$(Q)$(MAKE) --no-print-directory all $(BPF_OBJS)
	$(Q)QUICK=$(QUICK) MICRO=$(MICRO) bench/$(BENCH)

format:
	$(Q)clang-format -i $(wildcard */*.c */*.h bpf/*/*.h tests/*/*.c)

clean:
	rm -rf $(BUILD)

-include $(LIB_OBJS:.o=.d) $(SAN_OBJS:.o=.d) $(MAINS:%.c=$(BUILD)/obj/%.d)
