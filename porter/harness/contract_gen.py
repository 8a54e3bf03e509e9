"""Generate porter/harness/contract.py: the Python side of what the harness and the driver host share in C.

The C headers are the truth (the driver host and ddekit-linux are compiled
from them); this reads them with libclang, as the 32-bit host compiles
them, and writes every integer macro, enum and packed struct of theirs as
Python: struct formats whose field offsets and sizes are checked against
the compiler's layout, enums with the doc comments (``/**< ... */``) that
say what a value means. ``python -m porter.harness.contract_gen`` (or
``make contract``) rewrites the file; ``--check`` says whether it is stale.
"""

from __future__ import annotations

import argparse
import hashlib
import struct
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import clang.cindex as ci

from porter import SHIMS_DIR, PorterError

# (header below dde-shims/, the prefix of the names that belong to the contract, whether
# its structs are wire formats: ddekit_linux.h's are C interfaces, only its numbers count)
HEADERS = (("driver-host/protocol.h", "PORTER_", True), ("ddekit-linux/ddekit_linux.h", "DDEKIT_LINUX_", False))
OUTPUT = Path(__file__).with_name("contract.py")
K, T = ci.CursorKind, ci.TypeKind
# struct formats of the C integer types (canonical kinds, i386: long is 4 bytes)
_FORMATS = {T.CHAR_S: "b", T.SCHAR: "b", T.CHAR_U: "B", T.UCHAR: "B", T.SHORT: "h", T.USHORT: "H",
            T.INT: "i", T.UINT: "I", T.LONG: "i", T.ULONG: "I", T.LONGLONG: "q", T.ULONGLONG: "Q"}
_BYTES = {T.CHAR_S, T.SCHAR, T.CHAR_U, T.UCHAR}      # arrays of these are bytes ("16s")


class ContractError(PorterError):
    """A header has something the Python side cannot mirror exactly."""


@dataclass
class Enum:
    c_name: str
    members: list[tuple[str, int, str]]      # python name, value, doc
    header: str


@dataclass
class Struct:
    c_name: str
    fields: list[tuple[str, str, int]]       # name, struct format, byte offset
    size: int
    header: str
    doc: str = ""


@dataclass
class Contract:
    macros: dict[str, tuple[int, str]] = field(default_factory=dict)   # python name -> value, header
    enums: list[Enum] = field(default_factory=list)
    structs: list[Struct] = field(default_factory=list)
    sources: list[tuple[str, str]] = field(default_factory=list)       # header, sha256


def _args() -> list[str]:
    from porter.scan import compiler_include_dir
    return ["-x", "c", "-std=gnu99", "-target", "i386-pc-linux-gnu", "-isystem", compiler_include_dir()]


def _parse(path: Path, extra: str = "") -> ci.TranslationUnit:
    """``path`` (with ``extra`` C after it) as the 32-bit host compiles it; errors are ContractErrors."""
    with tempfile.NamedTemporaryFile("w", suffix=".c") as tu_file:
        tu_file.write(f'#include "{path}"\n{extra}')
        tu_file.flush()
        tu = ci.Index.create().parse(tu_file.name, args=_args(),
                                     options=ci.TranslationUnit.PARSE_DETAILED_PROCESSING_RECORD)
    errors = [d for d in tu.diagnostics if d.severity >= ci.Diagnostic.Error]
    if errors:
        d = errors[0]
        where = f"{d.location.file}:{d.location.line}" if d.location.file else str(path)
        raise ContractError(f"{where}: {d.spelling} (the contract generator compiles the header as the "
                            f"32-bit driver host does)")
    return tu


def _strip(name: str, prefix: str) -> str:
    return name[len(prefix):] if name.startswith(prefix) else name


def _class_name(tag: str, prefix: str) -> str:
    """enum porter_msg_type -> Msg, porter_host_exit -> HostExit, ddekit_linux_exit -> Exit."""
    base = _strip(tag, prefix.lower()).removesuffix("_type")
    return "".join(part.capitalize() for part in base.split("_"))


def _common_prefix(names: list[str]) -> str:
    """The longest prefix up to an underscore that all ``names`` share (PORTER_EXIT_)."""
    first = names[0]
    cut = 0
    for i, ch in enumerate(first):
        if any(len(n) <= i or n[i] != ch for n in names):
            break
        if ch == "_":
            cut = i + 1
    return first[:cut]


def _field_format(cursor: ci.Cursor, header: str, struct_name: str) -> str:
    t = cursor.type.get_canonical()
    dims = []
    while t.kind == T.CONSTANTARRAY:
        dims.append(t.get_array_size())
        t = t.element_type.get_canonical()
    if t.kind not in _FORMATS:
        raise ContractError(f"{header}:{cursor.location.line}: struct {struct_name}, field {cursor.spelling}: "
                            f"type {cursor.type.spelling} has no fixed wire layout; use fixed-width integers "
                            f"or char arrays")
    if not dims:
        return _FORMATS[t.kind]
    if t.kind in _BYTES:                       # char name[16] -> 16s; char names[8][16] -> 16s * 8
        inner, outer = dims[-1], 1
        for d in dims[:-1]:
            outer *= d
        return f"{inner}s" * outer
    count = 1
    for d in dims:
        count *= d
    return f"{count}{_FORMATS[t.kind]}"


def _struct(cursor: ci.Cursor, header: str, prefix: str) -> Struct:
    name = cursor.spelling
    fields, fmt = [], "<"
    for f in cursor.type.get_fields():
        offset = cursor.type.get_offset(f.spelling) // 8
        if struct.calcsize(fmt) != offset:
            raise ContractError(f"{header}:{f.location.line}: struct {name}, field {f.spelling}: at offset "
                                f"{offset} in C, {struct.calcsize(fmt)} on the wire; mark the struct "
                                f"__attribute__((packed))")
        f_fmt = _field_format(f, header, name)
        fields.append((f.spelling, f_fmt, offset))
        fmt += f_fmt
    size = cursor.type.get_size()
    if struct.calcsize(fmt) != size:
        raise ContractError(f"{header}:{cursor.location.line}: struct {name} is {size} bytes in C, "
                            f"{struct.calcsize(fmt)} on the wire; mark it __attribute__((packed))")
    return Struct(name, fields, size, header)


def read_header(shims_dir: Path, rel: str, prefix: str, structs: bool, contract: Contract) -> None:
    path = shims_dir / rel
    data = path.read_bytes()
    contract.sources.append((rel, hashlib.sha256(data).hexdigest()))
    tu = _parse(path)
    macros = []
    for c in tu.cursor.get_children():
        if not c.location.file or Path(c.location.file.name).resolve() != path.resolve():
            continue
        if c.kind == K.MACRO_DEFINITION and c.spelling.startswith(prefix):
            tokens = list(c.get_tokens())
            # object-like macros with a value; not include guards, not function-like
            # ones (whose "(" touches the name: NAME(x) vs NAME (x))
            function_like = len(tokens) > 1 and tokens[1].spelling == "(" and \
                tokens[1].extent.start.column == tokens[0].extent.end.column
            if len(tokens) > 1 and not function_like:
                macros.append(c.spelling)
        elif c.kind == K.ENUM_DECL and c.spelling.startswith(prefix.lower()) and c.is_definition():
            consts = list(c.get_children())
            common = _common_prefix([k.spelling for k in consts]) if len(consts) > 1 else prefix
            contract.enums.append(Enum(_class_name(c.spelling, prefix),
                                       [(_strip(k.spelling, common), k.enum_value, k.brief_comment or "")
                                        for k in consts], rel))
        elif structs and c.kind == K.STRUCT_DECL and c.spelling.startswith(prefix.lower()) and c.is_definition():
            contract.structs.append(_struct(c, rel, prefix))
    if macros:
        # the compiler evaluates each macro (expressions, suffixes) as an enum constant
        probe = "enum { " + ", ".join(f"porter_contract_{m} = ({m})" for m in macros) + " };\n"
        values = {k.spelling.removeprefix("porter_contract_"): k.enum_value
                  for c in _parse(path, probe).cursor.get_children() if c.kind == K.ENUM_DECL
                  for k in c.get_children() if k.spelling.startswith("porter_contract_")}
        for m in macros:
            contract.macros[_strip(m, prefix)] = (values[m], rel)


def generate(shims_dir: Path = SHIMS_DIR) -> str:
    """The text of contract.py for the headers below ``shims_dir``."""
    contract = Contract()
    for rel, prefix, structs in HEADERS:
        read_header(shims_dir, rel, prefix, structs, contract)
    return render(contract)


def render(c: Contract) -> str:
    out = ['"""The C contract between the harness and the driver host, as Python.',
           "",
           "GENERATED by porter/harness/contract_gen.py from:"]
    out += [f"  dde-shims/{rel} (sha256 {digest})" for rel, digest in c.sources]
    out += ["Do not edit: change the header, then run `make contract`. A test regenerates",
            'this file and fails on any difference."""', "", "import enum", "import struct", ""]
    header = None
    for name, (value, rel) in c.macros.items():
        if rel != header:
            out += ["", f"# -- {rel}: macros"]
            header = rel
        out.append(f"{name} = {value:#x}" if value > 255 else f"{name} = {value}")
    for e in c.enums:
        out += ["", "", f"class {e.c_name}(enum.IntEnum):", f'    """{e.header}"""']
        out += [f"    {name} = {value}" for name, value, _ in e.members]
        docs = {value: doc for _, value, doc in e.members if doc}
        if docs:
            out += ["", "", f"{_upper(e.c_name)}_DOC = {{"]
            out += [f"    {value}: {doc!r}," for value, doc in docs.items()]
            out.append("}")
    out += ["", ""]
    for s in c.structs:
        name = _strip(s.c_name, "porter_").upper()
        fmt = "<" + "".join(f for _, f, _ in s.fields)
        out.append(f"# struct {s.c_name} ({s.header}), {s.size} bytes; its fields' byte offsets")
        out.append(f"{name} = struct.Struct({fmt!r})")
        out.append(f"{name}_FIELDS = {{{', '.join(f'{n!r}: {off}' for n, _, off in s.fields)}}}")
    return "\n".join(out).rstrip() + "\n"


def _upper(camel: str) -> str:
    return "".join(f"_{ch}" if ch.isupper() and i else ch for i, ch in enumerate(camel)).upper()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if contract.py differs from the headers")
    args = ap.parse_args(argv)
    try:
        text = generate()
    except PorterError as e:
        print(f"contract_gen: {e}", file=sys.stderr)
        return 2
    if args.check:
        stale = not OUTPUT.is_file() or OUTPUT.read_text() != text
        print(f"{OUTPUT}: {'stale: run make contract' if stale else 'up to date'}")
        return int(stale)
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
