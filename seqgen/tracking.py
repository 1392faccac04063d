"""Accelerate trackers: a JSONL log that is always written (one JSON object per logged step)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from accelerate.tracking import GeneralTracker, on_main_process


class JSONLTracker(GeneralTracker):
    """Appends `{"step": ..., "time": ..., **values}` lines to `<logging_dir>/metrics.jsonl`."""

    name = "jsonl"
    requires_logging_directory = True

    # No `on_main_process` here: that would create Accelerate's process state before the Accelerator
    # that this tracker is handed to, and a multi-process launch would then run as separate processes.
    def __init__(self, run_name: str, logging_dir: str | Path) -> None:
        super().__init__()
        self.path = Path(logging_dir) / "metrics.jsonl"  # its folder is made on the first write

    @property
    def tracker(self):
        return self.path

    @on_main_process
    def store_init_configuration(self, values: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        (self.path.parent / "config.json").write_text(json.dumps(values, indent=2, default=str))

    @on_main_process
    def log(self, values: dict, step: int | None = None, **kwargs) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps({"step": step, "time": round(time.time(), 3), **values}) + "\n")


def read_log(path: str | Path) -> list[dict]:
    """The records of a metrics.jsonl file, in order."""
    with Path(path).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
