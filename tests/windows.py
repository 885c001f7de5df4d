"""Opening the real main window in a test, the way a user does, and waiting until every view is filled."""
from oddscope.app.window import MainWindow


def open_window(qtbot, root, **kwargs) -> MainWindow:
    window = MainWindow(**kwargs)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    with qtbot.waitSignal(window.model.loaded, timeout=30_000):
        assert window.open_project(root)
    qtbot.waitUntil(lambda: window.viewer.item_id == window.model.current
                    and window.viewer.image() is not None and not window.tasks.running(), timeout=10_000)
    return window
