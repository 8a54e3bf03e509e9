"""The device side of a queue: what DeviceQueue.put_used writes, honest and hostile."""

import pytest

from porter.harness.vring import (U16, VRING_DESC, VRING_DESC_F_NEXT, VRING_USED_ELEM, Chain, DeviceQueue,
                                  RingViolation, UsedFaults)

NUM = 8


@pytest.fixture
def ring():
    ram = bytearray(4 * 4096)
    q = DeviceQueue(1, "tx", NUM)
    q.set_pfn(1)
    return ram, q


def offer(ram, q, heads):
    for i, head in enumerate(heads):
        U16.pack_into(ram, q.layout.avail_ring(i), head)
    U16.pack_into(ram, q.layout.avail_idx, len(heads))


def used(ram, q, count):
    return [VRING_USED_ELEM.unpack_from(ram, q.layout.used_ring(i)) for i in range(count)]


def used_idx(ram, q):
    return U16.unpack_from(ram, q.layout.used_idx)[0]


def two_descriptor_chain(ram, q, head):
    VRING_DESC.pack_into(ram, q.layout.desc + VRING_DESC.size * head, 0x3000, 10, VRING_DESC_F_NEXT, head + 1)
    VRING_DESC.pack_into(ram, q.layout.desc + VRING_DESC.size * (head + 1), 0x3100, 100, 0, 0)
    return q.chain(ram, 0, lambda a, n, kind: None, indirect_ok=False)


def test_honest_used_entries(ring):
    ram, q = ring
    offer(ram, q, [2])
    chain = two_descriptor_chain(ram, q, 2)
    assert chain == Chain(2, ((0x3000, 10), (0x3100, 100)), (), (2, 3))
    q.take()
    q.put_used(ram, [(chain, 0)], UsedFaults())
    assert used(ram, q, 1) == [(2, 0)] and used_idx(ram, q) == 1 and q.unsignalled == 1


@pytest.mark.parametrize("fault, entries, idx", [
    ({"bad_used_id": True}, [(NUM + 2, 5)], 1),
    ({"unavailable_used_id": True}, [(3, 5)], 1),           # the chain's second descriptor: never a head
    ({"duplicate_used": True}, [(2, 5), (2, 5)], 2),
    ({"used_idx_jump": 3}, [(2, 5)], 4),
    ({"used_idx_backwards": True}, [(2, 5)], 0xFFFF),        # shown one behind where it was
    ({"oversize_len": True}, [(2, 111)], 1),                 # writable bytes + 1 (110 + 1: see below)
    ({"short_len": True}, [(2, 2)], 1),
])
def test_hostile_used_entries(ring, fault, entries, idx):
    ram, q = ring
    offer(ram, q, [2])
    VRING_DESC.pack_into(ram, q.layout.desc + VRING_DESC.size * 2, 0x3000, 10, VRING_DESC_F_NEXT | 2, 3)
    VRING_DESC.pack_into(ram, q.layout.desc + VRING_DESC.size * 3, 0x3100, 100, 2, 0)
    chain = q.chain(ram, 0, lambda a, n, kind: None, indirect_ok=False)
    assert chain.capacity == 110
    q.take()
    q.put_used(ram, [(chain, 5)], UsedFaults(**fault))
    assert used(ram, q, len(entries)) == entries and used_idx(ram, q) == idx


def test_avail_index_beyond_the_ring_is_a_violation(ring):
    ram, q = ring
    U16.pack_into(ram, q.layout.avail_idx, NUM + 1)
    with pytest.raises(RingViolation, match=r"queue 1 \(tx\): avail index moved from 0 to 9, 9 entries"):
        q.avail_count(ram)


def test_index_stores_are_single_stores_that_leave_their_neighbours_alone():
    """store_u16/store_u32 write the value little-endian in place (struct.pack_into would
    zero the field first: a device polling the index could read 0 between the two)."""
    from porter.harness.memory import GuestMemory, store_u16, store_u32
    with GuestMemory(4096) as mem:
        mem.write(0, b"\xAA" * 16)
        store_u16(mem.buffer, 2, 0x1234)
        store_u32(mem.buffer, 8, 0xDEADBEEF)
        assert mem.read(0, 16) == b"\xAA\xAA\x34\x12" + b"\xAA" * 4 + b"\xEF\xBE\xAD\xDE" + b"\xAA" * 4
        store_u16(mem.buffer, 2, 0x1_0005)          # indices wrap, as the ring's do
        assert mem.unpack("<H", 2) == (5,)
        with pytest.raises(ValueError, match="not aligned"):
            store_u16(mem.buffer, 3, 1)             # an odd address is no single aligned store
