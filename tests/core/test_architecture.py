"""The layering in ARCHITECTURE.md is a check, not a convention: import-linter's contracts hold and bite."""
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]
LINT = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")


def _lint(tree: Path) -> subprocess.CompletedProcess:
    """Run the project's contracts (from its pyproject.toml) on the packages under ``tree``."""
    return subprocess.run([LINT, "--config", str(tree / "pyproject.toml"), "--no-cache"], cwd=tree,
                          env={"PYTHONPATH": str(tree), "PATH": str(Path(sys.executable).parent)},
                          capture_output=True, text=True, timeout=120)


def _copy_tree(tmp_path: Path) -> Path:
    for name in ("core", "app"):
        shutil.copytree(ROOT / name, tmp_path / "oddscope" / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_contracts_hold_and_fail_when_core_imports_qt(tmp_path):
    tree = _copy_tree(tmp_path)
    ok = _lint(tree)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "0 broken" in ok.stdout

    store = tree / "oddscope" / "core" / "project" / "store.py"
    store.write_text(store.read_text() + "\nfrom PySide6 import QtCore  # noqa\n")
    broken = _lint(tree)
    assert broken.returncode != 0
    assert "oddscope.core is not allowed to import PySide6" in broken.stdout


def test_a_model_importing_the_project_breaks_the_layers(tmp_path):
    tree = _copy_tree(tmp_path)
    knn = tree / "oddscope" / "core" / "models" / "knn.py"
    knn.write_text(knn.read_text() + "\nfrom oddscope.core.project.store import Project  # noqa\n")
    broken = _lint(tree)
    assert broken.returncode != 0
    assert "oddscope.core.models.knn -> oddscope.core.project.store" in broken.stdout


def test_every_subpackage_is_installed():
    """A new subpackage missing from pyproject's ``packages`` works in a checkout and vanishes from the wheel."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {"oddscope." + ".".join(init.parent.relative_to(ROOT).parts)
               for top in ("core", "app", "resources") for init in (ROOT / top).rglob("__init__.py")}
    assert on_disk <= listed, sorted(on_disk - listed)
