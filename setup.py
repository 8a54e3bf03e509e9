"""Build hook: the wheel carries the data porter reads at run time, which the
checkout keeps in top-level folders, under porter/data/ (porter/__init__.py
finds it there)."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

DATA = ("templates", "dde-shims", "linux-2.6-drivers/manifest.toml",
        # the harness suite `porter test` runs, with the fixtures it needs
        "tests/conftest.py", "tests/fixture_plans.py", "tests/harness", "tests/fixtures")
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc")


class BuildPyWithData(build_py):
    def run(self):
        super().run()
        top = Path(__file__).resolve().parent
        out = Path(self.build_lib) / "porter" / "data"
        for rel in DATA:
            src, dest = top / rel, out / rel
            if src.is_dir():
                shutil.copytree(src, dest, ignore=IGNORE, dirs_exist_ok=True)
            else:
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest)


setup(cmdclass={"build_py": BuildPyWithData})
