"""Durable measurement store (SQLite WAL): one row per (spec, board, source), written as it arrives."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from audio_nas.paths import runs_dir

SCHEMA = """
CREATE TABLE IF NOT EXISTS measurements (
  spec_hash TEXT NOT NULL, board TEXT NOT NULL, source TEXT NOT NULL, spec TEXT NOT NULL,
  latency_ms REAL NOT NULL, energy_uj REAL NOT NULL, cycles REAL, arena_bytes INTEGER,
  repeats INTEGER NOT NULL, created REAL NOT NULL, extra TEXT,
  PRIMARY KEY (spec_hash, board, source)
);
"""


@dataclass(frozen=True)
class Measurement:
    spec: str
    board: str
    source: str
    latency_ms: float
    energy_uj: float
    cycles: float | None
    arena_bytes: int | None
    repeats: int


class MeasurementStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)

    def add(self, m: Measurement, spec_hash: str, extra: dict | None = None) -> bool:
        """Insert unless present; returns False for a duplicate (a resumed campaign never doubles a row)."""
        cur = self.db.execute(
            "INSERT OR IGNORE INTO measurements VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                spec_hash,
                m.board,
                m.source,
                m.spec,
                m.latency_ms,
                m.energy_uj,
                m.cycles,
                m.arena_bytes,
                m.repeats,
                time.time(),
                json.dumps(extra or {}),
            ),
        )
        return cur.rowcount == 1

    def has(self, spec_hash: str, board: str, source: str) -> bool:
        return (
            self.db.execute(
                "SELECT 1 FROM measurements WHERE spec_hash=? AND board=? AND source=?",
                (spec_hash, board, source),
            ).fetchone()
            is not None
        )

    def all(self, board: str | None = None) -> list[Measurement]:
        q = "SELECT spec, board, source, latency_ms, energy_uj, cycles, arena_bytes, repeats FROM measurements"
        rows = self.db.execute(
            q + (" WHERE board=?" if board else "") + " ORDER BY created", (board,) if board else ()
        )
        return [Measurement(*r) for r in rows]

    def content_hash(self, board: str) -> str:
        h = hashlib.sha256()
        for m in sorted(self.all(board), key=lambda m: (m.spec, m.source)):
            h.update(f"{m.spec}|{m.source}|{m.latency_ms:.6f}|{m.energy_uj:.6f}\n".encode())
        return h.hexdigest()[:16]

    def close(self) -> None:
        self.db.close()


def store_path(board: str) -> Path:
    """Where a board's measurement campaigns are stored (``runs/measure/<board>/measurements.sqlite``)."""
    return runs_dir() / "measure" / board / "measurements.sqlite"
