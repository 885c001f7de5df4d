"""The installed ``oddscope`` command: the engine's commands plus the ones that open a window.

:mod:`oddscope.core.cli` holds every engine command and never imports Qt; this
module adds ``open`` and hands the demo a way to open its result.  Qt is
imported only when a window opens, so ``oddscope index`` never pays for it.
"""

from __future__ import annotations

import os
import sys

import click

from oddscope.core.cli import main as engine_cli


class NoDisplay(click.ClickException):
    """No screen to open a window on: exit 2, as for any other unusable invocation."""

    exit_code = 2


def missing_display() -> str | None:
    """Why a window cannot open here (None when it can): Linux without X11 or Wayland and no Qt platform chosen.

    Checked before Qt starts, since Qt would abort the process (exit 134) with a message about its xcb plugin.
    """
    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM"):
        return None
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return None
    return ("no display to open the window on (neither DISPLAY nor WAYLAND_DISPLAY is set). Run Oddscope in a "
            "desktop session or over `ssh -X`, or render the window to a file without a display: "
            "`oddscope open PROJECT --screenshot window.png`.")


def launch_app(project_dir, screenshot=None) -> None:
    """Open ``project_dir`` in the desktop app (or render it offscreen to ``screenshot``) and exit with its code."""
    if screenshot is not None:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before Qt starts: a screenshot needs no display
    elif problem := missing_display():
        raise NoDisplay(problem)
    try:
        from oddscope.app.main import run_app
    except ImportError as err:
        raise click.ClickException(f"the desktop app is not available: {err}") from None
    sys.exit(run_app(project_dir, screenshot=screenshot))


main = click.Group(name="oddscope", commands=dict(engine_cli.commands), params=engine_cli.params,
                   help=engine_cli.help,
                   context_settings={**engine_cli.context_settings, "obj": {"open_app": launch_app}})


@main.command("open")
@click.argument("project_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--screenshot", type=click.Path(dir_okay=False),
              help="Render the window offscreen (no display needed) to this PNG and exit.")
def open_(project_dir, screenshot):
    """Open PROJECT_DIR in the desktop app. Needs a display (X11 or Wayland on Linux) unless --screenshot is
    given; without one it exits with status 2 and says so. A project that has nothing to explore yet opens
    with advice on what to do."""
    launch_app(project_dir, screenshot)


if __name__ == "__main__":
    main()
