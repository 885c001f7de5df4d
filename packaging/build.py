"""Build the desktop bundle and smoke-test the built folder:  python packaging/build.py

1. Installs Oddscope into build/bundle/site as a wheel would, and exports the default encoder to OpenVINO from the packaged weights (this needs the full pip
   install with torch; the bundle itself has no torch) into build/bundle/openvino.
2. Runs PyInstaller on packaging/oddscope.spec: dist/oddscope/ (contents.py says what goes in).
3. Smoke-tests dist/oddscope/oddscope in a clean environment (empty HOME, PATH without any venv,
   offscreen Qt, no PYTHONPATH): --help, demo --no-gui, evaluate, open --screenshot, and the
   message of a feature the bundle leaves out (maps compute).
   (Before that, the symbol tables of a few large libraries are stripped: contents.STRIP.)
4. Prints the folder's size and each step's time.

Exits non-zero when any step fails.  --skip-build smoke-tests an existing dist/oddscope.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "packaging"))
from contents import EXPORT_STAGING, SITE_STAGING, STRIP  # noqa: E402

DEMO_IMAGES = 300


def export_default_encoder() -> Path:
    from oddscope.core.models.encoders import load_encoder, openvino_runtime

    staging = ROOT / EXPORT_STAGING
    shutil.rmtree(staging, ignore_errors=True)
    exported = openvino_runtime.export(load_encoder(device="cpu", runtime="torch"), root=staging)
    return exported.folder


def stage_oddscope() -> None:
    """Install Oddscope (no dependencies) into SITE_STAGING as a wheel lays it out, for PyInstaller to read."""
    site = ROOT / SITE_STAGING
    shutil.rmtree(site, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(ROOT)], check=True)


def build(dist: Path, work: Path) -> None:
    stage_oddscope()
    subprocess.run([sys.executable, "-m", "PyInstaller", "--noconfirm", "--clean", "--distpath", str(dist),
                    "--workpath", str(work), str(ROOT / "packaging" / "oddscope.spec")], check=True)


def strip_libraries(bundle: Path) -> int:
    """Strip the symbol tables of the libraries named in STRIP (where `strip` exists); bytes saved."""
    if shutil.which("strip") is None or os.name == "nt":
        return 0
    before = folder_size(bundle)
    for pattern in STRIP:
        for path in (bundle / "_internal").glob(pattern):
            subprocess.run(["strip", "--strip-unneeded", str(path)], check=True)
    return before - folder_size(bundle)


def clean_env(home: Path) -> dict:
    """What a desktop user's shell gives the bundle: no venv, no Python path, no display."""
    return {"HOME": str(home), "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
            "QT_QPA_PLATFORM": "offscreen", "TMPDIR": str(home)}


def smoke_test(executable: Path) -> list[tuple[str, float, str]]:
    """(step, seconds, outcome) of each smoke step; raises SystemExit on the first failure."""
    results = []
    with tempfile.TemporaryDirectory(prefix="oddscope-smoke-") as tmp:
        home = Path(tmp)
        env = clean_env(home)

        def step(name, args, expect_ok=True, expect_text=None):
            start = time.perf_counter()
            run = subprocess.run([str(executable), *map(str, args)], cwd=home, env=env, capture_output=True,
                                 text=True, timeout=1800)
            seconds = time.perf_counter() - start
            output = run.stdout + run.stderr
            ok = (run.returncode == 0) == expect_ok and (expect_text is None or expect_text in output)
            ok = ok and "Traceback" not in output
            results.append((name, seconds, "ok" if ok else f"FAILED (exit {run.returncode})"))
            print(f"[{'ok' if ok else 'FAILED'}] {name}: {seconds:.1f} s", flush=True)
            if not ok:
                print(output[-4000:])
                raise SystemExit(f"smoke test failed at: {name}")
            return output

        step("--help", ["--help"], expect_text="index")
        out = step(f"demo --no-gui ({DEMO_IMAGES} images)", ["demo", "--no-gui", "--n-images", DEMO_IMAGES],
                   expect_text="Runtime   openvino")
        rate = [line for line in out.splitlines() if "img/s" in line]
        if rate:
            results.append(("demo features", 0.0, rate[0].strip()))
        demo = home / "oddscope-demo"
        step("evaluate", ["evaluate", "--project", demo / "project", "--truth", demo / "truth.csv"],
             expect_text="knn")
        step("open --screenshot", ["open", demo / "project", "--screenshot", home / "shot.png"])
        if not (home / "shot.png").is_file() or (home / "shot.png").stat().st_size < 10_000:
            raise SystemExit("smoke test failed: open --screenshot wrote no image")
        step("maps compute (left out: a clear message)", ["maps", "compute", "--project", demo / "project"],
             expect_ok=False, expect_text="needs torch")
    return results


def pip_install_rate() -> str:
    """The same demo indexed by the pip install running this script (its features line), for comparison."""
    with tempfile.TemporaryDirectory(prefix="oddscope-pip-") as tmp:
        run = subprocess.run([sys.executable, "-m", "oddscope.app.cli", "demo", "--no-gui", "--n-images",
                              str(DEMO_IMAGES)], cwd=tmp, capture_output=True, text=True, timeout=1800,
                             env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    return next((line.strip() for line in run.stdout.splitlines() if "img/s" in line), f"exit {run.returncode}")


def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dist", type=Path, default=ROOT / "dist")
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "pyinstaller")
    parser.add_argument("--skip-build", action="store_true", help="only smoke-test an existing bundle")
    parser.add_argument("--compare-pip", action="store_true",
                        help="also index the same demo with this pip install, for its images/s")
    args = parser.parse_args()
    timings = {}
    if not args.skip_build:
        start = time.perf_counter()
        print(f"exported the default encoder to {export_default_encoder()}", flush=True)
        timings["export"] = time.perf_counter() - start
        start = time.perf_counter()
        build(args.dist, args.work)
        timings["pyinstaller"] = time.perf_counter() - start
        print(f"stripped {strip_libraries(args.dist / 'oddscope') / 2**20:.0f} MB of symbol tables", flush=True)
    bundle = args.dist / "oddscope"
    results = smoke_test(bundle / ("oddscope.exe" if os.name == "nt" else "oddscope"))
    print(f"\nbundle {bundle}: {folder_size(bundle) / 2**20:.0f} MB; "
          + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
    for name, seconds, outcome in results:
        print(f"  {name:45s} {seconds:7.1f} s  {outcome}")
    if args.compare_pip:
        print(f"  {'pip install, same demo':45s}            {pip_install_rate()}")


if __name__ == "__main__":
    main()
