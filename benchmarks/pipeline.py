"""Cold and warm `porter port` times for one release and for all the manifest's releases
(in parallel over the cores), next to spatch (Debian's coccinelle) applying the three
simplest rules (sg_set_buf, MAYBE_BUILD_BUG_ON, alloc_pages_exact) to the same four files.
Cold: an empty scan cache; warm: the same run again, nothing changed. A benchmark: it
prints figures and asserts nothing. Run: make bench (or python benchmarks/pipeline.py)."""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from porter.cache import linux_dir
from porter.manifest import load_manifest

# The same three rewrites porter's rules make, written for spatch.
COCCI = """@@
expression sg, buf, len;
@@
- sg_set_buf(sg, buf, len)
+ porter_sg_set_buf(sg, buf, len)

@@
expression e;
@@
- MAYBE_BUILD_BUG_ON(e)
+ PORTER_MAYBE_BUILD_BUG_ON(e)

@@
expression size, gfp;
@@
- alloc_pages_exact(size, gfp)
+ porter_alloc_pages_exact(size, gfp)
"""


def port(version: str, out: Path, env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "porter", "port", "virtio-net", "--version", version,
                    "--out", str(out / version), "--force"], env=env, check=True, capture_output=True)
    return time.perf_counter() - t0


def port_all(versions: list[str], out: Path, env: dict, jobs: int) -> float:
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(lambda v: port(v, out, env), versions))
    return time.perf_counter() - t0


def spatch_time(version: str, work: Path) -> float | None:
    if shutil.which("spatch") is None:
        return None
    manifest = load_manifest()
    files = [linux_dir(version) / p for p in manifest.bundle("virtio-net").sources]
    cocci = work / "three.cocci"
    cocci.write_text(COCCI)
    t0 = time.perf_counter()
    for f in files:     # spatch takes one C file per run without --dir
        subprocess.run(["spatch", "--very-quiet", "--sp-file", str(cocci), str(f), "-o", str(work / f.name)],
                       check=False, capture_output=True)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--version", default="2.6.32", help="the one release (default 2.6.32)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    versions = [v for v in load_manifest().releases if (linux_dir(v) / "origin.json").is_file()]
    with tempfile.TemporaryDirectory(prefix="porter-bench-") as tmpd:
        tmp = Path(tmpd)
        env = dict(os.environ, PORTER_SCAN_CACHE=str(tmp / "scan"))
        one_cold = port(args.version, tmp / "one", env)
        one_warm = min(port(args.version, tmp / "one", env) for _ in range(3))
        env_all = dict(os.environ, PORTER_SCAN_CACHE=str(tmp / "scan-all"))
        all_cold = port_all(versions, tmp / "all", env_all, args.jobs)
        all_warm = port_all(versions, tmp / "all", env_all, args.jobs)
        sp = spatch_time(args.version, tmp)
        sp_best = min(t for t in [sp, spatch_time(args.version, tmp), spatch_time(args.version, tmp)]
                      if t is not None) if sp is not None else None
    print(f"porter port, Linux {args.version}: cold {one_cold:.2f} s, warm {one_warm:.2f} s")
    print(f"porter port, {len(versions)} releases on {args.jobs} jobs: cold {all_cold:.2f} s, warm {all_warm:.2f} s")
    if sp_best is None:
        print("spatch: not installed (apt-get install coccinelle)")
    else:
        print(f"spatch, 3 rules on the same 4 files of {args.version}: {sp_best:.2f} s")
        print(f"warm porter / spatch: {one_warm / sp_best:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
