"""Results: one row per measured number beside its baseline, printed and written to disk."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Result:
    """One measured number and the baseline measured beside it in the same run."""

    bench: str
    name: str
    value: float | None
    baseline: float | None
    units: str
    # True for latencies, times and bytes; False for rates, where a ratio below 1 is the cost.
    lower_is_better: bool = True
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.baseline:
            return None
        return self.value / self.baseline

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio}


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between the closest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: list[float]) -> float:
    return percentile(values, 50)


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


HEADER = ("name", "value", "baseline", "ratio", "units")
RATIO_NOTE = (
    "Ratio = value / baseline, both measured in the same run. For times and memory lower is better;"
    " for rates (events/s, deltas/s) and streams higher is better."
)


def _rows(results: list[Result]) -> list[tuple[str, ...]]:
    return [(r.name, _number(r.value), _number(r.baseline), _ratio(r.ratio), r.units) for r in results]


def text_table(results: list[Result]) -> str:
    rows = [HEADER, *_rows(results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    numeric = {1, 2, 3}

    def line(row: tuple[str, ...]) -> str:
        cells = [cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i]) for i, cell in enumerate(row)]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(rows[0]), rule, *(line(row) for row in rows[1:])])


def markdown_table(results: list[Result]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|---|---:|---:|---:|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in _rows(results)]
    return "\n".join(lines)


def write(
    *,
    results_dir: Path,
    stamp: str,
    machine: dict[str, Any],
    run: dict[str, Any],
    results: list[Result],
    notes: list[str],
) -> tuple[Path, Path]:
    """Write `<stamp>.json` (every number and its details) and `latest.md` (the table)."""
    results_dir.mkdir(parents=True, exist_ok=True)
    json_path = results_dir / f"{stamp}.json"
    body = {"machine": machine, "run": run, "results": [r.as_json() for r in results], "notes": notes}
    json_path.write_text(json.dumps(body, indent=2) + "\n")

    machine_lines = [f"- {key}: {value}" for key, value in machine.items()]
    note_lines = [f"- {note}" for note in notes] or ["- none"]
    markdown = "\n".join(
        [
            f"# Linnet benchmarks, {run['started_at']}",
            "",
            f"`{' '.join(['python -m bench', *run['argv']])}` took {run['duration_s']:.0f} s.",
            "",
            RATIO_NOTE,
            "",
            "## Machine",
            "",
            *machine_lines,
            "",
            "## Results",
            "",
            markdown_table(results),
            "",
            "## Notes",
            "",
            *note_lines,
            "",
        ]
    )
    markdown_path = results_dir / "latest.md"
    markdown_path.write_text(markdown)
    return json_path, markdown_path
