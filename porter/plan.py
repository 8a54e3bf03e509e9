"""Plan stage: decide, for every API use the scan found, what porter does with
it (provided, rewritten, shimmed, unmapped) and turn the rules that fire into
edits located by byte range in the upstream text."""

import re
from dataclasses import dataclass, field

from . import SHIMS_DIR, PorterError
from .pipeline import Inputs
from .rules import Rule
from .scan import ApiUse, BundleScan, Loc

SHIM_SRC_DIR = SHIMS_DIR / "src"
SHIM_INCLUDE_DIR = SHIMS_DIR / "include"

PROVIDED, REWRITTEN, SHIMMED, UNMAPPED = "provided", "rewritten", "shimmed", "unmapped"


@dataclass(frozen=True)
class Edit:
    file: str
    start: int           # byte offsets into the upstream file; start == end inserts
    end: int
    text: str
    rule: str
    line: int
    before: str          # the upstream bytes replaced ('' for an insertion)


@dataclass
class ApiDecision:
    name: str
    kind: str
    status: str
    rule: str = ""
    note: str = ""
    declared_in: str = ""
    uses: list[Loc] = field(default_factory=list)


@dataclass
class PortPlan:
    inputs: Inputs
    scan: BundleScan
    decisions: list[ApiDecision]
    edits: dict[str, list[Edit]]            # by Linux path
    shim_headers: list[str]                 # porter/*.h the tree needs
    shim_sources: list[str]                 # dde-shims/src/*.c the tree needs
    initcall_renames: dict[str, str]        # old -> new, per the report

    @property
    def unmapped(self) -> list[ApiDecision]:
        return [d for d in self.decisions if d.status == UNMAPPED]

    def raise_if_unmapped(self):
        if self.unmapped:
            lines = [f"{d.uses[0]}: {d.name} ({d.kind}): {d.note}" for d in self.unmapped]
            raise PorterError(f"{len(lines)} API(s) the DDE lacks and no rule maps "
                              f"(add a rule under porter/rules/):\n  " + "\n  ".join(lines))


def _is_ddekit(use: ApiUse) -> bool:
    return use.declared_in.startswith("libddekit") or use.name.startswith("ddekit_")


def _decide_default(use: ApiUse, symbols) -> tuple[str, str]:
    if use.name.startswith("__builtin_"):
        # the compiler evaluates or expands it; it is never a symbol to link against
        return PROVIDED, "compiler builtin"
    if use.kind == "member" and (use.implicit or use.missing):
        struct, member = use.name.split(".", 1)
        return UNMAPPED, f"the DDE's struct {struct} has no member {member}"
    if use.implicit:
        return UNMAPPED, "no declaration in the DDE's headers (used implicitly)"
    if use.kind in ("function", "variable") and not use.inline and symbols is not None \
            and use.name not in symbols and not _is_ddekit(use):
        return UNMAPPED, f"declared in {use.declared_in} but libdde_linux26 does not define it"
    return PROVIDED, ""


def plan_port(inputs: Inputs, scan: BundleScan) -> PortPlan:
    rules = inputs.rules
    decisions: dict[tuple[str, str], ApiDecision] = {}
    edits: dict[str, list[Edit]] = {p: [] for p in scan.files}
    headers_by_file: dict[str, list[Rule]] = {p: [] for p in scan.files}

    def text(file: str) -> bytes:
        return scan.files[file].text

    def decision(use: ApiUse, status: str, rule: str = "", note: str = "") -> None:
        d = decisions.setdefault((use.name, use.kind),
                                 ApiDecision(use.name, use.kind, status, rule, note, use.declared_in))
        if d.status != UNMAPPED and status == UNMAPPED:
            d.status, d.rule, d.note = status, rule, note
        d.uses.append(use.loc)

    calls_at = {(c.loc.file, c.loc.offset): c for fs in scan.files.values() for c in fs.calls}
    deferred: list[tuple[ApiUse, Rule]] = []     # rules that fire only where another one fired

    def rename(use: ApiUse, rule: Rule) -> None:
        if not use.length:
            decision(use, UNMAPPED, rule.id, "not written as a plain name here; cannot rewrite")
            return
        edits[use.loc.file].append(Edit(
            use.loc.file, use.loc.offset, use.loc.offset + use.length, rule.to, rule.id,
            use.loc.line, use.name.split(".")[-1] if use.kind == "member" else use.name))
        if rule.header:
            headers_by_file[use.loc.file].append(rule)
        decision(use, REWRITTEN, rule.id, f"-> {rule.to}")

    for use in scan.all_uses():
        name_rules = [r for r in rules.for_api(use.name)
                      if r.action in ("rename", "include", "member-call", "provided", "unsupported")
                      and (not r.arg_call or _arg_written_as(calls_at.get((use.loc.file, use.loc.offset)),
                                                            r, text(use.loc.file)))]
        deferred += [(use, r) for r in name_rules if r.with_rule]
        name_rules = [r for r in name_rules if not r.with_rule]
        if not name_rules:
            if not any(u is use for u, _ in deferred):
                status, note = _decide_default(use, inputs.dde_symbols)
                decision(use, status, note=note)
            continue
        for rule in name_rules:
            if rule.action == "include" and rule.header.startswith("porter/") and not rule.selects \
                    and not use.implicit and use.declared_in != rule.header:
                # the DDE declares it itself: porter's definition would clash with it
                status, note = _decide_default(use, inputs.dde_symbols)
                decision(use, status, note=note or f"the DDE declares it ({use.declared_in}); "
                                                   f"rule {rule.id} not needed")
                continue
            if rule.action == "member-call":
                if use.kind != "member" or use.base is None or not use.length:
                    decision(use, UNMAPPED, rule.id, "not written as a plain base->member here; cannot rewrite")
                    continue
                edits[use.loc.file] += _member_call_edits(use, rule, text(use.loc.file))
                if rule.header:
                    headers_by_file[use.loc.file].append(rule)
                decision(use, REWRITTEN, rule.id, f"-> {rule.to}(...)")
            elif rule.action == "rename":
                rename(use, rule)
            elif rule.action == "include":
                headers_by_file[use.loc.file].append(rule)
                decision(use, SHIMMED, rule.id, f"via <{rule.header}>")
            elif rule.action == "provided":
                decision(use, PROVIDED, rule.id, rule.why)
            else:
                decision(use, UNMAPPED, rule.id, rule.why)

    # renames that go with another rule, in the files where that one fired
    fired_in = {(e.file, r) for es in edits.values() for e in es for r in e.rule.split(",")}
    for use, rule in deferred:
        if (use.loc.file, rule.with_rule) in fired_in:
            rename(use, rule)
        else:
            status, note = _decide_default(use, inputs.dde_symbols)
            decision(use, status, note=note)

    # calls written for another form of an API than the DDE declares
    for path, fs in scan.files.items():
        for call in fs.arity:
            use = ApiUse(call.api, "call", call.loc, len(call.api), call.declared_at)
            rule = next((r for r in rules.for_api(call.api, "drop-arg") if r.args == len(call.args)), None)
            if rule is None:
                decision(use, UNMAPPED, note=f"called with {len(call.args)} argument(s); the DDE's "
                                             f"declaration ({call.declared_at}) takes {call.declared}")
                continue
            edits[path].append(_drop_arg_edit(call, rule, text(path)))
            decision(use, REWRITTEN, rule.id, f"argument {rule.arg + 1} of {rule.args} dropped")

    # a rename rule whose API only appears inside a macro's expansion cannot be honoured,
    # unless a rename rewrites that macro itself (dev_kfree_skb expands to kfree_skb)
    renamed_at = {(e.file, e.start) for es in edits.values() for e in es if e.end > e.start}
    for f in scan.files.values():
        for use in f.expanded:
            if (use.loc.file, use.loc.offset) in renamed_at:
                continue
            for rule in rules.for_api(use.name, "rename"):
                decision(use, UNMAPPED, rule.id,
                         "used inside a macro expansion here; porter cannot rewrite it in place")

    heap_rules = rules.by_action("heap-dma")
    for path, fs in scan.files.items():
        if fs.stack_dma and heap_rules:
            rule = next(r for r in heap_rules if fs.stack_dma[0].api in r.apis)
            edits[path] += _heap_dma_edits(fs, rule, text(path))
            headers_by_file[path].append(_HEAP_HEADER_RULE(rule.id))

    renames = {}
    initcall_rules = rules.by_action("unique-initcall")
    for path, fs in scan.files.items():
        for ic in fs.initcalls:
            rule = next((r for r in initcall_rules if ic.macro in r.apis), None)
            if rule is None or ic.file_module in ic.function:
                continue
            new = f"{ic.file_module}_{ic.function}"
            if new in ic.names_in_file:
                new += "_initcall"
            renames[f"{path}:{ic.function}"] = new
            for off in ic.refs:
                line = text(path).count(b"\n", 0, off) + 1
                edits[path].append(Edit(path, off, off + len(ic.function), new, rule.id, line, ic.function))

    shim_headers: set[str] = set()
    for path, hrules in headers_by_file.items():
        if hrules:
            edits[path].append(_include_edit(path, scan, hrules))
            shim_headers |= {r.header for r in hrules if r.header.startswith("porter/")}
    shim_headers = _with_shim_includes(shim_headers | set(inputs.bundle.shims))
    shim_sources = sorted(
        p.name for h in shim_headers for p in [_shim_source(h)] if p.is_file())
    for path in edits:
        edits[path].sort(key=lambda e: (e.start, e.end))
    ordered = sorted(decisions.values(), key=lambda d: (d.status != UNMAPPED, d.name, d.kind))
    return PortPlan(inputs, scan, ordered, {p: e for p, e in edits.items() if e},
                    sorted(shim_headers), shim_sources, renames)


def _shim_source(header: str):
    """dde-shims/src/porter_<name>.c for porter/<name>.h (may not exist)."""
    return SHIM_SRC_DIR / f"porter_{header.split('/')[-1][:-2]}.c"


def _with_shim_includes(headers: set[str]) -> set[str]:
    """The shim headers and every porter/*.h they, or their sources, include (a bundle's
    glue shim may build on a rule's shim: porter/blkio.h on porter/blkdev.h)."""
    import re
    todo, done = list(headers), set()
    while todo:
        h = todo.pop()
        if h in done:
            continue
        done.add(h)
        for f in (SHIM_INCLUDE_DIR / h, _shim_source(h)):
            if f.is_file():
                todo += re.findall(r'^#include <(porter/[\w.]+\.h)>', f.read_text(), re.M)
    return done


def _arg_written_as(call, rule: Rule, text: bytes) -> bool:
    """The call's argument rule.arg is written as a call of rule.arg_call (e.g. PAGE_ALIGN(...))."""
    if call is None or rule.arg >= len(call.args):
        return False
    start, end = call.args[rule.arg]
    return re.match(rb"\(*\s*" + re.escape(rule.arg_call.encode()) + rb"\s*\(", text[start:end]) is not None


def _member_call_edits(use: ApiUse, rule: Rule, text: bytes) -> list[Edit]:
    """base->member becomes to(base); base.member becomes to(&base)."""
    start, end = use.base
    member_end = use.loc.offset + use.length
    return [Edit(use.loc.file, start, start, f"{rule.to}({'' if use.arrow else '&'}", rule.id, use.loc.line, ""),
            Edit(use.loc.file, end, member_end, ")", rule.id, use.loc.line, text[end:member_end].decode())]


def _drop_arg_edit(call, rule: Rule, text: bytes) -> Edit:
    """The argument and the comma that separates it from its neighbour."""
    args, i = call.args, rule.arg
    start, end = (args[i][0], args[i + 1][0]) if i + 1 < len(args) else (args[i - 1][1], args[i][1])
    return Edit(call.loc.file, start, end, "", rule.id, call.loc.line, text[start:end].decode())


def _HEAP_HEADER_RULE(rule_id: str) -> Rule:
    return Rule(rule_id, (), "include", "", "", header="porter/dma_heap.h")


def _include_edit(path: str, scan: BundleScan, hrules: list[Rule]) -> Edit:
    """#include lines after the file's last #include (and any #endif right after
    it, as netdde's convert does); headers marked last go at the end."""
    fs = scan.files[path]
    seen, first, last = set(), [], []
    for r in hrules:
        if r.header not in seen:
            seen.add(r.header)
            (last if r.last else first).append(r)
    ordered = first + last
    pos = max((i.end_offset for i in fs.includes), default=0)
    while fs.text.startswith(b"#endif", pos):
        eol = fs.text.find(b"\n", pos)
        pos = len(fs.text) if eol < 0 else eol + 1
    line = fs.text.count(b"\n", 0, pos) + 1
    body = "".join(f"#include <{r.header}>\n" for r in ordered)
    return Edit(path, pos, pos, body, ",".join(dict.fromkeys(r.id for r in ordered)), line, "")


def _heap_dma_edits(fs, rule: Rule, text: bytes) -> list[Edit]:
    """Move stack variables handed to a device onto the heap (porter/dma_heap.h)."""
    out: list[Edit] = []
    by_var = {}
    for d in fs.stack_dma:
        by_var.setdefault((d.function, d.var), d)
    done_stmts = set()
    for (func, var), d in sorted(by_var.items(), key=lambda kv: kv[1].decl.offset):
        ptr = f"{var}_dma"
        line = text.count(b"\n", 0, d.decl_stmt_start) + 1
        if d.is_param:
            decl = f"\n\t{d.var_type} *{ptr} PORTER_DMA_HEAP = PORTER_DMA_HEAP_INIT({d.var_type}, {var});"
            out.append(Edit(fs.path, d.body_start, d.body_start, decl, rule.id, line, ""))
        elif d.decl_stmt_start not in done_stmts:
            done_stmts.add(d.decl_stmt_start)
            stmt_vars = [by_var.get((func, v)) for v in d.decl_stmt_vars]
            if any(s is None for s in stmt_vars):
                kept = [v for v, s in zip(d.decl_stmt_vars, stmt_vars) if s is None]
                raise PorterError(
                    f"{d.decl}: rule {rule.id}: {var} shares its declaration with "
                    f"{', '.join(kept)}, which stay on the stack; split the declaration "
                    "or move them too")
            decls = []
            for s in stmt_vars:
                new = (f"PORTER_DMA_HEAP_INIT({s.var_type}, {s.init_text})" if s.init_text
                       else f"PORTER_DMA_HEAP_NEW({s.var_type})")
                decls.append(f"{s.var_type} *{s.var}_dma PORTER_DMA_HEAP = {new};")
            start, end = d.decl_stmt_start, d.decl_stmt_end
            out.append(Edit(fs.path, start, end, "\n\t".join(decls), rule.id, line,
                            text[start:end].decode()))
        for off in d.uses:
            uline = text.count(b"\n", 0, off) + 1
            out.append(Edit(fs.path, off, off + len(var), f"(*{ptr})", rule.id, uline, var))
    return out
