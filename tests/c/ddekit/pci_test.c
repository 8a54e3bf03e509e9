/* pci_test.c -- ddekit_pci_* forwarded to the driver host's callbacks over a fake two-device bus */
#include <stdint.h>
#include <string.h>

#include <ddekit/pci.h>
#include <ddekit/resources.h>

#include "ddekit_linux.h"
#include "check.h"

/* Config space of two devices at 00:03.0 and 00:04.0; BAR sizes below. */
static uint8_t cfg[2][256];
static const uint32_t bar_size[2][6] = { { 32, 4096 }, { 64 } };

static struct { int op, bus, slot, func, pos, len; uint32_t val; } last;
static int calls, irq_pin;

static int dev_index(int bus, int slot, int func)
{
	return bus == 0 && func == 0 && (slot == 3 || slot == 4) ? slot - 3 : -1;
}

static int get_device(int nr, int *bus, int *slot, int *func)
{
	if (nr < 0 || nr > 1)
		return -1;
	*bus = 0;
	*slot = 3 + nr;
	*func = 0;
	return 0;
}

static int cfg_read(int bus, int slot, int func, int pos, int len, uint32_t *val)
{
	int d = dev_index(bus, slot, func);

	last = (typeof(last)){ 'r', bus, slot, func, pos, len, 0 };
	calls++;
	if (d < 0)
		return -1;
	*val = 0;
	memcpy(val, &cfg[d][pos], (size_t)len);
	*val |= 0xdead0000u & (len < 4 ? ~0u : 0);   /* junk above len: must be masked */
	return 0;
}

static int cfg_write(int bus, int slot, int func, int pos, int len, uint32_t val)
{
	int d = dev_index(bus, slot, func);

	last = (typeof(last)){ 'w', bus, slot, func, pos, len, val };
	calls++;
	if (d < 0)
		return -1;
	if (pos >= 0x10 && pos < 0x28 && len == 4) {          /* BARs decode only their size */
		uint32_t size = bar_size[d][(pos - 0x10) / 4];
		uint32_t io = cfg[d][pos] & 1;

		val = size ? (val & ~(size - 1)) | io : 0;
	}
	memcpy(&cfg[d][pos], &val, (size_t)len);
	return 0;
}

static int irq_enable(int bus, int slot, int func, int pin, int *irq)
{
	if (dev_index(bus, slot, func) < 0)
		return -1;
	irq_pin = pin;
	*irq = 11 + slot;
	return 0;
}

static const struct ddekit_linux_pci_ops ops = { get_device, cfg_read, cfg_write, irq_enable };

static void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }

static void setup_bus(void)
{
	put16(&cfg[0][0x00], 0x1af4);
	put16(&cfg[0][0x02], 0x1000);
	put32(&cfg[0][0x08], 0x02000000);          /* network controller, rev 0 */
	put16(&cfg[0][0x2c], 0x1af4);
	put16(&cfg[0][0x2e], 0x0001);
	cfg[0][0x3c] = 11;
	put32(&cfg[0][0x10], 0xc001);              /* I/O BAR at 0xc000 */
	put32(&cfg[0][0x14], 0xfebf1000);          /* memory BAR */
	put16(&cfg[1][0x00], 0x1af4);
	put16(&cfg[1][0x02], 0x1001);
}

int main(int argc, char **argv)
{
	int bus, slot, func, irq;
	uint8_t b;
	uint16_t w;
	uint32_t l;
	struct ddekit_pci_dev *d0, *d1;
	ddekit_pci_res_t *res;

	ddekit_init();
	if (argc > 1 && strcmp(argv[1], "incomplete-ops") == 0) {
		struct ddekit_linux_pci_ops partial = ops;

		partial.irq_enable = NULL;
		ddekit_linux_set_pci_ops(&partial);        /* must stop the process */
		return 1;
	}
	setup_bus();

	/* no callbacks: an empty bus */
	CHECK(ddekit_pci_get_device(0, &bus, &slot, &func) != 0);
	CHECK(ddekit_pci_readl(0, 3, 0, 0, &l) != 0);
	CHECK_EQ(calls, 0);

	ddekit_linux_set_pci_ops(&ops);
	ddekit_pci_init();
	CHECK_EQ(ddekit_pci_get_device(0, &bus, &slot, &func), 0);
	CHECK(bus == 0 && slot == 3 && func == 0);
	CHECK_EQ(ddekit_pci_get_device(1, &bus, &slot, &func), 0);
	CHECK(bus == 0 && slot == 4 && func == 0);
	CHECK(ddekit_pci_get_device(2, &bus, &slot, &func) != 0);
	PASS("enumeration");

	CHECK_EQ(ddekit_pci_readw(0, 3, 0, 0x00, &w), 0);
	CHECK_EQ(w, 0x1af4);
	CHECK(last.op == 'r' && last.pos == 0 && last.len == 2);
	CHECK_EQ(ddekit_pci_readl(0, 3, 0, 0x00, &l), 0);
	CHECK_EQ(l, 0x10001af4);
	CHECK_EQ(ddekit_pci_readb(0, 3, 0, 0x3c, &b), 0);
	CHECK_EQ(b, 11);
	CHECK_EQ(ddekit_pci_read(0, 3, 0, 0x02, 2, &l), 0);
	CHECK_EQ(l, 0x1000);                              /* junk above 16 bits masked */
	CHECK(ddekit_pci_read(0, 3, 0, 0x00, 3, &l) != 0);       /* no 3-byte cycles */
	CHECK(ddekit_pci_readl(0, 9, 0, 0x00, &l) != 0);         /* no device there */
	CHECK_EQ(ddekit_pci_writeb(0, 3, 0, 0x3c, 5), 0);
	CHECK(last.op == 'w' && last.pos == 0x3c && last.len == 1 && last.val == 5);
	CHECK_EQ(cfg[0][0x3c], 5);
	CHECK_EQ(ddekit_pci_write(0, 3, 0, 0x3c, 1, 0x120b), 0);
	CHECK_EQ(last.val, 0x0b);                          /* only the byte written */
	CHECK_EQ(ddekit_pci_writew(0, 4, 0, 0x04, 0x0001), 0);
	CHECK(last.slot == 4 && last.len == 2 && last.val == 1);
	CHECK_EQ(ddekit_pci_writel(0, 4, 0, 0x40, 0xcafef00d), 0);
	CHECK(last.len == 4 && last.val == 0xcafef00d);
	CHECK_EQ(ddekit_pci_irq_enable(0, 3, 0, 0, &irq), 0);
	CHECK(irq == 14 && irq_pin == 0);
	PASS("config_space");

	bus = slot = func = DDEKIT_PCI_ANY_ID;
	d0 = ddekit_pci_find_device(&bus, &slot, &func, NULL);
	CHECK(d0 && bus == 0 && slot == 3 && func == 0);
	bus = slot = func = DDEKIT_PCI_ANY_ID;
	d1 = ddekit_pci_find_device(&bus, &slot, &func, d0);
	CHECK(d1 && d1 != d0 && slot == 4);
	bus = slot = func = DDEKIT_PCI_ANY_ID;
	CHECK(ddekit_pci_find_device(&bus, &slot, &func, d1) == NULL);
	bus = 0, slot = 4, func = DDEKIT_PCI_ANY_ID;
	CHECK(ddekit_pci_find_device(&bus, &slot, &func, NULL) == d1);

	CHECK_EQ(ddekit_pci_get_vendor(d0), 0x1af4);
	CHECK_EQ(ddekit_pci_get_device_id(d0), 0x1000);
	CHECK_EQ(ddekit_pci_get_device_id(d1), 0x1001);
	CHECK_EQ(ddekit_pci_get_sub_vendor(d0), 0x1af4);
	CHECK_EQ(ddekit_pci_get_sub_device(d0), 0x0001);
	CHECK_EQ(ddekit_pci_get_dev_class(d0), 0x020000);
	CHECK_EQ(ddekit_pci_get_irq(d0), 11);
	CHECK(strcmp(ddekit_pci_get_name(d0), "1af4:1000") == 0);
	CHECK(strcmp(ddekit_pci_get_slot_name(d1), "0000:00:04.0") == 0);

	CHECK_EQ(ddekit_pci_enable_device(d0), 0);
	CHECK_EQ(cfg[0][0x04] & 7, 3);                     /* I/O + memory decode */
	ddekit_pci_set_master(d0);
	CHECK_EQ(cfg[0][0x04] & 7, 7);
	CHECK_EQ(ddekit_pci_disable_device(d0), 0);
	CHECK_EQ(cfg[0][0x04] & 7, 0);
	PASS("device_handles");

	res = ddekit_pci_get_resource(d0, 0);
	CHECK(res && res->start == 0xc000 && res->end == 0xc01f && res->flags == 0x100);
	CHECK_EQ(cfg[0][0x10] | cfg[0][0x11] << 8, 0xc001);   /* BAR restored after sizing */
	res = ddekit_pci_get_resource(d0, 1);
	CHECK(res && res->start == 0xfebf1000 && res->end == 0xfebf1fff && res->flags == 0x200);
	CHECK(ddekit_pci_get_resource(d0, 2) == NULL);     /* unimplemented BAR */
	CHECK(ddekit_pci_get_resource(d0, 6) == NULL);     /* beyond the six BARs */
	PASS("resources");

	/* I/O ports are granted without ioperm (they are trapped instead) */
	CHECK_EQ(ddekit_request_io(0xc000, 32), 0);
	CHECK_EQ(ddekit_release_io(0xc000, 32), 0);
	CHECK(ddekit_request_io(0xfff0, 0x20) != 0);        /* beyond port 0xffff */
	PASS("io_ports");
	return 0;
}
