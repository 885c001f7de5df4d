"""The active-learning loop in the window: choosing a method and labelling re-rank in the background."""

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from oddscope.core.store import Project

from test_app_window import _open, errors_fail_the_test, private_settings  # noqa: F401 - fixtures


def test_labels_re_rank_in_the_background_and_keep_the_place(qtbot, demo_project):
    window = _open(qtbot, demo_project)
    assert "oddscope" in [window.ranking_combo.itemText(i) for i in range(window.ranking_combo.count())]
    with qtbot.waitSignal(window.learner.updated, timeout=60_000):
        window.ranking_combo.setCurrentText("oddscope")  # fitted on no labels: the plain ranking
    assert window.model.ranking() == "oddscope"
    top = int(window.model.table.index[0])
    window.ranking.set_current_item(top)
    window.model.set_current(top)
    with qtbot.waitSignal(window.learner.updated, timeout=30_000):
        QTest.keyClick(window.ranking.grid, Qt.Key_0)  # "boring": the ranking must push it down
    table = window.model.table
    assert table.loc[top, "rank"] > 1 and table.loc[top, "label_score"] == 0
    assert "predicted_relevance" in table.columns
    assert window.model.current == window.ranking.current_item()  # the user's place survives the re-sort
    assert "Re-ranked with oddscope" in window.statusBar().currentMessage()
    window.close()
    with Project.open(demo_project) as project:
        assert project.get_setting("ranking") == "oddscope"
        assert project.load_array("rank_oddscope") is not None


def test_re_rank_after_a_batch_of_labels_or_on_request(qtbot, demo_project):
    from oddscope.app import dialogs

    window = _open(qtbot, demo_project)
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
