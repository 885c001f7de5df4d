"""The ``oddscope`` command: everything the engine does, without a window.

The installed command is :mod:`oddscope.app.cli`, which adds ``open`` and the
demo's window to this group; core itself never imports the app.

Commands that only read a project open it read-only, so they run while the
app has it open; commands that write take the project's writer lock.

* :mod:`.commands`: indexing, info, export, labels, neighbours, evaluate, rank, demo;
* :mod:`.maps`: per-pixel anomaly maps (``maps compute``, ``maps export``, ``evaluate segmentation``);
* :mod:`.common`: the shared ``--project`` option, progress bars and error handling.
"""

from oddscope.core.cli.commands import main

__all__ = ["main"]
