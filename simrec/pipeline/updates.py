"""The update log: one row per update attempt and datacenter."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import pandas as pd

NAN = math.nan


@dataclass
class UpdateRow:
    """Stage times of one update at one datacenter (seconds of simulated time)."""

    update_id: int
    version: int
    datacenter: str
    kind: str  # full, delta, dense
    bytes: float
    trigger_s: float
    status: str = "unfinished"  # landed, rejected, superseded, skipped, unfinished
    save_start_s: float = NAN
    save_end_s: float = NAN
    validate_start_s: float = NAN
    validate_end_s: float = NAN
    validation_passed: bool | None = None
    candidate_score: float = NAN
    live_score: float = NAN
    transfer_start_s: float = NAN
    transfer_end_s: float = NAN
    load_start_s: float = NAN
    load_end_s: float = NAN
    landed_s: float = NAN
    data_time_s: float = NAN


@dataclass
class UpdateLog:
    """Collects :class:`UpdateRow` s; times are shifted by ``origin_s`` in the table."""

    origin_s: float = 0.0
    rows: list[UpdateRow] = field(default_factory=list)
    _next_id: int = 0

    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def add(self, row: UpdateRow) -> UpdateRow:
        self.rows.append(row)
        return row

    def frame(self) -> pd.DataFrame:
        """Tidy table; times in seconds since the start of the measured period."""
        cols = list(UpdateRow.__dataclass_fields__)
        df = pd.DataFrame([asdict(r) for r in self.rows], columns=cols)
        for c in cols:
            if c.endswith("_s"):
                df[c] = df[c].astype(float) - self.origin_s
        df["validation_passed"] = df["validation_passed"].astype("boolean")
        df["update_id"] = df["update_id"].astype("int64")
        df["version"] = df["version"].astype("int64")
        df["bytes"] = df["bytes"].astype(float)
        return df
