"""Board profiles: one YAML file per board in audio_nas/energy/boards/ (or a path)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from audio_nas.config import from_dict
from audio_nas.errors import ConfigError, EnergyModelError

BOARDS_DIR = Path(__file__).resolve().parent / "boards"
CORES = ("cortex-m4f", "cortex-m0plus", "cortex-m33", "cortex-m7")
KERNELS = ("tflm-reference", "cmsis-nn")


@dataclass(frozen=True, kw_only=True)
class BoardProfile:
    name: str
    core: str
    clock_hz: int
    sram_bytes: int
    flash_bytes: int
    active_power_mw: float
    sleep_power_mw: float
    kernels: str
    sources: tuple[str, ...]
    emulated: bool = False

    def __post_init__(self) -> None:
        if self.core not in CORES:
            raise EnergyModelError(f"board {self.name}: core {self.core!r} is unknown; choose one of {CORES}")
        if self.kernels not in KERNELS:
            raise EnergyModelError(
                f"board {self.name}: kernels {self.kernels!r} is unknown; choose one of {KERNELS}"
            )
        for f in ("clock_hz", "sram_bytes", "flash_bytes", "active_power_mw"):
            if getattr(self, f) <= 0:
                raise EnergyModelError(f"board {self.name}: {f} must be > 0, got {getattr(self, f)}")
        if self.sleep_power_mw < 0:
            raise EnergyModelError(f"board {self.name}: sleep_power_mw must be >= 0")
        if not self.sources:
            raise EnergyModelError(f"board {self.name}: sources must cite a datasheet or publication")


def available_boards() -> list[str]:
    return sorted(p.stem for p in BOARDS_DIR.glob("*.yaml"))


def load_board(name_or_path: str | Path) -> BoardProfile:
    path = Path(name_or_path)
    if not path.suffix:
        path = BOARDS_DIR / f"{name_or_path}.yaml"
        if not path.exists():
            raise EnergyModelError(
                f"unknown board {name_or_path!r}; boards: {', '.join(available_boards())} (or a YAML path)"
            )
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise EnergyModelError(f"board profile {path} cannot be read: {exc}") from exc
    try:
        return from_dict(BoardProfile, data)
    except ConfigError as exc:
        raise EnergyModelError(f"board profile {path}: {exc}") from exc
