/* pci.c -- DDEKit PCI: enumeration and config space forwarded to the driver host's callbacks */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <ddekit/pci.h>

#include "ddekit_linux.h"
#include "internal.h"

/*
 * The harness owns the bus: it answers enumeration and config cycles, and
 * decides interrupt routing.  Everything else in <ddekit/pci.h> is derived
 * from config space here, the way an OS reads it (vendor at 0x00, command
 * at 0x04, BARs from 0x10, ...), so the harness needs no more than the
 * four callbacks.
 */
#define CFG_VENDOR      0x00
#define CFG_DEVICE      0x02
#define CFG_COMMAND     0x04
#define CFG_CLASS_REV   0x08
#define CFG_BAR0        0x10
#define CFG_SUBVENDOR   0x2c
#define CFG_SUBDEVICE   0x2e
#define CFG_IRQ_LINE    0x3c

#define CMD_IO          0x1
#define CMD_MEMORY      0x2
#define CMD_MASTER      0x4

#define NR_BARS         6

/* Linux's resource flags, which is what L4IO's resources carried. */
#define RES_IO          0x00000100
#define RES_MEM         0x00000200
#define RES_PREFETCH    0x00002000

struct ddekit_pci_dev {
	int bus, slot, func;
	char *name;                         /* "vendor:device", made on demand */
	char *slot_name;                    /* "0000:bb:ss.f" */
	ddekit_pci_res_t res[NR_BARS];
};

static pthread_mutex_t pci_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ddekit_linux_pci_ops ops;
static int have_ops;
static struct ddekit_pci_dev *devs;
static int ndevs;

void ddekit_linux_set_pci_ops(const struct ddekit_linux_pci_ops *new_ops)
{
	if (new_ops && !(new_ops->get_device && new_ops->read && new_ops->write && new_ops->irq_enable))
		dkl_host_setup_error("ddekit_linux_set_pci_ops: every callback "
		                     "(get_device, read, write, irq_enable) is required");
	pthread_mutex_lock(&pci_lock);
	if (new_ops)
		ops = *new_ops;
	have_ops = new_ops != NULL;
	pthread_mutex_unlock(&pci_lock);
}

/* Snapshot of the callbacks; NULL members when none are installed. */
static struct ddekit_linux_pci_ops current_ops(void)
{
	struct ddekit_linux_pci_ops o = { 0 };

	pthread_mutex_lock(&pci_lock);
	if (have_ops)
		o = ops;
	pthread_mutex_unlock(&pci_lock);
	return o;
}

/* (Re)builds the device list the ddekit_pci_dev handles point into. */
void ddekit_pci_init(void)
{
	struct ddekit_linux_pci_ops o = current_ops();
	struct ddekit_pci_dev *list = NULL;
	int n = 0, bus, slot, func;

	while (o.get_device && o.get_device(n, &bus, &slot, &func) == 0) {
		struct ddekit_pci_dev *grown = realloc(list, (size_t)(n + 1) * sizeof(*list));

		if (!grown)
			break;
		list = grown;
		memset(&list[n], 0, sizeof(list[n]));
		list[n].bus = bus;
		list[n].slot = slot;
		list[n].func = func;
		n++;
	}
	pthread_mutex_lock(&pci_lock);
	/* Old handles stay valid (the DDE may keep them): the old list is leaked. */
	devs = list;
	ndevs = n;
	pthread_mutex_unlock(&pci_lock);
}

int ddekit_pci_get_device(int nr, int *bus, int *slot, int *func)
{
	struct ddekit_linux_pci_ops o = current_ops();

	if (!o.get_device || nr < 0)
		return -1;
	return o.get_device(nr, bus, slot, func) ? -1 : 0;
}

static int valid_access(int pos, int len)
{
	return (len == 1 || len == 2 || len == 4) && pos >= 0 && pos <= 0x1000 - len;
}

int ddekit_pci_read(int bus, int slot, int func, int pos, int len, ddekit_uint32_t *val)
{
	struct ddekit_linux_pci_ops o = current_ops();
	uint32_t v = 0;
	int ret;

	if (!o.read || !valid_access(pos, len))
		return -1;
	ret = o.read(bus, slot, func, pos, len, &v);
	if (ret == 0)
		*val = len == 4 ? v : v & ((1u << (8 * len)) - 1);
	return ret;
}

int ddekit_pci_write(int bus, int slot, int func, int pos, int len, ddekit_uint32_t val)
{
	struct ddekit_linux_pci_ops o = current_ops();

	if (!o.write || !valid_access(pos, len))
		return -1;
	if (len < 4)
		val &= (1u << (8 * len)) - 1;
	return o.write(bus, slot, func, pos, len, val);
}

int ddekit_pci_readb(int bus, int slot, int func, int pos, ddekit_uint8_t *val)
{
	ddekit_uint32_t v;
	int ret = ddekit_pci_read(bus, slot, func, pos, 1, &v);

	if (ret == 0)
		*val = (ddekit_uint8_t)v;
	return ret;
}

int ddekit_pci_readw(int bus, int slot, int func, int pos, ddekit_uint16_t *val)
{
	ddekit_uint32_t v;
	int ret = ddekit_pci_read(bus, slot, func, pos, 2, &v);

	if (ret == 0)
		*val = (ddekit_uint16_t)v;
	return ret;
}

int ddekit_pci_readl(int bus, int slot, int func, int pos, ddekit_uint32_t *val)
{
	return ddekit_pci_read(bus, slot, func, pos, 4, val);
}

int ddekit_pci_writeb(int bus, int slot, int func, int pos, ddekit_uint8_t val)
{
	return ddekit_pci_write(bus, slot, func, pos, 1, val);
}

int ddekit_pci_writew(int bus, int slot, int func, int pos, ddekit_uint16_t val)
{
	return ddekit_pci_write(bus, slot, func, pos, 2, val);
}

int ddekit_pci_writel(int bus, int slot, int func, int pos, ddekit_uint32_t val)
{
	return ddekit_pci_write(bus, slot, func, pos, 4, val);
}

int ddekit_pci_irq_enable(int bus, int slot, int func, int pin, int *irq)
{
	struct ddekit_linux_pci_ops o = current_ops();

	if (!o.irq_enable)
		return -1;
	return o.irq_enable(bus, slot, func, pin, irq);
}

/* Devices after start (all from the first when NULL) matching the ids,
 * DDEKIT_PCI_ANY_ID matching any; fills in the ids of the match. */
struct ddekit_pci_dev *ddekit_pci_find_device(int *bus, int *slot, int *func,
                                              struct ddekit_pci_dev *start)
{
	struct ddekit_pci_dev *found = NULL;
	int i;

	pthread_mutex_lock(&pci_lock);
	i = start && start >= devs && start < devs + ndevs ? (int)(start - devs) + 1 : 0;
	for (; i < ndevs && !found; i++) {
		struct ddekit_pci_dev *d = &devs[i];

		if ((*bus == DDEKIT_PCI_ANY_ID || *bus == d->bus)
		    && (*slot == DDEKIT_PCI_ANY_ID || *slot == d->slot)
		    && (*func == DDEKIT_PCI_ANY_ID || *func == d->func))
			found = d;
	}
	pthread_mutex_unlock(&pci_lock);
	if (found) {
		*bus = found->bus;
		*slot = found->slot;
		*func = found->func;
	}
	return found;
}

static uint32_t cfg_read(struct ddekit_pci_dev *dev, int pos, int len)
{
	ddekit_uint32_t v;

	if (ddekit_pci_read(dev->bus, dev->slot, dev->func, pos, len, &v))
		return len == 4 ? 0xffffffffu : (1u << (8 * len)) - 1;   /* "no device" */
	return v;
}

static int update_command(struct ddekit_pci_dev *dev, uint32_t set, uint32_t clear)
{
	uint32_t cmd = cfg_read(dev, CFG_COMMAND, 2);

	return ddekit_pci_write(dev->bus, dev->slot, dev->func, CFG_COMMAND, 2,
	                        (cmd | set) & ~clear);
}

int ddekit_pci_enable_device(struct ddekit_pci_dev *dev)
{
	return update_command(dev, CMD_IO | CMD_MEMORY, 0);
}

int ddekit_pci_disable_device(struct ddekit_pci_dev *dev)
{
	return update_command(dev, 0, CMD_IO | CMD_MEMORY | CMD_MASTER);
}

void ddekit_pci_set_master(struct ddekit_pci_dev *dev)
{
	update_command(dev, CMD_MASTER, 0);
}

unsigned short ddekit_pci_get_vendor(struct ddekit_pci_dev *dev)
{
	return (unsigned short)cfg_read(dev, CFG_VENDOR, 2);
}

unsigned short ddekit_pci_get_device_id(struct ddekit_pci_dev *dev)
{
	return (unsigned short)cfg_read(dev, CFG_DEVICE, 2);
}

unsigned short ddekit_pci_get_sub_vendor(struct ddekit_pci_dev *dev)
{
	return (unsigned short)cfg_read(dev, CFG_SUBVENDOR, 2);
}

unsigned short ddekit_pci_get_sub_device(struct ddekit_pci_dev *dev)
{
	return (unsigned short)cfg_read(dev, CFG_SUBDEVICE, 2);
}

/* The 24-bit class code (class, subclass, prog-if), as libpciaccess gives it. */
unsigned ddekit_pci_get_dev_class(struct ddekit_pci_dev *dev)
{
	return cfg_read(dev, CFG_CLASS_REV, 4) >> 8;
}

unsigned long ddekit_pci_get_irq(struct ddekit_pci_dev *dev)
{
	return cfg_read(dev, CFG_IRQ_LINE, 1);
}

/* Names are made once and live as long as the handle. */
char *ddekit_pci_get_name(struct ddekit_pci_dev *dev)
{
	if (!dev->name)
		dev->name = dkl_format("%04x:%04x", ddekit_pci_get_vendor(dev),
		                       ddekit_pci_get_device_id(dev));
	return dev->name;
}

char *ddekit_pci_get_slot_name(struct ddekit_pci_dev *dev)
{
	if (!dev->slot_name)
		dev->slot_name = dkl_format("0000:%02x:%02x.%x", dev->bus, dev->slot, dev->func);
	return dev->slot_name;
}

/*
 * BAR idx sized the standard way: write all ones, read the mask back,
 * restore.  NULL for an unimplemented BAR or idx beyond the six BARs (the
 * ROM and bridge windows are not decoded).  64-bit memory BARs occupy two
 * slots; the upper half must be 0 in a 32-bit process.
 */
ddekit_pci_res_t *ddekit_pci_get_resource(struct ddekit_pci_dev *dev, unsigned int idx)
{
	int pos = CFG_BAR0 + 4 * (int)idx;
	uint32_t orig, mask, size;
	ddekit_pci_res_t *res;

	if (idx >= NR_BARS)
		return NULL;
	res = &dev->res[idx];
	orig = cfg_read(dev, pos, 4);
	if (ddekit_pci_write(dev->bus, dev->slot, dev->func, pos, 4, 0xffffffffu))
		return NULL;
	mask = cfg_read(dev, pos, 4);
	ddekit_pci_write(dev->bus, dev->slot, dev->func, pos, 4, orig);
	if (mask == 0 || mask == 0xffffffffu)
		return NULL;
	if (orig & 1) {
		mask |= 0xffff0000u;              /* I/O BARs decode 16 bits */
		size = ~(mask & ~3u) + 1;
		res->start = orig & ~3u;
		res->flags = RES_IO;
	} else {
		size = ~(mask & ~15u) + 1;
		res->start = orig & ~15u;
		res->flags = RES_MEM | (orig & 8 ? RES_PREFETCH : 0);
	}
	res->end = res->start + size - 1;
	return res;
}
