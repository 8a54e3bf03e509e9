# ddekit-linux.mk -- sources and flags of ddekit-linux (DDEKit for Linux user space, i386)
#
# Include it and use the variables; it defines no rules.  DDE_TREE names
# the DDE source tree whose libddekit/ddekit/*.h are the API contract.
#
#   include dde-shims/ddekit-linux/ddekit-linux.mk
#   objects: $(CC) $(DDEKIT_LINUX_CFLAGS) -c <each of DDEKIT_LINUX_SRCS>
#   link:    $(CC) $(DDEKIT_LINUX_LDFLAGS) ... (the DDE's objects and ours) $(DDEKIT_LINUX_LDLIBS)
#
# The driver host links these with libdde_linux26 (and -Wl,--gc-sections,
# as netdde does); DDEKIT_LINUX_LDFLAGS carries the initcall script.

DDEKIT_LINUX_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))

DDEKIT_LINUX_SRCS := \
	$(DDEKIT_LINUX_DIR)/arena.c \
	$(DDEKIT_LINUX_DIR)/condvar.c \
	$(DDEKIT_LINUX_DIR)/init.c \
	$(DDEKIT_LINUX_DIR)/initcall.c \
	$(DDEKIT_LINUX_DIR)/interrupt.c \
	$(DDEKIT_LINUX_DIR)/jiffies.c \
	$(DDEKIT_LINUX_DIR)/lock.c \
	$(DDEKIT_LINUX_DIR)/memory.c \
	$(DDEKIT_LINUX_DIR)/panic.c \
	$(DDEKIT_LINUX_DIR)/pci.c \
	$(DDEKIT_LINUX_DIR)/pgtab.c \
	$(DDEKIT_LINUX_DIR)/printf.c \
	$(DDEKIT_LINUX_DIR)/resources.c \
	$(DDEKIT_LINUX_DIR)/semaphore.c \
	$(DDEKIT_LINUX_DIR)/thread.c \
	$(DDEKIT_LINUX_DIR)/timer.c \
	$(DDEKIT_LINUX_DIR)/unsupported.c

DDEKIT_LINUX_CFLAGS := -m32 -g -O2 -Wall -Wextra -pthread \
	-I$(DDEKIT_LINUX_DIR) -I$(DDE_TREE)/libddekit

DDEKIT_LINUX_LDFLAGS := -m32 -pthread -Wl,-T,$(DDEKIT_LINUX_DIR)/l4dde_ctors.ld

DDEKIT_LINUX_LDLIBS :=
