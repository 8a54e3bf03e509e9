/* portio_trap.h -- emulate x86 port I/O (in/out/ins/outs) in an unprivileged 32-bit Linux process */
#ifndef PORTIO_TRAP_H
#define PORTIO_TRAP_H

/*
 * The DDE's inb/outb and ioread8..32/iowrite8..32 execute real in/out instructions.
 * Without ioperm() they raise a general protection fault, which Linux
 * delivers as SIGSEGV with si_code SI_KERNEL.  portio_trap_install() sets a
 * SIGSEGV handler that decodes such an instruction, performs it through the
 * callbacks and resumes after it:
 *
 *   E4/E5 in  al/eax, imm8     E6/E7 out imm8, al/eax
 *   EC/ED in  al/eax, dx       EE/EF out dx, al/eax
 *   6C/6D ins  [edi], dx       6E/6F outs dx, [esi]   (each with F3 = rep)
 *   0x66 makes the wide forms 16-bit; EFLAGS.DF = 1 walks the string backwards.
 *
 * size is 1, 2 or 4 bytes.  read returns the value in its low size bytes.
 * The callbacks run inside the signal handler of the faulting thread; the
 * fault is synchronous (raised by an in/out the program itself executes),
 * so they may do what the interrupted code could do at that point: the DDE
 * never performs port I/O inside malloc or stdio.
 *
 * Every other SIGSEGV still kills the process: a real memory fault, a
 * privileged instruction that is not port I/O, a fault during emulation
 * (ins/outs on a bad buffer, a crashing callback), a SIGSEGV sent with
 * kill.  The handler writes a report to stderr (reason, fault address, EIP,
 * the instruction bytes), then restores the default action, so the process
 * dies by SIGSEGV (with a core where enabled).  The handler replaces any
 * earlier SIGSEGV handler.  Build: gcc -m32, no other dependency.
 */

#include <stdint.h>

typedef uint32_t (*portio_read_fn)(uint16_t port, int size);
typedef void (*portio_write_fn)(uint16_t port, int size, uint32_t val);

/* Returns 0, or -EINVAL (a NULL callback) / -errno of sigaction or pipe. */
int portio_trap_install(portio_read_fn read, portio_write_fn write);

/* Port I/O instructions emulated so far (a rep ins/outs counts once). */
unsigned long portio_trap_count(void);

#endif /* PORTIO_TRAP_H */
