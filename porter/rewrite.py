"""Rewrite stage: apply planned edits to upstream text by byte range, refusing overlaps."""

from . import PorterError
from .plan import Edit


class EditConflict(PorterError):
    pass


def apply_edits(text: bytes, edits: list[Edit]) -> bytes:
    """The text with every edit applied. Two edits touching the same bytes are an
    error that names both rules: silently picking one would lose the other."""
    ordered = sorted(edits, key=lambda e: (e.start, e.end))
    for prev, cur in zip(ordered, ordered[1:]):
        if cur.start < prev.end or (cur.start == prev.start and cur.end == prev.end and cur.end > cur.start):
            raise EditConflict(
                f"{cur.file}:{cur.line}: rules {prev.rule!r} and {cur.rule!r} both edit "
                f"{text[prev.start:max(prev.end, cur.end)].decode(errors='replace')!r}; "
                "make one rule's api or action narrower")
    for e in ordered:
        if not (0 <= e.start <= e.end <= len(text)):
            raise EditConflict(f"{e.file}:{e.line}: rule {e.rule!r}: edit outside the file")
        if text[e.start:e.end].decode(errors="replace") != e.before:
            raise EditConflict(f"{e.file}:{e.line}: rule {e.rule!r} expected {e.before!r} there; "
                               "the source changed since it was scanned")
    out, pos = [], 0
    for e in ordered:
        out.append(text[pos:e.start])
        out.append(e.text.encode())
        pos = e.end
    out.append(text[pos:])
    return b"".join(out)
