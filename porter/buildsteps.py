"""Resumable builds: a list of named steps in one cache directory, each logged to
its own file and stamped when it succeeds.

A step's stamp records a key over its own inputs and the keys of the steps
before it, so changing one input reruns that step and every later one, and an
interrupted build resumes at the first step without a valid stamp.  Steps run
under a lock: two clones sharing one cache never build into one directory at
once.
"""

from __future__ import annotations

import datetime
import fcntl
import hashlib
import inspect
import json
import os
import re
import shlex
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

EXCERPT_LINES, MAX_LINE = 40, 300
# gcc, clang, ld, collect2 and make; not -Wno-error=
ERROR_LINE = re.compile(r"(^|\s)(fatal )?error:|\*\*\*|undefined reference")


class StepError(Exception):
    """A step failed: .step names it, .log is its full log, .excerpt the lines that matter."""

    def __init__(self, step: str, message: str, log: Path | None = None, excerpt: str = ""):
        text = f"step '{step}' failed: {message}"
        if log:
            text += f" (full log: {log})"
        super().__init__(text + (f"\n{excerpt}" if excerpt else ""))
        self.step, self.log, self.excerpt = step, log, excerpt


def error_excerpt(output: str) -> str:
    """The error lines of a build log with a little context, or else its last lines.
    Build systems echo long commands, so long lines are cut short."""
    lines = [line if len(line) <= MAX_LINE else line[:MAX_LINE] + " ..." for line in output.splitlines()]
    hits = [i for i, line in enumerate(lines) if ERROR_LINE.search(line)]
    if not hits:
        return "\n".join(lines[-EXCERPT_LINES:])
    keep = sorted({j for i in hits for j in range(i - 3, i + 4) if 0 <= j < len(lines)})[:EXCERPT_LINES]
    return "\n".join(("...\n" if k and j != keep[k - 1] + 1 else "") + lines[j] for k, j in enumerate(keep))


@dataclass
class StepContext:
    """What a running step gets: where to work, its log, and a way to run commands."""
    name: str
    root: Path                   # the build's cache directory
    log_path: Path
    env: dict[str, str]          # environment for commands (PATH with the build's tools first)

    def run(self, command: list[str], cwd: Path, env: dict[str, str] | None = None,
            check: bool = True) -> int:
        """Run a command with its output appended to the step's log."""
        full_env = dict(self.env, **(env or {}))
        with open(self.log_path, "a") as out:
            out.write(f"\n$ (cd {cwd} && {shlex.join(command)})\n")
            out.flush()
            try:
                rc = subprocess.run(command, cwd=cwd, env=full_env, stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL).returncode
            except OSError as e:
                raise StepError(self.name, f"cannot run {command[0]}: {e}", self.log_path) from None
        if rc and check:
            raise StepError(self.name, f"`{shlex.join(command)}` exited with {rc}", self.log_path,
                            error_excerpt(self.log_path.read_text(errors="replace")))
        return rc

    def note(self, text: str) -> None:
        with open(self.log_path, "a") as out:
            out.write(text.rstrip("\n") + "\n")


@dataclass(frozen=True)
class Step:
    name: str
    run: Callable[[StepContext], None]
    inputs: tuple[str, ...] = ()     # what the step's output depends on (commits, flags, recipe)
    describe: str = ""               # one line for the progress log


@dataclass
class StepReport:
    name: str
    reused: bool
    seconds: float


@dataclass
class BuildReport:
    root: Path
    steps: list[StepReport] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.steps if not s.reused)


def _recipe(step: Step) -> str:
    """The step's own code: editing how a step builds reruns it (and every later one)."""
    try:
        return inspect.getsource(step.run)
    except (OSError, TypeError):
        return ""


def _key(previous: str, step: Step) -> str:
    h = hashlib.sha256(previous.encode())
    h.update(step.name.encode() + b"\0" + _recipe(step).encode() + b"\0")
    for item in step.inputs:
        h.update(item.encode() + b"\0")
    return h.hexdigest()


def stamp_path(root: Path, name: str) -> Path:
    return root / "stamps" / f"{name}.json"


def read_stamp(root: Path, name: str) -> dict:
    try:
        return json.loads(stamp_path(root, name).read_text())
    except (OSError, ValueError):
        return {}


def run_steps(root: Path, steps: list[Step], env: dict[str, str], log=print) -> BuildReport:
    """Run the steps in order, skipping those whose stamp matches; stop at the first failure."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "stamps").mkdir(exist_ok=True)
    (root / "logs").mkdir(exist_ok=True)
    report = BuildReport(root)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        key, stale = "", False
        for step in steps:
            key = _key(key, step)
            stamp = read_stamp(root, step.name)
            if not stale and stamp.get("key") == key:
                report.steps.append(StepReport(step.name, True, 0.0))
                continue
            stale = True      # every later step must run again too
            stamp_path(root, step.name).unlink(missing_ok=True)
            log_path = root / "logs" / f"{step.name}.log"
            log_path.write_text(f"# porter build step {step.name}: {step.describe}\n")
            log(f"{step.name}: {step.describe or 'building'} (log: {log_path})")
            started = time.monotonic()
            step.run(StepContext(step.name, root, log_path, env))
            seconds = time.monotonic() - started
            tmp = stamp_path(root, step.name).with_suffix(".tmp")
            tmp.write_text(json.dumps({
                "key": key, "seconds": round(seconds, 1), "inputs": list(step.inputs),
                "built_at": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            }, indent=1) + "\n")
            os.replace(tmp, stamp_path(root, step.name))
            log(f"{step.name}: done in {seconds:.0f}s")
            report.steps.append(StepReport(step.name, False, seconds))
    return report


def steps_done(root: Path, steps: list[Step]) -> bool:
    """Whether every step has a valid stamp (the build can be used without running anything)."""
    key = ""
    for step in steps:
        key = _key(key, step)
        if read_stamp(root, step.name).get("key") != key:
            return False
    return True
