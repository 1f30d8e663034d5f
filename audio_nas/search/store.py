"""Trial store: SQLite in WAL mode. Every trial, its learning curve, objectives, state and errors,
plus the study's config and the strategy state, so a killed search resumes exactly.

States: queued -> running -> complete | pruned | failed | infeasible. On open, trials left
'running' by a dead process go back to 'queued' and are retried; completed ones are never lost
because each transition is its own committed transaction.

Durability (issue 14): a spec appears at most once per study (``spec_hash`` is UNIQUE), and the runner
writes each proposal together with the strategy state that made it, and each tell (``told``) together
with the strategy state that took it in, in one transaction (``with store.transaction():``). A kill at any
moment therefore leaves the trials and the strategy state consistent: a proposal is either in both or in
neither, and a finished result that was not yet told is told on resume.

Schema versions: 1 (no ``told`` column, no unique spec_hash) is migrated on open to 2 (``told`` added and
set for the finished trials, which version 1 told as they finished; a unique index on ``spec_hash``). A
version-1 study that already holds a spec twice stays readable (reports), but ``check_resumable`` refuses
to continue it, naming the spec and asking for a new run directory. ``synchronous=NORMAL`` in WAL mode:
a killed process loses no committed transaction; a power cut may lose the last ones (never half of one).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audio_nas.errors import SearchError

STATES = ("queued", "running", "complete", "pruned", "failed", "infeasible")
FINISHED = ("complete", "pruned", "failed", "infeasible")
SCHEMA_VERSION = 2

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
  id INTEGER PRIMARY KEY,
  spec TEXT NOT NULL,
  spec_hash TEXT NOT NULL UNIQUE,
  origin TEXT NOT NULL,
  state TEXT NOT NULL,
  accuracy REAL, test_accuracy REAL,
  energy_uj REAL, energy_source TEXT, latency_ms REAL,
  peak_ram_bytes INTEGER, flash_bytes INTEGER, params INTEGER, macs INTEGER,
  curve TEXT, epochs_run INTEGER,
  created REAL NOT NULL, started REAL, finished REAL, duration_s REAL,
  attempts INTEGER NOT NULL DEFAULT 0,
  error TEXT, worker TEXT,
  told INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS baselines (name TEXT PRIMARY KEY, result TEXT NOT NULL);
"""


@dataclass
class Trial:
    id: int
    spec: str
    spec_hash: str
    origin: str
    state: str
    accuracy: float | None = None
    test_accuracy: float | None = None
    energy_uj: float | None = None
    energy_source: str | None = None
    latency_ms: float | None = None
    peak_ram_bytes: int | None = None
    flash_bytes: int | None = None
    params: int | None = None
    macs: int | None = None
    curve: list[float] | None = None
    epochs_run: int | None = None
    duration_s: float | None = None
    error: str | None = None
    told: bool = False  # the strategy has been told this result (committed with its state)

    @property
    def has_objectives(self) -> bool:
        return (
            self.state in ("complete", "pruned") and self.accuracy is not None and self.energy_uj is not None
        )


class TrialStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        self._migrate()

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One SQLite transaction: everything written inside commits together or not at all."""
        if self.db.in_transaction:
            raise SearchError("nested store transactions are not supported")
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _migrate(self) -> None:
        self.legacy_duplicate: tuple[str, str] | None = None  # (trial ids, spec) of a version-1 duplicate
        if self.get_meta("schema_version") == SCHEMA_VERSION:
            return
        with self.transaction():
            cols = {row[1] for row in self.db.execute("PRAGMA table_info(trials)")}
            if "told" not in cols:  # version 1: the runner told each trial as it finished
                self.db.execute("ALTER TABLE trials ADD COLUMN told INTEGER NOT NULL DEFAULT 0")
                self.db.execute(
                    f"UPDATE trials SET told=1 WHERE state IN ({','.join('?' * len(FINISHED))})", FINISHED
                )
            if not self._spec_hash_unique():
                dup = self.db.execute(
                    "SELECT GROUP_CONCAT(id), spec FROM trials GROUP BY spec_hash HAVING COUNT(*) > 1 LIMIT 1"
                ).fetchone()
                if dup:  # readable (reports), but check_resumable() refuses to add to it
                    self.legacy_duplicate = (str(dup[0]), str(dup[1]))
                    return
                self.db.execute("CREATE UNIQUE INDEX trials_spec_hash ON trials(spec_hash)")
            self.set_meta("schema_version", SCHEMA_VERSION)

    def check_resumable(self) -> None:
        """Refuse to continue a study that an older version left with a spec evaluated twice."""
        if self.legacy_duplicate is not None:
            ids, spec = self.legacy_duplicate
            raise SearchError(
                f"{self.path} was written by an older version and holds one spec more than once "
                f"(trials {ids}: {spec}), so it cannot be resumed. Start a new run directory "
                f"(another --name), or delete {self.path.parent} to start this one again"
            )

    def _spec_hash_unique(self) -> bool:
        for index in self.db.execute("PRAGMA index_list(trials)").fetchall():
            name, unique = index[1], index[2]
            cols = [row[2] for row in self.db.execute(f"PRAGMA index_info('{name}')")]
            if unique and cols == ["spec_hash"]:
                return True
        return False

    # -- meta / config / strategy state
    def get_meta(self, key: str) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def set_meta(self, key: str, value: Any) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def check_config(self, config: dict, compat_keys: tuple[str, ...], defaults: dict | None = None) -> None:
        """Store ``config`` on first use; refuse a run directory made with an incompatible config. A key the
        stored config lacks (written before the key existed) counts as its value in ``defaults``."""
        old = self.get_meta("config")
        if old is None:
            self.set_meta("config", config)
            return
        defaults = defaults or {}

        def with_defaults(value, default):
            # nested sections (train:, pruner:) gain keys too: a stored one lacking a key has its default
            if isinstance(value, dict) and isinstance(default, dict):
                return {**default, **{k: with_defaults(v, default.get(k)) for k, v in value.items()}}
            return value

        diff = [
            k
            for k in compat_keys
            if with_defaults(old.get(k, defaults.get(k)), defaults.get(k)) != config.get(k)
        ]
        if diff:
            detail = "; ".join(f"{k}: {old.get(k)!r} there, {config.get(k)!r} now" for k in diff)
            raise SearchError(
                f"{self.path.parent} holds a search made with another configuration ({detail}). "
                f"Use another --name (or run directory), or restore the original config to resume it"
            )
        self.set_meta("config", config)  # budget/workers may change between runs

    # -- trials
    def add(self, spec: str, spec_hash: str, origin: str) -> int:
        try:
            cur = self.db.execute(
                "INSERT INTO trials (spec, spec_hash, origin, state, created) VALUES (?, ?, ?, 'queued', ?)",
                (spec, spec_hash, origin, time.time()),
            )
        except sqlite3.IntegrityError:
            row = self.db.execute("SELECT id FROM trials WHERE spec_hash=?", (spec_hash,)).fetchone()
            if row is None:
                raise
            raise SearchError(
                f"spec {spec} is already trial {row[0]} of this study: a spec is evaluated at most once. "
                f"The strategy state and the trials of {self.path} disagree; start a new run directory"
            ) from None
        return int(cur.lastrowid)

    def mark_told(self, trial_id: int) -> None:
        self.db.execute("UPDATE trials SET told=1 WHERE id=?", (trial_id,))

    def requeue_running(self) -> int:
        cur = self.db.execute("UPDATE trials SET state='queued', worker=NULL WHERE state='running'")
        return cur.rowcount

    def mark_running(self, trial_id: int, worker: str = "") -> None:
        self.db.execute(
            "UPDATE trials SET state='running', started=?, worker=?, attempts=attempts+1 WHERE id=?",
            (time.time(), worker, trial_id),
        )

    def finish(self, trial_id: int, state: str, result: dict[str, Any]) -> None:
        if state not in FINISHED:
            raise SearchError(f"cannot finish a trial in state {state!r}")
        cols = (
            "accuracy",
            "test_accuracy",
            "energy_uj",
            "energy_source",
            "latency_ms",
            "peak_ram_bytes",
            "flash_bytes",
            "params",
            "macs",
            "epochs_run",
            "duration_s",
            "error",
        )
        values = [result.get(c) for c in cols]
        curve = json.dumps(result.get("curve")) if result.get("curve") is not None else None
        self.db.execute(
            f"UPDATE trials SET state=?, {', '.join(f'{c}=?' for c in cols)}, curve=?, finished=? WHERE id=?",
            (state, *values, curve, time.time(), trial_id),
        )

    def trials(self, states: tuple[str, ...] | None = None) -> list[Trial]:
        q = (
            "SELECT id, spec, spec_hash, origin, state, accuracy, test_accuracy, energy_uj, energy_source, "
            "latency_ms, peak_ram_bytes, flash_bytes, params, macs, curve, epochs_run, duration_s, error, "
            "told "
            "FROM trials"
        )
        args: tuple = ()
        if states:
            q += f" WHERE state IN ({','.join('?' * len(states))})"
            args = states
        out = []
        for row in self.db.execute(q + " ORDER BY id", args):
            t = Trial(
                *row[:14],
                curve=json.loads(row[14]) if row[14] else None,
                epochs_run=row[15],
                duration_s=row[16],
                error=row[17],
                told=bool(row[18]),
            )
            out.append(t)
        return out

    def __iter__(self) -> Iterator[Trial]:
        return iter(self.trials())

    def count(self, states: tuple[str, ...]) -> int:
        return int(
            self.db.execute(
                f"SELECT COUNT(*) FROM trials WHERE state IN ({','.join('?' * len(states))})", states
            ).fetchone()[0]
        )

    # -- baselines (evaluated once per run directory)
    def get_baseline(self, name: str) -> dict | None:
        row = self.db.execute("SELECT result FROM baselines WHERE name=?", (name,)).fetchone()
        return json.loads(row[0]) if row else None

    def set_baseline(self, name: str, result: dict) -> None:
        self.db.execute("INSERT OR REPLACE INTO baselines VALUES (?, ?)", (name, json.dumps(result)))
