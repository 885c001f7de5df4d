"""``oddscope guidance ...`` and ``oddscope evaluate guidance``: feature spaces that ignore a nuisance or keep
only what is relevant, from the terminal (:mod:`oddscope.core.workflows.guidance`)."""

from __future__ import annotations

import json

import click

from oddscope.core.cli.common import PROJECT, Bars, friendly_errors
from oddscope.core.project.store import Project

_NAME = click.option("--name", "-n", default=None, help="Name of the new feature space [default: from the attribute].")
_METHOD = click.option("--method", type=click.Choice(["leace", "nonlinear"]), default="leace", show_default=True,
                       help="leace: linear concept erasure (closed form); nonlinear: a projection head trained "
                            "against an adversary (Red PANDA's idea; torch, seconds to a minute on the CPU).")
_QUIET = click.option("--quiet", "-q", is_flag=True)


@click.group()
def guidance():
    """Feature spaces that ignore what you call a nuisance (a metadata column, or tags with a prefix such as
    pose:left) or keep only what you call relevant (your 4-5 scores). Each space has its own scores for every
    detector (knn@SPACE, ...), neighbours and active learning; rank, export and the app choose it by name."""


def _add(project_dir, name, quiet, **spec) -> None:
    from oddscope.core.workflows.guidance import add_space

    bars = Bars(quiet)
    with Project.open(project_dir, writable=True) as project:
        try:
            result = add_space(project, name, progress=bars, **spec)
        finally:
            bars.close()
    before, after = result["probe_before"], result["probe_after"]
    size = f"{result['rank']} dimension(s)" if result["method"] == "nonlinear" else f"{result['rank']} direction(s)"
    click.echo(f"Added feature space '{name}' ({result['kind']}, {result['method']}, {size}, "
               f"fitted on {result['n_fit']} items in {result['seconds']:.1f}s); its scores are <detector>@{name}")
    if after is not None:
        click.echo(f"Probe (linear / MLP, chance {before['probe_chance']:.3f}): before {_probe(before)}, "
                   f"after {_probe(after)}")


def _probe(probe: dict | None) -> str:
    if probe is None:
        return "-"
    nonlinear = probe["probe_nonlinear"]
    return f"{probe['probe_linear']:.3f} / " + ("-" if nonlinear is None else f"{nonlinear:.3f}")


@guidance.command("add")
@PROJECT
@click.option("--nuisance", required=True, help="Metadata column (from the manifest) or tag prefix to ignore.")
@_NAME
@_METHOD
@_QUIET
@friendly_errors
def guidance_add(project_dir, nuisance, name, method, quiet):
    """Add a feature space with the NUISANCE attribute erased, and score every detector in it."""
    _add(project_dir, name or f"no-{nuisance.rstrip(':')}", quiet, attribute=nuisance, kind="nuisance",
         method=method)


@guidance.command("relevant")
@PROJECT
@_NAME
@click.option("--weight", type=float, default=None,
              help="Keep every direction and scale the relevant ones by this [default: keep only them].")
@_QUIET
@friendly_errors
def guidance_relevant(project_dir, name, weight, quiet):
    """Add a feature space of the directions that separate your 4-5 scores from your 0-3 scores."""
    _add(project_dir, name or "relevant", quiet, kind="relevant", weight=weight)


@guidance.command("text")
@PROJECT
@click.option("--nuisance", "nuisance_words", multiple=True, metavar="PHRASE",
              help="What to ignore, in words (\"background colour\"); repeatable.")
@click.option("--relevant", "relevant_words", multiple=True, metavar="PHRASE",
              help="What matters, in words (\"shape of the object\"); repeatable.")
@click.option("--name", "-n", required=True, help="Name of the new feature space.")
@click.option("--weight", type=float, default=None,
              help="With --relevant: keep every direction and scale the relevant ones by this [default: keep only "
                   "them].")
@_QUIET
@friendly_errors
def guidance_text(project_dir, nuisance_words, relevant_words, name, weight, quiet):
    """Add a feature space from attributes in words (CLIP encoders only): the directions the CLIP text tower gives
    the --nuisance phrases are removed from the image features, those of the --relevant phrases kept."""
    _add(project_dir, name, quiet, kind="words", nuisance_words=nuisance_words, relevant_words=relevant_words,
         weight=weight)


@guidance.command("list")
@PROJECT
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def guidance_list(project_dir, as_json):
    """The project's feature spaces, with the probe before and after."""
    from oddscope.core.workflows.spaces import spaces

    with Project.open(project_dir) as project:
        known = spaces(project)
    if as_json:
        click.echo(json.dumps(known, indent=2))
        return
    if not known:
        click.echo("No feature spaces (add one with `oddscope guidance add --nuisance COLUMN`).")
    for name, spec in known.items():
        if spec["kind"] == "words":
            click.echo(f"{name:<16} words: ignore {', '.join(spec['nuisance_words']) or '-'}; keep "
                       f"{', '.join(spec['relevant_words']) or 'the rest'} ({spec['method']})")
            continue
        what = spec["attribute"] if spec["kind"] == "nuisance" else "your 4-5 scores"
        click.echo(f"{name:<16} {spec['kind']} {what} ({spec['source']}), {spec['method']}; probe before "
                   f"{_probe(spec['probe_before'])}, after {_probe(spec['probe_after'])}, "
                   f"chance {spec['probe_after']['probe_chance']:.3f}")


@guidance.command("remove")
@PROJECT
@click.argument("name")
@friendly_errors
def guidance_remove(project_dir, name):
    """Remove the feature space NAME with its scores, rankings and indexes (the raw ones are untouched)."""
    from oddscope.core.workflows.guidance import remove_space

    with Project.open(project_dir, writable=True) as project:
        remove_space(project, name)
    click.echo(f"Removed feature space '{name}'")


@click.command("guidance")
@PROJECT
@click.option("--truth", required=True, type=click.Path(exists=True, dir_okay=False),
              help="CSV with path,is_anomaly[,category]; category nuisance_outlier marks nuisance-only outliers.")
@click.option("--nuisance", required=True, help="Metadata column or tag prefix the probes try to predict.")
@click.option("--detector", default="knn", show_default=True, help="Detector whose ranking is measured.")
@click.option("--threshold", type=float, default=None,
              help="is_anomaly holds probabilities or scores: values at or above this count as anomalies.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@friendly_errors
def evaluate_guidance(project_dir, truth, nuisance, detector, threshold, as_json):
    """For the raw features and each feature space: how well a linear and an MLP probe still predict the
    nuisance (against chance), the anomalies' AUROC and AP, and the share of nuisance-only outliers in the top 50."""
    from oddscope.core.workflows.guidance_eval import evaluate_guidance as evaluate
    from oddscope.core.workflows.guidance_eval import guidance_table

    with Project.open(project_dir) as project:
        result = evaluate(project, truth, nuisance, detector=detector, threshold=threshold)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(f"{result['n_items']} items, {result['n_anomalies']} anomalies, {result['n_nuisance_outliers']} "
               f"nuisance-only outliers; nuisance '{nuisance}' ({result['source']}), detector {detector}")
    click.echo(guidance_table(result))


@guidance.command("map")
@PROJECT
@click.argument("name")
@_QUIET
@friendly_errors
def guidance_map(project_dir, name, quiet):
    """Compute the UMAP map of the analysed items in the feature space NAME (saved in the project as umap@NAME)."""
    from oddscope.core.workflows.guidance import compute_space_map

    bars = Bars(quiet)
    with Project.open(project_dir, writable=True) as project:
        try:
            seconds = compute_space_map(project, name, progress=bars)
        finally:
            bars.close()
    click.echo(f"Map of feature space '{name}' computed in {seconds:.1f}s (umap@{name})")
