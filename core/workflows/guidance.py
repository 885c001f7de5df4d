"""Guidance: named feature spaces that ignore what the user calls a nuisance, or keep only what they call relevant.

Following Red PANDA (Cohen, Kahana, Hoshen, ICLR 2023): learn a representation that
holds no information on the nuisance attribute, then score by kNN density in it.  A
rare nuisance value (the rarer wafer type, another telescope, a tinted sky) otherwise
floods the top of every ranking, since density estimators find rare *anything*.

A space is added with a spec (``kind`` nuisance, relevant or words, the ``attribute``:
a metadata column of the manifest or a tag prefix such as ``pose`` for ``pose:left``
tags, the ``method`` of :data:`~oddscope.core.models.registry.GUIDANCE_METHODS`, a
``name``; a words space has phrases instead of an attribute, embedded by the project's
CLIP text tower); this module fits its transform on the analysed
items, stores it (:mod:`oddscope.core.workflows.spaces`), scores every detector of the
raw analysis in it (``score_<detector>@<space>``, by the same code as the raw scores)
and records how well linear and non-linear probes still predict the attribute before
and after.  Removing the space removes all of that: guidance is undone by deleting it.
A re-analysis refits every space on the new items (:func:`refresh_spaces`).
"""

from __future__ import annotations

import time

import numpy as np

from oddscope.core.models.guidance.erasure import concept_matrix, fit_leace, fit_relevant
from oddscope.core.models.guidance.probes import probe_nuisance
from oddscope.core.models.projection import MapProjection
from oddscope.core.models.rankers import INTERESTING_SCORE
from oddscope.core.models.registry import GUIDANCE_METHODS
from oddscope.core.progress import as_progress
from oddscope.core.project.layout import (
    ANOMALY_DETECTOR,
    ENCODER,
    GUIDANCE,
    MAP_ARRAY,
    RANKING,
    SCORE_PREFIX,
    TEST_IDS,
    detector_of,
    space_name,
    split_space,
)
from oddscope.core.project.store import ITEM_COLUMNS, Project
from oddscope.core.workflows.scoring import constructor_params, scatter, score_detectors
from oddscope.core.workflows.spaces import (
    check_space_name,
    feature_key,
    fit_basis,
    in_basis,
    save_transform,
    space_features,
    space_spec,
    spaces,
)

KINDS = ("nuisance", "relevant", "words")
WORDS_METHOD = "clip-prompts"  # the method of a words space (and only of one)
ERASERS = ("leace", "nonlinear")  # the methods that erase a nuisance attribute


def check_method(method: str, kind: str = "nuisance") -> str:
    """``method`` if it can make a space of ``kind`` here; ValueError saying why not (unknown, wrong kind, or
    its optional package missing, with the install hint)."""
    entry = GUIDANCE_METHODS.entry(method)
    allowed = (WORDS_METHOD,) if kind == "words" else ERASERS if kind == "nuisance" else ("leace",)
    if method not in allowed:
        raise ValueError(f"a {kind} space is made with {' or '.join(allowed)}, not {method!r}"
                         + ("; attributes in words: `oddscope guidance text`" if method == WORDS_METHOD else ""))
    if entry.missing():
        raise ValueError(entry.missing())
    return method


def words_reason(encoder_spec: str) -> str:
    """Why attributes in words cannot be used with the encoder ``encoder_spec`` ("" when they can)."""
    missing = GUIDANCE_METHODS[WORDS_METHOD].missing()
    if missing:
        return missing
    if not encoder_spec.startswith("clip:"):
        return f"needs a CLIP encoder (a text tower); this project's is {encoder_spec or 'none yet'}"
    return ""


def attribute_values(project: Project, attribute: str, ids) -> tuple[np.ndarray, str]:
    """``(values, source)``: the attribute of each of ``ids`` (None where an item has none).

    ``source`` is ``metadata`` for a metadata column, ``tags`` for a tag prefix: ``pose`` (or
    ``pose:``) reads ``left`` from a tag ``pose:left``.
    """
    ids = np.asarray(ids, dtype=np.int64)
    items = project.items()
    meta_columns = [c for c in items.columns if c not in ITEM_COLUMNS]
    if attribute in meta_columns:
        column = items[attribute].reindex(ids)
        return np.array([None if _missing(v) else v for v in column], dtype=object), "metadata"
    prefix = attribute.rstrip(":") + ":"
    tags = project.labels()["tags"]
    values = {}
    for item_id, item_tags in tags.items():
        found = [t[len(prefix):] for t in item_tags if t.startswith(prefix) and len(t) > len(prefix)]
        if found:
            values[int(item_id)] = found[0]
    if not values:
        raise ValueError(f"{attribute!r} is neither a metadata column ({', '.join(meta_columns) or 'none'}) nor a "
                         f"tag prefix (no tag starts with {prefix!r})")
    return np.array([values.get(int(i)) for i in ids], dtype=object), "tags"


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value == ""


def analysed_ids(project: Project) -> tuple[np.ndarray, np.ndarray]:
    """``(test ids, reference ids)`` of the last analysis (reference: the known-normal items it scored against)."""
    test_ids = project.load_array(TEST_IDS)
    if test_ids is None:
        raise ValueError(f"{project.root} has not been analysed yet; run `oddscope index`")
    key = feature_key(project)
    done = set(project.features_done(key).tolist())
    ref_ids = np.array([i for i in project.ids_with_status("ok", "reference") if i in done], dtype=np.int64)
    return test_ids.astype(np.int64), ref_ids


def add_space(project: Project, name: str, attribute: str | None = None, kind: str = "nuisance",
              method: str = "leace", weight: float | None = None, nuisance_words=(), relevant_words=(),
              progress=None) -> dict:
    """Fit the space ``name`` and score every detector in it; returns its spec (also stored in the project).

    ``kind="nuisance"``: erase ``attribute`` (metadata column or tag prefix) with ``method`` (leace, or
    nonlinear: :func:`~oddscope.core.models.guidance.head.fit_head`).  ``kind="relevant"``: keep
    the directions separating the items labelled 4-5 from the other labelled ones (``weight``: see
    :func:`~oddscope.core.models.guidance.erasure.fit_relevant`).  ``kind="words"`` (a CLIP project):
    remove the directions of the ``nuisance_words`` phrases, keep those of the ``relevant_words``
    (:func:`~oddscope.core.models.guidance.prompts.fit_prompts`; ``method`` is then clip-prompts).
    """
    check_space_name(name)
    if kind not in KINDS:
        raise ValueError(f"guidance kind must be one of {', '.join(KINDS)}, not {kind!r}")
    method = WORDS_METHOD if kind == "words" else method
    check_method(method, kind)
    if name in spaces(project):
        raise ValueError(f"a feature space {name!r} exists; remove it first (`oddscope guidance remove {name}`)")
    if kind == "nuisance" and not attribute:
        raise ValueError("a nuisance space needs the attribute to ignore (a metadata column or a tag prefix)")
    spec = {"kind": kind, "attribute": attribute if kind == "nuisance" else None, "method": method,
            "weight": weight}
    if kind == "words":
        spec.update(nuisance_words=[w.strip() for w in nuisance_words if w.strip()],
                    relevant_words=[w.strip() for w in relevant_words if w.strip()])
        if not spec["nuisance_words"] and not spec["relevant_words"]:
            raise ValueError("attributes in words need at least one nuisance or relevant phrase")
    try:
        spec = _fit_space(project, name, spec, progress)
    except BaseException:  # failed or cancelled: leave no half-made space behind
        if name in spaces(project):
            remove_space(project, name)
        raise
    GUIDANCE.write(project, {**spaces(project), name: spec})
    return spec


def _fit_space(project: Project, name: str, spec: dict, progress=None, detectors: dict | None = None) -> dict:
    """Fit the transform of ``spec``, save it, score ``detectors`` (default: the raw analysis's) in the space;
    returns the spec with what it measured."""
    progress = as_progress(progress)
    t0 = time.perf_counter()
    test_ids, ref_ids = analysed_ids(project)
    all_ids = np.concatenate([test_ids, ref_ids])
    raw = space_features(project, all_ids)
    progress.update(f"guidance {name}: fitting", 0, 1)
    if spec["kind"] == "words":
        transform, fit_ids, source = _fit_words(project, spec), all_ids[:0], "words"
    elif spec["kind"] == "nuisance":
        values, source = attribute_values(project, spec["attribute"], all_ids)
        known = np.array([v is not None for v in values])
        fit_ids, target = all_ids[known], values[known]
        X_fit = raw[known]
        if spec["method"] == "nonlinear":
            from oddscope.core.models.guidance.head import fit_head

            transform = fit_head(X_fit, *concept_matrix(target), progress=progress)
        else:
            transform = fit_leace(X_fit, concept_matrix(target)[0])
    else:
        scores = project.labels()["score"].dropna()
        scores = scores[scores.index.isin(test_ids)]
        fit_ids, source = scores.index.to_numpy(np.int64), "labels"
        target = (scores.to_numpy() >= INTERESTING_SCORE)
        X_fit = space_features(project, fit_ids)
        transform = fit_relevant(X_fit, target, weight=spec["weight"])
    progress.check()
    progress.update(f"guidance {name}: probing", 0, 1)
    before = after = None  # a words space has no attribute to probe (`evaluate guidance` probes any column)
    if spec["kind"] != "words":
        before, after = probe_nuisance(X_fit, target), probe_nuisance(transform.apply(X_fit), target)
    progress.check()
    guided = transform.apply(raw)
    del raw
    basis = fit_basis(guided)
    save_transform(project, name, transform, basis)
    # The spec is stored before scoring: the scores are read through it.
    spec = {**spec, "source": source, "encoder": feature_key(project), "rank": transform.rank,
            "dims": basis.dim if basis is not None else guided.shape[1],
            "n_fit": int(len(fit_ids)), "probe_before": before, "probe_after": after}
    GUIDANCE.write(project, {**spaces(project), name: spec})
    features = in_basis(basis, guided)  # what space_features(project, all_ids, name) reads back
    X = features[:len(test_ids)]
    mode = "reference" if len(ref_ids) else "unsupervised"
    memory = features[len(test_ids):] if len(ref_ids) else X
    score_detectors(project, detectors or _raw_detectors(project), X, memory, test_ids,
                    feature_key(project, name), mode, space=name, progress=progress)
    return {**spec, "seconds": round(time.perf_counter() - t0, 3)}


def _fit_words(project: Project, spec: dict):
    """The transform of a words space: its phrases embedded by the text tower of the project's own CLIP
    (ValueError when the project's encoder has none)."""
    from oddscope.core.models.guidance.prompts import fit_prompts, phrase_directions
    from oddscope.core.workflows.segmentation import project_encoder

    reason = words_reason((ENCODER.read(project) or {}).get("spec", ""))
    if reason:
        raise ValueError(f"attributes in words {reason}")
    encoder = project_encoder(project, device="cpu")
    return fit_prompts(phrase_directions(encoder.encode_text, spec["nuisance_words"]),
                       phrase_directions(encoder.encode_text, spec["relevant_words"]), encoder.dim,
                       weight=spec["weight"])


def _raw_detectors(project: Project) -> dict:
    """The detectors of the raw analysis with the arguments they ran with: ``{name: kwargs}``."""
    scored = {detector_of(a) for a in project.array_names() if a.startswith(SCORE_PREFIX)}
    runs = project.latest_runs("detector")
    return {name: constructor_params(runs[name]["params"])
            for name in runs if name in scored and split_space(name)[1] is None and name != "patchmap"}


def compute_space_map(project: Project, name: str, progress=None) -> float:
    """The UMAP map of the analysed items in the space ``name`` (on request: minutes at 10^5 items), saved as
    ``umap@<name>``; returns its seconds.  Removing the space removes it; a re-analysis drops it (stale)."""
    space_spec(project, name)
    t0 = time.perf_counter()
    test_ids, _ = analysed_ids(project)
    projection = MapProjection().fit(space_features(project, test_ids, name), progress=progress)
    project.save_array(space_name(MAP_ARRAY, name), scatter(projection.embedding_, test_ids, project.n_items))
    seconds = time.perf_counter() - t0
    project.record_run("map", space_name(MAP_ARRAY, name), {"n": len(test_ids)}, feature_key(project, name), seconds)
    return seconds


def remove_space(project: Project, name: str) -> None:
    """Undo a space: its transform, scores, rankings and indexes go; a ranking in it falls back to the raw one."""
    space_spec(project, name)
    for array in project.array_names():
        if split_space(array)[1] == name:
            project.delete_array(array)
    project.layout.guidance_model(name).unlink(missing_ok=True)
    for index in project.layout.index_dir.glob(f"{feature_key(project, name)}-*"):
        index.unlink()
    GUIDANCE.write(project, {k: v for k, v in spaces(project).items() if k != name})
    for setting in (RANKING, ANOMALY_DETECTOR):
        value = setting.read(project)
        if value and split_space(value)[1] == name:
            setting.write(project, split_space(value)[0])


def refresh_spaces(project: Project, detectors: dict, progress=None) -> list[str]:
    """Refit every space on the current analysis (after a re-index) and score ``detectors`` (``{name: kwargs}``,
    the analysis's) in it; returns the names of those that no longer fit (e.g. the attribute lost all but one
    value): they are removed, with their scores."""
    dropped = []
    for name, spec in spaces(project).items():
        for array in project.array_names():  # scores of detectors this analysis no longer runs; the stale map
            if split_space(array)[1] == name and (array.startswith(SCORE_PREFIX) or
                                                  split_space(array)[0] == MAP_ARRAY):
                project.delete_array(array)
        try:
            GUIDANCE.write(project, {**spaces(project), name: _fit_space(project, name, spec, progress, detectors)})
        except ValueError:
            remove_space(project, name)
            dropped.append(name)
    return dropped
