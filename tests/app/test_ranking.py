"""Ranking grid and thumbnail cache, driven by real clicks and keys on a synthetic project table."""

import os
import threading

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


import numpy as np
import pandas as pd
import pytest
from PIL import Image
from PySide6.QtCore import Qt

from oddscope.app.ranking import RankingView
from oddscope.app.ranking_table import LABEL_CHOICES, Filters, RankingTable, TextSearch, tag_initials
from oddscope.app.thumbs import ThumbnailCache

N = 40
CORRUPT = 5  # rank (1-based) of the item whose file is not an image


@pytest.fixture
def table(tmp_path):
    """A project_table-like frame: shuffled item ids, sorted by rank, small PNGs on disk, one corrupt."""
    rng = np.random.default_rng(3)
    images = tmp_path / "images"
    images.mkdir()
    ids = rng.permutation(1000)[:N]
    paths = []
    for rank, item_id in enumerate(ids, start=1):
        path = images / f"img_{rank:03d}.png"
        if rank == CORRUPT:
            path.write_bytes(b"this is not a png")
        else:
            Image.fromarray(rng.integers(0, 255, (72, 96, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    df = pd.DataFrame({
        "path": paths, "status": "ok", "reason": "", "role": "test",
        "rank": np.arange(1, N + 1), "anomaly_score": np.linspace(9.87654, 0.5, N),
        "umap_x": rng.normal(size=N), "umap_y": rng.normal(size=N),
        "cluster": np.arange(N) % 3, "label_score": np.nan, "tags": "",
        "telescope": np.where(np.arange(N) % 4 == 0, "JWST", "hst"),
    }, index=pd.Index(ids, name="item_id"))
    df.loc[ids[0], ["label_score", "tags"]] = [5, "strong lens;merger"]
    df.loc[ids[2], "label_score"] = 2
    df.loc[ids[3], "tags"] = "artefact"
    return df


@pytest.fixture
def cache(tmp_path):
    cache = ThumbnailCache(tmp_path / "thumbs", size=64)
    yield cache
    cache.close()


@pytest.fixture
def view(qtbot, table, cache):
    widget = RankingView(cache)
    qtbot.addWidget(widget)
    widget.resize(560, 420)
    widget.set_table(table)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def click_item(qtbot, view, item_id):
    index = view.model.index_of_item(item_id)
    view.grid.scrollTo(index)
    qtbot.mouseClick(view.grid.viewport(), Qt.LeftButton, pos=view.grid.visualRect(index).center())


def enter_text(qtbot, widget, text):
    widget.setFocus()
    widget.selectAll()
    qtbot.keyClicks(widget, text)
    qtbot.keyClick(widget, Qt.Key_Return)


def test_grid_shows_items_in_rank_order(view, table):
    shuffled = table.sample(frac=1, random_state=0)  # set_table sorts by rank itself
    view.set_table(shuffled)
    assert list(view.visible_ids()) == list(table.index)
    model = view.model
    texts = [model.index_at(f).data(Qt.DisplayRole) for f in range(model.count)]
    assert texts[0] == "#1  9.88" and texts[1] == f"#2  {table['anomaly_score'].iloc[1]:.3g}"
    assert [int(t.split()[0][1:]) for t in texts] == list(range(1, N + 1))
    first, second = (view.grid.visualRect(model.index_at(f)) for f in (0, 1))
    assert second.left() > first.left() and second.top() == first.top()  # reading order: left to right
    below = view.grid.visualRect(model.index_at(model.columns))
    assert below.top() > first.top() and below.left() == first.left()
    assert view.count_label.text() == f"{N} items"


def test_text_filter_matches_path_and_metadata_ignoring_case(qtbot, view, table):
    enter_text(qtbot, view.search, "jwst")
    expected = table.index[table["telescope"] == "JWST"]
    assert list(view.visible_ids()) == list(expected)
    assert view.count_label.text() == f"{len(expected)} of {N}"
    enter_text(qtbot, view.search, "IMG_01")  # paths img_010 ... img_019
    assert list(view.visible_ids()) == list(table.index[9:19])
    enter_text(qtbot, view.search, "no such thing")
    assert len(view.visible_ids()) == 0
    view.search.clear()
    qtbot.waitUntil(lambda: len(view.visible_ids()) == N)  # debounced typing filter


def test_score_range_filter(qtbot, view, table):
    enter_text(qtbot, view.score_min, "3")
    scores = table["anomaly_score"]
    assert list(view.visible_ids()) == list(table.index[scores >= 3])
    enter_text(qtbot, view.score_max, "6")
    assert list(view.visible_ids()) == list(table.index[(scores >= 3) & (scores <= 6)])
    qtbot.mouseClick(view.reset_button, Qt.LeftButton)
    assert len(view.visible_ids()) == N


def test_label_tag_and_cluster_filters(qtbot, view, table):
    view.label_combo.setCurrentIndex([text for text, _ in LABEL_CHOICES].index("Labelled"))
    assert set(view.visible_ids()) == set(table.index[[0, 2, 3]])
    view.label_combo.setCurrentIndex([value for _, value in LABEL_CHOICES].index(4))  # score >= 4
    assert list(view.visible_ids()) == [table.index[0]]
    view.label_combo.setCurrentIndex(0)
    assert [view.tag_combo.itemText(i) for i in range(view.tag_combo.count())] == [
        "Any tag", "artefact", "merger", "strong lens"]
    view.tag_combo.setCurrentIndex(1)
    assert list(view.visible_ids()) == [table.index[3]]
    view.tag_combo.setCurrentIndex(0)
    view.cluster_combo.setCurrentIndex(2)  # "Cluster 1 (13)"
    assert view.cluster_combo.currentText() == "Cluster 1 (13)"
    assert list(view.visible_ids()) == list(table.index[table["cluster"] == 1])


def test_selection_filter_follows_the_map(qtbot, view, table):
    chosen = table.index[[7, 3, 30]]
    view.set_selection_filter(chosen)
    assert len(view.visible_ids()) == N  # the toggle is off: selection known, not applied
    qtbot.mouseClick(view.selection_toggle, Qt.LeftButton)
    assert list(view.visible_ids()) == list(table.index[[3, 7, 30]])  # rank order, not selection order
    assert view.selection_toggle.text() == "Map selection (3)"
    view.set_selection_filter(table.index[[12]])
    assert list(view.visible_ids()) == [table.index[12]]
    view.set_selection_filter(None)
    assert len(view.visible_ids()) == N


def test_arrow_keys_move_current_and_emit(qtbot, view, table):
    ids = list(table.index)
    with qtbot.waitSignal(view.current_changed) as clicked:
        click_item(qtbot, view, ids[2])
    assert clicked.args == [ids[2]] and view.current_item() == ids[2]
    with qtbot.waitSignal(view.current_changed) as moved:
        qtbot.keyClick(view.grid, Qt.Key_Right)
    assert moved.args == [ids[3]]
    columns = view.model.columns
    with qtbot.waitSignal(view.current_changed) as moved:
        qtbot.keyClick(view.grid, Qt.Key_Down)
    assert moved.args == [ids[3 + columns]]
    assert view.grid.selectionModel().isSelected(view.model.index_of_item(ids[3 + columns]))
    view.set_current_item(ids[columns - 1])  # end of the first row: Right goes on to the next row
    with qtbot.waitSignal(view.current_changed) as moved:
        qtbot.keyClick(view.grid, Qt.Key_Right)
    assert moved.args == [ids[columns]]
    with qtbot.waitSignal(view.activated) as activated:
        qtbot.keyClick(view.grid, Qt.Key_Return)
    assert activated.args == [ids[columns]]


def test_programmatic_moves_follow_the_visible_order_quietly(qtbot, view, table):
    ids = list(table.index)
    emitted = []
    view.current_changed.connect(emitted.append)
    assert view.set_current_item(ids[0]) and view.current_item() == ids[0]
    assert view.next_item() == ids[1]
    assert view.previous_item() == ids[0]
    assert view.previous_item() == ids[0]  # stays at the start
    assert view.set_current_item(ids[-1]) and view.current_item() == ids[-1]
    assert view.next_item() == ids[-1]  # stays at the end
    assert view.grid.viewport().rect().contains(view.grid.visualRect(view.model.index_of_item(ids[-1])))
    enter_text(qtbot, view.search, "jwst")  # every 4th item, from the first
    assert view.current_item() is None  # ids[-1] (rank 40) is not a JWST item
    assert view.next_item() == ids[0]  # from no current item: the first visible one
    assert not view.set_current_item(ids[1]) and view.current_item() == ids[0]
    view.set_current_item(ids[4])
    assert view.next_item() == ids[8]
    assert emitted == []


def test_thumbnails_arrive_and_a_corrupt_file_gets_the_placeholder(qtbot, view, table, cache, tmp_path):
    ids = list(table.index[:8])
    for item_id in ids:  # the grid asked for them when it painted; asking again must not queue twice
        cache.get(item_id, table.loc[item_id, "path"])
    qtbot.waitUntil(lambda: all(cache.get(i, table.loc[i, "path"]) is not None for i in ids), timeout=10000)
    bad = cache.get(table.index[CORRUPT - 1], table["path"].iloc[CORRUPT - 1])
    good = cache.get(ids[0], table["path"].iloc[0])
    assert bad.cacheKey() == cache.placeholder.cacheKey()
    assert good.cacheKey() != cache.placeholder.cacheKey() and good.width() == 64 and good.height() == 48
    assert (tmp_path / "thumbs" / f"{ids[0]}.png").exists()
    assert not (tmp_path / "thumbs" / f"{table.index[CORRUPT - 1]}.png").exists()
    view.grab()  # painting cells with thumbnails and the placeholder must not fail

    # A later session reuses the PNG cache, even with the source gone.
    os.remove(table["path"].iloc[0])
    later = ThumbnailCache(tmp_path / "thumbs", size=64)
    try:
        assert later.get(ids[0], table["path"].iloc[0]) is None
        with qtbot.waitSignal(later.ready) as ready:
            pass
        assert ready.args == [ids[0]]
        assert later.get(ids[0], table["path"].iloc[0]).cacheKey() != later.placeholder.cacheKey()
    finally:
        later.close()


def test_requests_are_deduplicated_and_newest_first(qtbot, tmp_path, table):
    cache = ThumbnailCache(tmp_path / "dedup", size=32, max_pending=3)
    loaded = []
    cache.ready.connect(loaded.append)
    try:
        cache.lane.pool.setMaxThreadCount(1)
        gate = threading.Event()
        cache.lane.pool.start(lambda: gate.wait(5))  # keep the only loader thread busy while we queue
        paths = table["path"].to_numpy()
        for i in range(6):
            cache.get(i, paths[i])
        cache.get(4, paths[4])  # again: moves to the front, not queued twice
        gate.set()
        qtbot.waitUntil(lambda: len(loaded) == 3, timeout=10000)
        qtbot.wait(100)
        assert loaded == [4, 5, 3]  # newest first; the three oldest requests were dropped
    finally:
        cache.close()


def test_update_labels_keeps_current_item_and_scroll_position(qtbot, view, table):
    many = pd.concat([table, table.assign(rank=table["rank"] + N).set_axis(table.index + 1000)])
    view.set_table(many)
    target = many.index[50]
    view.set_current_item(target)
    scroll = view.grid.verticalScrollBar().value()
    assert scroll > 0
    before = view.model.cell_at(view.model.index_of_item(target))
    assert np.isnan(before.label_score) and before.tags == ()
    view.update_labels(pd.DataFrame({"score": [4.0], "tags": [["lens"]]}, index=[target]))
    after = view.model.cell_at(view.model.index_of_item(target))
    assert after.label_score == 4 and after.tags == ("lens",)
    assert view.current_item() == target and view.grid.verticalScrollBar().value() == scroll
    assert "lens" in [view.tag_combo.itemText(i) for i in range(view.tag_combo.count())]
    view.update_labels(many.loc[[target], ["label_score", "tags"]])  # back to "no label", table style
    cleared = view.model.cell_at(view.model.index_of_item(target))
    assert np.isnan(cleared.label_score) and cleared.tags == ()


def test_table_filters_without_qt_and_helpers(table):
    ranking = RankingTable(table)
    ids = table.index.to_numpy()
    assert list(ids[ranking.filter(Filters(text="JWST", score_min=5))]) == list(
        table.index[(table["telescope"] == "JWST") & (table["anomaly_score"] >= 5)])
    assert list(ranking.positions([ids[3], 99999, -1])) == [3, -1, -1]
    assert list(ranking.filter(Filters(label="unlabelled"))) == [1] + list(range(4, N))
    assert len(ranking.filter(Filters(tag="no such tag"))) == 0
    assert tag_initials("strong lens") == "SL" and tag_initials("merger") == "Me"
    with pytest.raises(ValueError, match="item ids"):
        RankingTable(table.set_index("path"))


@pytest.mark.parametrize("query", ["über_01", "IMG_01", "img", "_00", "/b/", "zzz", ".png/a", "U_0"])
def test_text_search_agrees_with_pandas(query):
    """Rare hits go through the blob scan, common ones through Arrow; both must match pandas."""
    n = 3000
    paths = pd.Series([f"/{'ab'[i % 2]}/ÜBER_{i:05d}/IMG_{i % 700:03d}.png" for i in range(n)])
    band = pd.Series(np.where(np.arange(n) % 3 == 0, "u_01", "g"))
    search = TextSearch([paths, band], n)
    expected = (paths.str.lower().str.contains(query.lower(), regex=False)
                | band.str.lower().str.contains(query.lower(), regex=False))
    assert np.array_equal(search.search(query), expected.to_numpy())
