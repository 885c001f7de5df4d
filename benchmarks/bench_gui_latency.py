"""GUI event-loop latency while the app indexes a folder in the background.

A 10 ms QTimer runs on the GUI thread of a real MainWindow while "Open images
folder" indexes a generated demo folder (decode, encoder, detectors, UMAP,
clusters: the real ``index_images``, in the worker's child process), and on
until the window shows the new project.  Each tick records how late it fired;
a frozen GUI shows up as a large gap.  Target: no tick later than 100 ms.

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_gui_latency.py --n-images 200
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _qt import private_app  # also selects the offscreen platform


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=200)
    parser.add_argument("--tick-ms", type=int, default=10)
    args = parser.parse_args()

    from PySide6.QtCore import QEventLoop, QTimer

    from oddscope.core.data.demo import make_demo

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        app = private_app(tmp)
        from oddscope.app import dialogs
        from oddscope.app.main import freeze_startup_objects
        from oddscope.app.window import MainWindow

        dialogs.show_error = lambda *args: None  # a failure is printed below, not shown in a modal dialog

        demo = make_demo(tmp / "survey", n_images=args.n_images, seed=0)
        window = MainWindow(restore_layout=False)
        freeze_startup_objects()  # as run_app does
        window.show()

        lateness, stages, last = [], [], [time.perf_counter()]

        def tick() -> None:
            now = time.perf_counter()
            lateness.append((now - last[0]) * 1000 - args.tick_ms)
            stages.append((window.task_bar.label.text(), now))
            last[0] = now

        timer = QTimer(interval=args.tick_ms)
        timer.timeout.connect(tick)
        outcome, loop = {}, QEventLoop()

        def watch(task) -> None:  # connected as the task starts, so no report is missed
            if task.kind == "index":
                task.finished.connect(lambda summary: outcome.update(summary=summary))
                task.failed.connect(lambda message, details: outcome.update(error=details))
                task.done.connect(loop.quit)

        window.tasks.started.connect(watch)
        started = time.perf_counter()
        window.index_folder(demo.images_dir, tmp / "project")
        if window.tasks.running("index") is None:
            print("indexing did not start", file=sys.stderr)
            return 1
        timer.start()
        loop.exec()
        indexed = time.perf_counter()
        if "error" not in outcome:  # the window then opens the new project: keep measuring until it shows
            while not window.is_ready() and time.perf_counter() - indexed < 120:
                app.processEvents(QEventLoop.AllEvents, 50)
        ended = time.perf_counter()
        timer.stop()
        seconds = time.perf_counter() - started
        window.close()

    if "error" in outcome:
        print(outcome["error"], file=sys.stderr)
        return 1
    late = np.maximum(np.array(lateness), 0.0)
    summary = outcome.get("summary")
    print(f"indexed {args.n_images} images in {indexed - started:.1f} s, project shown after {seconds:.1f} s "
          f"({summary['seconds'] if summary else 'no summary'})")
    tick_times = np.array([t for _, t in stages])
    for phase, mask in (("while indexing", tick_times <= indexed), ("while opening the result", tick_times > indexed)):
        part = late[mask]
        if part.size:
            print(f"event-loop latency {phase}, {part.size} ticks of {args.tick_ms} ms: median "
                  f"{np.median(part):.1f} ms, p99 {np.percentile(part, 99):.1f} ms, max {part.max():.1f} ms")
    worst = np.argsort(late)[::-1][:5]
    print("worst ticks: " + "; ".join(f"{late[i]:.0f} ms during '{stages[i][0]}' "
                                      f"({ended - stages[i][1]:.1f} s before the end)" for i in worst))
    return 0 if late.max() < 100 else 2


if __name__ == "__main__":
    sys.exit(main())
