"""``vgem plugins`` lists hf-clip once the package is installed, and not before or after.

An honest install: pip builds and installs this very package (its real
pyproject and entry points) into a folder, and ``vgem plugins`` runs in a
throwaway virtual environment that sees everything the test's own
environment has except this plugin, since CI installs it there too.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

PLUGIN_ROOT = Path(__file__).resolve().parents[1]
DISTRIBUTION = "vgem_transformers"


def _is_this_plugin(name: str) -> bool:
    return DISTRIBUTION in name.lower().replace("-", "_")


@pytest.fixture(scope="module")
def clean_python(tmp_path_factory) -> Path:
    """A venv whose site is this environment's, minus vgem-transformers."""
    root = tmp_path_factory.mktemp("without-plugin")
    shadow = root / "site"
    shadow.mkdir()
    site_dirs = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    for site_dir in site_dirs:
        for entry in Path(site_dir).iterdir():
            if not _is_this_plugin(entry.name) and not (shadow / entry.name).exists():
                (shadow / entry.name).symlink_to(entry)
    environment = root / "venv"
    venv.EnvBuilder(with_pip=False, symlinks=True).create(environment)
    python = environment / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # addsitedir (not a plain path entry) so the shadow's own .pth files run, as
    # they do in the real environment (vgem itself is an editable install).
    Path(purelib, "shadow.pth").write_text(f"import site; site.addsitedir({str(shadow)!r})\n")
    return python


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """``pip install --target`` of this package: its real metadata, no dependencies."""
    target = tmp_path_factory.mktemp("target")
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"]
    if importlib.util.find_spec("setuptools") is not None:  # build offline with what is here
        command += ["--no-build-isolation", "--no-index"]
    command += ["--target", str(target), str(PLUGIN_ROOT)]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    assert completed.returncode == 0, completed.stderr
    return target


def run(python: Path, arguments: list[str], extra_path: Path | None = None):
    environment = {**os.environ, "COLUMNS": "200"}
    environment.pop("PYTHONPATH", None)
    if extra_path is not None:
        environment["PYTHONPATH"] = str(extra_path)
    # A neutral working directory: ``python -m`` puts it on sys.path, and run from
    # this package's folder its egg-info would make the plugin visible anyway.
    return subprocess.run(
        [str(python), *arguments],
        capture_output=True,
        text=True,
        env=environment,
        cwd=python.parent,
        check=False,
    )


def plugins_listing(python: Path, extra_path: Path | None = None) -> list[str]:
    completed = run(python, ["-m", "vgem.cli", "plugins"], extra_path)
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    assert any("clip-b16" in line and "ok" in line for line in lines)
    return lines


def test_vgem_plugins_before_with_and_after_the_plugin(clean_python, installed):
    before = plugins_listing(clean_python)
    assert not any("hf-clip" in line for line in before)

    with_plugin = plugins_listing(clean_python, installed)
    row = next(line for line in with_plugin if " hf-clip " in line)
    assert "vgem-transformers 0.1.0" in row and "ok" in row

    for entry in installed.iterdir():  # what `pip uninstall` removes
        if _is_this_plugin(entry.name):
            shutil.rmtree(entry)
    after = plugins_listing(clean_python, installed)
    assert not any("hf-clip" in line for line in after)
    load = "from vgem.backbones import load_backbone; load_backbone('hf-clip:openai/x')"
    completed = run(clean_python, ["-c", load], installed)
    assert "Unknown backbone 'hf-clip'" in completed.stderr
