/* portio_test.c -- every in/out/ins/outs form, executed for real, reaches the callbacks and the right registers */
#define _GNU_SOURCE 1
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "portio_trap.h"
#include "check.h"

struct access {
	char op;            /* 'r' or 'w' */
	uint16_t port;
	int size;
	uint32_t val;       /* returned by read / given to write */
};

static struct access log_[64];
static int nlog;
static uint32_t next_value = 0x11223344;

/* Returns all 32 bits whatever the size: the trap must keep only size bytes. */
static uint32_t port_read(uint16_t port, int size)
{
	uint32_t v = next_value;

	next_value += 0x01010101;
	if (nlog < 64)
		log_[nlog++] = (struct access){ 'r', port, size, v };
	return v;
}

static void port_write(uint16_t port, int size, uint32_t val)
{
	if (nlog < 64)
		log_[nlog++] = (struct access){ 'w', port, size, val };
}

static void expect(int i, char op, uint16_t port, int size, uint32_t val)
{
	CHECK(i < nlog);
	CHECK_EQ(log_[i].op, op);
	CHECK_EQ(log_[i].port, port);
	CHECK_EQ(log_[i].size, size);
	CHECK_EQ(log_[i].val, val);
}

static unsigned long traps_before;

static void start(void)
{
	nlog = 0;
	traps_before = portio_trap_count();
}

static void finish(const char *name, int accesses, unsigned long traps)
{
	CHECK_EQ(nlog, accesses);
	CHECK_EQ(portio_trap_count() - traps_before, traps);
	PASS(name);
}

static void test_in_imm8(void)
{
	uint32_t eax;

	start();
	eax = 0xdeadbeef;
	asm volatile("inb $0x71, %%al" : "+a"(eax));
	expect(0, 'r', 0x71, 1, 0x11223344);
	CHECK_EQ(eax, 0xdeadbe44);                       /* only AL changes */
	eax = 0xdeadbeef;
	asm volatile("inw $0x72, %%ax" : "+a"(eax));
	expect(1, 'r', 0x72, 2, 0x12233445);
	CHECK_EQ(eax, 0xdead3445);                       /* only AX changes */
	eax = 0xdeadbeef;
	asm volatile("inl $0x74, %%eax" : "+a"(eax));
	expect(2, 'r', 0x74, 4, 0x13243546);
	CHECK_EQ(eax, 0x13243546);
	finish("in_imm8", 3, 3);
}

static void test_out_imm8(void)
{
	uint32_t eax = 0x12345678;

	start();
	asm volatile("outb %%al, $0x80" : : "a"(eax));
	asm volatile("outw %%ax, $0x82" : : "a"(eax));
	asm volatile("outl %%eax, $0x84" : : "a"(eax));
	expect(0, 'w', 0x80, 1, 0x78);
	expect(1, 'w', 0x82, 2, 0x5678);
	expect(2, 'w', 0x84, 4, 0x12345678);
	finish("out_imm8", 3, 3);
}

static void test_in_dx(void)
{
	uint32_t eax, edx = 0xabcdc010;                  /* the port is DX only */

	start();
	next_value = 0xa1b2c3d4;
	eax = 0xffffffff;
	asm volatile("inb %%dx, %%al" : "+a"(eax) : "d"(edx));
	expect(0, 'r', 0xc010, 1, 0xa1b2c3d4);
	CHECK_EQ(eax, 0xffffffd4);
	eax = 0xffffffff;
	asm volatile("inw %%dx, %%ax" : "+a"(eax) : "d"(edx + 2));
	expect(1, 'r', 0xc012, 2, 0xa2b3c4d5);
	CHECK_EQ(eax, 0xffffc4d5);
	eax = 0;
	asm volatile("inl %%dx, %%eax" : "+a"(eax) : "d"(edx + 4));
	expect(2, 'r', 0xc014, 4, 0xa3b4c5d6);
	CHECK_EQ(eax, 0xa3b4c5d6);
	finish("in_dx", 3, 3);
}

static void test_out_dx(void)
{
	uint32_t eax = 0xcafebabe;

	start();
	asm volatile("outb %%al, %%dx" : : "a"(eax), "d"(0xc018));
	asm volatile("outw %%ax, %%dx" : : "a"(eax), "d"(0xc01a));
	asm volatile("outl %%eax, %%dx" : : "a"(eax), "d"(0xc01c));
	expect(0, 'w', 0xc018, 1, 0xbe);
	expect(1, 'w', 0xc01a, 2, 0xbabe);
	expect(2, 'w', 0xc01c, 4, 0xcafebabe);
	finish("out_dx", 3, 3);
}

static void test_ins_single(void)
{
	uint8_t buf[16];
	uint8_t *edi;

	start();
	memset(buf, 0xee, sizeof(buf));
	next_value = 0x01020304;
	edi = buf;
	asm volatile("insb" : "+D"(edi) : "d"(0x300) : "memory");
	CHECK(edi == buf + 1);
	edi = buf + 1;
	asm volatile("insw" : "+D"(edi) : "d"(0x302) : "memory");
	CHECK(edi == buf + 3);
	edi = buf + 3;
	asm volatile("insl" : "+D"(edi) : "d"(0x304) : "memory");
	CHECK(edi == buf + 7);
	expect(0, 'r', 0x300, 1, 0x01020304);
	expect(1, 'r', 0x302, 2, 0x02030405);
	expect(2, 'r', 0x304, 4, 0x03040506);
	{
		const uint8_t want[8] = { 0x04, 0x05, 0x04, 0x06, 0x05, 0x04, 0x03, 0xee };

		CHECK(memcmp(buf, want, 8) == 0);        /* little endian, nothing beyond */
	}
	finish("ins_single", 3, 3);
}

static void test_rep_ins(void)
{
	uint8_t b[8];
	uint16_t w[8];
	uint32_t l[8];
	void *edi;
	uint32_t ecx;
	int i;

	start();
	memset(b, 0, sizeof(b));
	memset(w, 0, sizeof(w));
	memset(l, 0, sizeof(l));
	next_value = 0x10;
	edi = b, ecx = 5;
	asm volatile("rep insb" : "+D"(edi), "+c"(ecx) : "d"(0x310) : "memory");
	CHECK(edi == b + 5 && ecx == 0);
	edi = w, ecx = 4;
	asm volatile("rep insw" : "+D"(edi), "+c"(ecx) : "d"(0x312) : "memory");
	CHECK(edi == w + 4 && ecx == 0);
	edi = l, ecx = 3;
	asm volatile("rep insl" : "+D"(edi), "+c"(ecx) : "d"(0x314) : "memory");
	CHECK(edi == l + 3 && ecx == 0);
	for (i = 0; i < 5; i++) {
		expect(i, 'r', 0x310, 1, 0x10 + 0x01010101u * (uint32_t)i);
		CHECK_EQ(b[i], (uint8_t)(0x10 + i));
	}
	CHECK_EQ(b[5], 0);
	for (i = 0; i < 4; i++) {
		expect(5 + i, 'r', 0x312, 2, 0x10 + 0x01010101u * (uint32_t)(5 + i));
		CHECK_EQ(w[i], (uint16_t)(0x10 + 0x01010101u * (uint32_t)(5 + i)));
	}
	CHECK_EQ(w[4], 0);
	for (i = 0; i < 3; i++)
		CHECK_EQ(l[i], 0x10 + 0x01010101u * (uint32_t)(9 + i));
	CHECK_EQ(l[3], 0);

	/* rep with ECX = 0 does nothing */
	edi = b, ecx = 0;
	asm volatile("rep insb" : "+D"(edi), "+c"(ecx) : "d"(0x310) : "memory");
	CHECK(edi == b && ecx == 0);
	finish("rep_ins", 12, 4);
}

static void test_outs(void)
{
	const uint8_t b[4] = { 0xa0, 0xa1, 0xa2, 0xa3 };
	const uint16_t w[3] = { 0xb0b1, 0xb2b3, 0xb4b5 };
	const uint32_t l[3] = { 0xc0c1c2c3, 0xc4c5c6c7, 0xc8c9cacb };
	const void *esi;
	uint32_t ecx;

	start();
	esi = b;
	asm volatile("outsb" : "+S"(esi) : "d"(0x320) : "memory");
	CHECK(esi == b + 1);
	esi = w;
	asm volatile("outsw" : "+S"(esi) : "d"(0x322) : "memory");
	CHECK(esi == w + 1);
	esi = l;
	asm volatile("outsl" : "+S"(esi) : "d"(0x324) : "memory");
	CHECK(esi == l + 1);
	expect(0, 'w', 0x320, 1, 0xa0);
	expect(1, 'w', 0x322, 2, 0xb0b1);
	expect(2, 'w', 0x324, 4, 0xc0c1c2c3);

	esi = b, ecx = 4;
	asm volatile("rep outsb" : "+S"(esi), "+c"(ecx) : "d"(0x330) : "memory");
	CHECK(esi == b + 4 && ecx == 0);
	esi = w, ecx = 3;
	asm volatile("rep outsw" : "+S"(esi), "+c"(ecx) : "d"(0x332) : "memory");
	CHECK(esi == w + 3 && ecx == 0);
	esi = l, ecx = 3;
	asm volatile("rep outsl" : "+S"(esi), "+c"(ecx) : "d"(0x334) : "memory");
	CHECK(esi == l + 3 && ecx == 0);
	expect(3, 'w', 0x330, 1, 0xa0);
	expect(6, 'w', 0x330, 1, 0xa3);
	expect(7, 'w', 0x332, 2, 0xb0b1);
	expect(9, 'w', 0x332, 2, 0xb4b5);
	expect(10, 'w', 0x334, 4, 0xc0c1c2c3);
	expect(12, 'w', 0x334, 4, 0xc8c9cacb);

	/* a DS segment prefix (flat on Linux) is accepted */
	esi = b + 2;
	asm volatile(".byte 0x3e\n\toutsb" : "+S"(esi) : "d"(0x336) : "memory");
	CHECK(esi == b + 3);
	expect(13, 'w', 0x336, 1, 0xa2);
	finish("outs", 14, 7);
}

/* EFLAGS.DF = 1: the string goes backwards, first element at the start pointer. */
static void test_direction_flag(void)
{
	uint16_t w[6] = { 0 };
	const uint32_t l[3] = { 0xd0d1d2d3, 0xd4d5d6d7, 0xd8d9dadb };
	void *edi;
	const void *esi;
	uint32_t ecx;

	start();
	next_value = 0x5000;
	edi = &w[4], ecx = 4;
	asm volatile("std\n\trep insw\n\tcld" : "+D"(edi), "+c"(ecx) : "d"(0x340) : "memory");
	CHECK(edi == &w[0] && ecx == 0);
	CHECK_EQ(w[4], 0x5000);
	CHECK_EQ(w[3], 0x5101);
	CHECK_EQ(w[2], 0x5202);
	CHECK_EQ(w[1], 0x5303);
	CHECK_EQ(w[0], 0);
	CHECK_EQ(w[5], 0);

	esi = &l[2], ecx = 3;
	asm volatile("std\n\trep outsl\n\tcld" : "+S"(esi), "+c"(ecx) : "d"(0x344) : "memory");
	CHECK((const char *)esi == (const char *)l - 4 && ecx == 0);
	expect(4, 'w', 0x344, 4, 0xd8d9dadb);
	expect(5, 'w', 0x344, 4, 0xd4d5d6d7);
	expect(6, 'w', 0x344, 4, 0xd0d1d2d3);

	esi = &l[1];
	asm volatile("std\n\toutsl\n\tcld" : "+S"(esi) : "d"(0x348) : "memory");
	CHECK((const char *)esi == (const char *)&l[0]);
	expect(7, 'w', 0x348, 4, 0xd4d5d6d7);
	finish("direction_flag", 8, 3);
}

/* Threads trapping at once: each gets its own result, and none is lost. */
static uint32_t thread_read(uint16_t port, int size)
{
	return (uint32_t)port * 3u + (uint32_t)size;
}

static void thread_write(uint16_t port, int size, uint32_t val)
{
	(void)port, (void)size, (void)val;
}

static void *trapper(void *arg)
{
	uint16_t port = (uint16_t)(uintptr_t)arg;
	int i;

	for (i = 0; i < 2000; i++) {
		uint32_t eax = 0;

		asm volatile("inl %%dx, %%eax" : "+a"(eax) : "d"(port));
		CHECK_EQ(eax, port * 3u + 4u);
	}
	return NULL;
}

static void test_threads(void)
{
	pthread_t t[4];
	unsigned long before;
	int i;

	CHECK_EQ(portio_trap_install(thread_read, thread_write), 0);
	before = portio_trap_count();
	for (i = 0; i < 4; i++)
		CHECK_EQ(pthread_create(&t[i], NULL, trapper, (void *)(uintptr_t)(0x1000 + i)), 0);
	for (i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	CHECK_EQ(portio_trap_count() - before, 8000);
	PASS("threads");
}

int main(void)
{
	CHECK(portio_trap_install(NULL, port_write) != 0);
	CHECK_EQ(portio_trap_install(port_read, port_write), 0);
	CHECK_EQ(portio_trap_count(), 0);
	test_in_imm8();
	test_out_imm8();
	test_in_dx();
	test_out_dx();
	test_ins_single();
	test_rep_ins();
	test_outs();
	test_direction_flag();
	test_threads();
	return 0;
}
