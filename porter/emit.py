"""Emit stage: render the driver tree (edited upstream files, shims, glue from
templates, porting report), write it atomically, and never overwrite a hand edit
silently."""

import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import jinja2

from . import COMPAT_DIR, DATA_ROOT, PorterError
from .plan import SHIM_INCLUDE_DIR, SHIM_SRC_DIR, PortPlan
from .rewrite import apply_edits
from .tree import MANIFEST_NAME, REPORT_NAME

TEMPLATES_DIR = DATA_ROOT / "templates"
# the tree's glue; main.c and the machdev glue are each bundle's own (templates/<bundle>/)
GLUE_TEMPLATES = {"Makefile": "Makefile.j2", "Makeconf.local": "Makeconf.local.j2",
                  "default.ld": "default.ld.j2", "main.c": "main.c.j2",
                  "machdev_glue.c": "machdev_glue.c.j2", "machdev_glue.h": "machdev_glue.h.j2"}


@dataclass(frozen=True)
class EmitResult:
    out: Path
    files: dict[str, str]        # relative path -> sha256
    edits: int
    unchanged: bool              # the tree on disk already had exactly these bytes

    def summary(self) -> str:
        state = "unchanged" if self.unchanged else "written"
        return (f"{self.out}: {len(self.files)} files {state}, {self.edits} edits to upstream; "
                f"report in {self.out / 'PORTING.md'}")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _md_cell(s: str) -> str:
    s = s.strip().replace("|", "\\|").replace("\n", " ⏎ ")
    return f"`{s}`" if s else "(insert)"


def _env(bundle: str) -> jinja2.Environment:
    """Templates of ``bundle`` (templates/<bundle>/: its main.c and Hurd glue) before the shared ones."""
    from .cache import cache_root
    jinja_cache = cache_root() / "jinja"
    try:    # compiled templates, checked against each template's mtime by Jinja itself
        jinja_cache.mkdir(parents=True, exist_ok=True)
        bytecode = jinja2.FileSystemBytecodeCache(str(jinja_cache))
    except OSError:
        bytecode = None
    env = jinja2.Environment(loader=jinja2.FileSystemLoader([TEMPLATES_DIR / bundle, TEMPLATES_DIR]),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             trim_blocks=False, bytecode_cache=bytecode)
    env.filters["mdcell"] = _md_cell
    return env


def tree_name(bundle: str) -> str:
    return "dde_" + bundle.replace("-", "_")


def _brief(path: Path) -> str:
    """A shim file's one-line brief (its first comment line)."""
    first = path.read_text().splitlines()[0]
    return first.strip("/* ").split(" - ", 1)[-1].rstrip("*/ ").strip()


def render_tree(plan: PortPlan) -> tuple[dict[str, bytes], dict]:
    """Every file of the tree, in memory, and the report data."""
    inp = plan.inputs
    files: dict[str, bytes] = {}
    source_names = []
    for path in inp.sources:
        name = Path(path).name
        if name in files:
            raise PorterError(f"bundle {inp.bundle.name}: two sources named {name}")
        files[name] = apply_edits(plan.scan.files[path].text, plan.edits.get(path, []))
        source_names.append(name)
    for path in inp.headers:
        files[str(Path("include") / Path(path).relative_to("include"))] = apply_edits(
            plan.scan.files[path].text, plan.edits.get(path, []))
    shims = []
    for h in plan.shim_headers:
        src = SHIM_INCLUDE_DIR / h
        files[f"include/{h}"] = src.read_bytes()
        shims.append({"path": f"include/{h}", "brief": _brief(src)})
    for s in plan.shim_sources:
        files[s] = (SHIM_SRC_DIR / s).read_bytes()
        source_names.append(s)
        shims.append({"path": s, "brief": _brief(SHIM_SRC_DIR / s)})

    # linux/compiler-gcc<N>.h for gccs newer than the DDE knows: the tree's Makefile
    # searches compat/ after the DDE's headers, on the Hurd as in porter's checks
    for p in sorted(COMPAT_DIR.rglob("*.h")):
        files[str(Path("compat") / p.relative_to(COMPAT_DIR))] = p.read_bytes()

    target = tree_name(inp.bundle.name)
    report = _report_data(plan, target, source_names, shims)
    glue = inp.bundle.glue_templates
    env = _env(glue)
    ctx = dict(report, sources=source_names)
    for out_name, tmpl in GLUE_TEMPLATES.items():
        try:
            template = env.get_template(tmpl)
        except jinja2.TemplateNotFound:
            raise PorterError(f"bundle {inp.bundle.name}: no template {tmpl} in {TEMPLATES_DIR / glue} "
                              f"or {TEMPLATES_DIR}; a bundle brings its own main.c and Hurd glue") from None
        files[out_name] = template.render(ctx).encode()
    files["PORTING.md"] = env.get_template("PORTING.md.j2").render(ctx).encode()
    files[REPORT_NAME] = (json.dumps(report, indent=1, sort_keys=True) + "\n").encode()
    return files, report


def _report_data(plan: PortPlan, target: str, sources: list[str], shims: list[dict]) -> dict:
    inp = plan.inputs
    linux_files = [{"path": p, "sha256": inp.release.files[p]} for p in (*inp.sources, *inp.headers)]
    rule_files = sorted({r.where.rsplit(":", 1)[0] for r in inp.rules.rules})
    origin = inp.dde.origin
    dde_origin = (f"git {origin.get('path')} {origin.get('ref')} = {origin.get('commit')}"
                  if origin.get("kind") == "git" else f"directory {origin.get('path')} ({origin.get('id', '')})")
    edits = [{"file": e.file, "line": e.line, "rule": e.rule, "before": e.before, "after": e.text}
             for path in sorted(plan.edits) for e in plan.edits[path]]
    apis = [{"name": d.name, "kind": d.kind, "status": d.status, "rule": d.rule, "note": d.note,
             "declared_in": d.declared_in, "uses": [str(u) for u in d.uses]} for d in plan.decisions]
    expected = sorted({d.name for d in plan.decisions if d.status == "provided"
                       and d.kind in ("function", "variable")
                       and not any(u.inline for f in plan.scan.files.values() for u in f.uses
                                   if u.name == d.name)})
    return {
        "target": target, "bundle": inp.bundle.name, "description": inp.bundle.description,
        "dde_libraries": list(inp.bundle.dde_libraries),
        "hurd": _hurd_glue(inp.dde, inp.bundle.dde_libraries, inp.bundle.glue_templates).as_context(),
        "version": inp.release.version,
        "in_manifest": inp.release.listed,
        "linux_origin": "" if inp.release.listed else inp.release.origin,
        "inputs": {"linux_files": linux_files, "dde_origin": dde_origin, "dde_id": inp.dde.root.parent.name,
                   "rule_files": [{"path": str(Path(p).relative_to(DATA_ROOT)) if p.startswith(str(DATA_ROOT)) else p,
                                   "sha256": sha256(Path(p).read_bytes())} for p in rule_files]},
        "api_counts": dict(Counter(d.status for d in plan.decisions)),
        "apis": apis, "edits": edits, "initcall_renames": plan.initcall_renames,
        "shims": shims, "expected_symbols": expected, "sources": sources,
    }


def _hurd_glue(dde, dde_libraries=("net",), templates: str = "virtio-net"):
    """The Hurd glue of a bundle's templates for the DDE's generation (with hurd.git's libmachdev when cached)."""
    from .hurd.generation import of_dde_tree
    from .hurd.glue import hurd_glue
    from .hurd.sources import cached_set
    cached = cached_set(of_dde_tree(dde.root).name)
    return hurd_glue(dde.root, cached["hurd"].tree if cached else None, dde_libraries, templates)


def hand_edits(out: Path) -> list[str]:
    """Files of an emitted tree that differ from what porter wrote there, or that
    porter did not write. Raises if out is not a porter tree at all."""
    manifest = out / MANIFEST_NAME
    if not manifest.is_file():
        raise PorterError(f"{out} exists and is not a tree porter emitted (no {MANIFEST_NAME}); "
                          "choose another --out, or remove it")
    recorded = json.loads(manifest.read_text())["files"]
    changed = []
    for rel, digest in sorted(recorded.items()):
        p = out / rel
        if not p.is_file():
            changed.append(f"{rel} (deleted)")
        elif sha256(p.read_bytes()) != digest:
            changed.append(f"{rel} (edited)")
    for p in sorted(out.rglob("*")):
        rel = str(p.relative_to(out))
        if p.is_file() and rel != MANIFEST_NAME and rel not in recorded:
            changed.append(f"{rel} (added)")
    return changed


def _check_out(out: Path) -> Path:
    """--out as porter will write it: a directory (or nothing yet), never through a link."""
    if out.is_symlink():
        raise PorterError(f"--out {out} is a symbolic link; porter replaces a tree by renaming, which would "
                          f"replace the link itself: give the directory it points to ({out.resolve()})")
    out = out.absolute()
    if out.exists() and not out.is_dir():
        raise PorterError(f"--out {out} is a file, not a directory: choose another --out")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise PorterError(f"--out {out}: {parent} is a file, not a directory: choose another --out")
            break
    return out


def _recover(out: Path) -> None:
    """Clear what an emit that was killed left beside the tree: a half-written new tree is
    dropped; a complete old one whose replacement never arrived is put back."""
    for old in sorted(out.parent.glob(f".{out.name}.old-*")):
        if not out.exists() and (old / "tree" / MANIFEST_NAME).is_file():
            os.rename(old / "tree", out)
        shutil.rmtree(old, ignore_errors=True)
    for new in sorted(out.parent.glob(f".{out.name}.new-*")):
        shutil.rmtree(new, ignore_errors=True)


def emit_tree(plan: PortPlan, out: Path, force: bool = False) -> EmitResult:
    files, report = render_tree(plan)
    digests = {rel: sha256(data) for rel, data in sorted(files.items())}
    manifest = json.dumps({"generator": "porter", "files": digests}, indent=1, sort_keys=True) + "\n"
    out = _check_out(Path(out))
    if out.parent.is_dir():
        _recover(out)
    if out.exists() and any(out.iterdir()):
        changed = hand_edits(out) if not (force and not (out / MANIFEST_NAME).is_file()) else []
        if changed and not force:
            raise PorterError(f"{out} has changes porter did not make ({', '.join(changed)}): keep them "
                              "elsewhere, or re-run with --force to overwrite them")
        old = json.loads((out / MANIFEST_NAME).read_text()) if (out / MANIFEST_NAME).is_file() else None
        if old and old.get("files") == digests and not changed:
            return EmitResult(out, digests, len(report["edits"]), True)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    except OSError as e:
        raise PorterError(f"--out {out}: cannot create it in {out.parent} ({e.strerror}); "
                          "choose a directory you can write") from None
    try:
        for rel, data in files.items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).write_bytes(data)
        (tmp / MANIFEST_NAME).write_text(manifest)
        if out.exists():
            # swap: the old tree stays whole until the new one is in place
            old_dir = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.rename(out, old_dir / "tree")
            os.rename(tmp, out)
            shutil.rmtree(old_dir)
        else:
            os.rename(tmp, out)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        hint = "free some space" if e.errno == errno.ENOSPC else "choose a directory you can write"
        raise PorterError(f"--out {out}: writing the tree failed ({e.strerror or e}{f': {e.filename}' if e.filename else ''}); "
                          f"{hint} and run again (nothing was changed)") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return EmitResult(out, digests, len(report["edits"]), False)
