"""The engine's commands; shared options and progress bars are in :mod:`.common`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from oddscope.core.cli.common import PROJECT, Bars, ImageSource, friendly_errors
from oddscope.core.cli.guidance import evaluate_guidance, guidance
from oddscope.core.cli.maps import evaluate_segmentation, maps
from oddscope.core.data.science import NONE, ScienceSteps
from oddscope.core.models.registry import DEFAULT_ENCODER, DETECTORS, ENCODERS, METRICS, RANKERS, RUNTIMES
from oddscope.core.progress import Cancelled
from oddscope.core.project.csv_paths import PATH_RULE
from oddscope.core.project.layout import ENCODER, PREPROCESS, RANKING, RAW_SPACE, space_name, split_space
from oddscope.core.project.store import Project
from oddscope.core.workflows.cluster.blocks import FIT_SAMPLE


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="oddscope")
def main():
    """Oddscope: find, label and explore anomalies in large image collections."""


@main.command()
@click.argument("images", required=False, type=ImageSource())
@PROJECT
@click.option("--reference", type=click.Path(exists=True),
              help="Folder or CSV of known-normal images: test images are scored against them.")
@click.option("--encoder", "-e", default=DEFAULT_ENCODER, show_default=True,
              help=f"{', '.join(entry.label for entry in ENCODERS.values())}.")
@click.option("--weights", type=click.Path(exists=True, dir_okay=False), help="Local weights file for the encoder.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--runtime", type=click.Choice(RUNTIMES), default="auto", show_default=True,
              help="Where the encoder runs: auto = OpenVINO on the CPU for Lite/timm encoders (exported once into "
                   "~/.cache/oddscope, about twice torch's speed), torch on CUDA and for CLIP.")
@click.option("--preprocess", default=None, callback=lambda _ctx, _param, value: _science_steps(value),
              metavar="STEPS", help="Science preprocessing before the encoder, comma-separated, applied in this "
                                    "order: background (a sigma-clipped plane fitted to the border; "
                                    "background=median: the median), clip=N (N sigma around the median), crop=F "
                                    "(the central F of each side), stretch=linear/log/asinh/zscale (the viewer's); "
                                    "e.g. background,clip=3,crop=0.5,stretch=asinh. Recorded in the project: a "
                                    "re-index without --preprocess keeps it; `none` turns it off. Default: none.")
@click.option("--batch-size", default=32, show_default=True)
@click.option("--workers", type=int, default=None, help="Decoding processes (default: one per spare core).")
@click.option("--dtype", type=click.Choice(["float32", "float16"]), default="float32", show_default=True,
              help="How features are stored on disk.")
@click.option("--detectors", default=None, help=f"Comma-separated detectors among {', '.join(DETECTORS)} "
                                                f"(default: {', '.join(DETECTORS.standard())}).")
@click.option("-k", "k", default=5, show_default=True, help="Neighbours for the kNN detectors.")
@click.option("--knn-pca", type=click.IntRange(min=1), default=None, metavar="N",
              help="The kNN detectors index the features reduced by PCA to N dimensions (approximate neighbours; "
                   "an index of 10^7 1280-d items needs ~50 GB, at N=128 ~7 GB).")
@click.option("--max-pixels", type=int, default=None, help="Skip images larger than this many pixels (default 100M).")
@click.option("--no-map", is_flag=True, help="Skip the UMAP map.")
@click.option("--no-clusters", is_flag=True, help="Skip clustering.")
@click.option("--cluster", default=None, metavar="local|auto|ray://HOST:PORT",
              help="Run on Ray: `local` starts it on this machine, `auto` joins this machine's cluster (or "
                   "starts a local one), ray://HOST:PORT connects. Every node must see the images and the "
                   "project. Needs pip install 'oddscope[cluster]'.")
@click.option("--fit-sample", type=click.IntRange(min=1), default=FIT_SAMPLE, show_default=True, metavar="N",
              help="With --cluster: the detectors other than kNN and the map are fitted on a seeded sample of N "
                   "items and applied to the rest in parallel (recorded in the project's runs).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@friendly_errors
def index(images, project_dir, reference, encoder, weights, device, runtime, preprocess, batch_size, workers, dtype,
          detectors, k, knn_pca, max_pixels, no_map, no_clusters, cluster, fit_sample, quiet):
    """Index IMAGES (a folder, searched recursively, or a CSV manifest with a `path` column; either may be an
    fsspec URL such as s3://bucket/prefix, with pip install 'oddscope[cloud]') into a project:
    features, every detector's scores, the map and clusters. Run it again to add new images: only those
    are encoded."""
    from oddscope.core.workflows.pipeline import IndexOptions, NotEnoughImages, index_images

    if cluster:
        _check_cluster(cluster)
    chosen = tuple(d.strip() for d in detectors.split(",")) if detectors else DETECTORS.standard()
    options = IndexOptions(encoder=encoder, weights=weights, device=device, runtime=runtime, preprocess=preprocess, k=k,
                           batch_size=batch_size, workers=workers, dtype=dtype, max_pixels=max_pixels,
                           make_map=not no_map, make_clusters=not no_clusters, detectors=chosen, cluster=cluster,
                           fit_sample=fit_sample, knn_pca=knn_pca)
    bars = Bars(quiet)
    with Project.create(project_dir) as project:
        try:
            summary = index_images(project, images, reference, options, progress=bars)
        except (KeyboardInterrupt, Cancelled):
            bars.close()
            click.echo("Interrupted. Finished batches are saved: run the same command again to resume.", err=True)
            sys.exit(130)
        except NotEnoughImages as err:
            bars.close()
            skipped = err.summary.skipped if err.summary is not None else []
            _print_skipped(project, skipped)
            why = "the skipped files and why are listed above" if skipped else "no image file was found"
            raise click.ClickException(f"{err} ({why}). Add readable images and run the same command again.") from None
        finally:
            bars.close()
        _print_summary(project, summary)


def _science_steps(value: str | None) -> str | None:
    """``--preprocess`` checked before any work, in its canonical form (None: keep the project's)."""
    if value is None:
        return None
    try:
        return str(ScienceSteps.parse(value))
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--preprocess") from None


def _check_cluster(address: str) -> None:
    """Refuse ``--cluster`` before any work when its value is wrong or Ray is not installed."""
    from oddscope.core.workflows.cluster.session import RayMissing, check_address, require_ray

    try:
        check_address(address)
        require_ray()
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--cluster") from None
    except RayMissing as err:
        raise click.ClickException(str(err)) from None


def _print_summary(project: Project, summary) -> None:
    ext = summary.extraction
    enc = summary.encoder
    click.echo(f"Project   {project.root}")
    click.echo(f"Encoder   {enc['spec']} ({enc['dim']}-d, {enc['input_size']} px) weights: {enc['weights']}")
    click.echo(f"Runtime   {enc.get('runtime', '-')}, {enc.get('fast_path', '-')}")
    click.echo(f"Preprocess {enc[PREPROCESS]}")
    skipped = f", {len(summary.skipped)} skipped" if summary.skipped else ""
    click.echo(f"Items     {summary.n_items} ({summary.n_new} new{skipped}); features computed {ext.computed}, "
               f"reused {ext.reused}" + (f", {ext.images_per_second:.1f} img/s" if ext.computed else ""))
    if hasattr(ext, "shards"):  # a cluster run
        startup = (f"; start-up {ext.startup_seconds:.1f}s (to the first shard), then "
                   f"{ext.steady_images_per_second:.1f} img/s" if ext.steady_images_per_second else "")
        click.echo(f"Cluster   {ext.shards} shard(s); {ext.shards_recovered} finished by an interrupted run "
                   f"({ext.recovered} items) were copied in, not computed again{startup}")
    kept = (" (analysis kept: no image added, removed or changed and the same options, so the scores, map "
            "and clusters are up to date)" if summary.analysis_kept else "")
    click.echo(f"Mode      {summary.mode}{kept}")
    for why in DETECTORS.unavailable().values():
        click.echo(f"Left out  detector {why}")
    _print_skipped(project, summary.skipped)
    timing = ", ".join(f"{k} {v:.1f}s" for k, v in summary.seconds.items())
    click.echo(f"Timings   {timing}")
    _print_top(project, 10)


def _print_skipped(project: Project, skipped: list) -> None:
    """The files not indexed, with their reasons (the first ten; all of them are in skipped.csv)."""
    if not skipped:
        return
    click.echo(f"Skipped   {len(skipped)} file(s), listed in {project.layout.skipped_report}:")
    for path, reason in skipped[:10]:
        click.echo(f"  {path}: {reason}")
    if len(skipped) > 10:
        click.echo(f"  ... and {len(skipped) - 10} more")


def _print_top(project: Project, n: int) -> None:
    from oddscope.core.project.table import project_table, ranking_name

    df = project_table(project)
    df = df[df["rank"] > 0].head(n)
    click.echo(f"Top {len(df)} by '{ranking_name(project)}':")
    for _, row in df.iterrows():
        click.echo(f"  {int(row['rank']):>4}  {row['anomaly_score']:.4f}  {row['path']}")


_SPACE = click.option("--space", default=None, help="A feature space of `oddscope guidance` (default: the ranking's "
                      "own; `raw` for the encoder's features).")


def _ranking_in(project: Project, name: str, space: str | None) -> str:
    """``name`` (a detector or ranker, perhaps of a space) moved to ``space``; unchanged without one."""
    if space is None:
        return name
    from oddscope.core.workflows.spaces import space_spec

    base = split_space(name)[0]
    if space == RAW_SPACE:
        return base
    space_spec(project, space)
    return space_name(base, space)


@main.command()
@PROJECT
@friendly_errors
def info(project_dir):
    """What a project holds: items, encoder, weights and preprocessing, detectors, labels (and what to do next,
    if unfinished)."""
    from oddscope.core.workflows.readiness import advice_if_not_analysed

    with Project.open(project_dir) as project:
        items = project.items(with_meta=False)
        enc = ENCODER.read(project) or {}
        click.echo(f"Project   {project.root}")
        click.echo(f"Items     {len(items)}: " + ", ".join(f"{n} {s}" for s, n in items["status"].value_counts().items()))
        click.echo(f"Encoder   {enc.get('spec', '-')}; weights: {enc.get('weights', '-')}")
        click.echo(f"Runtime   {enc.get('runtime', '-')}, {enc.get('fast_path', '-')}")
        click.echo(f"Preprocess {enc.get(PREPROCESS, NONE) if enc else '-'}")
        for name, run in project.latest_runs("detector").items():
            click.echo(f"Detector  {name:<12} {json.dumps(run['params'])} ({run['seconds'] or 0:.1f}s)")
        click.echo(f"Ranking   {RANKING.read(project)}")
        click.echo(f"Labels    {len(project.labels())}")
        advice = advice_if_not_analysed(project.root, items["status"], analysed=bool(project.latest_runs("detector")))
        if advice:
            click.echo(f"Next      {advice}")


@main.command()
@PROJECT
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="Output .csv or .parquet file.")
@_SPACE
@friendly_errors
def export(project_dir, out, space):
    """Write the ranked table: path, rank, anomaly_score, every detector, map, clusters, labels, metadata."""
    from oddscope.core.project.table import export_table

    with Project.open(project_dir) as project:
        export_table(project, out, ranking=_ranking_in(project, RANKING.read(project), space))
        click.echo(f"Wrote {out} ({project.n_items} items)")


@main.group()
def labels():
    """Import or export labels as CSV (columns path, score 0-5, tags separated by ';')."""


@labels.command("import", help="Apply the labels in FILE. Bad rows are reported with their line numbers and "
                "skipped; the good rows are applied, and the exit status is 1 if any row was rejected. "
                + PATH_RULE + " A file of which no path names an image of the project is an error.")
@PROJECT
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@friendly_errors
def labels_import(project_dir, file):
    from oddscope.core.project.labels_io import import_labels

    with Project.open(project_dir, writable=True) as project:
        report = import_labels(project, file)
    if report.nothing_matched:
        raise click.ClickException(report.nothing_matched)
    click.echo(f"Applied {report.applied} label(s); {report.unchanged} unchanged; {len(report.errors)} bad row(s); "
               f"{report.paths}.")
    for line, message in report.errors:
        click.echo(f"  line {line}: {message}", err=True)
    if report.errors:
        sys.exit(1)


@labels.command("export")
@PROJECT
@click.argument("file", type=click.Path(dir_okay=False))
@friendly_errors
def labels_export(project_dir, file):
    """Write every label to FILE."""
    from oddscope.core.project.labels_io import export_labels

    with Project.open(project_dir) as project:
        n = export_labels(project, file)
    click.echo(f"Wrote {n} label(s) to {file}")


@main.command()
@PROJECT
@click.argument("path")
@click.option("-k", "k", default=10, show_default=True)
@click.option("--metric", type=click.Choice(list(METRICS)), default=METRICS.default, show_default=True)
@_SPACE
@friendly_errors
def neighbours(project_dir, path, k, metric, space):
    """The k nearest neighbours of the image at PATH, with distances."""
    from oddscope.core.workflows.retrieval import Neighbours

    with Project.open(project_dir) as project:
        item_id = project.item_id(path)
        if item_id is None:
            raise click.ClickException(f"{path} is not in the project")
        space = split_space(_ranking_in(project, "", space))[1]
        result = Neighbours(project, space=space).of_item(item_id, k=k, metric=metric)
        if result.attrs["approximate"]:
            click.echo(f"Approximate search ({result.attrs['approximate']}): the project's {metric} neighbour index "
                       "holds reduced features, as at survey scale (or after `index --knn-pca`) a full-width "
                       "one would not fit in memory")
        items = project.items(with_meta=False)
        for rank, (nid, dist) in enumerate(zip(result["item_id"], result["distance"]), start=1):
            click.echo(f"{rank:>3}  {dist:.4f}  {project.resolve(items.at[nid, 'path'])}")


@main.group(invoke_without_command=True, help="Detection quality per detector: AUROC, average precision, "
            "recall@10/50/100. A bad is_anomaly value is an error naming its line. " + PATH_RULE
            + " A truth file of which no path names an image of the project is an error.")
@click.option("--project", "-p", "project_dir", type=click.Path(file_okay=False), help="Project folder.")
@click.option("--truth", type=click.Path(exists=True, dir_okay=False),
              help="CSV with path,is_anomaly[,category]; is_anomaly is 0/1, true/false or yes/no.")
@click.option("--threshold", type=float, default=None,
              help="is_anomaly holds probabilities or scores: values at or above this count as anomalies.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
@friendly_errors
def evaluate(ctx, project_dir, truth, threshold, as_json):
    if ctx.invoked_subcommand is not None:
        return
    if not project_dir or not truth:
        raise click.UsageError("evaluate needs --project and --truth")
    from oddscope.core.models.metrics import metrics_table
    from oddscope.core.workflows.evaluate import evaluate_detectors

    with Project.open(project_dir) as project:
        result = evaluate_detectors(project, truth, threshold=threshold)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(f"{result['n_items']} items, {result['n_anomalies']} anomalies"
               + (f", {result['unknown_paths']} truth rows not in the project" if result["unknown_paths"] else "")
               + f" ({result['paths']})")
    click.echo(metrics_table(result["detectors"]))
    cats = sorted({c for per in result["auroc_by_category"].values() for c in per})
    if cats:
        click.echo("\nAUROC per category (category vs normal):")
        click.echo(f"{'detector':<14}" + "".join(f"{c[:11]:>12}" for c in cats))
        for name, per in result["auroc_by_category"].items():
            click.echo(f"{name:<14}" + "".join(f"{per.get(c, float('nan')):>12.3f}" for c in cats))


@evaluate.command("active")
@PROJECT
@click.option("--truth", required=True, type=click.Path(exists=True, dir_okay=False),
              help="CSV with path,relevance (0-5).")
@click.option("--batch", default=10, show_default=True, help="Items the simulated user scores per round.")
@click.option("--rounds", default=10, show_default=True)
@click.option("--seeds", default=5, show_default=True)
@click.option("--methods", default=",".join(RANKERS), show_default=True)
@click.option("--base", default=None, help="Anomaly detector used as the prior (default: the project's).")
@click.option("--threshold", default=4, show_default=True, help="Relevance that counts as found.")
@click.option("--json", "as_json", is_flag=True)
@click.option("--quiet", "-q", is_flag=True)
@friendly_errors
def evaluate_active(project_dir, truth, batch, rounds, seeds, methods, base, threshold, as_json, quiet):
    """Simulate a user scoring the top --batch items each round; compare active-learning methods by the
    relevant items found and among the top 100 of the final ranking."""
    import pandas as pd

    from oddscope.core.workflows.active_eval import results_table, simulate
    from oddscope.core.workflows.active_session import ActiveSession
    from oddscope.core.workflows.evaluate import read_truth

    with Project.open(project_dir) as project:
        session = ActiveSession(project, "plain", base)
        truth_rows = read_truth(project, truth, column="relevance")
    relevance = pd.Series(truth_rows["values"], index=truth_rows["ids"]).groupby(level=0).first().reindex(session.ids)
    known = relevance.notna().to_numpy()
    if not known.any():
        raise click.ClickException(f"no row of {truth} matches an analysed item")
    bars = Bars(quiet or as_json)
    try:
        result = simulate(session.X[known], session.anomaly[known], relevance.to_numpy()[known],
                          methods=tuple(m.strip() for m in methods.split(",")), batch=batch, rounds=rounds,
                          seeds=seeds, threshold=threshold, progress=bars)
    finally:
        bars.close()
    result["params"].update({"base_detector": session.base, "n_items": int(known.sum()),
                             "n_relevant": int((relevance.to_numpy()[known] >= threshold).sum())})
    if as_json:
        click.echo(json.dumps(result, indent=2, default=float))
    else:
        click.echo(f"Anomaly prior: {session.base}")
        click.echo(results_table(result))


@main.command(help="Make NAME the project's active ranking: a detector (knn, iforest, ...) or an active-learning "
                   f"method ({', '.join(RANKERS)}), which is fitted on the labels so far.")
@PROJECT
@click.argument("name")
@click.option("--base", default=None, help="Anomaly detector used as the prior of an active-learning method.")
@_SPACE
@friendly_errors
def rank(project_dir, name, base, space):
    from oddscope.core.project.table import detector_names
    from oddscope.core.workflows.active_session import apply_active_ranking

    with Project.open(project_dir, writable=True) as project:
        known = detector_names(project)
        name = _ranking_in(project, name, space)
        if split_space(name)[0] in RANKERS:
            seconds = apply_active_ranking(project, name, base)
            click.echo(f"Fitted '{name}' on {int(project.labels()['score'].notna().sum())} label(s) in {seconds:.2f}s")
        elif name in known:
            RANKING.write(project, name)
        else:
            raise click.ClickException(f"unknown ranking {name!r}; choose a detector ({', '.join(known)}) "
                                       f"or an active-learning method ({', '.join(RANKERS)})")
        _print_top(project, 10)


def _write_sky_demo(out: Path, n_images: int, seed: int, bars: Bars) -> tuple[Path, None, list[str]]:
    """The sky survey: ``(its manifest: images with their sky as metadata, no reference, how to evaluate it)``."""
    from oddscope.core.data.demo import make_demo

    demo_set = make_demo(out, n_images=n_images, seed=seed, progress=bars)
    bars.close()
    click.echo(f"Wrote {demo_set.n_images} images ({demo_set.n_interesting} interesting, "
               f"{demo_set.n_artefacts} artefacts) and {demo_set.n_nuisance} normal galaxies under a rare blue sky "
               f"to {demo_set.images_dir}; truth in {demo_set.truth_csv}, their sky in {demo_set.manifest_csv}")
    return demo_set.manifest_csv, None, [
        f"Evaluate: oddscope evaluate --project {out / 'project'} --truth {demo_set.truth_csv}",
        f"Ignore the sky's tint: oddscope guidance add --project {out / 'project'} --nuisance sky_tint"]


def _write_inspection_demo(out: Path, n_images: int, seed: int, bars: Bars) -> tuple[Path, Path, list[str]]:
    """The inspection set, ``n_images`` in all (half reference, a quarter normal and a quarter defective test
    images): ``(images folder, reference folder, how to evaluate it)``."""
    from oddscope.core.data.inspection import make_inspection

    n_reference, n_normal = n_images // 2, n_images // 4
    inspection = make_inspection(out, n_reference=n_reference, n_normal=n_normal,
                                 n_defective=n_images - n_reference - n_normal, seed=seed, progress=bars)
    bars.close()
    click.echo(f"Wrote {inspection.n_reference} reference images to {inspection.reference_dir}, "
               f"{inspection.n_normal} normal and {inspection.n_defective} defective test images to "
               f"{inspection.images_dir}, their masks to {inspection.masks_dir}; truth in {inspection.truth_csv}")
    project = out / "project"
    return inspection.images_dir, inspection.reference_dir, [
        f"Evaluate images: oddscope evaluate --project {project} --truth {inspection.truth_csv}",
        f"Evaluate pixels: oddscope evaluate segmentation --project {project} --masks {inspection.masks_dir}"]


@main.command()
@click.option("--inspection", is_flag=True,
              help="Make the inspection set instead: textures and parts with scratches, holes, stains, cracks and "
                   "missing pieces, pixel masks, indexed against known-normal reference images.")
@click.option("--out", "-o", default=None, type=click.Path(file_okay=False),
              help="Folder for the images, truth.csv and project/ [default: oddscope-demo, with --inspection "
                   "oddscope-inspection].")
@click.option("--n-images", type=int, default=None,
              help="Images in all [default: 2000, plus 1% normal galaxies under a rare blue sky; with --inspection "
                   "400: half reference, a quarter normal and a quarter defective test images].")
@click.option("--seed", default=0, show_default=True)
@click.option("--no-gui", is_flag=True, help="Only build the demo; do not open the app.")
@click.option("--quiet", "-q", is_flag=True)
@friendly_errors
def demo(inspection, out, n_images, seed, no_gui, quiet):
    """Make the demo sky survey (galaxy cutouts with planted anomalies), or with --inspection the inspection set,
    index it and open it."""
    from oddscope.core.workflows.pipeline import index_images

    bars = Bars(quiet)
    if inspection:
        out = Path(out or "oddscope-inspection")
        images, reference, next_steps = _write_inspection_demo(out, 400 if n_images is None else n_images, seed, bars)
    else:
        out = Path(out or "oddscope-demo")
        images, reference, next_steps = _write_sky_demo(out, 2000 if n_images is None else n_images, seed, bars)
    with Project.create(out / "project") as project:
        try:
            summary = index_images(project, images, reference, progress=bars)
            if inspection:  # the maps too, so the app opens with every heat map ready
                from oddscope.core.workflows.segmentation import PixelMaps

                PixelMaps(project).compute(progress=bars)
        finally:
            bars.close()
        _print_summary(project, summary)
    click.echo("\n" + "\n".join(next_steps))
    if not no_gui:
        open_app = (click.get_current_context().obj or {}).get("open_app")
        if open_app is None:
            raise click.ClickException(f"no desktop app in this command; open the demo with "
                                       f"`oddscope open {out / 'project'}`")
        open_app(out / "project")


main.add_command(maps)
main.add_command(guidance)
evaluate.add_command(evaluate_segmentation)
evaluate.add_command(evaluate_guidance)
