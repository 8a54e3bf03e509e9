"""How long porter takes to port, cold (every file parsed) and warm (the scan read back from
porter's cache), for one release and for every release, next to Coccinelle's spatch applying
three of porter's simplest rules (sg_set_buf, MAYBE_BUILD_BUG_ON, alloc_pages_exact, as
renames) to the same files. Each figure is a whole command's wall time, as a user runs it:
the median of several runs. A benchmark: it prints figures and asserts nothing about speed.
Run: make bench (or python benchmarks/pipeline.py [--runs N]).
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from porter.cache import linux_dir
from porter.manifest import load_manifest

# three of porter's rules as semantic patches (ours): what spatch does to the same files
THREE_RULES = """\
@@
expression sg, buf, len;
@@
- sg_set_buf(sg, buf, len)
+ porter_sg_set_buf(sg, buf, len)

@@
expression cond;
@@
- MAYBE_BUILD_BUG_ON(cond)
+ porter_MAYBE_BUILD_BUG_ON(cond)

@@
expression size, gfp;
@@
- alloc_pages_exact(size, gfp)
+ porter_alloc_pages_exact(size, gfp)
"""


def timed(argv, env=None, cwd=None) -> tuple[float, int]:
    t0 = time.perf_counter()
    rc = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
    return time.perf_counter() - t0, rc


def port(version: str, out: Path, cold: bool) -> tuple[float, int]:
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, PORTER_SCAN_CACHE="0" if cold else "1")
    return timed([sys.executable, "-m", "porter", "port", "virtio-net", "--version", version, "--out", str(out)], env)


def all_releases(versions, work: Path, cold: bool, jobs: int) -> tuple[float, int]:
    t0 = time.perf_counter()
    with ThreadPoolExecutor(jobs) as pool:
        results = list(pool.map(lambda v: port(v, work / f"all-{v}", cold), versions))
    return time.perf_counter() - t0, sum(1 for _, rc in results if rc == 0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--version", default="2.6.32")
    args = ap.parse_args(argv)
    manifest = load_manifest()
    bundle = manifest.bundles["virtio-net"]
    release = manifest.releases[args.version]
    sources, headers = bundle.files_in(release)
    files = [*sources, *(h for h in headers if h.endswith("virtio_config.h"))]
    work = Path(tempfile.mkdtemp(prefix="porter-bench-pipeline-"))
    try:
        (work / "three.cocci").write_text(THREE_RULES)
        port(args.version, work / "warmup", cold=False)                  # the scan cache holds it now
        cold = statistics.median(port(args.version, work / "t", True)[0] for _ in range(args.runs))
        warm = statistics.median(port(args.version, work / "t", False)[0] for _ in range(args.runs))
        print(f"virtio-net {args.version}: {len(files)} files ({', '.join(files)}), median of {args.runs} runs")
        print(f"porter port, cold (PORTER_SCAN_CACHE=0)  {cold:6.2f} s")
        print(f"porter port, warm (scan cache)          {warm:6.2f} s")
        if shutil.which("spatch"):
            spatch = statistics.median(
                timed(["spatch", "--sp-file", str(work / "three.cocci"), "--very-quiet", "--no-includes", *files],
                      cwd=linux_dir(args.version))[0] for _ in range(args.runs))
            print(f"spatch, three rules, same files         {spatch:6.2f} s")
            print(f"warm porter / spatch ratio {warm / spatch:.2f}")
        else:
            print("spatch: not installed (apt-get install coccinelle)")
        versions = [v for v in manifest.releases if (linux_dir(v) / "origin.json").is_file()]
        jobs = os.cpu_count() or 1
        t_cold, ok_cold = all_releases(versions, work, True, jobs)
        t_warm, ok_warm = all_releases(versions, work, False, jobs)
        print(f"all {len(versions)} releases, {jobs} at once: cold {t_cold:.1f} s ({ok_cold} ported), "
              f"warm {t_warm:.1f} s ({ok_warm} ported)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
