"""Thumbnails for the ranking grid and the neighbour strip, decoded off the GUI thread.

Decoding a 16-bit TIFF or a FITS file takes tens of milliseconds, far too long
for a paint event, so :meth:`ThumbnailCache.get` never decodes: it answers from
memory (or ``None``) and queues a load.  Loads run newest first, so when the
user scrolls fast the cells now on screen arrive before the ones scrolled past,
and requests older than ``max_pending`` are forgotten (a view asks again when
it paints the cell again).  Finished thumbnails are written as PNGs into
``cache_dir`` (tagged with a ``CACHEDIR.TAG``, so no scan indexes them) so the
next session starts warm; a PNG older than its source file is made again.
Loaders are tasks in an ``interactive`` lane (:mod:`oddscope.app.worker`), so
thumbnails never queue behind project work.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtCore import QCoreApplication, QObject, QPoint, QRect, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen, QPixmap

from oddscope.app.worker import Lane, Task
from oddscope.core.data.images import load_array, to_rgb8
from oddscope.core.data.ingest import tag_cache_folder


class ThumbnailCache(QObject):
    """Item thumbnails (longest side ``size``) from a disk cache, made by loader tasks in an ``interactive`` lane.

    ``ready(item_id)`` is emitted on the GUI thread when a requested thumbnail
    is in memory; the next :meth:`get` returns it.  Unreadable images get
    :attr:`placeholder` instead of an error.  Files are named by item id, so
    ``cache_dir`` belongs to one project and one ``size``.  ``lane``: where the
    loaders run (the window shares its own; by default the cache makes one).
    """

    ready = Signal(int)

    def __init__(self, cache_dir, size: int = 128, capacity: int = 2000, max_pending: int = 512,
                 parent: QObject | None = None, lane: Lane | None = None):
        super().__init__(parent)
        if size < 8:
            raise ValueError(f"thumbnail size must be at least 8 px, got {size}")
        self.cache_dir = Path(cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        tag_cache_folder(self.cache_dir)  # a scan of the folder it sits in never indexes thumbnails
        self.size = int(size)
        self.placeholder = _placeholder(self.size)
        self._capacity = int(capacity)
        self._pixmaps: OrderedDict[int, QPixmap] = OrderedDict()
        self._generation = 0
        self._jobs = _Jobs(int(max_pending))
        self._jobs.bridge.loaded.connect(self._on_loaded)
        self.lane = lane or Lane("interactive", parent=self)
        self._loaders = 0  # this cache's loader tasks that have not ended yet
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.close)

    def get(self, item_id: int, path) -> QPixmap | None:
        """The thumbnail if it is in memory; otherwise ``None`` and a load is queued."""
        item_id = int(item_id)
        pixmap = self._pixmaps.get(item_id)
        if pixmap is not None:
            self._pixmaps.move_to_end(item_id)
            return pixmap
        if self._jobs.add(item_id, str(path), self._generation):
            self._start_loader()
        return None

    def _start_loader(self) -> None:
        """Start one more loader task unless the lane's thread count of them runs already."""
        if self._loaders >= self.lane.pool.maxThreadCount():
            return
        self._loaders += 1
        loader = Task("thumbnails", "Loading thumbnails", _load_queued, self._jobs, self.cache_dir, self.size)
        loader.done.connect(self._loader_ended)
        self.lane.submit(loader)

    def _loader_ended(self, _outcome: str) -> None:
        """A loader found the queue empty (or was cancelled): requests queued since then get a new one."""
        self._loaders -= 1
        if self._jobs.has_pending():
            self._start_loader()

    def clear(self, disk: bool = False) -> None:
        """Forget thumbnails in memory and queued loads (``disk``: the PNG cache too, e.g. after a restretch)."""
        self._generation += 1
        self._pixmaps.clear()
        self._jobs.drop_pending()
        if disk:
            self.lane.wait()
            shutil.rmtree(self.cache_dir, ignore_errors=True)
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            tag_cache_folder(self.cache_dir)

    def close(self) -> None:
        """Drop queued loads and wait for the running ones (before the application exits)."""
        self._jobs.drop_pending()
        self.lane.wait()

    def _on_loaded(self, item_id: int, generation: int, image) -> None:
        self._jobs.finished(item_id)
        if generation != self._generation:
            return
        self._pixmaps[item_id] = self.placeholder if image.isNull() else QPixmap.fromImage(image)
        while len(self._pixmaps) > self._capacity:
            self._pixmaps.popitem(last=False)
        self.ready.emit(item_id)


class ThumbnailUser:
    """Mixin for item models that draw thumbnails: listens to one cache's ``ready`` at a time."""

    _thumbnails: ThumbnailCache | None = None

    def set_thumbnail_cache(self, cache: ThumbnailCache | None) -> None:
        if self._thumbnails is not None:
            self._thumbnails.ready.disconnect(self._on_thumbnail)
        self._thumbnails = cache
        if cache is not None:
            cache.ready.connect(self._on_thumbnail)

    def _on_thumbnail(self, item_id: int) -> None:
        raise NotImplementedError


class _Bridge(QObject):
    """Carries results from loader threads to the GUI thread (a queued connection).

    Not parented to the cache: a loader keeps it alive, so a result finished
    after the cache is gone is simply not delivered.
    """

    loaded = Signal(int, int, QImage)  # item id, generation, thumbnail (null: unreadable)


class _Jobs:
    """Pending loads (newest first) shared by the GUI thread and the loaders."""

    def __init__(self, max_pending: int):
        self.bridge = _Bridge()
        self._max_pending = max_pending
        self._lock = threading.Lock()
        self._pending: OrderedDict[int, tuple[str, int]] = OrderedDict()
        self._running: set[int] = set()  # taken by a loader, result not yet handled

    def add(self, item_id: int, path: str, generation: int) -> bool:
        """Queue (or move to the front) a request; False when that item is being loaded already."""
        with self._lock:
            if item_id in self._running:
                return False
            self._pending[item_id] = (path, generation)
            self._pending.move_to_end(item_id)
            while len(self._pending) > self._max_pending:
                self._pending.popitem(last=False)
            return True

    def has_pending(self) -> bool:
        with self._lock:
            return bool(self._pending)

    def take(self):
        """Loader thread: the newest request ``(item_id, path, generation)``, or None to stop."""
        with self._lock:
            if not self._pending:
                return None
            item_id, (path, generation) = self._pending.popitem(last=True)
            self._running.add(item_id)
            return item_id, path, generation

    def finished(self, item_id: int) -> None:
        with self._lock:
            self._running.discard(item_id)

    def drop_pending(self) -> None:
        with self._lock:
            self._pending.clear()


def _load_queued(jobs: _Jobs, cache_dir: Path, size: int, progress=None) -> None:
    """Loader task (worker thread): works through the queue, newest first, until it is empty or cancelled."""
    while not progress.cancelled and (job := jobs.take()) is not None:
        item_id, path, generation = job
        image = thumbnail_image(path, cache_dir / f"{item_id}.png", size)
        jobs.bridge.loaded.emit(item_id, generation, image)


def thumbnail_image(path: str, cached: Path, size: int) -> QImage:
    """Worker thread: the thumbnail from ``cached`` if it is current, else made from ``path`` and saved.

    A null QImage when the image cannot be read: a bad file must never take the view down.
    """
    try:
        source_mtime = os.stat(path).st_mtime
    except OSError:
        source_mtime = None  # source unreachable (unmounted disk?): a cached thumbnail still helps
    try:
        if cached.exists() and (source_mtime is None or cached.stat().st_mtime >= source_mtime):
            image = QImage(str(cached))
            if not image.isNull():
                return image
        thumb = Image.fromarray(to_rgb8(load_array(path, target_side=size)))
        thumb.thumbnail((size, size))
        rgb = np.ascontiguousarray(np.asarray(thumb.convert("RGB")))
    except Exception:  # noqa: BLE001 - any unreadable file becomes the placeholder
        return QImage()
    _save_atomically(thumb, cached)
    h, w = rgb.shape[:2]
    return QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


def _save_atomically(image: Image.Image, target: Path) -> None:
    """Write then rename, so a concurrent reader (another session) never sees half a PNG."""
    tmp = target.with_name(f".{target.stem}-{os.getpid()}-{threading.get_ident()}.png")
    try:
        image.save(tmp, format="PNG", compress_level=1)
        os.replace(tmp, target)
    except OSError:  # read-only or full disk: the thumbnail still shows, it is just not kept
        tmp.unlink(missing_ok=True)


def paint_thumbnail(painter: QPainter, well: QRect, pixmap: QPixmap | None) -> None:
    """A dark square ``well`` with ``pixmap`` (if any) fitted and centred in it: how every view shows a thumbnail."""
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor("#15171b"))
    painter.drawRect(well)
    if pixmap is not None and not pixmap.isNull():
        target = QRect(QPoint(0, 0), pixmap.size().scaled(well.size(), Qt.AspectRatioMode.KeepAspectRatio))
        target.moveCenter(well.center())
        painter.drawPixmap(target, pixmap)


def _placeholder(size: int) -> QPixmap:
    """Grey square with an X: "this image could not be read"."""
    pixmap = QPixmap(size, size)
    pixmap.fill(QColor("#3a3f47"))
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(QPen(QColor("#9aa3ad"), max(2, size // 40), Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
    inset = size // 3
    painter.drawLine(inset, inset, size - inset, size - inset)
    painter.drawLine(size - inset, inset, inset, size - inset)
    painter.end()
    return pixmap
