"""Source sets for the Hurd target (sets.toml): GNU Mach, MIG, the Hurd and glibc of one time."""

import tomllib
from dataclasses import dataclass
from pathlib import Path

from .. import PorterError

SETS_PATH = Path(__file__).with_name("sets.toml")
COMPONENTS = ("gnumach", "mig", "hurd")


@dataclass(frozen=True)
class Pin:
    commit: str
    ref: str
    date: str


@dataclass(frozen=True)
class DebianSource:
    package: str
    version: str          # upstream version; the newest Debian revision of it is taken


@dataclass(frozen=True)
class SourceSet:
    generation: str
    description: str
    why: str
    pins: dict[str, Pin]          # gnumach, mig, hurd
    glibc: DebianSource
    gcc: DebianSource
    pciaccess: DebianSource


@dataclass(frozen=True)
class SetsFile:
    urls: dict[str, str]
    sets: dict[str, SourceSet]

    def for_generation(self, generation: str) -> SourceSet:
        try:
            return self.sets[generation]
        except KeyError:
            raise PorterError(f"{SETS_PATH}: no source set for the Hurd generation {generation!r} "
                              f"(known: {', '.join(self.sets)})") from None


def load_sets(path: Path = SETS_PATH) -> SetsFile:
    try:
        data = tomllib.loads(path.read_text())
        debian = {k: DebianSource(v["package"], v["version"]) for k, v in data["debian"].items()}
        sets = {}
        for gen, s in data["set"].items():
            pins = {c: Pin(s[c]["commit"], s[c]["ref"], s[c]["date"]) for c in COMPONENTS}
            sets[gen] = SourceSet(gen, s["description"], s["why"], pins,
                                  DebianSource("glibc", s["glibc"]), debian["gcc"], debian["pciaccess"])
        return SetsFile(dict(data["source"]), sets)
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError) as e:
        raise PorterError(f"{path}: not a valid source-set file ({e!r}); porter's install is incomplete") from None
