"""The ported virtio-net on the real DDE, once per device backend: QEMU's own
virtio-net-pci and porter's sim. Frames both ways, a real kernel as the peer,
the control queue, link changes, DMA safety and the negative control without
porter's run-time rules run on both; the sweep of every feature set QEMU can
offer is QEMU's, the hostile devices are the sim's (marked so)."""

import re
import threading
import time

import pytest

from porter.build import build_host
from porter.emit import emit_tree
from porter.harness.driver_host import DriverHostError
from porter.harness.netns import netns_usable
from porter.harness.ping import Pinger
from porter.harness.rig import NetRig
from porter.harness.sim_net import DEFAULT_FEATURES
from porter.harness.virtio_net import VIRTIO_NET_F_CSUM, VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_MRG_RXBUF
from porter.harness.virtio_pci import bit
from porter.pipeline import load_inputs, scan_inputs
from porter.plan import plan_port
from porter.rules import RULES_DIR

pytestmark = pytest.mark.upstream

PEER = b"\x02\x00\x00\x00\x00\x09"
SIZES = (60, 61, 64, 100, 128, 512, 1000, 1500, 1514)
# name: (QEMU -device properties, the sim's offered features)
VARIANTS = {
    "mrg_rxbuf=on": ({"mrg_rxbuf": "on"}, DEFAULT_FEATURES),
    "mrg_rxbuf=off": ({"mrg_rxbuf": "off"}, DEFAULT_FEATURES & ~bit(VIRTIO_NET_F_MRG_RXBUF)),
    "csum=on": ({"csum": "on", "guest_csum": "on"},
                DEFAULT_FEATURES | bit(VIRTIO_NET_F_CSUM) | bit(VIRTIO_NET_F_GUEST_CSUM)),
    "csum=off": ({"csum": "off", "guest_csum": "off"}, DEFAULT_FEATURES),
}


def frame(dst: bytes, src: bytes, size: int, tag: int = 0) -> bytes:
    body = bytes((tag + i) & 0xFF for i in range(size - 14))
    return dst + src + b"\x88\xb5" + body


def device_options(backend: str, variant: str) -> dict:
    qemu, sim = VARIANTS[variant]
    return qemu if backend == "qemu" else {"features": sim}


def assert_clean(rig) -> None:
    """What every healthy run leaves: no DMA violation, no stray access, no device error."""
    assert rig.dma.violations == [], "\n".join(map(str, rig.dma.violations))
    assert rig.machine.errors == []
    if rig.backend == "sim":
        assert rig.device.errors == []


@pytest.fixture(params=sorted(VARIANTS))
def rig(request, backend_ready, virtio_net_host):
    with NetRig(virtio_net_host, backend=backend_ready,
                device_options=device_options(backend_ready, request.param)) as r:
        r.host.open("eth0")
        yield r
        assert_clean(r)


@pytest.fixture
def rig_plain(backend_ready, virtio_net_host):
    with NetRig(virtio_net_host, backend=backend_ready) as r:
        r.host.open("eth0")
        yield r
        assert_clean(r)


# -- both backends ---------------------------------------------------------------------------

def test_mac_and_link(rig):
    info = rig.host.info("eth0")
    assert info.mac == rig.mac_bytes and info.link_up and info.running


def test_tx_frames_reach_the_peer_byte_identical(rig):
    for size in SIZES:
        f = frame(PEER, rig.mac_bytes, size, size)
        assert rig.host.xmit(f) == 0, size
        assert rig.peer_recv() == f, size


def test_rx_frames_arrive_byte_identical(rig):
    for size in SIZES:
        f = frame(rig.mac_bytes, PEER, size, size)
        rig.peer_send(f)
        assert rig.host.receive(timeout=5) == ("eth0", f), size


@pytest.mark.parametrize("path", ["frame rings", "messages"])
def test_ten_thousand_frames_each_way_without_loss_or_leak(backend_ready, virtio_net_host, path):
    """Through the shared-memory frame rings (how the harness moves traffic) and through a
    message per frame (XMIT, RX: the path the rings replace, kept for single frames)."""
    with NetRig(virtio_net_host, backend=backend_ready, frame_rings=path == "frame rings") as rig:
        assert (rig.host.rings is not None) == (path == "frame rings")
        ten_thousand_each_way(rig)
        assert_clean(rig)


def exchange(rig, n: int) -> None:
    """``n`` frames out and ``n`` in, each byte checked, as fast as the rig moves them."""
    tx = [frame(PEER, rig.mac_bytes, 60 + i % 1455, i) for i in range(n)]
    received = []
    reader = threading.Thread(target=lambda: received.extend(rig.peer_recv(10) for _ in range(n)))
    reader.start()
    for f in tx:
        rig.host.send(f)            # waits while the TX ring is full; never drops
    reader.join()
    assert len(received) == n and received == tx
    rx = [frame(rig.mac_bytes, PEER, 60 + i % 1455, i) for i in range(n)]
    sender = threading.Thread(target=lambda: [rig.peer_send(f) for f in rx])
    sender.start()
    for i in range(n):
        assert rig.host.receive(timeout=10) == ("eth0", rx[i]), i
    sender.join()


RX_QUEUE = 0


def held(stats) -> int:
    """Arena bytes allocated, without the empty chunks slabs keep for reuse (at most one
    each: which slabs hold one after a run depends on the order of the last frees)."""
    return stats.arena_in_use - stats.arena_spare


def settle_rings(rig) -> None:
    """Bring the driver's buffers to the same state before each arena measurement.

    2.6 virtio_net frees sent skbs lazily, at its next transmit: one more frame
    gives back what the device has finished with. It refills its RX ring only
    once the ring is half empty, and then fills it up: frames in until it does
    leave the ring full, however much traffic went before."""
    last = frame(PEER, rig.mac_bytes, 60, 0xFFFF)
    rig.host.send(last)
    assert rig.peer_recv(10) == last
    for i in range(1025):                                    # the largest RX ring QEMU offers, and one
        posted = rig.dma.avail_index(RX_QUEUE)
        inbound = frame(rig.mac_bytes, PEER, 60, i)
        rig.peer_send(inbound)
        assert rig.host.receive(timeout=10) == ("eth0", inbound)
        deadline = time.monotonic() + 0.05
        while rig.dma.avail_index(RX_QUEUE) == posted and time.monotonic() < deadline:
            time.sleep(0.001)
        if rig.dma.avail_index(RX_QUEUE) != posted:
            time.sleep(0.05)                                 # the refill's last buffers
            return
    raise AssertionError("the driver never refilled its RX ring")


def ten_thousand_each_way(rig):
    # a first exchange at full speed fills the slab caches to the most frames the rings
    # hold in flight: they keep their pages, as the kernel's do; a leak grows with traffic
    rig.host.open("eth0")
    exchange(rig, 2_000)
    settle_rings(rig)
    baseline = held(rig.host.stats())
    before = rig.host.stats()
    checked = rig.dma.chains_checked
    n = 10_000
    exchange(rig, n)
    stats = rig.host.stats()
    assert stats.rx_frames - before.rx_frames == n and stats.tx_frames - before.tx_frames == n
    # the device saw no chain the guard had not checked: every TX frame's, and the RX
    # buffers the driver gave back (all but those it refills once its ring is half empty)
    assert rig.dma.chains_checked - checked >= 2 * n - 1024 and rig.dma.violations == []
    settle_rings(rig)
    after = held(rig.host.stats())
    # down again, the arena holds what it held down before; slab pages may
    # settle differently by a few pages, a leak grows with the traffic
    assert after <= baseline + 16 * 4096, (baseline, after)


def test_a_burst_of_twenty_thousand_frames_arrives_whole_and_in_order(rig_plain):
    """The TX ring kept full for the whole run: every index the harness publishes (frame
    rings, the DMA guard's shadow rings) is read by the other side while it moves. (An
    index written with struct.pack_into, which zeroes its target first, let QEMU read an
    avail index of 0 and send stale chains again in about one run of five.)"""
    rig, n = rig_plain, 20_000
    tx = [frame(PEER, rig.mac_bytes, 1514, i) for i in range(n)]
    received = []
    reader = threading.Thread(target=lambda: received.extend(rig.peer_recv(10) for _ in range(n)))
    reader.start()
    assert rig.host.send_many(tx, timeout=10) == n
    reader.join()
    assert len(received) == n and received == tx
    assert rig.host.stats().tx_frames == n and rig.dma.violations == []


def test_interface_down_and_up(rig_plain):
    rig = rig_plain
    rig.host.close_if("eth0")
    assert not rig.host.info("eth0").running
    assert rig.host.xmit(frame(PEER, rig.mac_bytes, 60)) < 0        # down: refused, not queued
    rig.host.open("eth0")
    f = frame(PEER, rig.mac_bytes, 200, 7)
    assert rig.host.xmit(f) == 0 and rig.peer_recv() == f


def rx_filter(rig) -> tuple[bool, bool, list[str]]:
    """(promiscuous, all-multicast, multicast table) as the device holds them (a table has no
    order that matters: QEMU lists its own backwards)."""
    if rig.backend == "qemu":
        [state] = rig.qemu.qmp("query-rx-filter", name="dev0")
        return state["promiscuous"], state["multicast"] == "all", sorted(state["multicast-table"])
    f = rig.device.rx_filter
    return f.promisc, f.allmulti, sorted(m.hex(":") for m in f.multicast)


def test_control_queue_sets_promisc_and_multicast(rig_plain, driver_features):
    if "VIRTIO_NET_F_CTRL_RX" not in driver_features:
        pytest.skip("this tree's virtio_net has no control virtqueue (Linux 2.6.30 added it)")
    rig = rig_plain
    before = rig.dma.chains_checked
    groups = [bytes.fromhex("01005e000001"), bytes.fromhex("333300000001")]
    rig.host.rx_mode("eth0", promisc=True, allmulti=False, multicast=groups)
    assert rx_filter(rig) == (True, False, ["01:00:5e:00:00:01", "33:33:00:00:00:01"])
    rig.host.rx_mode("eth0", promisc=False, allmulti=True)
    promisc, allmulti, _ = rx_filter(rig)
    assert not promisc and allmulti
    assert rig.dma.chains_checked > before          # the commands' buffers went through the check


def test_link_down_and_up_mid_run(rig_plain, driver_features):
    """A config change while running: the device says link down (config interrupt), frames stop
    both ways; link up again, they flow."""
    if "VIRTIO_NET_F_STATUS" not in driver_features:
        pytest.skip("this tree's virtio_net does not read link status (Linux 2.6.27 added it)")
    rig = rig_plain
    f = frame(PEER, rig.mac_bytes, 100, 1)
    assert rig.host.xmit(f) == 0 and rig.peer_recv() == f
    rig.set_link(False)
    wait_until(lambda: not rig.host.info("eth0").link_up, "the driver seeing link down")
    rig.host.xmit(frame(PEER, rig.mac_bytes, 100, 2))           # the device drops it: no link
    rig.peer_send(frame(rig.mac_bytes, PEER, 100, 3))
    with pytest.raises(TimeoutError):
        rig.host.receive(timeout=0.5)
    rig.set_link(True)
    wait_until(lambda: rig.host.info("eth0").link_up, "the driver seeing link up")
    assert rig.peer_drain() == []
    f = frame(PEER, rig.mac_bytes, 100, 4)
    assert rig.host.xmit(f) == 0 and rig.peer_recv() == f
    inbound = frame(rig.mac_bytes, PEER, 100, 5)
    rig.peer_send(inbound)
    assert rig.host.receive(timeout=5) == ("eth0", inbound)


def wait_until(condition, what: str, timeout: float = 5.0) -> None:
    import time
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(0.02)


@pytest.fixture
def tap_rig(backend_ready, virtio_net_host):
    why = netns_usable()
    if why:
        pytest.skip(f"kernel peer in a network namespace {why}")
    with NetRig(virtio_net_host, backend=backend_ready, wire="tap") as r:
        r.host.open("eth0")
        yield r
        assert_clean(r)


def test_arp_and_a_hundred_pings_to_the_kernel(tap_rig):
    pings_to_the_kernel(tap_rig, 100)


def pings_to_the_kernel(rig, count: int) -> None:
    """ARP for the kernel's address, then count echo requests, every one answered."""
    pinger = Pinger(lambda f: rig.host.xmit(f), lambda t: rig.host.receive(t)[1], rig.mac_bytes, "192.0.2.2")
    kernel_mac = pinger.resolve(rig.netns.kernel_ip)
    assert kernel_mac == rig.netns.kernel_mac()
    replies = [pinger.echo(kernel_mac, rig.netns.kernel_ip, seq) for seq in range(1, count + 1)]
    assert all(r is not None for r in replies), [i + 1 for i, r in enumerate(replies) if r is None]
    assert all(r.ttl == 64 for r in replies)


RUNTIME_RULES = {"sg-set-buf-phys", "sg-init-one-phys", "sg-phys", "sg-virt", "skb-to-sgvec-phys",
                 "stack-dma-to-heap"}


@pytest.fixture(scope="module")
def host_without_runtime_rules(linux_2_6_32, dde_tree, dde_build, tmp_path_factory):
    """The same four files with the 2.6.32 headers first and only the compile-time rules."""
    tmp = tmp_path_factory.mktemp("negative")
    blocks = re.split(r"(?m)^(?=\[\[rule\]\])", (RULES_DIR / "hurd-dde.toml").read_text())
    rules = tmp / "compile-time-only.toml"
    rules.write_text("".join(b for b in blocks if not any(f'id = "{r}"' in b for r in RUNTIME_RULES)))
    inputs = load_inputs("virtio-net", "2.6.32", rule_paths=[rules])
    plan = plan_port(inputs, scan_inputs(inputs))
    fired = {e.rule for edits in plan.edits.values() for e in edits}
    assert not fired & RUNTIME_RULES
    emit_tree(plan, tmp / "tree")
    return build_host(tmp / "tree", dde_tree, dde_build, log=lambda m: None).executable


def test_negative_control_fails_the_dma_check(backend_ready, host_without_runtime_rules):
    with NetRig(host_without_runtime_rules, backend=backend_ready) as rig:
        # the RX buffers posted at probe already carry addresses the DDE computed wrongly
        assert rig.dma.violations, "the pristine scatterlist code passed the DMA check"
        first = str(rig.dma.violations[0])
        assert re.match(r"queue 0 descriptor \d+: \[0x[0-9a-f]+, \+\d+\) (lies outside the arena"
                        r"|lies in physical page 0|touches page)", first), first


# -- QEMU: every feature set it can offer -------------------------------------------------------

# virtio-net-pci properties (QEMU 7.2, all on by default) that change the offered features
FEATURE_PROPERTIES = ("any_layout", "csum", "ctrl_guest_offloads", "ctrl_mac_addr", "ctrl_rx", "ctrl_rx_extra",
                      "ctrl_vlan", "ctrl_vq", "event_idx", "gso", "guest_announce", "guest_csum", "guest_ecn",
                      "guest_tso4", "guest_tso6", "guest_ufo", "host_ecn", "host_tso4", "host_tso6", "host_ufo",
                      "indirect_desc", "mrg_rxbuf", "notify_on_empty", "status")
# ... and what the control queue's absence takes with it (a device offering those without it is refused)
NEEDS_CTRL_VQ = ("ctrl_rx", "ctrl_rx_extra", "ctrl_vlan", "ctrl_mac_addr", "ctrl_guest_offloads", "guest_announce")
SWEEP = {**{f"{p}=off": {p: "off"} for p in FEATURE_PROPERTIES},
         "ctrl_vq=off,dependents=off": {p: "off" for p in ("ctrl_vq", *NEEDS_CTRL_VQ)},
         "all=off": {p: "off" for p in FEATURE_PROPERTIES},
         "rx_queue_size=512": {"rx_queue_size": 512}, "rx_queue_size=1024": {"rx_queue_size": 1024},
         "tx_queue_size=512": {"tx_queue_size": 512}, "tx_queue_size=1024": {"tx_queue_size": 1024}}
# offers the upstream driver cannot work with, refused at probe (by the rule named in the message)
REFUSED = {"ctrl_vq=off": "device offers VIRTIO_NET_F_CTRL_RX without VIRTIO_NET_F_CTRL_VQ: refused "
                          "(porter rule virtnet-control-features-need-ctrl-vq)"}


@pytest.mark.backends("qemu")
@pytest.mark.parametrize("offer", sorted(SWEEP))
def test_feature_sweep_works_or_refuses_cleanly(backend_ready, virtio_net_host, driver_features, offer):
    with NetRig(virtio_net_host, device_options=SWEEP[offer]) as rig:
        refusal = REFUSED.get(offer)
        if refusal and "VIRTIO_NET_F_CTRL_RX" in driver_features:
            assert rig.host.ready_ifnames == [] and refusal in rig.host.output()
            assert rig.host.proc.poll() is None and rig.host.stats().arena_in_use >= 0   # alive, answering
            return
        assert rig.host.ready_ifnames == ["eth0"], rig.host.output()[-2000:]
        rig.host.open("eth0")
        for size in (60, 1514):
            out = frame(PEER, rig.mac_bytes, size, size)
            rig.host.send(out)
            assert rig.peer_recv() == out, (offer, size)
            inbound = frame(rig.mac_bytes, PEER, size, size + 1)
            rig.peer_send(inbound)
            assert rig.host.receive(timeout=5) == ("eth0", inbound), (offer, size)
        assert_clean(rig)


# -- the sim: hostile devices -------------------------------------------------------------------

def traffic_fails(rig, n=20) -> str:
    """Run traffic both ways; return how it failed (a clean, reported failure), or ""."""
    try:
        for i in range(n):
            rig.host.send(frame(PEER, rig.mac_bytes, 100, i), timeout=2)
            rig.peer_recv(2)
        for i in range(n):
            inbound = frame(rig.mac_bytes, PEER, 100, i)
            rig.peer_send(inbound)
            _, got = rig.host.receive(timeout=2)
            if got != inbound:
                return f"frame {i} arrived altered ({len(got)} bytes for {len(inbound)})"
    except (TimeoutError, DriverHostError, OSError) as e:
        return f"{type(e).__name__}: {e}"
    return ""


@pytest.fixture
def hostile(backend_ready, virtio_net_host):
    """Rigs on a sim device with fault switches (tests using it are marked backends("sim"))."""
    assert backend_ready == "sim"
    rigs = []

    def make(**faults):
        r = NetRig(virtio_net_host, backend="sim", device_options=faults)
        rigs.append(r)
        r.host.open("eth0")
        return r
    yield make
    for r in rigs:
        r.close()


@pytest.mark.backends("sim")
@pytest.mark.parametrize("fault, value, driver_says", [
    ("used_idx_jump", 1, "is not a head!"),            # phantom entries name freed descriptors
    ("bad_used_id", True, "out of range"),              # an id beyond the ring
    ("unavailable_used_id", True, "is not a head!"),    # an id in range the driver never made available
    ("used_idx_backwards", True, "is not a head!"),     # the index moves back: stale entries
    ("duplicate_used", True, "is not a head!"),         # a chain reported twice
])
def test_hostile_used_ring_is_detected_by_the_driver(hostile, fault, value, driver_says):
    """virtio_ring's checks catch it: BAD_RING stops the queue, traffic ends in a timeout, the
    driver host stays up and answers."""
    rig = hostile()
    assert traffic_fails(rig, 5) == ""                  # healthy first
    setattr(rig.device.faults, fault, value)
    failure = traffic_fails(rig)
    assert failure, f"{fault}: traffic went on as if nothing happened"
    assert driver_says in rig.host.output()             # virtio_ring's BAD_RING report
    assert rig.host.proc.poll() is None                 # the driver stopped the queue, did not crash
    assert rig.host.info("eth0").running


@pytest.mark.backends("sim")
def test_oversize_used_length_is_visible(hostile):
    rig = hostile()
    rig.device.faults.oversize_len = True
    failure = traffic_fails(rig)
    # 2.6.32 trusts the device's length: the harness sees the altered frame
    assert "arrived altered" in failure or failure.startswith(("TimeoutError", "DriverHost"))


@pytest.mark.backends("sim")
def test_short_used_length_truncates_frames_the_harness_sees(hostile):
    """2.6.32 takes the used length as the frame length: a short one reaches the stack
    truncated, and the harness, comparing bytes, says so."""
    rig = hostile()
    rig.device.faults.short_len = True
    assert re.match(r"frame 0 arrived altered \((\d+) bytes for 100\)", traffic_fails(rig))
    assert rig.host.proc.poll() is None


@pytest.mark.backends("sim")
def test_garbage_config_is_visible(hostile):
    rig = hostile(garbage_config=True)
    assert rig.host.info("eth0").mac != rig.mac_bytes


@pytest.mark.backends("sim")
def test_missing_interrupts_end_in_a_timeout(hostile):
    rig = hostile()
    rig.device.faults.no_interrupts = True
    rig.peer_send(frame(rig.mac_bytes, PEER, 100))
    with pytest.raises(TimeoutError):
        rig.host.receive(timeout=2)


@pytest.mark.backends("sim")
def test_interrupt_storm_leaves_traffic_flowing(hostile):
    """Interrupts for nothing, as fast as the driver acknowledges them: the handler finds no
    used entries and returns; frames still go both ways, the host stays responsive."""
    rig = hostile()
    rig.device.faults.interrupt_storm = True
    # each storm interrupt waits for the driver's EOI of the last: 500 of them were handled
    wait_until(lambda: rig.device.spurious_interrupts >= 500, "the driver acknowledging 500 spurious interrupts",
               timeout=30)
    assert traffic_fails(rig) == ""
    assert rig.host.info("eth0").running and rig.device.faults.interrupt_storm


@pytest.mark.backends("sim")
def test_device_reset_with_frames_in_flight(hostile):
    """The device forgets its rings under the driver (legacy virtio cannot tell it): what the
    driver queues is never sent, TX stalls when its ring is full, the host stays up; a new
    driver host probes the same device afresh and traffic flows again."""
    rig = hostile()
    assert traffic_fails(rig, 5) == ""
    rig.device.reset()
    sent_before = rig.device.frames_tx
    with pytest.raises(DriverHostError, match="the TX ring stayed full"):
        for i in range(1000):
            rig.host.send(frame(PEER, rig.mac_bytes, 100, i), timeout=1)
    assert rig.device.frames_tx == sent_before and rig.peer_drain() == []
    assert rig.host.proc.poll() is None and rig.host.info("eth0").running
    rig.start_host()
    rig.host.open("eth0")
    assert traffic_fails(rig, 5) == ""
