"""``oddscope maps ...`` and ``oddscope evaluate segmentation``: per-pixel anomaly maps from the terminal."""

from __future__ import annotations

import json

import click

from oddscope.core.cli.common import PROJECT, Bars, friendly_errors
from oddscope.core.project.store import Project

_MODE = click.option("--mode", type=click.Choice(["auto", "reference", "zero-shot"]), default="auto",
                     show_default=True, help="reference: normal patches from the project's --reference images; "
                     "zero-shot: each image against a pool of the others; auto: reference when there are some.")


@click.group()
def maps():
    """Per-pixel anomaly maps: where in each image the anomaly is.

    Map values are calibrated on normal pixels, never per image: a value v means
    about one normal pixel in 10^v is as anomalous (0: as normal as the normal
    set, 3: one in a thousand), so the same colour means the same on every image.
    """


@maps.command("compute")
@PROJECT
@_MODE
@click.option("--refit", is_flag=True, help="Fit the map model again (maps are recomputed).")
@click.option("--quiet", "-q", is_flag=True)
@friendly_errors
def maps_compute(project_dir, mode, refit, quiet):
    """Fit the map model if needed and compute every image's map (the image score becomes `score_patchmap`)."""
    from oddscope.core.workflows.segmentation import PixelMaps

    bars = Bars(quiet)
    with Project.open(project_dir, writable=True) as project:
        pixel_maps = PixelMaps(project)
        try:
            if refit or mode != "auto" or pixel_maps.scorer is None:
                pixel_maps.fit(None if mode == "auto" else mode, progress=bars)
            done = pixel_maps.compute(progress=bars)
        finally:
            bars.close()
        click.echo(f"Computed {len(done)} map(s) ({pixel_maps.scorer.mode} mode); rank by them with "
                   f"`oddscope rank -p {project_dir} patchmap`")


@maps.command("export")
@PROJECT
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False), help="Folder for the PNGs.")
@click.option("--threshold", default=None, type=float,
              help="Mask threshold in calibrated units (default 3: one normal pixel in a thousand).")
@click.option("--quiet", "-q", is_flag=True)
@friendly_errors
def maps_export(project_dir, out, threshold, quiet):
    """Write each image's heat map (NAME.map.png, fixed colour scale 0-6) and mask (NAME.mask.png), and maps.csv."""
    from oddscope.core.workflows.map_export import DEFAULT_THRESHOLD, export_maps, threshold_meaning

    threshold = DEFAULT_THRESHOLD if threshold is None else threshold
    bars = Bars(quiet)
    with Project.open(project_dir, writable=True) as project:
        try:
            table = export_maps(project, out, threshold, progress=bars)
        finally:
            bars.close()
    click.echo(f"Wrote {len(table)} heat map(s) and mask(s) to {out}, threshold {threshold_meaning(threshold)}")
    if table["painted_defect"].any():
        click.echo(f"and the {int(table['painted_defect'].sum())} defect mask(s) painted in the app to {out}/defects "
                   f"(evaluate against them: oddscope evaluate segmentation -p {project_dir} --masks {out}/defects)")


@click.command("segmentation")
@PROJECT
@click.option("--masks", required=True, type=click.Path(exists=True, file_okay=False),
              help="Folder of ground-truth masks named like the images (<stem>.png, <stem>_mask.png, or in "
                   "subfolders mirroring the images'); a missing or empty mask means normal.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.option("--quiet", "-q", is_flag=True)
@friendly_errors
def evaluate_segmentation(project_dir, masks, as_json, quiet):
    """Per-pixel maps against masks: image AUROC, pixel AUROC and PRO (AUPRO up to 30% false positives)."""
    from oddscope.core.workflows.segmentation_eval import evaluate_segmentation as evaluate

    bars = Bars(quiet or as_json)
    with Project.open(project_dir, writable=True) as project:
        try:
            report = evaluate(project, masks, progress=bars)
        finally:
            bars.close()
    if as_json:
        click.echo(json.dumps(report, indent=2, default=float))
        return
    click.echo(f"{report['n_images']} images, {report['n_defective']} defective; {report['masks']}; "
               f"{report['mode']} mode")
    for key, name in (("image_auroc", "image AUROC"), ("pixel_auroc", "pixel AUROC"), ("pro", "PRO (30% FPR)")):
        click.echo(f"{name:>14}  {report[key]:.3f}")
