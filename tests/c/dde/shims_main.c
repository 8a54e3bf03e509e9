/* shims_main.c - host side of porter's shim check: a memfd arena, then the kernel side. */
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ddekit_linux.h"

int shims_run(size_t (*in_use)(void));

int main(void)
{
	size_t size = 16 << 20;
	int fd = memfd_create("porter-arena", 0), failures;

	if (fd < 0 || ftruncate(fd, size) || ddekit_linux_arena_attach(fd, size)) {
		fputs("porter-shims: cannot set up the arena\n", stderr);
		return 2;
	}
	failures = shims_run(ddekit_linux_arena_in_use);
	fprintf(stderr, "porter-shims: %d failures\n", failures);
	return failures ? 1 : 0;
}
