/* portio_crash.c -- faults that are not port I/O must still kill the process, with a report */
#define _GNU_SOURCE 1
#include <signal.h>
#include <stdint.h>
#include <string.h>

#include "portio_trap.h"
#include "check.h"

static uint32_t port_read(uint16_t port, int size)
{
	(void)port, (void)size;
	return 0;
}

static void port_write(uint16_t port, int size, uint32_t val)
{
	(void)port, (void)size, (void)val;
}

/* The address of an instruction, printed before executing it so the test
 * can compare it with the EIP in the report. */
extern const char hlt_insn[];

static __attribute__((noinline)) void run_hlt(void)
{
	printf("instruction at %p\n", (const void *)hlt_insn);
	fflush(stdout);
	asm volatile(".globl hlt_insn\nhlt_insn:\n\thlt");
}

int main(int argc, char **argv)
{
	CHECK(argc == 2);
	CHECK_EQ(portio_trap_install(port_read, port_write), 0);
	/* port I/O keeps working next to the fatal paths */
	{
		uint32_t eax = 0xff;

		asm volatile("inb $0x60, %%al" : "+a"(eax));
		CHECK_EQ(eax, 0);
	}
	printf("trap installed\n");
	fflush(stdout);

	if (strcmp(argv[1], "null-write") == 0) {
		*(volatile int *)0 = 1;
	} else if (strcmp(argv[1], "null-call") == 0) {
		void (*volatile fn)(void) = NULL;

		fn();
	} else if (strcmp(argv[1], "hlt") == 0) {
		run_hlt();      /* privileged, #GP like in/out, but not port I/O */
	} else if (strcmp(argv[1], "bad-buffer") == 0) {
		void *edi = (void *)16;     /* unmapped */
		uint32_t ecx = 4;

		asm volatile("rep insb" : "+D"(edi), "+c"(ecx) : "d"(0x300) : "memory");
	} else if (strcmp(argv[1], "kill") == 0) {
		raise(SIGSEGV);
	} else {
		return 2;
	}
	printf("survived\n");
	return 1;
}
