"""The project store: the database of one project folder, and the :class:`Project` handle scripts open.

What lives where in the folder, and what arrays and settings are called, is
:mod:`oddscope.core.project.layout` (``project.layout``).  This module owns the
database: items, metadata, labels (+ undo history), runs, settings, and the
per-item arrays saved beside it.

SQLite runs in WAL mode with ``synchronous=FULL``: a label write that returned
is on disk, whatever happens next (crash, SIGKILL, power loss).  Only one
process may write a project at a time (:mod:`oddscope.core.project.lock`);
any number may read.  Item ids are dense row numbers (0, 1, 2, ...) so that
an item's id is its row in every array.
"""

from __future__ import annotations

import datetime as _dt
import getpass
import json
import os
import socket
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from oddscope.core.data.remote import URL_PATTERN, is_url
from oddscope.core.project.layout import DB_NAME, ProjectLayout
from oddscope.core.project.lock import LockHeld, WriterLock

SCHEMA_VERSION = 1
MIN_SCORE, MAX_SCORE = 0, 5
ITEM_COLUMNS = ("path", "role", "status", "reason")  # what Project.items() holds besides the metadata

_SCHEMA = """
CREATE TABLE IF NOT EXISTS info(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items(
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL DEFAULT 'test' CHECK (role IN ('test', 'reference')),
    size INTEGER, mtime REAL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'ok', 'skipped', 'missing')),
    reason TEXT,
    meta TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS features_done(encoder TEXT NOT NULL, item_id INTEGER NOT NULL,
    PRIMARY KEY (encoder, item_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS labels(
    item_id INTEGER PRIMARY KEY REFERENCES items(id),
    score INTEGER CHECK (score IS NULL OR score BETWEEN 0 AND 5),
    tags TEXT NOT NULL DEFAULT '[]', who TEXT, at TEXT);
CREATE TABLE IF NOT EXISTS label_history(
    seq INTEGER PRIMARY KEY AUTOINCREMENT, item_id INTEGER NOT NULL,
    old_score INTEGER, old_tags TEXT, new_score INTEGER, new_tags TEXT,
    who TEXT, at TEXT, undone INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS runs(
    id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, name TEXT NOT NULL,
    params TEXT NOT NULL DEFAULT '{}', encoder TEXT, at TEXT NOT NULL, seconds REAL);
CREATE TABLE IF NOT EXISTS settings(key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class ProjectError(Exception):
    """A project that cannot be opened or used as asked; the message says why and what to do."""


class ProjectLocked(ProjectError):
    """Another process is writing this project."""


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name in some containers
        return "unknown"


class Project:
    """An open project folder.  Use :meth:`create` or :meth:`open`; close it (or use ``with``)."""

    def __init__(self, root: Path, conn: sqlite3.Connection, lock: WriterLock | None):
        self.root = root
        self.layout = ProjectLayout(root)
        self._conn = conn
        self._lock = lock

    # ----------------------------------------------------------------- opening
    @classmethod
    def create(cls, root, exist_ok: bool = True) -> "Project":
        """Create (or, with ``exist_ok``, open for writing) the project at ``root``."""
        root = Path(root).resolve()
        if ProjectLayout(root).is_project():
            if not exist_ok:
                raise ProjectError(f"{root} already holds a project")
            return cls.open(root, writable=True)
        if root.exists() and any(root.iterdir()):
            raise ProjectError(f"{root} exists and is not an Oddscope project; choose an empty or new folder")
        root.mkdir(parents=True, exist_ok=True)
        return cls.open(root, writable=True, _new=True)

    @classmethod
    def open(cls, root, writable: bool = False, _new: bool = False) -> "Project":
        root = Path(root).resolve()
        layout = ProjectLayout(root)
        db = layout.db
        if not _new and not layout.is_project():
            raise ProjectError(f"{root} is not an Oddscope project (no {DB_NAME}); create one with `oddscope index`")
        lock = None
        if writable:
            lock = WriterLock(layout.lock)
            try:
                lock.acquire(f"pid {os.getpid()} on {socket.gethostname()} since {_now()}")
            except LockHeld as held:
                raise ProjectLocked(
                    f"Project {root} is open for writing by {held.holder}. "
                    "Close it there first (you can still open it read-only).") from None
        try:
            if writable:
                conn = sqlite3.connect(db, timeout=30, isolation_level=None, check_same_thread=False)
            else:
                conn = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=30,
                                       isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout=30000")
            if writable:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                if _new:
                    conn.executescript(_SCHEMA)
            project = cls(root, conn, lock)
            if _new:
                project._set_info("schema_version", str(SCHEMA_VERSION))
                project._set_info("created", _now())
            project._check_version()
            return project
        except BaseException:
            if lock:
                lock.release()
            raise

    def _check_version(self) -> None:
        try:
            row = self._conn.execute("SELECT value FROM info WHERE key='schema_version'").fetchone()
        except sqlite3.DatabaseError as err:
            raise ProjectError(f"{self.root} is not a readable Oddscope project: {err}") from None
        version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise ProjectError(
                f"{self.root} was written by a newer Oddscope (project format {version}; this version reads "
                f"up to {SCHEMA_VERSION}). Upgrade Oddscope to open it.")
        if version < SCHEMA_VERSION:
            raise ProjectError(
                f"{self.root} was written by an older Oddscope (project format {version}) that this version "
                f"cannot migrate to format {SCHEMA_VERSION}. Export its labels with that version "
                "(`oddscope labels export`), index the images again and import the labels.")

    @property
    def writable(self) -> bool:
        return self._lock is not None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> "Project":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _need_writable(self) -> None:
        if not self.writable:
            raise ProjectError("project is open read-only")

    def _tx(self):
        """A write transaction: ``with self._tx() as c: ...`` commits or rolls back."""
        self._need_writable()
        return _Transaction(self._conn)

    # -------------------------------------------------------------- info/settings
    def _set_info(self, key: str, value: str) -> None:
        with self._tx() as c:
            c.execute("INSERT OR REPLACE INTO info(key, value) VALUES (?, ?)", (key, value))

    def get_setting(self, key: str, default=None):
        row = self._conn.execute("SELECT value FROM settings WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_setting(self, key: str, value) -> None:
        with self._tx() as c:
            c.execute("INSERT OR REPLACE INTO settings(key, value) VALUES (?, ?)", (key, json.dumps(value)))

    def settings(self) -> dict:
        return {k: json.loads(v) for k, v in self._conn.execute("SELECT key, value FROM settings")}

    # ---------------------------------------------------------------------- items
    def stored_path(self, path) -> str:
        """How a path is kept: relative to the project when the images sit beside it.

        A project folder moved together with its images (the usual layout:
        ``survey/images`` next to ``survey/project``) then still finds them.  An fsspec URL is kept as it
        is (:mod:`oddscope.core.data.remote`): every machine, the desktop included, reads the same object.
        """
        if is_url(path):
            return path
        path = Path(os.path.abspath(path))
        try:
            path.relative_to(self.root.parent)
        except ValueError:
            return path.as_posix()
        return Path(os.path.relpath(path, self.root)).as_posix()

    def resolve(self, stored: str) -> Path | str:
        """The absolute path of an item's file (its URL, as a string, for an object behind a URL)."""
        if is_url(stored):
            return stored
        p = Path(stored)
        return p if p.is_absolute() else Path(os.path.normpath(self.root / p))

    def resolve_all(self, stored) -> list[str]:
        """:meth:`resolve` for many paths, as strings (:meth:`resolved_paths` as a list)."""
        return self.resolved_paths(stored).to_pylist()

    def resolved_paths(self, stored) -> pa.Array:
        """:meth:`resolve` for many paths, as an Arrow string array.

        Each distinct folder is resolved once in Python and Arrow appends the file names: a Python step
        per path took 9 s per million items, most of the time a 5M-item project took to open.  URLs and
        paths that do not end in a file name are resolved one by one.
        """
        paths = pa.array(stored) if isinstance(stored, pd.Series) else pa.array(list(stored), pa.string())
        paths = paths.cast(pa.large_string())
        if isinstance(paths, pa.ChunkedArray):
            paths = paths.combine_chunks()
        parts = pc.extract_regex(paths, r"^(?P<folder>.*/)?(?P<name>[^/]*)$")
        folders, names = pc.dictionary_encode(parts.field("folder")), parts.field("name")
        root = str(self.root)
        resolved = [None if os.path.isabs(f) else os.path.normpath(os.path.join(root, f))
                    for f in folders.dictionary.to_pylist()]  # None: absolute, kept as stored
        kept = pa.array([r is None for r in resolved], pa.bool_()).take(folders.indices)
        joined = pc.binary_join_element_wise(pa.array([r or "" for r in resolved], pa.large_string())
                                             .take(folders.indices), names, pa.scalar(os.sep, pa.large_string()))
        out = pc.if_else(kept, paths, joined)
        one_by_one = pc.or_(pc.match_substring_regex(paths, URL_PATTERN), pc.is_in(names, pa.array(["", ".", ".."])))
        if pc.any(one_by_one).as_py():
            odd = paths.filter(one_by_one).to_pylist()
            out = pc.replace_with_mask(out, one_by_one, pa.array(
                [s if is_url(s) or os.path.isabs(s) else os.path.normpath(os.path.join(root, s)) for s in odd],
                pa.large_string()))
        return out

    def add_items(self, paths, role: str = "test", metas=None) -> int:
        """Register image files; already known paths are kept (their metadata updated). Returns how many are new."""
        metas = metas if metas is not None else [None] * len(paths)
        new = 0
        with self._tx() as c:
            next_id = c.execute("SELECT COALESCE(MAX(id) + 1, 0) FROM items").fetchone()[0]
            for path, meta in zip(paths, metas):
                stored = self.stored_path(path)
                try:
                    st = os.stat(path)
                    size, mtime = st.st_size, st.st_mtime
                except OSError:
                    size = mtime = None
                row = c.execute("SELECT id, size, mtime FROM items WHERE path=?", (stored,)).fetchone()
                if row is None:
                    c.execute("INSERT INTO items(id, path, role, size, mtime, meta) VALUES (?, ?, ?, ?, ?, ?)",
                              (next_id, stored, role, size, mtime, json.dumps(meta or {})))
                    next_id += 1
                    new += 1
                    continue
                item_id, old_size, old_mtime = row
                if meta:
                    c.execute("UPDATE items SET meta=? WHERE id=?", (json.dumps(meta), item_id))
                if (old_size, old_mtime) != (size, mtime):  # the file changed: compute it again
                    c.execute("UPDATE items SET size=?, mtime=?, status='pending', reason=NULL WHERE id=?",
                              (size, mtime, item_id))
                    c.execute("DELETE FROM features_done WHERE item_id=?", (item_id,))
        return new

    @property
    def n_items(self) -> int:
        """How many items: ids are dense row numbers, so the largest id says (an index lookup, where
        ``COUNT(*)`` scans every row: about a second at 5M items, on the app's GUI thread when it opens one)."""
        return self._conn.execute("SELECT COALESCE(MAX(id) + 1, 0) FROM items").fetchone()[0]

    def items(self, with_meta: bool = True) -> pd.DataFrame:
        """All items, indexed by id, with columns path, role, status, reason (+ metadata columns)."""
        df = pd.read_sql_query(f"SELECT id, {', '.join(ITEM_COLUMNS)}, meta FROM items ORDER BY id",
                               self._conn, index_col="id")
        if with_meta and len(df):
            text = df.pop("meta").to_numpy(object)
            given = np.flatnonzero(text != "{}")  # most items have none: no JSON to parse for them
            meta = pd.DataFrame([json.loads(m) for m in text[given]], index=df.index[given])
            meta = meta.drop(columns=[c for c in meta.columns if c in ITEM_COLUMNS])
            df = df.join(meta)
        else:
            df = df.drop(columns="meta")
        return df

    def item_id(self, path) -> int | None:
        """The id of the item at ``path`` (as given by the user or as stored)."""
        for candidate in (str(path), self.stored_path(path)):
            row = self._conn.execute("SELECT id FROM items WHERE path=?", (candidate,)).fetchone()
            if row:
                return row[0]
        return None

    def ids_with_status(self, status: str, role: str | None = None) -> np.ndarray:
        q, args = "SELECT id FROM items WHERE status=?", [status]
        if role:
            q += " AND role=?"
            args.append(role)
        return np.array([r[0] for r in self._conn.execute(q + " ORDER BY id", args)], dtype=np.int64)

    def set_status(self, updates) -> None:
        """``updates``: iterable of ``(item_id, status, reason)``."""
        with self._tx() as c:
            c.executemany("UPDATE items SET status=?, reason=? WHERE id=?",
                          [(s, r, int(i)) for i, s, r in updates])

    def check_files(self) -> np.ndarray:
        """Mark items whose file is gone as ``missing``, and those that came back as usable again.

        A missing file is not an error: its labels, features and scores are kept,
        and it is ``ok`` again (``pending`` if it never had features) once it
        returns.  One ``stat`` per item, so this is an explicit call (``index``
        makes it; front ends should when they open a project for writing), never
        part of :meth:`open`.  A read-only project is only checked, not updated.  Items behind URLs are not
        checked (a request per object); one that cannot be read is skipped with its reason when decoded.
        Returns the ids of the items whose file is missing now.
        """
        rows = self._conn.execute("SELECT id, path, status FROM items "
                                  "WHERE status IN ('pending', 'ok', 'missing') ORDER BY id").fetchall()
        missing, gone, back = [], [], []
        paths = self.resolve_all(stored for _, stored, _ in rows)
        for (item_id, _, status), path in zip(rows, paths):
            if is_url(path):  # not checked one request per object: an unreadable one is skipped when decoded
                continue
            if not os.path.exists(path):
                missing.append(item_id)
                if status != "missing":
                    gone.append((item_id,))
            elif status == "missing":
                back.append((item_id,))
        if self.writable and (gone or back):
            with self._tx() as c:
                c.executemany("UPDATE items SET status='missing', reason='file not found' WHERE id=?", gone)
                c.executemany("UPDATE items SET reason=NULL, status=CASE WHEN EXISTS "
                              "(SELECT 1 FROM features_done WHERE item_id=items.id) THEN 'ok' ELSE 'pending' END "
                              "WHERE id=?", back)
        return np.array(missing, dtype=np.int64)

    def skipped(self) -> pd.DataFrame:
        return pd.read_sql_query("SELECT path, reason FROM items WHERE status IN ('skipped', 'missing') ORDER BY id",
                                 self._conn)

    # ------------------------------------------------------------------- features
    def features_done(self, encoder_key: str) -> np.ndarray:
        rows = self._conn.execute("SELECT item_id FROM features_done WHERE encoder=? ORDER BY item_id",
                                  (encoder_key,))
        return np.array([r[0] for r in rows], dtype=np.int64)

    def mark_features_done(self, encoder_key: str, item_ids, statuses=()) -> None:
        """Record finished rows (after the feature file was flushed) and skipped files, atomically."""
        with self._tx() as c:
            c.executemany("INSERT OR IGNORE INTO features_done(encoder, item_id) VALUES (?, ?)",
                          [(encoder_key, int(i)) for i in item_ids])
            c.executemany("UPDATE items SET status='ok', reason=NULL WHERE id=?", [(int(i),) for i in item_ids])
            c.executemany("UPDATE items SET status=?, reason=? WHERE id=?",
                          [(s, r, int(i)) for i, s, r in statuses])

    # --------------------------------------------------------------------- arrays
    def save_array(self, name: str, values: np.ndarray) -> None:
        """Write a per-item array atomically (write to a temp file, then rename)."""
        self._need_writable()
        path = self.layout.array(name)
        path.parent.mkdir(exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, np.asarray(values))
        os.replace(tmp, path)

    def delete_array(self, name: str) -> None:
        """Forget a per-item array (no error when there is none)."""
        self._need_writable()
        self.layout.array(name).unlink(missing_ok=True)

    def load_array(self, name: str, mmap: bool = False) -> np.ndarray | None:
        path = self.layout.array(name)
        if not path.exists():
            return None
        return np.load(path, mmap_mode="r" if mmap else None)

    def array_names(self) -> list[str]:
        """The names of the saved per-item arrays (see :mod:`oddscope.core.project.layout`)."""
        folder = self.layout.arrays_dir
        if not folder.exists():
            return []
        return sorted(p.stem for p in folder.glob("*.npy") if not p.name.endswith(".tmp.npy"))

    # ----------------------------------------------------------------------- runs
    def record_run(self, kind: str, name: str, params: dict, encoder: str | None = None,
                   seconds: float | None = None) -> None:
        with self._tx() as c:
            c.execute("INSERT INTO runs(kind, name, params, encoder, at, seconds) VALUES (?, ?, ?, ?, ?, ?)",
                      (kind, name, json.dumps(params, default=str), encoder, _now(), seconds))

    def runs(self, kind: str | None = None) -> pd.DataFrame:
        q = "SELECT id, kind, name, params, encoder, at, seconds FROM runs"
        return pd.read_sql_query(q + (" WHERE kind=?" if kind else "") + " ORDER BY id", self._conn,
                                 params=(kind,) if kind else None)

    def latest_runs(self, kind: str) -> dict[str, dict]:
        """The newest run of each name of a kind: ``{name: {params, encoder, at, seconds}}``."""
        out = {}
        for _, r in self.runs(kind).iterrows():
            out[r["name"]] = {"params": json.loads(r["params"]), "encoder": r["encoder"], "at": r["at"],
                              "seconds": r["seconds"]}
        return out

    # --------------------------------------------------------------------- labels
    def label(self, item_id: int) -> tuple[int | None, list[str]]:
        row = self._conn.execute("SELECT score, tags FROM labels WHERE item_id=?", (int(item_id),)).fetchone()
        return (row[0], json.loads(row[1])) if row else (None, [])

    def set_label(self, item_id: int, score=..., tags=..., who: str | None = None) -> None:
        """Set the relevance score (0-5 or None) and/or the tags of an item.

        Pass only what changes (``...`` keeps the current value).  When this
        returns, the label is committed and durable, and the change is in the
        undo history.
        """
        self.set_labels([(item_id, score, tags)], who=who)

    def set_labels(self, changes, who: str | None = None) -> int:
        """Apply many ``(item_id, score, tags)`` changes in one transaction; returns how many changed.

        Values are checked first, so one bad value leaves everything as it was.
        """
        who = who or _user()
        with self._tx() as c:
            changed = 0
            for item_id, score, tags in changes:
                item_id = int(item_id)
                if not c.execute("SELECT 1 FROM items WHERE id=?", (item_id,)).fetchone():
                    raise ProjectError(f"no item with id {item_id}")
                old_score, old_tags = self.label(item_id)
                new_score = old_score if score is ... else check_score(score)
                new_tags = old_tags if tags is ... else clean_tags(tags)
                if (new_score, new_tags) == (old_score, old_tags):
                    continue
                self._write_label(c, item_id, new_score, new_tags, who)
                c.execute("INSERT INTO label_history(item_id, old_score, old_tags, new_score, new_tags, who, at) "
                          "VALUES (?, ?, ?, ?, ?, ?, ?)",
                          (item_id, old_score, json.dumps(old_tags), new_score, json.dumps(new_tags), who, _now()))
                changed += 1
            if changed:
                c.execute("DELETE FROM label_history WHERE undone=1")  # a new edit ends the redo chain
        return changed

    def add_tag(self, item_id: int, tag: str, who: str | None = None) -> None:
        _, tags = self.label(item_id)
        self.set_label(item_id, tags=tags + [tag], who=who)

    def remove_tag(self, item_id: int, tag: str, who: str | None = None) -> None:
        _, tags = self.label(item_id)
        self.set_label(item_id, tags=[t for t in tags if t != tag], who=who)

    @staticmethod
    def _write_label(c, item_id, score, tags, who) -> None:
        if score is None and not tags:
            c.execute("DELETE FROM labels WHERE item_id=?", (item_id,))
        else:
            c.execute("INSERT OR REPLACE INTO labels(item_id, score, tags, who, at) VALUES (?, ?, ?, ?, ?)",
                      (item_id, score, json.dumps(tags), who, _now()))

    def undo(self) -> int | None:
        """Revert the newest label change; returns the item id it touched, or None."""
        return self._replay(undone=False)

    def redo(self) -> int | None:
        """Re-apply the oldest undone change; returns the item id, or None."""
        return self._replay(undone=True)

    def _replay(self, undone: bool) -> int | None:
        """Move one step along the history: back to a change's old value, or forward to its new one."""
        side, order = ("new", "ASC") if undone else ("old", "DESC")
        with self._tx() as c:
            row = c.execute(f"SELECT seq, item_id, {side}_score, {side}_tags, who FROM label_history "
                            f"WHERE undone=? ORDER BY seq {order} LIMIT 1", (int(undone),)).fetchone()
            if row is None:
                return None
            seq, item_id, score, tags, who = row
            self._write_label(c, item_id, score, json.loads(tags), who)
            c.execute("UPDATE label_history SET undone=? WHERE seq=?", (int(not undone), seq))
        return item_id

    def labels(self) -> pd.DataFrame:
        """Current labels: index item id, columns score (float, NaN = none), tags (list), who, at."""
        df = pd.read_sql_query("SELECT item_id, score, tags, who, at FROM labels ORDER BY item_id",
                               self._conn, index_col="item_id")
        df["score"] = df["score"].astype(float)
        df["tags"] = [json.loads(t) for t in df["tags"]]
        return df

    def label_history(self) -> pd.DataFrame:
        return pd.read_sql_query("SELECT * FROM label_history ORDER BY seq", self._conn)

    def all_tags(self) -> list[str]:
        tags = set()
        for (t,) in self._conn.execute("SELECT tags FROM labels"):
            tags.update(json.loads(t))
        return sorted(tags)


class _Transaction:
    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, *_):
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")


def check_score(score) -> int | None:
    """A label score as stored: a whole number MIN_SCORE-MAX_SCORE, or None; ValueError otherwise.

    Shared by :meth:`Project.set_labels` and the CSV import, so both accept exactly the same values.
    """
    if score is None:
        return None
    try:
        value = float(score)
    except (TypeError, ValueError):
        value = float("nan")
    if not value.is_integer() or not MIN_SCORE <= value <= MAX_SCORE:
        raise ValueError(f"score must be a whole number {MIN_SCORE}-{MAX_SCORE}, got {score!r}")
    return int(value)


def clean_tags(tags) -> list[str]:
    """Tags as stored: stripped, non-empty, first occurrence kept; a string is split at ``,`` or ``;``."""
    if isinstance(tags, str):
        tags = [t for t in tags.replace(";", ",").split(",")]
    out = []
    for t in tags:
        t = str(t).strip()
        if t and t not in out:
            out.append(t)
    return out
