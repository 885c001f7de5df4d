"""What every command shares: the --project option, terminal progress bars, readable errors."""

from __future__ import annotations

import sys

import click

from oddscope.core.data.remote import RemoteUnavailable, is_url, url_filesystem
from oddscope.core.models.registry import EncoderError
from oddscope.core.progress import split_note
from oddscope.core.project.store import ProjectError


class ImageSource(click.ParamType):
    """A folder or CSV manifest that exists here, or an fsspec URL (``s3://bucket/prefix``, ``file://...``)
    whose protocol is installed (else the install hint)."""

    name = "path_or_url"

    def convert(self, value, param, ctx):
        if not is_url(value):
            return click.Path(exists=True).convert(value, param, ctx)
        try:
            url_filesystem(value)
        except RemoteUnavailable as err:
            self.fail(str(err), param, ctx)
        return value


PROJECT = click.option("--project", "-p", "project_dir", required=True, type=click.Path(file_okay=False),
                        help="Project folder (created by `oddscope index`).")


_STAGE_UNITS = {"features": "img", "map: layout": "epoch"}  # what a stage counts; any other counts items


class Bars:
    """Terminal progress bars, one per stage, fed by core's progress callbacks; each names what it counts
    (tqdm prints a rate as ``12.3img/s`` or ``1.86s/item``, never a bare ``s/``).  A stage that starts
    without a total (e.g. UMAP's neighbour graph) shows its elapsed time only; a stage's note
    (:func:`oddscope.core.progress.with_note`, e.g. shards done) shows after its bar."""

    def __init__(self, quiet: bool = False):
        self.quiet, self.stage, self.bar = quiet, None, None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.quiet:
            return
        from tqdm import tqdm

        stage, note = split_note(stage)
        if stage != self.stage:
            self.close()
            self.stage = stage
            self.bar = tqdm(total=total, desc=f"{stage:>9}", unit=_STAGE_UNITS.get(stage, "item"),
                            bar_format=None if total else "{desc}: [{elapsed}]",
                            file=sys.stderr, mininterval=0.5, dynamic_ncols=True, leave=True)
        self.bar.total = total
        if note:
            self.bar.set_postfix_str(note, refresh=False)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def friendly_errors(fn):
    """Turn expected failures into one readable line instead of a traceback."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (ProjectError, ValueError, FileNotFoundError, KeyError) as err:
            raise click.ClickException(str(err).strip("'\"")) from None
        except EncoderError as err:
            raise click.ClickException(str(err)) from None
    return wrapper
