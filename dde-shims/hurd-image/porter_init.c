/* porter_init.c - /usr/libexec/runsystem of porter's Hurd test image: ping the host, then echo TCP.
 *
 * startup runs it (through console-run) once the core servers are up.  It opens
 * a raw ICMP socket, which starts pfinet on /servers/socket/2, which opens
 * /dev/eth0 (devnode), which opens /dev/netdde: the tree porter built.  Every
 * line goes straight to the Mach console (the serial port), so the harness on
 * the host reads it whatever the Hurd's terminals do. */
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <hurd.h>
#include <mach.h>
#include <device/device.h>

static mach_port_t console = MACH_PORT_NULL;

/* straight to the Mach console: works before and whatever the Hurd's terminals do */
static void say(const char *fmt, ...)
{
  char buf[512];
  va_list ap;
  int n;
  va_start(ap, fmt);
  n = vsnprintf(buf, sizeof buf - 2, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if (n > (int) sizeof buf - 3) n = sizeof buf - 3;
  buf[n++] = '\r'; buf[n++] = '\n';
  if (console == MACH_PORT_NULL) {
    mach_port_t host, master;
    if (get_privileged_ports(&host, &master) == 0)
      device_open(master, D_WRITE, "console", &console);
  }
  if (console != MACH_PORT_NULL) {
    int done;
    device_write_inband(console, 0, 0, buf, n, &done);
  }
}

static unsigned short cksum(const void *p, int len)
{
  const unsigned short *w = p; unsigned long s = 0;
  for (; len > 1; len -= 2) s += *w++;
  if (len) s += *(const unsigned char *) w;
  s = (s >> 16) + (s & 0xffff); s += s >> 16;
  return ~s;
}

static double now_ms(void)
{
  struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000.0 + t.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
  say("porter-hurd: runsystem started");
  int s = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
  if (s < 0) { say("porter-hurd: socket: %s", strerror(errno)); for (;;) sleep(60); }
  say("porter-hurd: pfinet up");
  struct sockaddr_in peer = { .sin_family = AF_INET };
  inet_aton("192.0.2.1", &peer.sin_addr);
  struct timeval tv = { 1, 0 };
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  int sent = 0, got = 0; double mn = 1e9, mx = 0, sum = 0;
  for (int seq = 1; seq <= 100; seq++) {
    unsigned char pkt[64] = { 8, 0 };
    pkt[4] = 0x12; pkt[5] = 0x34; pkt[6] = seq >> 8; pkt[7] = seq;
    for (int i = 8; i < 64; i++) pkt[i] = i;
    unsigned short c = cksum(pkt, sizeof pkt); memcpy(pkt + 2, &c, 2);
    double t0 = now_ms();
    if (sendto(s, pkt, sizeof pkt, 0, (struct sockaddr *) &peer, sizeof peer) < 0) {
      say("porter-hurd: sendto: %s", strerror(errno)); continue;
    }
    sent++;
    for (;;) {
      unsigned char r[1500];
      ssize_t n = recv(s, r, sizeof r, 0);
      if (n < 0) { say("porter-hurd: no reply to icmp_seq=%d", seq); break; }
      int hl = (r[0] & 15) * 4;
      if (n >= hl + 8 && r[hl] == 0 && r[hl + 4] == 0x12 && r[hl + 5] == 0x34 && ((r[hl + 6] << 8) | r[hl + 7]) == seq) {
        double ms = now_ms() - t0; got++; sum += ms; if (ms < mn) mn = ms; if (ms > mx) mx = ms;
        if (seq <= 3) say("porter-hurd: %d bytes from 192.0.2.1: icmp_seq=%d ttl=%d time=%.2f ms", (int) (n - hl), seq, r[8], ms);
        break;
      }
    }
  }
  say("porter-hurd: %d packets transmitted, %d received, %d%% packet loss; rtt min/avg/max = %.2f/%.2f/%.2f ms",
      sent, got, sent ? 100 * (sent - got) / sent : 100, got ? mn : 0, got ? sum / got : 0, mx);
  int l = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in me = { .sin_family = AF_INET, .sin_port = htons(7) };
  int one = 1; setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(l, (struct sockaddr *) &me, sizeof me) || listen(l, 4)) say("porter-hurd: echo: %s", strerror(errno));
  say("porter-hurd: echo server ready on 192.0.2.2:7");
  for (;;) {
    int c = accept(l, NULL, NULL);
    if (c < 0) { sleep(1); continue; }
    long total = 0; char buf[16384]; ssize_t n;
    while ((n = read(c, buf, sizeof buf)) > 0) {
      for (ssize_t off = 0; off < n; ) { ssize_t w = write(c, buf + off, n - off); if (w <= 0) break; off += w; }
      total += n;
    }
    close(c);
    say("porter-hurd: echoed %ld bytes", total);
  }
}
