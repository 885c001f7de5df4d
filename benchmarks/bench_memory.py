"""Peak memory while indexing many small images: it must stay bounded, whatever N.

Writes N 32x32 PNGs to a temporary folder, registers them in a new project and
extracts their features; then adds 1% more images and indexes again, which
grows the feature file.  The fake encoder is the default (the point is the
pipeline's memory, not the network's); ``--real`` uses the default encoder.

Features go to disk batch by batch (written and fsynced, not kept in a
writable memory map) and the file grows by a streamed copy, so the process
holds a batch, never the matrix: neither its anonymous memory nor its
file-backed resident pages may grow with N.

Reports the peak RSS of this process and of its largest child (a DataLoader
decoding worker), the highest anonymous and file-backed resident memory seen
after any batch (Linux), the feature file's size and ``check_files``' time.

    python benchmarks/bench_memory.py --n 20000
    python benchmarks/bench_memory.py            # 100,000 images
    python benchmarks/bench_memory.py --n 2000 --real
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from hostile import FakeEncoder  # noqa: E402

from oddscope.core.project.layout import ProjectLayout  # noqa: E402
from oddscope.core.project.store import Project  # noqa: E402
from oddscope.core.workflows.extraction import extract_features  # noqa: E402
from oddscope.core.workflows.pipeline import add_source  # noqa: E402


def write_images(folder: Path, n: int, per_folder: int = 1000) -> None:
    """``n`` distinct 32x32 RGB PNGs, 1000 per sub-folder (smooth ramps plus a little noise: small files)."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 200, 32, dtype=np.float32)
    base = (ramp[None, :, None] + ramp[:, None, None] * np.array([0.2, 0.5, 0.8], np.float32))
    for i in range(n):
        sub = folder / f"{i // per_folder:04d}"
        if i % per_folder == 0:
            sub.mkdir(parents=True)
        image = base * rng.uniform(0.3, 1.0) + rng.integers(0, 8, (32, 32, 3))
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(sub / f"{i:07d}.png", compress_level=1)


def peak_rss_mb() -> tuple[float, float]:
    """Peak resident set of this process and of its largest finished child, in MB (Linux: KiB units)."""
    unit = 1 / 1024 if sys.platform != "darwin" else 1 / 1024 ** 2
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * unit,
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * unit)


def resident_split_mb() -> dict[str, float]:
    """Current RssAnon / RssFile and peak VmHWM from /proc (Linux only; empty elsewhere)."""
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return {}
    fields = dict(line.split(":", 1) for line in lines if ":" in line)
    return {k: int(fields[k].split()[0]) / 1024 for k in ("VmHWM", "RssAnon", "RssFile") if k in fields}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="number of images (default 100,000)")
    parser.add_argument("--real", action="store_true", help="use the default encoder instead of the fake one")
    parser.add_argument("--dim", type=int, default=1280, help="fake encoder's feature size (default: the real one's)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=None, help="decoding processes (default: as indexing)")
    parser.add_argument("--dir", type=Path, default=None, help="work folder (default: a temporary one, removed)")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="oddscope-mem-", dir=args.dir))
    n_more = max(1, args.n // 100)
    try:
        t0 = time.perf_counter()
        write_images(work / "images", args.n)
        write_images(work / "more", n_more)
        print(f"images            {args.n:,} + {n_more:,} x 32x32 PNG, written in {time.perf_counter() - t0:.0f} s")
        if args.real:
            from oddscope.core.models.encoders import load_encoder

            encoder = load_encoder()
        else:
            encoder = FakeEncoder(dim=args.dim)
        print(f"encoder           {encoder.describe()['spec']} ({encoder.dim}-d), batch {args.batch_size}")
        before, _ = peak_rss_mb()
        baseline = resident_split_mb()
        highest: dict[str, float] = {}

        def sample(stage, done, total):  # resident memory after every batch
            for key, value in resident_split_mb().items():
                highest[key] = max(highest.get(key, 0.0), value)

        with Project.create(work / "project") as project:
            for folder, n in (("images", args.n), ("more", n_more)):  # the second run grows the feature file
                t0 = time.perf_counter()
                n_new, skipped = add_source(project, work / folder)
                t_scan = time.perf_counter() - t0
                t0 = time.perf_counter()
                report = extract_features(project, encoder, batch_size=args.batch_size, num_workers=args.workers,
                                          progress=sample)
                assert report.computed == n_new == n and not skipped
                print(f"index {folder:<11} scan + register {t_scan:.1f} s, features {time.perf_counter() - t0:.1f} s "
                      f"({report.images_per_second:.0f} img/s), reused {report.reused:,}")
                sample("", 0, 0)
            t0 = time.perf_counter()
            missing = project.check_files()
            t_check = time.perf_counter() - t0
            assert not len(missing)
        peak_self, peak_children = peak_rss_mb()
        features = next(ProjectLayout(work / "project").features_dir.glob("*.npy"))
        print(f"check_files       {t_check:.2f} s for {args.n + n_more:,} items")
        print(f"feature file      {features.stat().st_size / 2**20:.0f} MB")
        print(f"peak RSS          {peak_self:.0f} MB (at the start of indexing {before:.0f} MB); "
              f"largest child (decoding worker) {peak_children:.0f} MB")
        if highest:
            print(f"while indexing    anonymous {baseline['RssAnon']:.0f} -> peak {highest['RssAnon']:.0f} MB; "
                  f"file-backed (libraries, mapped files) {baseline['RssFile']:.0f} -> peak {highest['RssFile']:.0f} MB")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
