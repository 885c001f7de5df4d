"""Interactivity of the map (oddscope.app.mapview.MapView) at growing point counts.

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_map.py [--sizes 10000 100000 1000000]

Window 1200x900.  Points are Gaussian blobs (UMAP-like) with a distance-to-centre score.  Rows, all in
milliseconds except the last two (what was rendered and how much was selected):

* set_points: the call (the picking KD-tree builds on a thread: "kd-tree build (thread)")
* set_colors + first render: colour by a score, then grab() the whole widget
* repaint (paint only): grab() with nothing changed, e.g. a frame while the view pans
* pan zoomed-out / zoomed-in: move the view by 10%, re-render, grab()
* pick: nearest point within 6 px at a random widget position, mean of 1,000 (and without tree)
* recolour: set_colors with a new score array, re-render, grab()
* rect / lasso select ~10%: select_rect / select_polygon including the re-render, then grab()

Targets at 1M points: repaint < 50 ms, pick < 5 ms, recolour < 200 ms.  Medians of --repeats runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
from PySide6 import QtCore, QtWidgets

from oddscope.app.mapview import MapView


def blobs(n: int, rng: np.random.Generator):
    centers = rng.uniform(-20, 20, (15, 2))
    spread = rng.uniform(0.5, 2.5, 15)
    label = rng.choice(15, n, p=rng.dirichlet(np.full(15, 2.0)))
    xy = centers[label] + rng.normal(size=(n, 2)) * spread[label, None]
    return xy.astype(np.float32), np.linalg.norm(xy - centers[label], axis=1) / spread[label]


def timed(fn, repeats: int = 1) -> float:
    """Median wall time of fn() in milliseconds."""
    app = QtWidgets.QApplication.instance()
    times = []
    for _ in range(repeats):
        app.processEvents()
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def bench(n: int, repeats: int, rng: np.random.Generator) -> dict:
    view = MapView()
    view.resize(1200, 900)
    view.show()
    QtWidgets.QApplication.instance().processEvents()
    xy, score = blobs(n, rng)
    row = {"set_points": timed(lambda: view.set_points(xy))}
    row["kd-tree build (thread)"] = timed(view.wait_for_index)
    row["set_colors + first render"] = timed(lambda: (view.set_colors(score), view.grab()))
    row["repaint (paint only)"] = timed(view.grab, repeats)

    def pan(fraction):
        x0, x1, y0, y1 = view.view_range()
        shift = fraction * (x1 - x0)
        view.set_view_range(x0 + shift, x1 + shift, y0, y1)
        view.grab()

    def pan_back_and_forth():
        times = [timed(lambda: pan(+0.1)), timed(lambda: pan(-0.1))]
        return statistics.median(times)

    view.auto_range()
    row["pan zoomed-out (rebin + paint)"] = statistics.median(
        pan_back_and_forth() for _ in range(repeats))
    layers = ["density" if view.density_item.isVisible() else "scatter"]

    # zoom on a window around a point holding ~5,000 points (or all of a small map)
    centre = xy[rng.integers(n)]
    half = np.sort(np.abs(xy - centre).max(axis=1))[min(n, 5000) - 1]
    view.set_view_range(centre[0] - half, centre[0] + half, centre[1] - half, centre[1] + half)
    row["pan zoomed-in (reload + paint)"] = statistics.median(
        pan_back_and_forth() for _ in range(repeats))
    layers.append("density" if view.density_item.isVisible() else "scatter")

    view.auto_range()
    positions = [QtCore.QPointF(*p) for p in rng.uniform((0, 40), (1130, 900), (1000, 2))]
    start = time.perf_counter()
    hits = sum(view.pick_at(p) is not None for p in positions)
    row["pick (kd-tree, mean)"] = (time.perf_counter() - start) / len(positions) * 1e3
    tree, view._tree = view._tree, None  # measure the fallback used while the tree builds
    start = time.perf_counter()
    for p in positions[:100]:
        view.pick_at(p)
    row["pick (no tree yet, mean)"] = (time.perf_counter() - start) / 100 * 1e3
    view._tree = tree

    new_scores = [rng.permutation(score) for _ in range(repeats)]
    row["recolour (+ render)"] = statistics.median(
        timed(lambda s=s: (view.set_colors(s), view.grab())) for s in new_scores)

    lo, hi = np.quantile(xy[:, 0], [0.45, 0.55])
    row["rect select ~10% (+ render)"] = timed(lambda: (
        view.select_rect(lo, hi, float(xy[:, 1].min()), float(xy[:, 1].max())), view.grab()))
    n_rect = view.selection().size
    view.clear_selection()
    angles = np.linspace(0, 2 * np.pi, 200, endpoint=False)
    radius = np.quantile(np.linalg.norm(xy - xy.mean(axis=0), axis=1), 0.1)
    lasso = xy.mean(axis=0) + radius * np.column_stack([np.cos(angles), np.sin(angles)])
    row["lasso select (200 vertices) (+ render)"] = timed(lambda: (
        view.select_polygon(lasso), view.grab()))
    row["layers: zoomed out / in"] = "/".join(layers)
    row["selected: rect / lasso"] = f"{n_rect}/{view.selection().size}"
    row["hits among 1,000 picks"] = hits
    view.close()
    view.deleteLater()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    rng = np.random.default_rng(0)
    rows = {n: bench(n, args.repeats, rng) for n in args.sizes}
    names = list(rows[args.sizes[0]])
    width = max(map(len, names))
    print(f"{'ms':<{width}} " + " ".join(f"{n:>12,}" for n in args.sizes))
    for name in names:
        cells = [rows[n][name] for n in args.sizes]
        print(f"{name:<{width}} " + " ".join(
            f"{c:>12.1f}" if isinstance(c, float) else f"{c!s:>12}" for c in cells))


if __name__ == "__main__":
    main()
