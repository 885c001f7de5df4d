"""Synthetic industrial-inspection images with pixel masks, for per-pixel anomaly maps.

Defect segmentation needs a set that ships with the code (the machine may be
offline), whose every defective pixel is known, and that is hard in the right
way: normal parts vary (a woven texture's phase, angle and yarn, a nut's
position, turn, size and lighting, sensor noise), so a map that flags any
change from one template fails, while the defects (scratches, holes, stains,
cracks, missing chunks) are small and local, so a global image score alone does
not locate them.

Each image is rendered in float RGB: a clean scene, then at most one defect
composited over it with an opacity map, then sensor noise.  The defect's
opacity is cut to zero below :data:`_MIN_OPACITY`, so the mask (opacity > 0) is
exactly the set of pixels the defect changes; rendering the same seed without
the defect (``with_defect=False``) gives the same image outside the mask.
Normal test images get no mask file: a missing mask means normal.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import distance_transform_edt

from oddscope.core.data.demo import pixel_grid
from oddscope.core.progress import as_progress

KINDS = ("texture", "object")
DEFECTS = {"texture": ("scratch", "hole", "stain", "crack"), "object": ("scratch", "hole", "stain", "missing")}
_MIN_OPACITY = 0.2  # fainter defect pixels are dropped, so the mask is exactly the pixels the defect changes
_MIN_SIZE = 64
_FILE_GLOBS = tuple(f"{kind}_*.png" for kind in KINDS)


@dataclass
class InspectionSet:
    """Where a generated inspection set lives and what it contains."""

    root: Path
    reference_dir: Path  # known-normal images (for `oddscope index --reference`)
    images_dir: Path  # the test images: normal and defective
    masks_dir: Path  # one 0/255 PNG per defective test image, same file name
    truth_csv: Path  # path,is_anomaly,kind,defect for every test image
    n_reference: int
    n_normal: int
    n_defective: int


@dataclass
class _Scene:
    """A clean rendering: ``image`` (H, W, 3) in [0, 1], ``body`` (H, W): where a defect may lie (the part's
    coverage), ``backdrop`` (H, W, 3): what shows where a piece of the part is missing."""

    image: np.ndarray
    body: np.ndarray
    backdrop: np.ndarray


def _streams(seed, n: int) -> list[np.random.Generator]:
    """``n`` independent generators derived from ``seed`` without consuming it (scene, defect, noise)."""
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return [np.random.default_rng(np.random.SeedSequence(ss.entropy, spawn_key=(*ss.spawn_key, k)))
            for k in range(n)]


def _tint(rng: np.random.Generator, base, spread: float = 0.03) -> np.ndarray:
    return (np.asarray(base) * np.exp(rng.normal(0.0, spread, 3))).astype(np.float32)


def _lighting(rng: np.random.Generator, size: int, strength: float) -> np.ndarray:
    """A gentle linear illumination gradient in a random direction, mean 1."""
    y, x = pixel_grid(size)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = ((x - size / 2) * np.cos(angle) + (y - size / 2) * np.sin(angle)) / size
    return 1.0 + rng.uniform(0.0, strength) * ramp


def _render_texture(rng: np.random.Generator, size: int) -> _Scene:
    """Plain-weave fabric (or wire mesh): random phase, a few degrees of turn, yarn-to-yarn and lighting jitter."""
    y, x = pixel_grid(size)
    theta = np.radians(rng.uniform(-4.0, 4.0))
    period = 18.0 * size / 256 * rng.uniform(0.96, 1.04)
    u = (x * np.cos(theta) + y * np.sin(theta)) / period + rng.uniform(0, 1)
    v = (y * np.cos(theta) - x * np.sin(theta)) / period + rng.uniform(0, 1)
    iu, iv = np.floor(u), np.floor(v)
    fu, fv = u - iu, v - iv
    warp_on_top = (iu + iv) % 2 == 0
    across = np.where(warp_on_top, fu, fv)  # position across the visible thread, 0..1
    along = np.where(warp_on_top, fv, fu)  # and along it: a thread dips where it passes under the next
    profile = np.sin(np.pi * across) ** 0.6 * (0.78 + 0.22 * np.sin(np.pi * along))
    yarn = 1.0 + 0.05 * rng.standard_normal(64)  # each thread a little brighter or darker
    thread = np.where(warp_on_top, iu, iv + 32).astype(np.int64) % 64
    fibres = 0.035 * np.sin(2 * np.pi * (4.0 * across + 1.5 * along) + rng.uniform(0, 2 * np.pi))
    shade = (0.1 + 0.72 * profile * yarn[thread] + fibres) * _lighting(rng, size, 0.25)
    colour = _tint(rng, [0.66, 0.63, 0.56]) * rng.uniform(0.88, 1.12)
    image = shade[..., None] * colour
    backdrop = np.broadcast_to(np.float32(0.05), image.shape)  # the dark backing behind the weave
    return _Scene(image.astype(np.float32), np.ones((size, size), np.float32), backdrop)


def _render_object(rng: np.random.Generator, size: int) -> _Scene:
    """A machined hex nut on a plain belt: random shift, turn and size, light direction and strength."""
    y, x = pixel_grid(size)
    s = size / 256
    cx, cy = (size - 1) / 2 + rng.normal(0.0, 6.0 * s, 2)
    turn = rng.uniform(0, np.pi / 3)
    apothem = 72.0 * s * rng.uniform(0.97, 1.03)
    dx, dy = x - cx, y - cy
    r, phi = np.hypot(dx, dy), np.arctan2(dy, dx)
    flat = np.max([np.abs(dx * np.cos(turn + k * np.pi / 3) + dy * np.sin(turn + k * np.pi / 3))
                   for k in range(3)], axis=0)
    hole_r, chamfer_r = 0.5 * apothem, 1.07 * apothem
    body = (np.clip(apothem + 0.5 - flat, 0, 1) * np.clip(r - hole_r + 0.5, 0, 1)).astype(np.float32)

    light = np.radians(225.0) + rng.normal(0.0, 0.2)
    lit = np.cos(phi - light)
    face = 0.62 + 0.07 * lit * r / apothem + 0.025 * np.sin(2 * np.pi * r / (3.0 * s))  # turning marks
    bevel = 0.5 + 0.3 * lit  # the chamfer that rounds the corners faces outward
    bore = 0.32 - 0.18 * lit  # the bore's chamfer faces inward: lit from the other side
    shade = np.where(r > chamfer_r, bevel, np.where(r < hole_r + 6.0 * s, bore, face))
    metal = _tint(rng, [0.8, 0.81, 0.84]) * rng.uniform(0.85, 1.1)
    belt = _tint(rng, [0.24, 0.3, 0.34], 0.06) * rng.uniform(0.85, 1.15)
    backdrop = (_lighting(rng, size, 0.2)[..., None] * belt).astype(np.float32)
    image = backdrop * (1 - body[..., None]) + (shade[..., None] * metal) * body[..., None]
    return _Scene(image.astype(np.float32), body, backdrop)


def _room(scene: _Scene) -> np.ndarray:
    """Per pixel, how far the part extends around it: distance to its edge or to the image border."""
    return distance_transform_edt(np.pad(scene.body >= 1.0, 1))[1:-1, 1:-1]


def _spot(rng: np.random.Generator, room: np.ndarray, clearance: float) -> tuple[float, float]:
    """A random point with at least ``clearance`` pixels of the part around it (see :func:`_room`)."""
    inside = np.argwhere(room > clearance)
    y, x = inside[rng.integers(len(inside))]
    return float(x) + rng.uniform(-0.5, 0.5), float(y) + rng.uniform(-0.5, 0.5)


def _on_part(points: np.ndarray, room: np.ndarray, clearance: float = 3.0) -> bool:
    """Whether every point of a curve (N, 2) as (x, y) lies on the part, ``clearance`` pixels from its edge."""
    cols, rows = np.clip(np.rint(points).astype(int), 0, room.shape[0] - 1).T
    return bool((room[rows, cols] >= clearance).all())


_TRIES = 50  # curves redrawn until they lie on the part; the last try is kept (and cut to the part)


def _curve_distance(points: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Distance of every pixel to a densely sampled curve ``points`` (N, 2) as (x, y) (inf far from it), and
    how far along the curve (0 at its start, 1 at its end) the nearest sample lies."""
    y, x = pixel_grid(size)
    dist = np.full((size, size), np.inf, np.float32)
    along = np.zeros((size, size), np.float32)
    lo = np.clip(np.floor(points.min(axis=0)) - 6, 0, size).astype(int)
    hi = np.clip(np.ceil(points.max(axis=0)) + 7, 0, size).astype(int)
    box = np.s_[lo[1]:hi[1], lo[0]:hi[0]]
    d2 = (x[box][None] - points[:, 0, None, None]) ** 2 + (y[box][None] - points[:, 1, None, None]) ** 2
    nearest = d2.argmin(axis=0)
    dist[box] = np.sqrt(np.take_along_axis(d2, nearest[None], axis=0)[0])
    along[box] = nearest / max(1, len(points) - 1)
    return dist, along


def _stroke(dist: np.ndarray, half_width) -> np.ndarray:
    """Antialiased line of ``half_width`` pixels (a number or a per-pixel array)."""
    return np.clip(half_width + 0.5 - dist, 0.0, 1.0)


def _scratch(rng, scene: _Scene, s: float):
    """A thin, gently curved line where the surface is scuffed bright (or scored dark)."""
    size, room = scene.body.shape[0], _room(scene)
    for _ in range(_TRIES):
        start = np.array(_spot(rng, room, 6 * s))
        heading, length = rng.uniform(0, 2 * np.pi), rng.uniform(40, 90) * s
        end = start + length * np.array([np.cos(heading), np.sin(heading)])
        middle = (start + end) / 2 + rng.uniform(-0.3, 0.3) * length * np.array([-np.sin(heading), np.cos(heading)])
        t = np.linspace(0.0, 1.0, int(2 * length) + 2)[:, None]
        points = (1 - t) ** 2 * start + 2 * t * (1 - t) * middle + t**2 * end
        if _on_part(points, room):
            break
    opacity = _stroke(_curve_distance(points, size)[0], rng.uniform(0.7, 1.4) * s) * rng.uniform(0.8, 1.0)
    target = 0.55 + 0.45 * scene.image if rng.random() < 0.6 else 0.3 * scene.image
    return opacity, target


def _crack(rng, scene: _Scene, s: float):
    """A dark, jagged fissure that wanders and narrows toward its tip."""
    size, room = scene.body.shape[0], _room(scene)
    for _ in range(_TRIES):
        x, y = _spot(rng, room, 8 * s)
        heading = rng.uniform(0, 2 * np.pi)
        corners = [(x, y)]
        for _ in range(int(rng.integers(5, 9))):
            heading += rng.normal(0.0, 0.6)
            step = rng.uniform(5, 10) * s
            x, y = x + step * np.cos(heading), y + step * np.sin(heading)
            corners.append((x, y))
        corners = np.array(corners)
        t = np.linspace(0, len(corners) - 1, int(len(corners) * 20 * s) + 2)
        points = np.stack([np.interp(t, np.arange(len(corners)), corners[:, k]) for k in range(2)], axis=1)
        if _on_part(points, room):
            break
    dist, along = _curve_distance(points, size)
    half_width = rng.uniform(1.1, 1.8) * s * (1.0 - 0.5 * along)
    return _stroke(dist, half_width), 0.12 * scene.image


def _hole(rng, scene: _Scene, s: float):
    """A round hole: dark inside, with a bright burr on its rim."""
    size = scene.body.shape[0]
    y, x = pixel_grid(size)
    radius = rng.uniform(4.0, 9.0) * s
    cx, cy = _spot(rng, _room(scene), radius + 3 * s)
    d = np.hypot(x - cx, y - cy)
    dark = _tint(rng, [0.05, 0.05, 0.055], 0.1)
    rim = d > radius - 1.5 * s
    target = np.where(rim[..., None], np.float32(0.85), dark).astype(np.float32)
    return _stroke(d, radius), np.broadcast_to(target, scene.image.shape)


def _stain(rng, scene: _Scene, s: float):
    """A soft, irregular blob of rust, oil or dried residue."""
    size = scene.body.shape[0]
    y, x = pixel_grid(size)
    reach = rng.uniform(10.0, 20.0) * s
    cx, cy = _spot(rng, _room(scene), reach)
    field = np.zeros((size, size), np.float32)
    for _ in range(int(rng.integers(3, 6))):
        bx, by = cx + rng.normal(0, 0.5 * reach), cy + rng.normal(0, 0.5 * reach)
        sigma = rng.uniform(0.4, 0.8) * reach
        field += np.exp(-((x - bx) ** 2 + (y - by) ** 2) / (2 * sigma**2))
    field /= field.max()
    opacity = rng.uniform(0.6, 0.9) * np.clip((field - 0.35) / 0.3, 0.0, 1.0)
    kind = rng.integers(3)
    if kind == 0:  # rust: reddish brown
        target = scene.image * _tint(rng, [0.95, 0.5, 0.22], 0.06) + 0.04
    elif kind == 1:  # oil: dark
        target = scene.image * _tint(rng, [0.35, 0.33, 0.3], 0.06)
    else:  # dried residue: pale
        target = 0.45 * scene.image + _tint(rng, [0.55, 0.54, 0.45], 0.05)
    return opacity, target


def _missing(rng, scene: _Scene, s: float):
    """A chunk broken off the part's outer edge: the backdrop shows there."""
    size = scene.body.shape[0]
    y, x = pixel_grid(size)
    rim = np.argwhere((scene.body > 0.5) & (scene.body < 1.0))  # the outer edge and the bore's
    reach = np.hypot(*(rim - np.argwhere(scene.body >= 1.0).mean(axis=0)).T)
    outer = rim[reach > np.percentile(reach, 60)]  # the outer edge is longer: its pixels are the farther 60 %
    cy, cx = outer[rng.integers(len(outer))]
    radius = rng.uniform(12.0, 22.0) * s
    return _stroke(np.hypot(x - cx, y - cy), radius), scene.backdrop


_DEFECT_PAINTERS = {"scratch": _scratch, "crack": _crack, "hole": _hole, "stain": _stain, "missing": _missing}
_SCENES = {"texture": _render_texture, "object": _render_object}


def render_inspection(kind: str, defect: str | None, seed, size: int = 256,
                      with_defect: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """One ``size`` x ``size`` RGB uint8 image of ``kind`` with ``defect`` (None: normal) and its bool mask.

    ``seed`` (an int or a SeedSequence) fixes everything; ``with_defect=False`` renders the same part and
    noise without the defect (and an empty mask), so the two differ exactly inside the mask.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
    if defect is not None and defect not in DEFECTS[kind]:
        raise ValueError(f"unknown defect {defect!r} for {kind}; expected one of {DEFECTS[kind]}")
    if size < _MIN_SIZE:
        raise ValueError(f"size must be at least {_MIN_SIZE} pixels, got {size}")
    scene_rng, defect_rng, noise_rng = _streams(seed, 3)
    scene = _SCENES[kind](scene_rng, size)
    image, mask = scene.image, np.zeros((size, size), bool)
    if defect is not None and with_defect:
        opacity, target = _DEFECT_PAINTERS[defect](defect_rng, scene, size / 256)
        opacity = opacity * scene.body  # on the part only (missing parts take the part's own coverage away)
        opacity = np.where(opacity >= _MIN_OPACITY, opacity, 0.0).astype(np.float32)[..., None]
        image = image * (1 - opacity) + target * opacity
        mask = opacity[..., 0] > 0
    sigma = noise_rng.uniform(0.008, 0.016)
    image = image + sigma * noise_rng.standard_normal(image.shape, dtype=np.float32)
    return np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8), mask


def _split(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` counts that differ by at most one (the first ones get the remainder)."""
    return [total // parts + (i < total % parts) for i in range(parts)]


def _test_plan(kind: str, n_normal: int, n_defective: int, rng: np.random.Generator) -> list[str | None]:
    """Shuffled defect per test image of one kind (None: normal), defect types as even as the count allows."""
    types = DEFECTS[kind]
    plan: list[str | None] = [None] * n_normal
    for name, count in zip([types[i] for i in rng.permutation(len(types))], _split(n_defective, len(types))):
        plan += [name] * count
    return [plan[i] for i in rng.permutation(len(plan))]


def _fresh_folder(folder: Path) -> Path:
    """Create ``folder``, removing the images an earlier run wrote there, so a re-run never mixes two sets."""
    folder.mkdir(parents=True, exist_ok=True)
    for pattern in _FILE_GLOBS:
        for stale in folder.glob(pattern):
            stale.unlink()
    return folder


def make_inspection(out, n_reference: int = 200, n_normal: int = 100, n_defective: int = 100, size: int = 256,
                    seed: int = 0, progress=None) -> InspectionSet:
    """Write ``reference/``, ``images/``, ``masks/`` and ``truth.csv`` under ``out``; counts are split evenly
    over the two kinds (texture gets an odd one).

    The defaults give about 300 normal and 100 defective images in all.  The same arguments give
    byte-identical files; each image has its own random stream keyed by (folder, kind, number), so an image
    does not depend on how many others there are.  Masks are 0/255 PNGs named as their image; normal test
    images have none.
    """
    for name, count in (("n_reference", n_reference), ("n_normal", n_normal), ("n_defective", n_defective)):
        if count < 0:
            raise ValueError(f"{name} must not be negative, got {count}")
    if n_normal + n_defective < 1:
        raise ValueError("the test set needs at least one image (n_normal + n_defective)")
    progress = as_progress(progress)
    root = Path(out)
    folders = {name: _fresh_folder(root / name) for name in ("reference", "images", "masks")}
    digits = max(4, len(str(max(n_reference, n_normal + n_defective))))
    plan = []  # (folder, kind, number, defect)
    for kind, n_ref in zip(KINDS, _split(n_reference, len(KINDS))):
        plan += [("reference", kind, i, None) for i in range(n_ref)]
    normal_split, defective_split = _split(n_normal, len(KINDS)), _split(n_defective, len(KINDS))
    for k, (kind, n_ok, n_bad) in enumerate(zip(KINDS, normal_split, defective_split)):
        plan_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2, k)))
        plan += [("images", kind, i, defect) for i, defect in enumerate(_test_plan(kind, n_ok, n_bad, plan_rng))]

    rows = []
    for done, (folder, kind, i, defect) in enumerate(plan, start=1):
        key = (0 if folder == "reference" else 1, KINDS.index(kind), i)
        pixels, mask = render_inspection(kind, defect, np.random.SeedSequence(seed, spawn_key=key), size)
        name = f"{kind}_{i:0{digits}d}.png"
        Image.fromarray(pixels).save(folders[folder] / name, format="PNG")
        if defect is not None:
            Image.fromarray((mask * 255).astype(np.uint8)).save(folders["masks"] / name, format="PNG")
        if folder == "images":
            rows.append((f"images/{name}", int(defect is not None), kind, defect or ""))
        if done % 25 == 0 or done == len(plan):
            progress.update("demo", done, len(plan))

    truth_csv = root / "truth.csv"
    with open(truth_csv, "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(("path", "is_anomaly", "kind", "defect"))
        writer.writerows(sorted(rows))
    return InspectionSet(root, folders["reference"], folders["images"], folders["masks"], truth_csv,
                         n_reference, n_normal, n_defective)
