"""`porter diff-api V1 V2 BUNDLE`: what a driver bundle asks of the kernel in one release and not the
other, and which of porter's rules that makes fire.

Both releases are scanned as `porter scan` does (against the same DDE and
rules); an API counts as changed between them when one release uses it and
the other does not, or when porter decides differently for it (provided by
the DDE in one, shimmed or rewritten in the other: its kind, declaration or
the rule that maps it changed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from .plan import PortPlan


@dataclass
class ApiDiff:
    old: str
    new: str
    only_old: list[dict] = field(default_factory=list)     # scan_data api entries
    only_new: list[dict] = field(default_factory=list)
    changed: list[tuple[dict, dict]] = field(default_factory=list)
    rules_only_old: list[str] = field(default_factory=list)
    rules_only_new: list[str] = field(default_factory=list)


def rules_fired(plan: PortPlan) -> set[str]:
    """The rules that decide an API or edit a file in this port."""
    fired = {d.rule for d in plan.decisions if d.rule}
    fired |= {e.rule for edits in plan.edits.values() for e in edits if e.rule}
    return fired


def diff_plans(old: PortPlan, new: PortPlan) -> ApiDiff:
    from .report import scan_data
    a = {x["name"]: x for x in scan_data(old)["apis"]}
    b = {x["name"]: x for x in scan_data(new)["apis"]}
    keys = ("kind", "status", "rule", "declared_in")
    ra, rb = rules_fired(old), rules_fired(new)
    return ApiDiff(old.inputs.release.version, new.inputs.release.version,
                   [a[n] for n in sorted(a.keys() - b.keys())], [b[n] for n in sorted(b.keys() - a.keys())],
                   [(a[n], b[n]) for n in sorted(a.keys() & b.keys())
                    if any(a[n][k] != b[n][k] for k in keys)],
                   sorted(ra - rb), sorted(rb - ra))


def _how(api: dict) -> str:
    return api["status"] + (f" [{api['rule']}]" if api["rule"] else "")


def format_diff(d: ApiDiff) -> str:
    out = [f"APIs only {d.old} uses ({len(d.only_old)}):"]
    out += [f"  {x['name']:36} {x['kind']:9} {_how(x):34} {x['uses'][0]}" for x in d.only_old]
    out.append(f"APIs only {d.new} uses ({len(d.only_new)}):")
    out += [f"  {x['name']:36} {x['kind']:9} {_how(x):34} {x['uses'][0]}" for x in d.only_new]
    out.append(f"APIs both use, decided differently ({len(d.changed)}):")
    for x, y in d.changed:
        what = ", ".join(f"{k} {x[k] or '-'} -> {y[k] or '-'}" for k in ("kind", "status", "rule", "declared_in")
                         if x[k] != y[k])
        out.append(f"  {x['name']:36} {what}")
    out.append(f"rules that fire only on {d.old}: {', '.join(d.rules_only_old) or 'none'}")
    out.append(f"rules that fire only on {d.new}: {', '.join(d.rules_only_new) or 'none'}")
    return "\n".join(out)


def diff_data(d: ApiDiff) -> dict:
    return {"old": d.old, "new": d.new, "only_old": d.only_old, "only_new": d.only_new,
            "changed": [{"name": x["name"], "old": x, "new": y} for x, y in d.changed],
            "rules_only_old": d.rules_only_old, "rules_only_new": d.rules_only_new}


def cmd_diff_api(args) -> int:
    from .pipeline import load_inputs, scan_inputs
    from .plan import plan_port

    def plan(version: str) -> PortPlan:
        inputs = load_inputs(args.bundle, version, args.rules)
        return plan_port(inputs, scan_inputs(inputs))

    d = diff_plans(plan(args.old), plan(args.new))
    print(json.dumps(diff_data(d), indent=1) if args.json else format_diff(d))
    return 0
