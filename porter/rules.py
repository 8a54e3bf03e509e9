"""Rules: load and validate the TOML files that map Linux APIs onto a target."""

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from . import PorterError

RULES_DIR = Path(__file__).parent / "rules"

# action -> keys it takes besides id, api, action, why
ACTION_KEYS = {
    "rename": {"to", "header", "arg", "arg_call", "with_rule"},
    "include": {"header", "last", "selects"},
    "heap-dma": {"arg"},
    "member-call": {"to", "header"},
    "drop-arg": {"arg", "args"},
    "unique-initcall": set(),
    "provided": set(),
    "unsupported": set(),
}
REQUIRED = {"rename": {"to"}, "include": {"header"}, "heap-dma": {"arg"}, "member-call": {"to"},
            "drop-arg": {"arg", "args"}}


@dataclass(frozen=True)
class Rule:
    id: str
    apis: tuple[str, ...]
    action: str
    why: str
    where: str                   # file:line of the rule, for messages
    to: str | None = None
    header: str | None = None
    last: bool = False
    arg: int | None = None
    args: int | None = None      # drop-arg: the argument count of the form it adapts
    arg_call: str | None = None  # rename: only calls whose argument `arg` is written as arg_call(...)
    with_rule: str | None = None  # rename: only in files where that rule fired
    # include: the header does not declare the API but picks porter's code for a driver that
    # uses it, so it is included although the DDE declares the API
    selects: bool = False


@dataclass(frozen=True)
class RuleSet:
    target: str
    rules: tuple[Rule, ...]

    def for_api(self, api: str, action: str | None = None) -> list[Rule]:
        return [r for r in self.rules if api in r.apis and (action is None or r.action == action)]

    def by_action(self, action: str) -> list[Rule]:
        return [r for r in self.rules if r.action == action]


class RuleError(PorterError):
    pass


def _rule_lines(text: str) -> list[int]:
    return [i + 1 for i, line in enumerate(text.splitlines()) if re.match(r"\s*\[\[rule\]\]", line)]


def load_rules(paths: list[Path] | None = None) -> RuleSet:
    paths = paths if paths is not None else sorted(RULES_DIR.glob("*.toml"))
    rules, ids, target = [], {}, None
    for path in paths:
        text = path.read_text()
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise RuleError(f"{path}: not valid TOML: {e}") from None
        target = data.get("meta", {}).get("target", target)
        unknown_top = set(data) - {"meta", "rule"}
        if unknown_top:
            raise RuleError(f"{path}: unknown table(s) {', '.join(sorted(unknown_top))}; "
                            "a rule file has [meta] and [[rule]] entries")
        lines = _rule_lines(text)
        for n, raw in enumerate(data.get("rule", [])):
            where = f"{path}:{lines[n] if n < len(lines) else '?'}"
            rule = _make_rule(raw, where)
            if rule.id in ids:
                raise RuleError(f"{where}: rule id {rule.id!r} already used at {ids[rule.id]}")
            ids[rule.id] = where
            rules.append(rule)
    for rule in rules:
        if rule.with_rule and rule.with_rule not in ids:
            raise RuleError(f"{rule.where}: rule {rule.id!r}: with_rule names {rule.with_rule!r}, "
                            "which no rule file defines")
    return RuleSet(target or "?", tuple(rules))


def _make_rule(raw: dict, where: str) -> Rule:
    rid = raw.get("id", "?")
    action = raw.get("action")
    if action not in ACTION_KEYS:
        raise RuleError(f"{where}: rule {rid!r}: unknown action {action!r}; "
                        f"use one of {', '.join(ACTION_KEYS)}")
    allowed = {"id", "api", "action", "why"} | ACTION_KEYS[action]
    unknown = set(raw) - allowed
    if unknown:
        raise RuleError(f"{where}: rule {rid!r}: unknown key(s) {', '.join(sorted(unknown))} "
                        f"for action {action!r}; allowed: {', '.join(sorted(allowed))}")
    missing = ({"id", "api", "why"} | REQUIRED.get(action, set())) - set(raw)
    if missing:
        raise RuleError(f"{where}: rule {rid!r}: missing key(s) {', '.join(sorted(missing))}")
    apis = raw["api"]
    apis = (apis,) if isinstance(apis, str) else tuple(apis)
    if not apis or not all(isinstance(a, str) and a for a in apis):
        raise RuleError(f"{where}: rule {rid!r}: api must be a name or a list of names")
    if action == "member-call" and not all(re.fullmatch(r"\w+\.\w+", a) for a in apis):
        raise RuleError(f"{where}: rule {rid!r}: a member-call api is struct.member (e.g. net_device.priv)")
    if action == "drop-arg":
        arg, nargs = raw["arg"], raw["args"]
        if not (isinstance(arg, int) and isinstance(nargs, int) and 0 <= arg < nargs):
            raise RuleError(f"{where}: rule {rid!r}: drop-arg needs 0 <= arg < args (got arg = {arg!r}, "
                            f"args = {nargs!r})")
    if action == "rename" and ("arg" in raw) != ("arg_call" in raw):
        raise RuleError(f"{where}: rule {rid!r}: arg and arg_call go together (the argument, and the "
                        "macro or function it must be written with)")
    return Rule(rid, apis, action, raw["why"], where, raw.get("to"), raw.get("header"),
                bool(raw.get("last", False)), raw.get("arg"), raw.get("args"), raw.get("arg_call"),
                raw.get("with_rule"), bool(raw.get("selects", False)))
