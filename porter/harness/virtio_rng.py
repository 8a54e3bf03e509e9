"""virtio-rng as the harness sees it: its one queue, QEMU's entropy backend and rate limit, and the order in which the 2.6 drivers hand the device's bytes out.

The constants follow Linux 2.6.32's virtio_rng.h (the device has no config
space and no feature bits of its own) and QEMU 7.2's virtio-rng-pci.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

VIRTIO_RNG_QUEUE = 0             # "input": buffers the device fills with entropy
QUEUE_NAMES = ("input",)
QEMU_QUEUE_SIZE = 8              # virtio-rng-pci's queue (hw/virtio/virtio-rng.c)
QEMU_RNG_ID = "rng0"             # the -object the device's rng= names
# QEMU 7.2's virtio-rng asks its backend for all posted buffers whenever it processes its
# queue, whether or not a request for them is already out; the second answer finds no buffer
# and its bytes are dropped (read from the backend, given to nobody). Harmless for entropy,
# fatal to a byte-for-byte account. It processes the queue unasked (1) when it starts its
# ioeventfd at DRIVER_OK: the harness delivers kicks as BAR writes anyway, so ioeventfd off;
# (2) when its rate-limit timer fires (every `period` ms, default 65536): so no timer during a
# test unless the test sets a rate (and then keeps the backend from running dry).
QEMU_OPTIONS = {"ioeventfd": "off", "period": 1 << 31}
PIPE_CHUNK = 4096                # writes this size or smaller reach a FIFO's reader whole (PIPE_BUF)
# The 2.6.28-2.6.32 drivers hand out a device buffer's 32-bit words last first
# (data_read: random_data[--data_left], random_data[data_left / 4]); 2.6.33 on
# return the buffer as the device filled it.
WORD_BYTES = 4


def qemu_rng_args(path: os.PathLike | str) -> list[str]:
    """QEMU's entropy backend reading ``path`` (a FIFO the test writes): rng-random."""
    return ["-object", f"rng-random,id={QEMU_RNG_ID},filename={path}"]


def qemu_rate_limit(max_bytes: int, period_ms: int) -> dict[str, int]:
    """virtio-rng-pci properties: at most ``max_bytes`` per ``period_ms``, then the device waits."""
    return {"max-bytes": max_bytes, "period": period_ms}


class StreamMismatch(AssertionError):
    """What the driver handed out is not what the device was given, in the driver's order."""


def check_stream(sent: bytes, got: bytes, fill_words: int = 0) -> int:
    """Check that ``got`` is the start of ``sent`` as the driver hands bytes out; return how many fills it saw.

    ``fill_words`` 0: in order, byte for byte. Otherwise each device fill (at
    most ``fill_words`` words) comes out last word first, as the
    data_read() drivers do; the fills are found from the data (a fill's
    first word out is its last word in), so ``sent`` should not repeat
    words within a fill (random data does not). Every byte of ``got`` must
    be accounted for: nothing lost, repeated or invented.
    """
    if not fill_words:
        if sent[:len(got)] != got:
            at = next((i for i, (a, b) in enumerate(zip(sent, got)) if a != b), len(sent))
            raise StreamMismatch(f"byte {at} of {len(got)} read differs from what the device was given "
                                 f"({got[at:at + 8].hex()} for {sent[at:at + 8].hex()})")
        return 1 if got else 0
    at = fills = 0
    while at < len(got):
        first = got[at:at + WORD_BYTES]
        size = next((k for k in range(1, fill_words + 1)
                     if sent[at + WORD_BYTES * (k - 1):at + WORD_BYTES * (k - 1) + len(first)] == first
                     and len(first) <= len(sent) - (at + WORD_BYTES * (k - 1))), None)
        if size is None:
            raise StreamMismatch(f"bytes {at}..{at + len(first)} read ({first.hex()}) are not the last word of a "
                                 f"fill of up to {fill_words} words at byte {at} of what the device was given")
        block = sent[at:at + WORD_BYTES * size]
        expect = b"".join(block[WORD_BYTES * i:WORD_BYTES * (i + 1)] for i in reversed(range(size)))
        part = got[at:at + len(expect)]
        if expect[:len(part)] != part:
            bad = next(i for i, (a, b) in enumerate(zip(expect, part)) if a != b)
            raise StreamMismatch(f"byte {at + bad} read: the fill of {size} words at byte {at} came out "
                                 f"otherwise than last word first")
        at += len(expect)
        fills += 1
    return fills


def fill_words_of(tree: os.PathLike | str) -> int:
    """``check_stream``'s fill_words for an emitted virtio-rng tree: 0 when its driver fills
    hwrng.read() (in order), else RANDOM_DATA_SIZE / 4 of its data_read() driver."""
    tree = Path(tree)
    apis = {a["name"] for a in json.loads((tree / "porting.json").read_text())["apis"]}
    if "hwrng.data_read" not in apis:
        return 0
    m = re.search(r"#define RANDOM_DATA_SIZE (\d+)", (tree / "virtio-rng.c").read_text())
    if not m:
        raise ValueError(f"{tree}/virtio-rng.c hands out data_read() words but defines no RANDOM_DATA_SIZE")
    return int(m.group(1)) // WORD_BYTES


@dataclass(frozen=True)
class DriverTraits:
    """What an emitted tree's virtio-rng driver does with a device that lies, read from its source.

    ``fill_words``: as ``fill_words_of``. ``used_len``: how it takes the used
    length: "read" (returns it from read(): porter's core caps it at the
    buffer), "words" (2.6.28-2.6.30: data_left = len / 4, the fill's words)
    or "bytes" (2.6.31-2.6.32: data_left += len, and re-posts its buffer
    from there). ``bug_on_no_buffer``: its interrupt callback BUG()s when
    virtio_ring returns no buffer (2.6.28-2.6.29: "We never get spurious
    callbacks"), as after a used entry virtio_ring refuses.
    """
    fill_words: int
    used_len: str
    bug_on_no_buffer: bool


def driver_traits(tree: os.PathLike | str) -> DriverTraits:
    src = (Path(tree) / "virtio-rng.c").read_text()
    fill_words = fill_words_of(tree)
    if not fill_words:
        used_len = "read"
    elif re.search(r"data_left \+= len;", src):
        used_len = "bytes"
    elif re.search(r"data_left = len / sizeof", src):
        used_len = "words"
    else:
        raise ValueError(f"{tree}/virtio-rng.c: a data_read() driver that takes the used length in a way "
                         f"porter's harness does not know")
    bug = re.search(r"get_buf\(vq, &\w+\)\)\s*BUG\(\);", src) is not None
    return DriverTraits(fill_words, used_len, bug)
