"""The installed ``oddscope`` command: the engine's commands plus the ones that open a window.

:mod:`oddscope.core.cli` holds every engine command and never imports Qt; this
module adds ``open`` and hands the demo a way to open its result.  Qt is
imported only when a window opens, so ``oddscope index`` never pays for it.
"""

from __future__ import annotations

import sys

import click

from oddscope.core.cli import main as engine_cli


def launch_app(project_dir, screenshot=None) -> None:
    """Open ``project_dir`` in the desktop app (or render it to ``screenshot``) and exit with its code."""
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
@click.option("--screenshot", type=click.Path(dir_okay=False), help="Render the window offscreen to this PNG and exit.")
def open_(project_dir, screenshot):
    """Open PROJECT_DIR in the desktop app."""
    launch_app(project_dir, screenshot)


if __name__ == "__main__":
    main()
