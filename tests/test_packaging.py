"""The wheel and the sdist: built without warnings, complete, and the sdist's tests collect."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import tarfile
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.compat


@pytest.fixture(scope="module")
def dists(tmp_path_factory):
    """(wheel path, sdist path, build output) from ``python -m build`` of this checkout."""
    pytest.importorskip("build")
    out = tmp_path_factory.mktemp("dist")
    # build a copy: parallel workers building the same tree race on its egg-info directory
    tree = tmp_path_factory.mktemp("tree") / "regctl"
    shutil.copytree(ROOT, tree, ignore=shutil.ignore_patterns(".git", ".venv*", "__pycache__", "build", "dist",
                                                              "*.egg-info", ".pytest_cache"))
    # --no-isolation: the test extra installs setuptools and build, so no download is needed
    proc = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--sdist", "--wheel",
                           "--outdir", str(out), str(tree)],
                          capture_output=True, text=True, timeout=300,
                          env={**{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
                               "PYTHONWARNINGS": "default"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    wheels = list(out.glob("regctl-*.whl"))
    sdists = list(out.glob("regctl-*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, list(out.iterdir())
    return wheels[0], sdists[0], proc.stdout + proc.stderr


def test_build_has_no_warnings(dists):
    _, _, log = dists
    bad = [line for line in log.splitlines()
           if "warning" in line.lower() or "deprecat" in line.lower()]
    assert bad == [], "\n".join(bad)


def test_wheel_is_typed_licensed_and_described(dists):
    wheel, _, _ = dists
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = z.read(meta_name).decode()
    assert "regctl/py.typed" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), names
    assert "License-Expression: MIT" in meta
    assert "Classifier: Typing :: Typed" in meta
    assert "Classifier: Programming Language :: Python :: 3.10" in meta
    assert "Project-URL: " in meta
    assert not any(n.startswith("tests/") for n in names)  # tests ship in the sdist only


def test_sdist_holds_what_its_tests_need_and_they_collect(dists, tmp_path):
    _, sdist, _ = dists
    with tarfile.open(sdist) as tar:
        tar.extractall(tmp_path, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    (top,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    for rel in ("LICENSE", "pyproject.toml", "src/regctl/py.typed", "tests/__init__.py", "tests/conftest.py",
                "tests/helpers.py", "tests/unit/__init__.py", "completions/regctl.bash"):
        assert (top / rel).is_file(), rel
    env = {**os.environ, "PYTHONPATH": str(top / "src")}  # the sdist's own code, not this checkout's
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
                          cwd=top, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    tail = proc.stdout.strip().splitlines()[-1]
    assert "error" not in tail.lower(), tail
    collected = int(tail.split()[0])
    ours = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert collected == int(ours.stdout.strip().splitlines()[-1].split()[0])  # every test made it in
