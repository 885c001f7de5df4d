"""Lanes: one task mechanism for every sort of background work, with progress, cancel and latest-wins."""
import threading
import time

from oddscope.app.worker import Lane, Task, TaskManager


def _wait_for(gate, progress=None):
    """Blocks its lane's only thread until ``gate`` opens."""
    gate.wait(10)
    return "gate"


def _count(n, progress=None):
    for i in range(n):
        progress.update("counting", i + 1, n)
    return n


def test_lanes_never_queue_behind_each_other(qtbot):
    manager = TaskManager(max_threads=1)
    gate = threading.Event()
    try:
        blocker = manager.run("index", "Indexing", _wait_for, gate)  # the project lane's only thread is busy
        thumbs = Task("thumbnails", "Thumbnails", _count, 10)
        with qtbot.waitSignal(thumbs.finished, timeout=5_000) as finished:
            manager.lane("interactive").submit(thumbs)
        assert finished.args == [10] and blocker.running  # done while the index build still runs
    finally:
        gate.set()
    qtbot.waitUntil(lambda: manager.running() == [], timeout=5_000)


def test_a_lane_reports_progress_and_cancels_its_tasks(qtbot):
    lane = Lane("interactive", threads=1)
    gate = threading.Event()
    first = lane.run("x", "Blocking", _wait_for, gate)
    queued = Task("x", "Counting", _count, 100)
    seen = []
    queued.progress.connect(lambda *args: seen.append(args))
    lane.submit(queued)
    assert lane.tasks() == [first, queued]
    with qtbot.waitSignal(queued.done, timeout=5_000) as done:
        lane.cancel_all()
        gate.set()
    assert done.args == ["cancelled"] and seen == []  # cancelled while queued: it never ran
    assert first.outcome == "cancelled"  # a cancel asked before the result arrived wins
    qtbot.waitUntil(lambda: lane.tasks() == [], timeout=5_000)

    counting = Task("x", "Counting", _count, 100)
    counting.progress.connect(lambda *args: seen.append(args))
    with qtbot.waitSignal(counting.finished, timeout=5_000):
        lane.submit(counting)
    assert seen[-1] == ("counting", 100, 100)


def test_latest_wins_runs_only_the_newest_request(qtbot):
    lane = Lane("learner")
    assert lane.latest_wins and lane.pool.maxThreadCount() == 1
    gate, calls, outcomes = threading.Event(), [], []

    def refit(n, progress=None):
        calls.append(n)
        if n == 0:
            gate.wait(10)  # the first refit is still running while requests pile up
        return n

    tasks = []
    for n in range(5):
        task = Task("refit", "Refit", refit, n)
        task.done.connect(lambda outcome, n=n: outcomes.append((n, outcome)))
        tasks.append(lane.submit(task))
        if n == 0:
            qtbot.waitUntil(lambda: calls == [0], timeout=5_000)
    gate.set()
    qtbot.waitUntil(lambda: len(outcomes) == 5, timeout=5_000)
    assert calls == [0, 4]  # the running refit ended, the superseded queued ones never ran
    assert dict(outcomes) == {0: "cancelled", 1: "cancelled", 2: "cancelled", 3: "cancelled", 4: "finished"}
    assert tasks[-1].outcome == "finished"


def test_cancel_all_cancels_every_lane_and_waits(qtbot):
    manager = TaskManager()
    stopped = []

    def endless(progress=None):
        try:
            while True:
                time.sleep(0.002)
                progress.check()
        finally:
            stopped.append(True)

    manager.lane("interactive").run("x", "Spinning", endless)
    manager.lane("neighbours").run("y", "Spinning", endless)
    manager.run("index", "Indexing", endless)
    qtbot.wait(50)
    assert manager.cancel_all(wait_ms=5_000)
    assert len(stopped) == 3


def test_the_learner_refits_only_the_newest_labels_and_never_blocks(qtbot):
    import numpy as np

    from oddscope.app.learning import ActiveLearner

    gate, fitted, updates = threading.Event(), [], []

    class GatedSession:
        method = "fake"

        def refit(self, labels):
            fitted.append(labels)
            if labels == 0:
                gate.wait(10)  # a slow refit still runs while the user labels on
            return np.full(3, float(labels)), None

    learner = ActiveLearner()
    learner.set_session(GatedSession())
    learner.updated.connect(lambda method, scores, relevance, seconds: updates.append(scores[0]))
    learner.request("unused root", "fake", 0)
    qtbot.waitUntil(lambda: fitted == [0], timeout=5_000)
    started = time.perf_counter()
    for labels in (1, 2, 3):
        learner.request("unused root", "fake", labels)
    assert time.perf_counter() - started < 0.5  # requests return at once, the refit blocks nobody
    gate.set()
    qtbot.waitUntil(lambda: updates == [3.0], timeout=5_000)
    qtbot.wait(50)
    assert fitted == [0, 3] and updates == [3.0]  # the superseded refits never ran or never reported
