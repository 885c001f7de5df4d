"""Synthetic sky-survey cutouts with planted anomalies, for demos and tests.

Oddscope needs a data set that ships with the code (the machine may be
offline), whose truth is known, and that is hard in the right way: normal
galaxies vary a lot in size, shape, orientation, brightness, colour, seeing,
sky level, noise and faint neighbours (the *nuisance*), while the planted
anomalies share all of that variation and differ only in structure.  That is
what makes detectors comparable: a score that only tracks brightness or noise
fails here, one that sees morphology does not.

Images are rendered in linear flux per band (RGB = i, r, g, as in common
survey colour composites), blurred by a per-band Gaussian seeing, put on a sky
with noise and mapped to 8 bit with a fixed asinh stretch, so faint things
stay visible and bright cores saturate as in real cutouts.  Artefacts are
added where a detector would add them: trails and stars in flux, dead columns
and hot pixels in the read-out values.

After the survey proper come the *nuisance-only outliers* (guidance's test case):
ordinary galaxies observed through a rare blue-tinted sky.  They are normal
(``is_anomaly=0``, category ``nuisance_outlier``) but rare, so every density
detector ranks them high; guidance on the ``sky_tint`` metadata column should not.
The nuisance values of every image (``sky_tint``, ``sky_level``, ``seeing``) are
written to ``manifest.csv`` (what ``oddscope demo`` indexes) and ``truth.csv``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from oddscope.core.progress import as_progress

INTERESTING = ("ring", "arc", "merger")
ARTEFACTS = ("trail", "star", "dead_column", "hot_pixels")
CATEGORIES = ("normal",) + INTERESTING + ARTEFACTS
NUISANCE_OUTLIER = "nuisance_outlier"  # a normal galaxy under a rare sky tint (not in CATEGORIES: no anomaly)
NUISANCE_COLUMNS = ("sky_tint", "sky_level", "seeing")  # per image, in manifest.csv and truth.csv

# Relevance used by the active-learning evaluation: what a scientist wants to
# see first (interesting), is indifferent to (normal), or wants filtered out.
RELEVANCE = {"normal": 1, **{c: 5 for c in INTERESTING}, **{c: 0 for c in ARTEFACTS}, NUISANCE_OUTLIER: 1}

# Flux ratios (R, G, B) = (i, r, g) of stellar populations.
_RED = np.array([1.0, 0.78, 0.48])  # old stars: ellipticals, bulges
_DISC = np.array([0.9, 0.82, 0.7])  # mixed disc light
_BLUE = np.array([0.55, 0.75, 1.0])  # young stars: arms, rings, lensed sources
_PSF_BAND_SCALE = np.array([0.93, 1.0, 1.1])  # seeing is worse in g than in i
_STRETCH_SOFT = 0.035  # asinh softening (linear below, log above)
_STRETCH_MAX = 4.0  # flux that maps to 255
_STRETCH_GAIN = 255.0 / float(np.arcsinh(_STRETCH_MAX / _STRETCH_SOFT))
_BLUE_SKY = np.array([0.0, 0.02, 0.09], np.float32)  # the rare tint's added sky flux (R, G, B)


@dataclass
class DemoSet:
    """Where a generated demo set lives and what it contains."""

    root: Path
    images_dir: Path
    truth_csv: Path
    n_images: int  # the survey proper; the nuisance-only outliers come after it
    n_interesting: int
    n_artefacts: int
    n_nuisance: int = 0
    manifest_csv: Path | None = None  # path + the nuisance columns: what `oddscope demo` indexes

    @property
    def n_files(self) -> int:
        return self.n_images + self.n_nuisance


@lru_cache(maxsize=4)
def pixel_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Read-only float32 row and column coordinates of a ``size`` x ``size`` image (cached: every render uses them)."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    y.flags.writeable = x.flags.writeable = False
    return y, x


class _Canvas:
    """Pixel grid and random draws shared by all parts of one cutout.

    Everything is float32: it halves the rendering time, which matters when
    the app generates thousands of cutouts on a laptop.
    """

    def __init__(self, size: int, rng: np.random.Generator):
        self.size = size
        self.rng = rng
        self.scale = size / 64.0  # all lengths below are quoted for 64 px
        self.y, self.x = pixel_grid(size)
        self.centre = (size - 1) / 2.0
        self.flux = np.zeros((3, size, size), np.float32)

    def colour(self, base: np.ndarray, spread: float = 0.08) -> np.ndarray:
        return (base * np.exp(self.rng.normal(0.0, spread, 3))).astype(np.float32)

    def jittered_centre(self, spread: float = 2.5) -> tuple[float, float]:
        cx, cy = self.centre + self.rng.normal(0.0, spread * self.scale, 2)
        return float(cx), float(cy)

    def _frame(self, cx, cy, q, theta):
        dx, dy = self.x - float(cx), self.y - float(cy)
        c, s = float(np.cos(theta)), float(np.sin(theta))
        return dx * c + dy * s, (dy * c - dx * s) / float(q)

    def radius(self, cx, cy, q, theta) -> np.ndarray:
        """Elliptical radius (along the major axis) of an object with axis ratio q."""
        return np.hypot(*self._frame(cx, cy, q, theta))

    def polar(self, cx, cy, q, theta) -> tuple[np.ndarray, np.ndarray]:
        """Radius and angle in the object's own (de-projected) frame."""
        u, v = self._frame(cx, cy, q, theta)
        return np.hypot(u, v), np.arctan2(v, u)

    def add(self, profile: np.ndarray, flux: float, colour: np.ndarray) -> None:
        """Add a profile scaled to ``flux`` (summed over the grid) in ``colour``."""
        total = float(profile.sum())
        if total > 0:
            scaled = profile.astype(np.float32, copy=False) * np.float32(flux / total)
            self.flux += scaled[None] * colour[:, None, None]


def _sersic(r: np.ndarray, r_eff: float, n: float) -> np.ndarray:
    # b_n approximation good to a few per cent for 0.5 < n < 10; the softened
    # radius keeps high-n cores finite before the seeing blurs them anyway.
    b_n = 2.0 * n - 1.0 / 3.0
    r_soft = np.sqrt(r * r + 0.25)
    return np.exp(-b_n * ((r_soft / r_eff) ** (1.0 / n) - 1.0))


def _galaxy_flux(rng: np.random.Generator) -> float:
    return float(np.exp(rng.uniform(np.log(10.0), np.log(80.0))))


def _paint_elliptical(cv: _Canvas, flux: float, cx: float, cy: float, r_eff=None) -> None:
    rng = cv.rng
    r_eff = r_eff or rng.uniform(3.0, 10.0) * cv.scale
    r = cv.radius(cx, cy, rng.uniform(0.45, 1.0), rng.uniform(0, np.pi))
    cv.add(_sersic(r, r_eff, rng.uniform(2.5, 4.5)), flux, cv.colour(_RED))


def _paint_disc(cv: _Canvas, flux: float, cx: float, cy: float) -> None:
    rng = cv.rng
    q, theta = rng.uniform(0.2, 1.0), rng.uniform(0, np.pi)
    r_scale = rng.uniform(2.5, 7.5) * cv.scale
    r = cv.radius(cx, cy, q, theta)
    bulge_frac = rng.uniform(0.0, 0.5) if rng.random() < 0.7 else 0.0
    disc = np.exp(-r / r_scale)
    cv.add(disc, flux * (1 - bulge_frac), cv.colour(_DISC))
    if bulge_frac > 0:
        rb = cv.radius(cx, cy, min(1.0, q + 0.4), theta)
        cv.add(_sersic(rb, rng.uniform(0.8, 2.0) * cv.scale, 3.0), flux * bulge_frac, cv.colour(_RED))
    if rng.random() < 0.5:  # faint spiral arms, most visible on face-on discs
        arms, pitch = int(rng.integers(2, 4)), np.radians(rng.uniform(12, 30))
        _, phi = cv.polar(cx, cy, q, theta)
        wave = np.cos(arms * (phi - np.log(r + 1.0) / float(np.tan(pitch))) + rng.uniform(0, 2 * np.pi))
        pattern = ((1 + wave) / 2) ** 3 * np.exp(-r / (1.4 * r_scale)) * (1 - np.exp(-((r / r_scale) ** 2)))
        cv.add(pattern, flux * rng.uniform(0.2, 0.45), cv.colour(_BLUE))


def _paint_normal(cv: _Canvas) -> None:
    """A random elliptical or disc galaxy near the centre."""
    flux = _galaxy_flux(cv.rng)
    cx, cy = cv.jittered_centre()
    if cv.rng.random() < 0.4:
        _paint_elliptical(cv, flux, cx, cy)
    else:
        _paint_disc(cv, flux, cx, cy)


def _paint_ring(cv: _Canvas) -> None:
    """Collisional ring: knotty blue ring, nucleus often off-centre, faint disc."""
    rng = cv.rng
    flux = _galaxy_flux(rng)
    cx, cy = cv.jittered_centre()
    q, theta = rng.uniform(0.55, 1.0), rng.uniform(0, np.pi)
    radius = rng.uniform(7.0, 15.0) * cv.scale
    width = rng.uniform(0.9, 1.8) * cv.scale
    r, phi = cv.polar(cx, cy, q, theta)
    knots = 1 + 0.5 * np.cos(int(rng.integers(3, 8)) * phi + rng.uniform(0, 2 * np.pi))
    ring_flux = flux * rng.uniform(0.45, 0.85) * radius / (10.0 * cv.scale)  # keep its surface brightness up
    cv.add(np.exp(-0.5 * ((r - radius) / width) ** 2) * knots, ring_flux, cv.colour(_BLUE))
    offset = rng.uniform(0.0, 0.35) * radius
    angle = rng.uniform(0, 2 * np.pi)
    nx, ny = cx + offset * np.cos(angle), cy + offset * np.sin(angle)
    rn = cv.radius(nx, ny, rng.uniform(0.6, 1.0), rng.uniform(0, np.pi))
    nucleus = _sersic(rn, rng.uniform(1.0, 2.5) * cv.scale, rng.uniform(1.5, 4.0))
    cv.add(nucleus, flux * rng.uniform(0.25, 0.45), cv.colour(_RED))
    cv.add(np.exp(-r / (0.6 * radius)), flux * 0.15, cv.colour(_DISC))


def _paint_arc(cv: _Canvas) -> None:
    """Strong lens: elliptical lens galaxy with one or two blue tangential arcs."""
    rng = cv.rng
    flux = _galaxy_flux(rng)
    cx, cy = cv.jittered_centre()
    _paint_elliptical(cv, flux, cx, cy, r_eff=rng.uniform(2.5, 5.5) * cv.scale)
    einstein = rng.uniform(9.0, 16.0) * cv.scale
    r, phi = cv.polar(cx, cy, rng.uniform(0.85, 1.0), 0.0)
    radial = np.exp(-0.5 * ((r - einstein) / (rng.uniform(0.8, 1.4) * cv.scale)) ** 2)
    start = rng.uniform(0, 2 * np.pi)
    arc_flux = flux * rng.uniform(0.25, 0.45)
    n_arcs = 1 if rng.random() < 0.5 else 2
    colour = cv.colour(_BLUE, 0.15)
    for k in range(n_arcs):
        centre = start + k * np.pi + rng.normal(0, 0.3)
        dphi = (phi - centre + np.pi) % (2 * np.pi) - np.pi
        extent = float(np.radians(rng.uniform(20, 50)))
        cv.add(radial * np.exp(-0.5 * (dphi / extent) ** 2), arc_flux / n_arcs ** 0.5, colour)


def _tail(cv: _Canvas, cx, cy, start_angle, length, curl, width) -> np.ndarray:
    """A curved tidal stream leaving (cx, cy), fading and widening outward."""
    t = np.linspace(0.0, 1.0, 40)
    radius = length * t + 1.0
    angle = start_angle + curl * t
    px, py = cx + radius * np.cos(angle), cy + radius * np.sin(angle)
    w = width * (1 + t)
    d2 = (cv.x[None] - px[:, None, None]) ** 2 + (cv.y[None] - py[:, None, None]) ** 2
    blobs = np.exp(-d2 / (2 * w[:, None, None] ** 2))
    return np.tensordot(1 - 0.7 * t, blobs, axes=1)


def _paint_merger(cv: _Canvas) -> None:
    """Two overlapping galaxies (double nucleus) with tidal tails."""
    rng = cv.rng
    flux = _galaxy_flux(rng)
    mx, my = cv.jittered_centre(2.0)
    sep = rng.uniform(6.0, 15.0) * cv.scale
    axis = rng.uniform(0, 2 * np.pi)
    ratio = rng.uniform(0.35, 1.0)
    curl = rng.choice([-1.0, 1.0]) * rng.uniform(1.0, 2.2)
    tails = rng.uniform(0.15, 0.35, 2) * (rng.random(2) < 0.8)
    for sign, share, tail in ((1.0, 1.0, tails[0]), (-1.0, ratio, tails[1])):
        gx, gy = mx + sign * sep / 2 * np.cos(axis), my + sign * sep / 2 * np.sin(axis)
        r = cv.radius(gx, gy, rng.uniform(0.5, 1.0), rng.uniform(0, np.pi))
        body = _sersic(r, rng.uniform(1.5, 4.5) * cv.scale, rng.uniform(1.0, 4.0))
        cv.add(body, flux * 0.3 * share, cv.colour(_RED))
        # Tails leave each galaxy away from the other one and curl the same way.
        out = axis if sign > 0 else axis + np.pi
        length = rng.uniform(12.0, 22.0) * cv.scale
        stream = _tail(cv, gx, gy, out + rng.normal(0, 0.4), length, curl, 1.4 * cv.scale)
        cv.add(stream, flux * tail * share, cv.colour(_DISC))


def _paint_background_sources(cv: _Canvas) -> None:
    """Faint compact field objects anywhere in the cutout (nuisance)."""
    rng = cv.rng
    for _ in range(rng.poisson(1.2)):
        sx, sy = rng.uniform(0, cv.size, 2)
        r = cv.radius(sx, sy, rng.uniform(0.4, 1.0), rng.uniform(0, np.pi))
        colour = cv.colour(_DISC, 0.3)
        profile = _sersic(r, rng.uniform(0.6, 1.8) * cv.scale, 1.5)
        cv.add(profile, float(np.exp(rng.uniform(np.log(0.3), np.log(3.0)))), colour)


def _add_trail(cv: _Canvas, image: np.ndarray) -> None:
    """Satellite trail: a sharp line through the whole cutout, often in one band only."""
    rng = cv.rng
    angle = rng.uniform(0, np.pi)
    px, py = cv.jittered_centre(10.0)
    dist = (cv.x - px) * np.sin(angle) - (cv.y - py) * np.cos(angle)
    line = rng.uniform(0.15, 1.0) * np.exp(-0.5 * (dist / (rng.uniform(0.4, 0.9) * cv.scale)) ** 2)
    bands = np.ones(3) if rng.random() < 0.5 else np.eye(3)[rng.integers(3)]
    image += line[None] * bands[:, None, None]


def _add_star(cv: _Canvas, image: np.ndarray) -> int:
    """Bright saturated star with diffraction spikes; returns its pixel column."""
    rng = cv.rng
    sx, sy = np.clip(cv.jittered_centre(12.0), 3, cv.size - 4)
    peak = rng.uniform(8.0, 40.0)
    sigma = rng.uniform(1.0, 1.6) * cv.scale
    dx, dy = cv.x - sx, cv.y - sy
    r2 = dx * dx + dy * dy
    core = np.exp(-r2 / (2 * sigma**2)) + 0.05 * (1 + r2 / (3 * sigma) ** 2) ** -1.5
    spike_len = rng.uniform(8.0, 20.0) * cv.scale
    spikes = sum(
        np.exp(-0.5 * (along / (0.6 * cv.scale)) ** 2) * np.exp(-np.abs(across) / spike_len)
        for along, across in ((dx, dy), (dy, dx))
    )
    colour = cv.colour(np.array([1.0, 0.95, 0.9]), 0.15)
    image += (peak * core + 0.08 * peak * spikes)[None] * colour[:, None, None]
    return int(np.clip(np.rint(sx), 0, cv.size - 1))


def _bleed(cv: _Canvas, pixels: np.ndarray, col: int) -> None:
    """Charge from the saturated core spills up and down the star's column."""
    rows = np.nonzero((pixels[:, col] == 255).all(axis=1))[0]
    if rows.size == 0:
        return
    up, down = cv.rng.integers(3, 16, 2) * cv.scale
    top, bottom = int(max(0, rows.min() - up)), int(min(cv.size, rows.max() + down + 1))
    width = 1 if cv.rng.random() < 0.6 else 2
    pixels[top:bottom, col : col + width] = 255


def _add_dead_columns(cv: _Canvas, pixels: np.ndarray) -> None:
    """One to three dead columns, each from a defect to the read-out edge."""
    rng = cv.rng
    first = int(round(cv.centre + rng.normal(0, 8 * cv.scale)))
    n = rng.integers(1, 4)
    cols = first + (np.arange(n) if rng.random() < 0.5 else rng.integers(-12, 13, n))
    for col in np.clip(cols, 0, cv.size - 1):
        start = 0 if rng.random() < 0.5 else int(rng.integers(0, cv.size // 2))
        pixels[start:, col] = 0


def _add_hot_pixels(cv: _Canvas, pixels: np.ndarray) -> None:
    """Scattered saturated single pixels, in one band or in all of them."""
    rng = cv.rng
    n = rng.integers(10, 40)
    ys, xs = rng.integers(0, cv.size, (2, n))
    all_bands = rng.random(n) < 0.4
    bands = rng.integers(0, 3, n)
    for y, x, full, band in zip(ys, xs, all_bands, bands):
        if full:
            pixels[y, x] = 255
        else:
            pixels[y, x, band] = 255


def _stretch(flux: np.ndarray) -> np.ndarray:
    """Fixed asinh stretch to 8 bit, as survey colour composites use."""
    scaled = np.arcsinh(np.maximum(flux, 0.0) * (1.0 / _STRETCH_SOFT)) * _STRETCH_GAIN
    return np.clip(scaled + 0.5, 0.0, 255.0).astype(np.uint8)


_PAINTERS = {"ring": _paint_ring, "arc": _paint_arc, "merger": _paint_merger}


def render_cutout(category: str, rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """Render one ``size`` x ``size`` RGB uint8 cutout of the given category.

    Artefacts are drawn on top of an ordinary galaxy, so only the artefact
    itself tells them apart from normals.
    """
    return render_with_nuisance(category, rng, size)[0]


def render_with_nuisance(category: str, rng: np.random.Generator, size: int = 64) -> tuple[np.ndarray, dict]:
    """:func:`render_cutout` (same draws, same pixels) and the image's nuisance values (:data:`NUISANCE_COLUMNS`).

    ``nuisance_outlier`` renders a normal galaxy under the rare blue sky.
    """
    tinted = category == NUISANCE_OUTLIER
    category = "normal" if tinted else category
    if category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}; expected one of {CATEGORIES}")
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")
    cv = _Canvas(size, rng)
    _PAINTERS.get(category, _paint_normal)(cv)
    _paint_background_sources(cv)

    seeing = rng.uniform(0.7, 1.5) * cv.scale
    image = np.stack([gaussian_filter(band, seeing * s) for band, s in zip(cv.flux, _PSF_BAND_SCALE)])
    if category == "trail":
        _add_trail(cv, image)
    elif category == "star":
        star_col = _add_star(cv, image)
    sky_level = rng.uniform(0.005, 0.03)
    sky = sky_level * cv.colour(np.ones(3), 0.06)
    if tinted:  # its strength varies, as a filter or a twilight sky would
        sky = sky + _BLUE_SKY * np.float32(rng.uniform(0.5, 2.0))
    noise = rng.uniform(0.003, 0.013) * cv.colour(np.ones(3), 0.1)
    image += sky[:, None, None] + noise[:, None, None] * rng.standard_normal(image.shape, dtype=np.float32)
    pixels = _stretch(image).transpose(1, 2, 0).copy()

    if category == "star":
        _bleed(cv, pixels, star_col)
    elif category == "dead_column":
        _add_dead_columns(cv, pixels)
    elif category == "hot_pixels":
        _add_hot_pixels(cv, pixels)
    nuisance = {"sky_tint": "blue" if tinted else "none", "sky_level": round(float(sky_level), 5),
                "seeing": round(float(seeing / cv.scale), 3)}
    return pixels, nuisance


def _category_plan(n_images: int, anomaly_fraction: float, artefact_fraction: float, rng) -> list[str]:
    """Shuffled category per image; the remainder of an uneven split goes to random categories."""
    for name, frac in (("anomaly_fraction", anomaly_fraction), ("artefact_fraction", artefact_fraction)):
        if not 0.0 <= frac <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {frac}")
    n_interesting = int(round(n_images * anomaly_fraction))
    n_artefacts = int(round(n_images * artefact_fraction))
    if n_interesting + n_artefacts > n_images:
        raise ValueError("anomaly_fraction + artefact_fraction exceeds 1")
    plan = ["normal"] * (n_images - n_interesting - n_artefacts)
    for names, count in ((INTERESTING, n_interesting), (ARTEFACTS, n_artefacts)):
        per = np.full(len(names), count // len(names))
        per[rng.choice(len(names), count % len(names), replace=False)] += 1
        for name, k in zip(names, per):
            plan += [name] * int(k)
    return [plan[i] for i in rng.permutation(n_images)]


def make_demo(
    out_dir,
    n_images: int = 2000,
    seed: int = 0,
    size: int = 64,
    anomaly_fraction: float = 0.02,
    artefact_fraction: float = 0.02,
    nuisance_fraction: float = 0.01,
    progress=None,
) -> DemoSet:
    """Write ``out_dir/images/gal_*.png``, ``out_dir/truth.csv`` and ``out_dir/manifest.csv``.

    The same arguments give byte-identical files.  Each image has its own
    random stream (spawned from ``seed``), so image *i* does not depend on how
    the others were drawn.  Earlier ``gal_*.png`` files in the folder are
    removed so a re-run never mixes two sets.  The ``n_images`` of the survey
    are followed by ``round(n_images * nuisance_fraction)`` nuisance-only
    outliers: the survey's images, names and order do not depend on them.
    """
    if n_images < 1:
        raise ValueError(f"n_images must be positive, got {n_images}")
    if not 0.0 <= nuisance_fraction <= 1.0:
        raise ValueError(f"nuisance_fraction must be in [0, 1], got {nuisance_fraction}")
    progress = as_progress(progress)
    n_nuisance = int(round(n_images * nuisance_fraction))
    plan_seed, *image_seeds = np.random.SeedSequence(seed).spawn(n_images + 1 + n_nuisance)
    categories = _category_plan(n_images, anomaly_fraction, artefact_fraction, np.random.default_rng(plan_seed))
    categories += [NUISANCE_OUTLIER] * n_nuisance
    n_files = len(categories)
    root = Path(out_dir)
    images_dir = root / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    for stale in images_dir.glob("gal_*.png"):
        stale.unlink()

    digits = max(5, len(str(n_files - 1)))
    rows = []
    for i, (category, image_seed) in enumerate(zip(categories, image_seeds)):
        pixels, nuisance = render_with_nuisance(category, np.random.default_rng(image_seed), size)
        rel_path = f"images/gal_{i:0{digits}d}.png"
        Image.fromarray(pixels).save(root / rel_path, format="PNG")
        is_anomaly = int(category not in ("normal", NUISANCE_OUTLIER))
        rows.append((rel_path, is_anomaly, category, RELEVANCE[category], *(nuisance[c] for c in NUISANCE_COLUMNS)))
        if i % 100 == 99 or i == n_files - 1:
            progress.update("demo", i + 1, n_files)

    truth_csv, manifest_csv = root / "truth.csv", root / "manifest.csv"
    _write_csv(truth_csv, ("path", "is_anomaly", "category", "relevance", *NUISANCE_COLUMNS), rows)
    _write_csv(manifest_csv, ("path", *NUISANCE_COLUMNS), [(row[0], *row[4:]) for row in rows])
    n_interesting = sum(c in INTERESTING for c in categories)
    n_artefacts = sum(c in ARTEFACTS for c in categories)
    return DemoSet(root, images_dir, truth_csv, n_images, n_interesting, n_artefacts, n_nuisance, manifest_csv)


def _write_csv(path: Path, header: tuple, rows: list) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
