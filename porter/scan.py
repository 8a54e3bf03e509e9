"""Parse stage: libclang reads each upstream file against the DDE's headers and
records every kernel API it uses, as plain data (no clang objects leave here)."""

import ctypes
import functools
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import clang.cindex as ci

from . import SHIMS_DIR, PorterError

SHIM_INCLUDE_DIR = SHIMS_DIR / "include"

K = ci.CursorKind
# A private handle on libclang: the binding exposes no clang_getFileLocation of its own.
_lib = ctypes.CDLL(ci.conf.lib._name)
_getFileLocation = _lib.clang_getFileLocation
_getFileName = _lib.clang_getFileName
_getFileName.argtypes = [ctypes.c_void_p]
_getFileName.restype = ci._CXString
_getFileLocation.argtypes = [ci.SourceLocation, ctypes.POINTER(ctypes.c_void_p),
                             ctypes.POINTER(ctypes.c_uint), ctypes.POINTER(ctypes.c_uint),
                             ctypes.POINTER(ctypes.c_uint)]
_getFileLocation.restype = None


@dataclass(frozen=True, order=True)
class Loc:
    file: str            # Linux path, e.g. drivers/net/virtio_net.c
    line: int
    column: int
    offset: int          # byte offset in the file (edits are made by offset)

    def __str__(self):
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class ApiUse:
    """One use of an API the bundle does not define itself."""
    name: str            # function/macro/variable name; struct.member; struct/typedef name
    kind: str            # function | macro | variable | type | member
    loc: Loc             # where the name is written (its first token)
    length: int          # bytes of the name token at loc (0 if not a plain token)
    declared_in: str     # header that declares it ('' when nothing does)
    implicit: bool = False   # used without any declaration (C89 implicit int)
    inline: bool = False     # a static inline / macro: needs nothing at link time
    missing: bool = False    # a member the DDE's struct does not have (clang recovered)
    base: tuple[int, int] | None = None   # member uses: byte range of the object expression
    arrow: bool = True       # member uses: written base->member (else base.member)


@dataclass(frozen=True)
class StackDmaArg:
    """&local (or &param) passed as a buffer to an API that hands it to a device."""
    api: str             # the call, e.g. sg_set_buf
    call: Loc
    var: str
    var_type: str        # type spelling, e.g. "struct virtio_net_ctrl_hdr"
    is_param: bool
    decl: Loc            # the variable's declaration (name token)
    decl_stmt_start: int     # offset of the declaration statement (locals) / body '{' (params)
    decl_stmt_end: int
    decl_stmt_vars: tuple[str, ...]   # every variable the declaration statement declares
    init_text: str       # initializer text ('' when none)
    uses: tuple[int, ...]            # offsets of every reference to the variable
    function: str
    body_start: int      # offset just after the function body's '{'


@dataclass(frozen=True)
class CallSite:
    """A call to an API whose rules look at how its arguments are written."""
    api: str
    loc: Loc             # the callee's name token
    args: tuple[tuple[int, int], ...]   # byte range of every argument as written


@dataclass(frozen=True)
class ArityMismatch:
    """A call to a DDE function with another number of arguments than the DDE
    declares (an older or newer form of the API; clang recovered from it)."""
    api: str
    loc: Loc             # the callee's name token
    args: tuple[tuple[int, int], ...]   # byte range of every argument as written
    declared: int        # parameters in the DDE's declaration
    declared_at: str     # header:line of that declaration


@dataclass(frozen=True)
class Initcall:
    macro: str           # module_init, core_initcall, module_exit, ...
    function: str
    loc: Loc             # the function name token inside the macro call
    file_module: str     # the object's module name (file basename)
    refs: tuple[int, ...]    # offsets of every token naming the function in its file
    names_in_file: frozenset[str]


@dataclass(frozen=True)
class Include:
    file: str
    line: int
    end_offset: int      # offset just after the directive's line


@dataclass
class FileScan:
    path: str                       # Linux path
    text: bytes
    uses: list[ApiUse] = field(default_factory=list)
    stack_dma: list[StackDmaArg] = field(default_factory=list)
    initcalls: list[Initcall] = field(default_factory=list)
    includes: list[Include] = field(default_factory=list)
    expanded: list[ApiUse] = field(default_factory=list)   # uses inside macro expansions
    arity: list[ArityMismatch] = field(default_factory=list)
    calls: list[CallSite] = field(default_factory=list)
    shim_includes: tuple[str, ...] = ()    # porter headers the parse needed (see scan_files)


@dataclass
class BundleScan:
    version: str
    files: dict[str, FileScan]      # every bundle file (sources and headers) by Linux path

    def all_uses(self) -> list[ApiUse]:
        return sorted((u for f in self.files.values() for u in f.uses), key=lambda u: u.loc)




@functools.cache
def compiler_include_dir() -> str:
    # The libclang wheel has no resource headers (stdarg.h, stddef.h); the
    # DDE is built with gcc, whose own are the right ones anyway.
    return subprocess.check_output(["gcc", "-m32", "-print-file-name=include"], text=True).strip()


def clang_args(dde, module: str, upstream_include: Path, extra_first: list[Path] = ()) -> list[str]:
    return (["-target", "i386-pc-linux-gnu", "-isystem", compiler_include_dir(),
             # 2.6.32 headers call MAYBE_BUILD_BUG_ON, which the DDE lacks: we
             # want the implicit declaration recorded as a use, not a stop.
             "-Wno-error=implicit-function-declaration", "-Wno-implicit-function-declaration"]
            + dde.compile_flags(module, [*extra_first, upstream_include], m32=False))


class ScanError(PorterError):
    pass


def _file_location(loc):
    """(file name, line, column, offset) where the text was written: for a macro
    argument its spelling, for a macro body the expansion point (clang_getFileLocation;
    the Python binding's own .file/.line give the expansion point for both)."""
    f, line, col, off = ctypes.c_void_p(), ctypes.c_uint(), ctypes.c_uint(), ctypes.c_uint()
    _getFileLocation(loc, ctypes.byref(f), ctypes.byref(line), ctypes.byref(col), ctypes.byref(off))
    if not f.value:
        return None
    return (ci._CXString.from_result(_getFileName(f.value)), line.value, col.value, off.value)


def _loc(cur_loc, root: Path) -> Loc | None:
    where = _file_location(cur_loc)
    if where is None:
        return None
    rel = _rel(where[0], root)
    return None if rel is None else Loc(rel, where[1], where[2], where[3])


@functools.lru_cache(maxsize=4096)
def _rel(path: str | None, root: Path) -> str | None:
    """path relative to root, or None outside it (libclang hands out the same names often)."""
    if not path:
        return None
    try:
        return str(Path(path).resolve().relative_to(root))
    except ValueError:
        return None


def scan_files(root: Path, sources: list[str], headers: list[str], dde, version: str = "",
               dma_buffer_args: dict[str, int] | None = None,
               initcall_macros: tuple[str, ...] = (),
               shim_headers: dict[str, str] | None = None,
               call_apis: frozenset[str] = frozenset(),
               kernel_headers: tuple[str, ...] = ()) -> BundleScan:
    """Parse each source under root (a Linux tree layout) against the DDE.

    dma_buffer_args: API -> index of an argument the device accesses by
    physical address (stack objects passed there are recorded);
    initcall_macros: macros whose argument is an initcall function;
    shim_headers: API -> porter header that supplies it (the `include` rules);
    call_apis: APIs whose calls are recorded with their arguments (CallSite).
    A source that uses such an API the DDE's headers do not declare is parsed
    again with that header included first, as the emitted file will include it:
    a loop macro or a function returning a pointer cannot be parsed undeclared.
    kernel_headers: those of ``headers`` that declare kernel APIs (their uses are
    recorded as the DDE's would be) rather than the bundle's own."""
    root = root.resolve()
    bundle_files = (set(sources) | set(headers)) - set(kernel_headers)
    files: dict[str, FileScan] = {}
    for p in sorted(set(sources) | set(headers)):
        fp = root / p
        if not fp.is_file():
            raise ScanError(f"{fp}: missing (the bundle needs it); run `porter fetch` again")
        files[p] = FileScan(p, fp.read_bytes())
    seen_uses: set[tuple] = set()
    for src in sources:
        module = Path(src).stem.replace("-", "_")
        args = clang_args(dde, module, root / "include")
        tu = _parse(root, src, args)
        needed = sorted({shim_headers[name] for name in _undeclared(tu, root, bundle_files)
                         if shim_headers and name in shim_headers})
        if needed:
            files[src].shim_includes = tuple(needed)
            tu = _parse(root, src, args + ["-idirafter", str(SHIM_INCLUDE_DIR)]
                        + [a for h in needed for a in ("-include", h)])
        recoverable = _check_diagnostics(tu, root, src)
        walker = _Walker(tu, root, bundle_files, files, seen_uses, module,
                         dma_buffer_args or {}, tuple(initcall_macros), recoverable, call_apis)
        walker.run()
        _add_missing_members(walker.unplaced_members(), files, seen_uses)
        walker.check_recovered()
    return BundleScan(version, files)


def _add_missing_members(missing: list[tuple[str, Loc]], files: dict[str, FileScan], seen: set) -> None:
    """Struct members the DDE's structs lack that the walker could not place on a plain
    base->member, as uses with no declaration (as undeclared functions are)."""
    for name, loc in missing:
        key = (name, "member", loc.file, loc.offset)
        if loc.file not in files or key in seen:
            continue
        seen.add(key)
        member = name.split(".")[-1].encode()
        text = files[loc.file].text
        length = len(member) if text[loc.offset:loc.offset + len(member)] == member else 0
        files[loc.file].uses.append(ApiUse(name, "member", loc, length, "", implicit=True, inline=True,
                                           missing=True))


def _parse(root: Path, src: str, args: list[str]):
    try:
        return ci.Index.create().parse(
            str(root / src), args=args,
            options=ci.TranslationUnit.PARSE_DETAILED_PROCESSING_RECORD)
    except ci.TranslationUnitLoadError as e:
        raise ScanError(f"{src}: libclang could not parse it ({e})") from None


_UNDECLARED = re.compile(r"(?:undeclared function|implicit declaration of function|"
                         r"undeclared identifier) '(\w+)'")


def _undeclared(tu, root: Path, bundle_files: set[str]) -> set[str]:
    """Names the bundle's files use and the DDE's headers do not declare."""
    names = set()
    for d in tu.diagnostics:
        m = _UNDECLARED.search(d.spelling)
        where = _loc(d.location, root)
        if m and where and where.file in bundle_files:
            names.add(m.group(1))
    return names


def _dde_relative(path: str) -> str:
    """A DDE header's path from the DDE library's own directory on (libdde-linux26/...);
    a porter shim header as the tree includes it (porter/...)."""
    p = Path(path).resolve()
    try:
        return str(p.relative_to(SHIM_INCLUDE_DIR.resolve()))
    except ValueError:
        pass
    for marker in ("libdde-linux26", "libdde_linux26", "libddekit"):
        if marker in p.parts:
            return str(Path(*p.parts[p.parts.index(marker):]))
    return str(p)


def _place(loc, root: Path, src: str) -> str:
    where = _loc(loc, root)
    return str(where) if where else (f"{loc.file}:{loc.line}" if loc.file else src)


# A source newer or older than the DDE's headers may use a struct member they lack (2.6.31
# renamed struct request's data_len to resid_len; 2.6.28 reads dev->priv): recorded as a use,
# which a rule maps or the plan reports as unmapped, as it does an undeclared function.
_MISSING_MEMBER = re.compile(r"no member named '(\w+)' in '(?:struct|union) (\w+)'")
# An undeclared function returns int in C89: assigning that to a pointer is the same gap, not
# another error (the rule that maps the function declares it; `porter check` compiles the result).
_IMPLICIT_INT_CONSEQUENCE = "incompatible integer to pointer conversion"
_ARITY = re.compile(r"too (?:many|few) arguments to function call")


@dataclass
class _Recoverable:
    """Errors clang recovered from that name an API use porter's rules may adapt:
    a member the DDE's struct lacks, a call with another argument count. The walker
    records each as a use; a call it cannot place is reported as an error after all."""
    members: dict[tuple[str, int], tuple[str, str, str]] = field(default_factory=dict)  # (file, offset) -> struct, member, message
    member_locs: dict[tuple[str, int], Loc] = field(default_factory=dict)
    calls: dict[tuple[str, int], str] = field(default_factory=dict)     # (file, offset) -> message
    placed: set[tuple[str, int]] = field(default_factory=set)


def _check_diagnostics(tu, root: Path, src: str) -> _Recoverable:
    """Stop on errors; name what most likely caused them. An error here usually
    means the source is newer or older than the DDE's Linux headers: a function
    they do not declare (its implicit int then breaks an assignment), or one
    they declare with another signature (clang's 'declared here' note)."""
    errors, recovered, undeclared = [], [], {}
    recoverable = _Recoverable()
    diagnostics = list(tu.diagnostics)
    implicit_lines = set()
    for d in diagnostics:
        if "undeclared function" in d.spelling or "implicit declaration" in d.spelling:
            where = _loc(d.location, root)
            if where:
                implicit_lines.add((where.file, where.line))
    for d in diagnostics:
        if "undeclared function" in d.spelling or "implicit declaration" in d.spelling:
            # recorded as an implicit API use by the walker; named below if the parse fails
            name = re.search(r"function '(\w+)'", d.spelling)
            if name:
                undeclared.setdefault(name.group(1), _place(d.location, root, src))
            continue
        if d.severity < ci.Diagnostic.Error:
            continue
        text = f"{_place(d.location, root, src)}: {d.spelling}"
        for note in d.children:
            if note.spelling.endswith("declared here") and note.location.file:
                text += f" [{note.spelling} in {_dde_relative(note.location.file.name)}:{note.location.line}]"
        where = _loc(d.location, root)
        member = _MISSING_MEMBER.search(d.spelling)
        if where and member:
            recoverable.members[(where.file, where.offset)] = (member.group(2), member.group(1), text)
            recoverable.member_locs[(where.file, where.offset)] = where
            recovered.append(text)
            continue
        if where and _ARITY.search(d.spelling):
            recoverable.calls[(where.file, where.offset)] = text
            recovered.append(text)
            continue
        consequence = (_IMPLICIT_INT_CONSEQUENCE in d.spelling and where is not None
                       and (where.file, where.line) in implicit_lines)
        errors.append((text, consequence))
    # consequences alone do not stop the scan; beside another error they are listed with it,
    # and so are the errors a rule might have adapted, in source order
    errors = sorted([text for text, _ in errors] + recovered, key=_line_order) \
        if not all(c for _, c in errors) else []
    if errors:
        more = f"\n  ... and {len(errors) - 12} more" if len(errors) > 12 else ""
        hint = ""
        if undeclared:
            hint = ("\nfunctions the DDE's headers do not declare (the likely cause; porter's rules map some of them):\n  "
                    + "\n  ".join(f"{name:32} first used at {where}" for name, where in undeclared.items()))
        raise ScanError(f"{src} does not parse as C against the DDE's headers "
                        f"(truncated, not C, or not this Linux version?):\n  "
                        + "\n  ".join(errors[:12]) + more + hint)
    return recoverable


def _line_order(text: str) -> tuple:
    """file:line:col: message -> (file, line, col), for listing errors in source order."""
    m = re.match(r"(.*?):(\d+):(\d+):", text)
    return (m.group(1), int(m.group(2)), int(m.group(3))) if m else (text, 0, 0)


class _Walker:
    def __init__(self, tu, root, bundle_files, files, seen, module, dma_args, initcall_macros,
                 recoverable: _Recoverable, call_apis: frozenset[str] = frozenset()):
        self.tu, self.root, self.bundle, self.files, self.seen = tu, root, bundle_files, files, seen
        self.module, self.dma_args, self.initcall_macros = module, dma_args, initcall_macros
        self.main = _rel(tu.spelling, root)
        self.recoverable = recoverable
        self.call_apis = call_apis
        # a missing member's recovery expression ends where its member token does
        self.missing_by_end = {(f, off + len(m)): (f, off) for (f, off), (_, m, _) in recoverable.members.items()}

    # -- helpers
    def in_bundle(self, cur) -> Loc | None:
        loc = _loc(cur.location, self.root)
        return loc if loc and loc.file in self.bundle else None

    def decl_file(self, ref) -> str | None:
        if ref is None or ref.location.file is None:
            return None
        return ref.location.file.name

    def token_at(self, loc: Loc, name: str) -> int:
        """Length of name if the file has exactly that token at loc, else 0."""
        text = self.files[loc.file].text
        tok = name.encode()
        if text[loc.offset:loc.offset + len(tok)] == tok:
            nxt = text[loc.offset + len(tok):loc.offset + len(tok) + 1]
            if not (nxt.isalnum() or nxt == b"_"):
                return len(tok)
        return 0

    def add_use(self, name, kind, loc: Loc, ref, implicit=False, inline=False, base=None, arrow=True,
                missing=False):
        key = (name, kind, loc.file, loc.offset)
        if key in self.seen:
            return
        length = self.token_at(loc, name.split(".")[-1])
        if kind != "macro" and length == 0:
            # Written by a macro's expansion (skb_end_pointer inside skb_shinfo):
            # recorded as the macro's use; remember it for rules that must edit.
            self.files[loc.file].expanded.append(ApiUse(name, kind, loc, 0, self.declared_in(ref), implicit))
            self.seen.add(key)
            return
        self.seen.add(key)
        declared_in = "" if implicit else self.declared_in(ref)
        self.files[loc.file].uses.append(
            ApiUse(name, kind, loc, length, declared_in, implicit, inline, missing, base, arrow))

    def member_base(self, base_cur, member: Loc) -> tuple[tuple[int, int] | None, bool]:
        """The byte range of a member access's object expression, and whether it is
        written with ->; None when the text is not plainly `base->member` / `base.member`."""
        if base_cur is None:
            return None, True
        start, end = _loc(base_cur.extent.start, self.root), _loc(base_cur.extent.end, self.root)
        if start is None or end is None or start.file != member.file or end.file != member.file \
                or not start.offset < end.offset <= member.offset:
            return None, True
        between = self.files[member.file].text[end.offset:member.offset].strip()
        if between not in (b"->", b"."):
            return None, True
        return (start.offset, end.offset), between == b"->"

    def unplaced_members(self) -> list[tuple[str, Loc]]:
        """Missing members not written as a plain base->member (struct.member, where)."""
        r = self.recoverable
        return [(f"{struct}.{member}", r.member_locs[k]) for k, (struct, member, _) in r.members.items()
                if k not in r.placed]

    def check_recovered(self):
        """Every call clang recovered from became a recorded use, or it is an error after all."""
        r = self.recoverable
        left = [m for k, m in r.calls.items() if k not in r.placed]
        if left:
            raise ScanError(f"{self.main} does not parse as C against the DDE's headers "
                            "(porter could not place these errors on an API use):\n  " + "\n  ".join(left))

    def declared_in(self, ref) -> str:
        """Where ref is declared: a release header by its Linux path, a DDE one from the DDE library on."""
        decl = self.decl_file(ref)
        if not decl:
            return ""
        return _rel(decl, self.root) or _dde_relative(decl)

    def external(self, ref) -> bool:
        """Declared outside the bundle (so: a kernel API of the DDE)."""
        f = self.decl_file(ref)
        return f is not None and _rel(f, self.root) not in self.bundle

    # -- the walk
    def run(self):
        for cur in self.tu.cursor.get_children():
            loc = self.in_bundle(cur)
            if cur.kind == K.INCLUSION_DIRECTIVE:
                if loc:
                    self._include(cur, loc)
                continue
            if cur.kind == K.MACRO_INSTANTIATION:
                if loc:
                    self._macro(cur, loc)
                continue
            if loc is None:
                continue
            self._visit(cur, None)

    def _include(self, cur, loc):
        fs = self.files[loc.file]
        if any(i.line == loc.line for i in fs.includes):
            return
        text = fs.text
        eol = text.find(b"\n", cur.extent.end.offset)
        fs.includes.append(Include(loc.file, loc.line, len(text) if eol < 0 else eol + 1))

    def _macro(self, cur, loc):
        ref = cur.referenced
        name = cur.spelling
        if name in self.initcall_macros and loc.file == self.main:
            self._initcall(cur, loc)
        if ref is not None and self.external(ref):
            self.add_use(name, "macro", loc, ref, inline=True)

    def _initcall(self, cur, loc):
        toks = list(cur.get_tokens())
        if len(toks) < 4 or toks[1].spelling != "(":
            return
        fn_tok = toks[2]
        fs = self.files[loc.file]
        fn = fn_tok.spelling
        # every identifier token naming the function in this file
        refs, names = [], set()
        for t in self._file_tokens(loc.file):
            if t.kind == ci.TokenKind.IDENTIFIER:
                names.add(t.spelling)
                if t.spelling == fn:
                    refs.append(t.location.offset)
        fs.initcalls.append(Initcall(cur.spelling, fn, Loc(loc.file, fn_tok.location.line,
                                     fn_tok.location.column, fn_tok.location.offset),
                                     self.module, tuple(sorted(set(refs))), frozenset(names)))

    def _file_tokens(self, path: str):
        f = self.tu.get_file(str(self.root / path))
        end = ci.SourceLocation.from_offset(self.tu, f, len(self.files[path].text))
        start = ci.SourceLocation.from_offset(self.tu, f, 0)
        return self.tu.get_tokens(extent=ci.SourceRange.from_locations(start, end))

    def _visit(self, cur, func):
        kind = cur.kind
        if kind == K.FUNCTION_DECL and cur.is_definition():
            func = cur
        loc = self.in_bundle(cur)
        if loc is not None:
            ref = cur.referenced
            if kind == K.DECL_REF_EXPR and ref is not None:
                if ref.kind == K.FUNCTION_DECL:
                    implicit = _rel(self.decl_file(ref), self.root) in self.bundle and not _has_prototype(ref)
                    if self.external(ref) or implicit:
                        self.add_use(cur.spelling, "function", loc, ref, implicit=implicit,
                                     inline=ref.is_definition() or _is_inline(ref))
                elif ref.kind == K.VAR_DECL and self.external(ref):
                    self.add_use(cur.spelling, "variable", loc, ref)
            elif kind == K.TYPE_REF and ref is not None and self.external(ref):
                self.add_use(_type_name(ref), "type", loc, ref, inline=True)
            # MEMBER_REF: a field named by a designated initializer (.read = virtio_read)
            elif kind in (K.MEMBER_REF_EXPR, K.MEMBER_REF) and ref is not None and ref.kind == K.FIELD_DECL \
                    and self.external(ref.semantic_parent or ref):
                owner = ref.semantic_parent.spelling if ref.semantic_parent else "?"
                mloc = _member_loc(cur, loc)
                kids = list(cur.get_children())
                base, arrow = self.member_base(kids[0] if kids else None, mloc)
                self.add_use(f"{owner or '(anonymous)'}.{cur.spelling}", "member", mloc, ref, inline=True,
                             base=base, arrow=arrow)
            elif kind == K.UNEXPOSED_EXPR:
                self._recovered(cur)
            elif kind == K.CALL_EXPR and func is not None:
                if cur.spelling in self.dma_args:
                    self._dma_call(cur, loc, func)
                if cur.spelling in self.call_apis:
                    self._call_site(cur)
        for child in cur.get_children():
            self._visit(child, func)

    def _recovered(self, cur):
        """clang's recovery from a missing member (base->member) or from a call with
        the wrong number of arguments: record it as a use porter's rules may adapt."""
        end = _loc(cur.extent.end, self.root)
        kids = list(cur.get_children())
        if end is None or not kids:
            return
        key = self.missing_by_end.get((end.file, end.offset))
        if key is not None:
            struct, member, _ = self.recoverable.members[key]
            mloc = Loc(end.file, *self._line_col(end.file, key[1]), key[1])
            base, arrow = self.member_base(kids[0], mloc)
            if base is not None and len(kids) == 1:
                self.recoverable.placed.add(key)
                self.add_use(f"{struct}.{member}", "member", mloc, None, inline=True, base=base,
                             arrow=arrow, missing=True)
            return
        callee = kids[0]
        ref = callee.referenced
        if callee.kind != K.DECL_REF_EXPR or ref is None or ref.kind != K.FUNCTION_DECL \
                or not self.external(ref) or ref.type.kind != ci.TypeKind.FUNCTIONPROTO \
                or ref.type.is_function_variadic():
            return
        declared = len(list(ref.type.argument_types()))
        start = _loc(cur.extent.start, self.root)
        cloc = _loc(callee.location, self.root)
        if start is None or cloc is None or start.file != end.file or len(kids) - 1 == declared:
            return
        # only where clang said so (an implicit conversion around a callee looks alike)
        said = [k for k in self.recoverable.calls
                if k[0] == start.file and cloc.offset < k[1] <= end.offset]
        if not said:
            return
        args = []
        for a in kids[1:]:
            a0, a1 = _loc(a.extent.start, self.root), _loc(a.extent.end, self.root)
            if a0 is None or a1 is None or a0.file != cloc.file:
                return
            args.append((a0.offset, a1.offset))
        self.recoverable.placed.update(said)
        decl = ref.location
        if any(a.loc == cloc for a in self.files[cloc.file].arity):
            return
        self.files[cloc.file].arity.append(ArityMismatch(
            callee.spelling, cloc, tuple(args), declared,
            f"{_dde_relative(decl.file.name)}:{decl.line}" if decl.file else "?"))

    def _call_site(self, call):
        callee = next(iter(call.get_children()), None)
        cloc = _loc(callee.location, self.root) if callee is not None else None
        if cloc is None or any(c.loc == cloc for c in self.files[cloc.file].calls):
            return
        args = []
        for a in call.get_arguments():
            a0, a1 = _loc(a.extent.start, self.root), _loc(a.extent.end, self.root)
            if a0 is None or a1 is None or a0.file != cloc.file:
                return
            args.append((a0.offset, a1.offset))
        self.files[cloc.file].calls.append(CallSite(call.spelling, cloc, tuple(args)))

    def _line_col(self, path: str, offset: int) -> tuple[int, int]:
        text = self.files[path].text
        return text.count(b"\n", 0, offset) + 1, offset - (text.rfind(b"\n", 0, offset) + 1) + 1

    def _dma_call(self, call, loc, func):
        args = list(call.get_arguments())
        idx = self.dma_args[call.spelling]
        if idx >= len(args):
            return
        arg = _strip(args[idx])
        if arg.kind != K.UNARY_OPERATOR:
            return
        toks = [t.spelling for t in arg.get_tokens()]
        if not toks or toks[0] != "&":
            return
        operand = _strip(next(iter(arg.get_children()), None))
        if operand is None or operand.kind != K.DECL_REF_EXPR:
            return
        var = operand.referenced
        if var is None or var.kind not in (K.VAR_DECL, K.PARM_DECL):
            return
        if var.kind == K.VAR_DECL and var.storage_class not in (ci.StorageClass.NONE, ci.StorageClass.AUTO):
            return
        if var.semantic_parent is None or var.semantic_parent.kind != K.FUNCTION_DECL:
            return
        self.files[loc.file].stack_dma.append(self._stack_dma(call, loc, func, var))

    def _stack_dma(self, call, loc, func, var) -> StackDmaArg:
        text = self.files[loc.file].text
        body = next(c for c in func.get_children() if c.kind == K.COMPOUND_STMT)
        body_start = body.extent.start.offset + 1
        uses = sorted({u.offset for c in _walk(body)
                       if c.kind == K.DECL_REF_EXPR and c.referenced == var
                       for u in [self.in_bundle(c)] if u and u.file == loc.file})
        init_text = ""
        if var.kind == K.PARM_DECL:
            stmt_start = stmt_end = body_start
            stmt_vars = (var.spelling,)
        else:
            stmt = next(c for c in _walk(body) if c.kind == K.DECL_STMT
                        and any(d == var for d in c.get_children()))
            stmt_start, stmt_end = stmt.extent.start.offset, stmt.extent.end.offset
            stmt_vars = tuple(d.spelling for d in stmt.get_children() if d.kind == K.VAR_DECL)
            init = [c for c in var.get_children() if c.kind not in (K.TYPE_REF,)]
            if init:
                e = init[-1].extent
                init_text = text[e.start.offset:e.end.offset].decode()
        vloc = _loc(var.location, self.root)
        return StackDmaArg(call.spelling, loc, var.spelling, var.type.spelling,
                           var.kind == K.PARM_DECL, vloc, stmt_start, stmt_end, stmt_vars,
                           init_text, tuple(uses), func.spelling, body_start)


def _walk(cur):
    yield cur
    for c in cur.get_children():
        yield from _walk(c)


def _strip(cur):
    """Skip implicit casts and parentheses."""
    while cur is not None and cur.kind in (K.UNEXPOSED_EXPR, K.PAREN_EXPR, K.CSTYLE_CAST_EXPR):
        kids = list(cur.get_children())
        if cur.kind == K.CSTYLE_CAST_EXPR:
            kids = [k for k in kids if k.kind != K.TYPE_REF]
        if len(kids) != 1:
            break
        cur = kids[0]
    return cur


def _has_prototype(fn) -> bool:
    # An implicitly declared function has no tokens of its own
    return any(True for _ in fn.get_tokens())


def _is_inline(fn) -> bool:
    d = fn.get_definition()
    return d is not None


def _type_name(ref) -> str:
    if ref.kind == K.TYPEDEF_DECL:
        return ref.spelling
    kw = {K.STRUCT_DECL: "struct", K.UNION_DECL: "union", K.ENUM_DECL: "enum"}.get(ref.kind, "")
    return f"{kw} {ref.spelling}".strip()


def _member_loc(cur, loc: Loc) -> Loc:
    # The member name is the last token of a MEMBER_REF_EXPR (a->b, a.b)
    toks = list(cur.get_tokens())
    if toks and toks[-1].spelling == cur.spelling and toks[-1].location.file is not None:
        t = toks[-1].location
        return Loc(loc.file, t.line, t.column, t.offset)
    return loc
