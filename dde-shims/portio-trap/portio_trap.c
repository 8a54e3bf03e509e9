/* portio_trap.c -- SIGSEGV handler that decodes and emulates in/out/ins/outs through callbacks */
#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>

#include "portio_trap.h"

#ifndef __i386__
#error "portio_trap.c decodes i386 instructions and i386 signal contexts"
#endif

#define EFLAGS_DF 0x400u
#define MAX_PREFIXES 4          /* more than a compiler ever puts on port I/O */

enum pio_kind { PIO_IN, PIO_OUT, PIO_INS, PIO_OUTS };

struct pio_insn {
	enum pio_kind kind;
	int size;                /* 1, 2 or 4 bytes */
	int rep;                 /* F3 on ins/outs: repeat ECX times */
	int imm_port;            /* port encoded in the instruction, -1: DX */
	unsigned length;         /* bytes, prefixes included */
};

static portio_read_fn port_read;
static portio_write_fn port_write;
static unsigned long emulated;
/* The fatal path copies instruction bytes through this pipe: write(2)
 * fails with EFAULT on unreadable memory where a load would fault again. */
static int probe_pipe[2] = { -1, -1 };
/* EIP of the instruction being emulated, 0 outside emulation: a fault while
 * it is set happened inside the handler (ins/outs on a bad buffer).
 * initial-exec: no lazy TLS allocation inside a signal handler. */
static __thread uintptr_t emulating_eip __attribute__((tls_model("initial-exec")));

static int decode(const uint8_t *ip, struct pio_insn *insn)
{
	unsigned i;
	int opsize16 = 0, rep = 0;
	uint8_t op;

	for (i = 0; i < MAX_PREFIXES; i++) {
		if (ip[i] == 0x66)
			opsize16 = 1;
		else if (ip[i] == 0xf3)
			rep = 1;
		else if (ip[i] == 0x26 || ip[i] == 0x2e || ip[i] == 0x36 || ip[i] == 0x3e)
			;       /* ES/CS/SS/DS overrides: all flat on Linux, no effect */
		else
			break;
	}
	op = ip[i++];
	insn->size = !(op & 1) ? 1 : opsize16 ? 2 : 4;
	insn->rep = 0;
	insn->imm_port = -1;
	switch (op) {
	case 0xe4: case 0xe5:
		insn->kind = PIO_IN;
		insn->imm_port = ip[i++];
		break;
	case 0xe6: case 0xe7:
		insn->kind = PIO_OUT;
		insn->imm_port = ip[i++];
		break;
	case 0xec: case 0xed:
		insn->kind = PIO_IN;
		break;
	case 0xee: case 0xef:
		insn->kind = PIO_OUT;
		break;
	case 0x6c: case 0x6d:
		insn->kind = PIO_INS;
		insn->rep = rep;
		break;
	case 0x6e: case 0x6f:
		insn->kind = PIO_OUTS;
		insn->rep = rep;
		break;
	default:
		return 0;
	}
	insn->length = i;
	return 1;
}

static void emulate(const struct pio_insn *insn, greg_t *gr)
{
	uint16_t port = insn->imm_port >= 0 ? (uint16_t)insn->imm_port : (uint16_t)gr[REG_EDX];
	uint32_t mask = insn->size == 4 ? 0xffffffffu : (1u << (8 * insn->size)) - 1;
	uint32_t eax = (uint32_t)gr[REG_EAX], count, v;
	int32_t step;

	switch (insn->kind) {
	case PIO_IN:
		/* in al/ax keeps the rest of eax, as the CPU does */
		v = port_read(port, insn->size) & mask;
		gr[REG_EAX] = (greg_t)((eax & ~mask) | v);
		return;
	case PIO_OUT:
		port_write(port, insn->size, eax & mask);
		return;
	case PIO_INS:
	case PIO_OUTS:
		break;
	}
	count = insn->rep ? (uint32_t)gr[REG_ECX] : 1;
	step = ((uint32_t)gr[REG_EFL] & EFLAGS_DF) ? -insn->size : insn->size;
	/* Registers advance element by element, as on the CPU, so they are
	 * consistent should a buffer access fault halfway. */
	for (; count; count--) {
		if (insn->kind == PIO_INS) {
			v = port_read(port, insn->size);
			memcpy((void *)(uintptr_t)gr[REG_EDI], &v, (size_t)insn->size);
			gr[REG_EDI] += step;
		} else {
			v = 0;
			memcpy(&v, (const void *)(uintptr_t)gr[REG_ESI], (size_t)insn->size);
			port_write(port, insn->size, v & mask);
			gr[REG_ESI] += step;
		}
		if (insn->rep)
			gr[REG_ECX]--;
	}
}

/* Async-signal-safe formatting for the fatal path: fixed buffer, no stdio. */
struct report {
	char buf[768];
	size_t len;
};

static void put(struct report *r, const char *s)
{
	while (*s && r->len < sizeof(r->buf))
		r->buf[r->len++] = *s++;
}

static void put_hex(struct report *r, uint32_t v, int digits)
{
	static const char hex[] = "0123456789abcdef";
	char s[9];
	int i;

	for (i = 0; i < digits; i++)
		s[i] = hex[(v >> (4 * (digits - 1 - i))) & 15];
	s[digits] = '\0';
	put(r, s);
}

static void put_dec(struct report *r, int v)
{
	char s[12];
	int i = sizeof(s) - 1;
	unsigned u = v < 0 ? 0u - (unsigned)v : (unsigned)v;

	s[i] = '\0';
	do {
		s[--i] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		s[--i] = '-';
	put(r, &s[i]);
}

/* One byte of possibly unmapped memory, through the probe pipe. */
static int probe_byte(uintptr_t addr, uint8_t *byte)
{
	if (probe_pipe[1] < 0 || write(probe_pipe[1], (const void *)addr, 1) != 1)
		return 0;
	return read(probe_pipe[0], byte, 1) == 1;
}

static void put_bytes(struct report *r, uintptr_t addr)
{
	int i;

	for (i = 0; i < 16; i++) {
		uint8_t b;

		put(r, " ");
		if (probe_byte(addr + (uintptr_t)i, &b))
			put_hex(r, b, 2);
		else
			put(r, "??");
	}
}

/*
 * Report, then restore the default action.  A fault returns to the faulting
 * instruction, which faults again and now kills the process by SIGSEGV at
 * the real site (a core shows it there).  A SIGSEGV sent by kill() would not
 * come back by itself, so it is raised again.
 */
static void die(const char *reason, const siginfo_t *si, const greg_t *gr)
{
	static struct report r;     /* static: keep the possibly small stack free */
	struct sigaction dfl;
	uintptr_t eip = (uintptr_t)gr[REG_EIP];

	r.len = 0;
	put(&r, "portio-trap: fatal SIGSEGV: ");
	put(&r, reason);
	put(&r, "\nportio-trap:   fault address: 0x");
	if (si->si_code <= 0) {
		/* sent, not raised by an access: si_addr is not filled in */
		put_hex(&r, 0, 8);
		put(&r, " (none: sent by pid ");
		put_dec(&r, (int)si->si_pid);
		put(&r, ", ");
	} else {
		put_hex(&r, (uint32_t)(uintptr_t)si->si_addr, 8);
		put(&r, " (");
	}
	put(&r, "si_code ");
	put_dec(&r, si->si_code);
	put(&r, ")\nportio-trap:   eip: 0x");
	put_hex(&r, (uint32_t)eip, 8);
	put(&r, "\nportio-trap:   bytes at eip:");
	put_bytes(&r, eip);
	if (emulating_eip) {
		put(&r, "\nportio-trap:   while emulating the port I/O instruction at eip 0x");
		put_hex(&r, (uint32_t)emulating_eip, 8);
		put(&r, ":");
		put_bytes(&r, emulating_eip);
	}
	put(&r, "\n");
	if (write(STDERR_FILENO, r.buf, r.len) < 0) {
		/* nowhere left to report */
	}

	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	sigaction(SIGSEGV, &dfl, NULL);
	if (si->si_code <= 0)
		raise(SIGSEGV);
}

static void on_sigsegv(int sig, siginfo_t *si, void *context)
{
	ucontext_t *uc = context;
	greg_t *gr = uc->uc_mcontext.gregs;
	int saved_errno = errno;
	struct pio_insn insn;

	(void)sig;
	if (emulating_eip) {
		die("fault while emulating port I/O (ins/outs on a bad buffer, or in a callback)", si, gr);
		return;
	}
	/* in/out without I/O privilege is a #GP, reported as SI_KERNEL;
	 * a page fault carries SEGV_MAPERR/SEGV_ACCERR and its address. */
	if (si->si_code != SI_KERNEL) {
		die(si->si_code == SEGV_MAPERR ? "address not mapped (a real memory fault)"
		    : si->si_code == SEGV_ACCERR ? "invalid permissions for the address (a real memory fault)"
		    : si->si_code <= 0 ? "SIGSEGV sent by a process, not a fault"
		    : "memory fault", si, gr);
		return;
	}
	if (!decode((const uint8_t *)(uintptr_t)gr[REG_EIP], &insn)) {
		die("general protection fault on an instruction that is not port I/O", si, gr);
		return;
	}
	emulating_eip = (uintptr_t)gr[REG_EIP];
	emulate(&insn, gr);
	emulating_eip = 0;
	gr[REG_EIP] += (greg_t)insn.length;
	__atomic_add_fetch(&emulated, 1, __ATOMIC_RELAXED);
	errno = saved_errno;
}

int portio_trap_install(portio_read_fn read_fn, portio_write_fn write_fn)
{
	struct sigaction sa;

	if (!read_fn || !write_fn)
		return -EINVAL;
	if (probe_pipe[0] < 0 && pipe2(probe_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		probe_pipe[0] = probe_pipe[1] = -1;
		return -errno;
	}
	port_read = read_fn;
	port_write = write_fn;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigsegv;
	/* NODEFER: a fault inside the handler (ins/outs on a bad buffer)
	 * re-enters it and is reported instead of killing silently. */
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSEGV, &sa, NULL) < 0)
		return -errno;
	return 0;
}

unsigned long portio_trap_count(void)
{
	return __atomic_load_n(&emulated, __ATOMIC_RELAXED);
}
