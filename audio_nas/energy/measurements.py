"""Durable measurement store (SQLite WAL): one row per (spec, board, source), written as it arrives.

A row's ``source`` says what produced it (``ROW_SOURCES``); only ``measured`` rows are measurements:
  emulated         the in-process campaign backend: the exported ops through the emulated source's model
                   (the per-op model, or the hand-set cycle model for reference kernels): an estimate
  emulated-device  the Python emulated device (``audio-nas device emulate``) over the bridge: the same cycle
                   model served through the protocol (an estimate; it tests the bridge, it measures nothing)
  measured         the firmware on a board over the bridge: a real board's timer, or, on an emulated board
                   (``emulated: true`` in its profile, QEMU mps2-an386), retired instructions counted by QEMU
Each backend resumes only its own rows. A row's ``energy_from`` (kept in the ``extra`` JSON) says where its
energy came from: ``profile-power`` (latency x the board profile's active power) or ``monitor`` (a power
monitor's current integrated over the firmware's marker, e.g. a PPK2).
"""

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


ROW_SOURCES: dict[str, str] = {
    "emulated": "the emulated source's model on the exported ops (in-process backend; not a measurement)",
    "emulated-device": "the Python emulated device over the bridge (the same model again; no measurement)",
    "measured": "the firmware on the board (a real board's timer, or QEMU's instruction counts on an "
    "emulated board)",
}
MEASURED_SOURCES: tuple[str, ...] = ("measured",)
ENERGY_FROM = ("profile-power", "monitor")


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
    energy_from: str = "profile-power"  # ENERGY_FROM: latency x profile power, or a power monitor's trace


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
                json.dumps({**(extra or {}), "energy_from": m.energy_from}),
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

    def all(self, board: str | None = None, source: str | None = None) -> list[Measurement]:
        """Rows in the order they were stored, optionally of one board and one ``source`` (ROW_SOURCES)."""
        q = (
            "SELECT spec, board, source, latency_ms, energy_uj, cycles, arena_bytes, repeats, extra "
            "FROM measurements"
        )
        where, args = [], []
        if board:
            where.append("board=?")
            args.append(board)
        if source:
            where.append("source=?")
            args.append(source)
        rows = self.db.execute(
            q + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY created", tuple(args)
        )
        return [
            Measurement(*r[:8], energy_from=json.loads(r[8] or "{}").get("energy_from", "profile-power"))
            for r in rows
        ]

    def sources(self, board: str) -> dict[str, int]:
        """How many rows of each source the board has."""
        rows = self.db.execute(
            "SELECT source, COUNT(*) FROM measurements WHERE board=? GROUP BY source ORDER BY source",
            (board,),
        )
        return dict(rows.fetchall())

    def content_hash(self, board: str, source: str | None = None) -> str:
        """Hash of the board's rows (of one ``source`` when given): a predictor records the hash it was
        fitted on."""
        h = hashlib.sha256()
        for m in sorted(self.all(board, source), key=lambda m: (m.spec, m.source)):
            h.update(f"{m.spec}|{m.source}|{m.latency_ms:.6f}|{m.energy_uj:.6f}|{m.energy_from}\n".encode())
        return h.hexdigest()[:16]

    def close(self) -> None:
        self.db.close()


def store_path(board: str) -> Path:
    """Where a board's measurement campaigns are stored (``runs/measure/<board>/measurements.sqlite``)."""
    return runs_dir() / "measure" / board / "measurements.sqlite"
