"""From a score key to the re-ranked window, at 100,000 items: the active-learning loop as the user feels it.

A synthetic project (clustered 64-d features, a kNN-like anomaly score, a map;
image files are not needed: the grid shows placeholders) is opened in the real
MainWindow, the ``oddscope`` ranking is chosen (its one-time preparation is
timed apart), then the user presses score keys.  For each key we time:

* refit: key press -> the learner emits its result (labels read, ranker
  refit, on the learner's thread);
* apply: from there until grid, map colours and status show the new order
  (saving the ranking and re-sorting, on the GUI thread);
* total: key press -> the window shows the new order;

and the GUI event loop's worst stall meanwhile (a 10 ms timer).  Target: total
under 300 ms, no stall over 100 ms.

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_app_relearn.py --n 100000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _qt import benchmark_window, private_app, wait_until  # also selects the offscreen platform
from synthetic_project import make_project


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--keys", type=int, default=8, help="score keys pressed (one refit each)")
    args = parser.parse_args()

    from PySide6.QtCore import Qt, QTimer
    from PySide6.QtTest import QTest

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        app = private_app(tmp)
        started = time.perf_counter()
        project_dir = make_project(tmp, args.n)
        print(f"synthetic project of {args.n:,} items written in {time.perf_counter() - started:.1f} s")

        window = benchmark_window()

        def wait(predicate, timeout_s: float) -> bool:
            return wait_until(app, predicate, timeout_s)

        last, stalls = [time.perf_counter()], []
        timer = QTimer(interval=10)

        def tick() -> None:
            now = time.perf_counter()
            stalls.append((now - last[0]) * 1000 - 10)
            last[0] = now

        timer.timeout.connect(tick)
        wait(lambda: False, 1.0)  # the window's first paint is not part of opening
        last[0] = time.perf_counter()
        timer.start()
        started = time.perf_counter()
        window.open_project(project_dir)
        if not wait(lambda: window.model.table is not None and window.model.current is not None, 300):
            print("the project did not open", file=sys.stderr)
            return 1
        wait(lambda: False, 0.5)
        print(f"opened in {time.perf_counter() - started - 0.5:.1f} s, "
              f"longest event-loop stall meanwhile {max(stalls, default=0):.0f} ms")
        stalls.clear()
        arrivals = []  # when the learner emits its result, on its own thread (hence the direct connection)
        window.learner.updated.connect(lambda *_: arrivals.append(time.perf_counter()), Qt.DirectConnection)
        started = time.perf_counter()
        window.ranking_combo.setCurrentText("oddscope")
        if not wait(lambda: arrivals, 300):
            print("the learner never answered", file=sys.stderr)
            return 1
        wait(lambda: False, 0.5)
        print(f"'oddscope' ranking prepared and first fitted in {time.perf_counter() - started:.1f} s, "
              f"longest event-loop stall meanwhile {max(stalls, default=0):.0f} ms")
        stalls.clear()

        applied = []
        window.model.table_changed.connect(lambda: applied.append(time.perf_counter()))
        rows = []
        rng = np.random.default_rng(1)
        for _ in range(args.keys):
            arrivals.clear()
            applied.clear()
            pressed = time.perf_counter()
            QTest.keyClick(window.ranking.grid, getattr(Qt, f"Key_{int(rng.integers(0, 6))}"))
            if not wait(lambda: arrivals and applied, 30):
                print("no re-ranking after a label", file=sys.stderr)
                return 1
            rows.append((arrivals[0] - pressed, applied[-1] - arrivals[0], applied[-1] - pressed))
            wait(lambda: False, 0.3)
        timer.stop()
        window.close()

    ms = np.array(rows) * 1000
    print(f"{args.n:,} items, {args.keys} labels, ms (median / max):")
    for name, column in (("refit (background)", 0), ("apply (GUI thread)", 1), ("key -> new order", 2)):
        print(f"  {name:<20} {np.median(ms[:, column]):7.1f} / {ms[:, column].max():7.1f}")
    worst = max(stalls) if stalls else 0.0
    print(f"  worst event-loop stall {worst:.0f} ms")
    return 0 if ms[:, 2].max() < 300 and worst < 100 else 2


if __name__ == "__main__":
    sys.exit(main())
