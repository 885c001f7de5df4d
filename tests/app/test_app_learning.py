"""The active-learning loop in the window: choosing a method and labelling re-rank in the background."""

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from scipy.stats import kendalltau
from windows import open_window

from oddscope.core.project.store import Project


def test_labels_re_rank_in_the_background_and_keep_the_place(qtbot, demo_project):
    window = open_window(qtbot, demo_project)
    assert "oddscope" in [window.ranking_combo.itemText(i) for i in range(window.ranking_combo.count())]
    with qtbot.waitSignal(window.learner.updated, timeout=60_000):
        window.ranking_combo.setCurrentText("oddscope")  # fitted on no labels: the plain ranking
    assert window.model.ranking() == "oddscope"
    top = int(window.model.table.index[0])
    before = window.model.table["rank"].copy()
    window.ranking.set_current_item(top)
    window.model.set_current(top)
    with qtbot.waitSignal(window.learner.updated, timeout=30_000):
        QTest.keyClick(window.ranking.grid, Qt.Key_0)  # "boring": the ranking must push it down
    table = window.model.table
    assert table.loc[top, "rank"] > 1 and table.loc[top, "label_score"] == 0
    # one label re-ranks the whole collection: unlabelled items change order among themselves too
    # (a ranker that moved only the labelled item would leave their order alone: Kendall tau exactly 1)
    others = before.index.drop(top)
    assert kendalltau(before[others], table.loc[others, "rank"]).statistic < 0.99
    assert "predicted_relevance" in table.columns
    assert window.model.current == window.ranking.current_item()  # the user's place survives the re-sort
    assert "Re-ranked with oddscope" in window.statusBar().currentMessage()
    window.close()
    with Project.open(demo_project) as project:
        assert project.get_setting("ranking") == "oddscope"
        assert project.load_array("rank_oddscope") is not None


def test_re_rank_after_a_batch_of_labels_or_on_request(qtbot, demo_project):
    from oddscope.app import dialogs

    window = open_window(qtbot, demo_project)
    with qtbot.waitSignal(window.learner.updated, timeout=60_000):
        window.ranking_combo.setCurrentText("oddscope")
    every_5 = next(a for a in window.relearn_choice_actions.actions() if a.data() == 5)
    every_5.trigger()  # Label > Re-rank > After every 5 labels
    assert every_5.isChecked() and int(dialogs.app_settings().value("relearn_every")) == 5
    with qtbot.assertNotEmitted(window.learner.updated, wait=500):
        QTest.keyClick(window.ranking.grid, Qt.Key_0)
        QTest.keyClick(window.ranking.grid, Qt.Key_5)
    assert "2 not yet used for re-ranking" in window.labelled_label.text()
    with qtbot.waitSignal(window.learner.updated, timeout=30_000):
        QTest.keyClick(window.ranking.grid, Qt.Key_R)  # re-rank now
    qtbot.waitUntil(lambda: "not yet used" not in window.labelled_label.text(), timeout=5_000)
    assert window.labelled_label.text().startswith("2 labelled")
    window.close()


def test_preparing_a_method_shows_progress_and_cancel_keeps_the_ranking(qtbot, demo_project, monkeypatch):
    import time

    from oddscope.app import jobs

    def slow_prepare(root, method, progress=None):  # stands in for PCA + kNN graph at 10^5 items
        for i in range(10_000):
            time.sleep(0.002)
            progress.update("active: graph", i, 10_000)

    monkeypatch.setattr(jobs, "prepare_session", slow_prepare)
    window = open_window(qtbot, demo_project)
    before = window.model.ranking()
    window.ranking_combo.setCurrentText("protege")
    task = window.tasks.running("prepare")
    assert task is not None and window.task_bar.isVisible()
    assert window.task_bar.label.text().startswith("Preparing the protege ranking")
    qtbot.waitUntil(lambda: window.task_bar.bar.maximum() == 10_000, timeout=10_000)  # progress arrives
    with qtbot.waitSignal(task.done, timeout=10_000):
        qtbot.mouseClick(window.task_bar.cancel_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: window.ranking_combo.currentText() == before, timeout=5_000)
    assert window.model.ranking() == before
    assert window.colour_combo.itemText(0) == f"anomaly score ({before})"
    window.close()
