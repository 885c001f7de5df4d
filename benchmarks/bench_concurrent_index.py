"""Throughput when Oddscope shares the machine: two indexing runs at once, and indexing while the app re-ranks.

    python benchmarks/bench_concurrent_index.py [--n 1000] [--omp-wait-policy ""]

Each indexing run is a separate process (``index_images`` on the same demo images into its own project,
features only); "re-rank" is a process refitting the ``neighbourscore`` ranker (a forest, as the app's
learner lane runs it) on 100,000 x 64 features in a loop.  Goal (issue 14): together at least 80% of one
run's images/s alone.  ``--omp-wait-policy ""`` gives the OpenMP runtime back its own (spinning) default,
which ``oddscope.core`` otherwise replaces by PASSIVE, for the side by side comparison.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

INDEX = """
import sys
from oddscope.core.project.store import Project
from oddscope.core.workflows.pipeline import IndexOptions, index_images
with Project.create(sys.argv[2]) as p:
    s = index_images(p, sys.argv[1], options=IndexOptions(detectors=("knn",), make_map=False, make_clusters=False))
print(s.extraction.computed / s.seconds["features"])
"""
RERANK = """
import sys, time
import numpy as np
from oddscope.core.models.registry import make_ranker
rng = np.random.default_rng(0)
X = rng.normal(size=(100_000, 64)).astype(np.float32)
anomaly = rng.random(100_000)
ranker = make_ranker("neighbourscore")
stop, n, start = time.time() + float(sys.argv[1]), 0, time.perf_counter()
while time.time() < stop:
    ranker.fit(X, anomaly, np.arange(20), rng.integers(0, 6, 20)).scores()
    n += 1
print(n / (time.perf_counter() - start))
"""


def _start(code: str, *args, env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stdout=subprocess.PIPE, text=True, env=env)


def _rate(process: subprocess.Popen) -> float:
    out, _ = process.communicate()
    if process.returncode:
        raise SystemExit(f"a benchmark process failed ({process.returncode})")
    return float(out.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="demo images per indexing run")
    parser.add_argument("--omp-wait-policy", default=None, help="OMP_WAIT_POLICY for every process ('' = unset)")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    if args.omp_wait_policy is not None:
        env["OMP_WAIT_POLICY"] = args.omp_wait_policy
    from oddscope.core.data.demo import make_demo

    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        images = make_demo(work / "demo", n_images=args.n, seed=0).images_dir
        policy = env.get("OMP_WAIT_POLICY")
        policy = "PASSIVE (oddscope.core's default)" if policy is None else repr(policy) if policy else "libgomp's own"
        print(f"load average {os.getloadavg()[0]:.2f}; {os.cpu_count()} cores; OpenMP wait policy: {policy}",
              flush=True)
        alone = _rate(_start(INDEX, images, work / "p0", env=env))
        print(f"one index alone: {alone:.0f} img/s", flush=True)
        pair = [_start(INDEX, images, work / f"p{i}", env=env) for i in (1, 2)]
        rates = [_rate(p) for p in pair]
        print(f"two at once: {rates[0]:.0f} + {rates[1]:.0f} = {sum(rates):.0f} img/s "
              f"({sum(rates) / alone:.2f} of one alone)", flush=True)
        t0 = time.perf_counter()
        rerank_alone = _rate(_start(RERANK, 20, env=env))
        print(f"re-rank alone: {rerank_alone:.2f} refits/s ({time.perf_counter() - t0:.0f} s)", flush=True)
        rerank = _start(RERANK, max(10.0, 1.2 * args.n / alone), env=env)
        with_rerank = _rate(_start(INDEX, images, work / "p3", env=env))
        rerank_rate = _rate(rerank)
        print(f"index while re-ranking: {with_rerank:.0f} img/s ({with_rerank / alone:.2f} of alone); "
              f"re-rank meanwhile {rerank_rate:.2f} refits/s ({rerank_rate / rerank_alone:.2f} of alone); "
              f"together {with_rerank / alone + rerank_rate / rerank_alone:.2f} machines' worth", flush=True)


if __name__ == "__main__":
    main()
