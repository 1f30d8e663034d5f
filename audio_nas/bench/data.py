"""Dataset benchmark: generation time and sizes of the embedded datasets, and load time."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

from audio_nas.bench.report import markdown_table, write_section


def run_bench(quick: bool = False) -> None:
    from audio_nas.data.synthetic import RECIPES, load_generated, make_dataset

    rows = []
    tmp = Path(tempfile.mkdtemp())
    try:
        for name, recipe in RECIPES.items():
            per_class = 20 if quick else recipe.default_per_class
            t0 = time.perf_counter()
            path = make_dataset(name, per_class=per_class, out_dir=tmp / name, progress=False)
            gen_s = time.perf_counter() - t0
            meta = json.loads((path / "manifest.json").read_text())
            t0 = time.perf_counter()
            load_generated(path)
            load_s = time.perf_counter() - t0
            size_mb = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6
            rows.append(
                [
                    name,
                    len(meta["classes"]),
                    per_class,
                    meta["n_clips"],
                    meta["split_counts"]["train"],
                    meta["split_counts"]["validation"],
                    meta["split_counts"]["test"],
                    f"{gen_s:.0f}",
                    f"{meta['n_clips'] / gen_s:.0f}",
                    f"{load_s:.2f}",
                    f"{size_mb:.0f}",
                ]
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    body = markdown_table(
        [
            "dataset",
            "classes",
            "per class",
            "clips",
            "train",
            "val",
            "test",
            "generate s",
            "clips/s",
            "load s",
            "MB",
        ],
        rows,
    )
    write_section(
        "data", "Embedded datasets: generation", "audio-nas bench data" + (" --quick" if quick else ""), body
    )
