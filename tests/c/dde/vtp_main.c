/* vtp_main.c - host side of porter's virt_to_phys check: a memfd arena, then the kernel side. */
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ddekit_linux.h"

int vtp_run(unsigned long arena_size);

int main(void)
{
	size_t size = 16 << 20;
	int fd = memfd_create("porter-arena", 0), failures;

	if (fd < 0 || ftruncate(fd, size) || ddekit_linux_arena_attach(fd, size)) {
		fputs("porter-vtp: cannot set up the arena\n", stderr);
		return 2;
	}
	failures = vtp_run(size);
	fprintf(stderr, "porter-vtp: %d failures\n", failures);
	return failures ? 1 : 0;
}
