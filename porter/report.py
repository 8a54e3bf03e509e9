"""Scan report: every kernel API a bundle uses, where, and what porter does with it."""

import json

from .plan import UNMAPPED, PortPlan


def scan_data(plan: PortPlan) -> dict:
    inp = plan.inputs
    return {
        "bundle": inp.bundle.name, "version": inp.release.version,
        "link_checked": inp.dde_symbols is not None,
        "apis": [{"name": d.name, "kind": d.kind, "status": d.status, "rule": d.rule,
                  "note": d.note, "declared_in": d.declared_in,
                  "uses": [str(u) for u in d.uses]} for d in plan.decisions],
        "stack_dma": [{"call": str(s.call), "api": s.api, "var": s.var, "function": s.function}
                      for f in plan.scan.files.values() for s in f.stack_dma],
        "initcalls": [{"macro": i.macro, "function": i.function, "at": str(i.loc)}
                      for f in plan.scan.files.values() for i in f.initcalls],
    }


def print_scan(plan: PortPlan, as_json: bool = False, out=print) -> int:
    """Print the scan; non-zero when any API is unmapped."""
    data = scan_data(plan)
    if as_json:
        out(json.dumps(data, indent=1))
    else:
        out(f"{'API':36} {'kind':9} {'uses':>4}  {'porter':10} {'first use / note'}")
        for a in data["apis"]:
            extra = a["note"] or a["declared_in"]
            rule = f" [{a['rule']}]" if a["rule"] else ""
            out(f"{a['name']:36} {a['kind']:9} {len(a['uses']):4d}  {a['status']:10} "
                f"{a['uses'][0]}{rule} {extra}")
        for s in data["stack_dma"]:
            out(f"stack DMA buffer: {s['var']} passed to {s['api']} at {s['call']} [stack-dma]")
        counts = {}
        for a in data["apis"]:
            counts[a["status"]] = counts.get(a["status"], 0) + 1
        out("")
        out(f"{len(data['apis'])} APIs: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
            + ("" if data["link_checked"] else
               " (link level not checked: the DDE is not built yet; `porter check` builds it)"))
    unmapped = [a for a in data["apis"] if a["status"] == UNMAPPED]
    if unmapped and not as_json:
        out(f"\n{len(unmapped)} unmapped API(s): porter cannot port this bundle until rules cover them:")
        for a in unmapped:
            out(f"  {a['uses'][0]}: {a['name']} ({a['kind']}): {a['note']}")
    return 1 if unmapped else 0
