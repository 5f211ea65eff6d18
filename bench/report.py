"""Results: one row per measured number beside its baseline, printed and written to disk."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
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


# The percentiles a latency is reported at, each beside the same percentile of its baseline.
LATENCY_PERCENTILES = (50, 95, 99)


def latency_results(
    *, bench: str, case: str, name: str, values_s: list[float], baseline_s: list[float], details: dict[str, Any]
) -> list[Result]:
    """One row per percentile (in ms) of a latency sample, beside the same percentile of its baseline.

    `name` is formatted with `stat` ("p50", ...); `case` is the row of the side-by-side
    latency table (latency_table) the percentiles go in.
    """

    def ms(values: list[float], q: float) -> float | None:
        return percentile(values, q) * 1000 if values else None

    return [
        Result(
            bench=bench,
            name=name.format(stat=f"p{q}"),
            value=ms(values_s, q),
            baseline=ms(baseline_s, q),
            units="ms",
            details={**details, "case": case, "stat": f"p{q}"},
        )
        for q in LATENCY_PERCENTILES
    ]


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


def latency_table(results: list[Result], *, markdown: bool = False) -> str:
    """The latency_results rows side by side, one line per case: percentiles, the baseline's, the p99 ratio."""
    stats = [f"p{q}" for q in LATENCY_PERCENTILES]
    cases: dict[str, dict[str, Result]] = {}
    for result in results:
        if "case" in result.details and result.details.get("stat") in stats:
            cases.setdefault(result.details["case"], {})[result.details["stat"]] = result
    if not cases:
        return ""
    header = ("case", *(f"{stat} ms" for stat in stats), *(f"baseline {stat}" for stat in stats), "p99 ratio")
    rows = []
    for case, by_stat in cases.items():
        found = [by_stat.get(stat) for stat in stats]
        rows.append(
            (
                case,
                *(_number(r.value if r else None) for r in found),
                *(_number(r.baseline if r else None) for r in found),
                _ratio(by_stat["p99"].ratio if "p99" in by_stat else None),
            )
        )
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(row: tuple[str, ...]) -> str:
        return "  ".join(cell.ljust(widths[0]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row))

    return "\n".join([line(header), "  ".join("-" * width for width in widths), *(line(row) for row in rows)])


def grid(header: Sequence[str], rows: Sequence[Sequence[str | float | None]], *, markdown: bool = False) -> str:
    """A benchmark's own table (a ladder, a sweep): text left-aligned, numbers formatted and right-aligned."""

    def text(cell: str | float | None) -> str:
        if isinstance(cell, str):
            return cell
        return f"{cell:,}" if isinstance(cell, int) else _number(cell)

    cells = [list(header), *([text(cell) for cell in row] for row in rows)]
    numeric = [all(not isinstance(row[i], str) for row in rows) for i in range(len(header))]
    if markdown:
        rule = "|" + "".join("---:|" if right else "---|" for right in numeric)
        return "\n".join(
            ["| " + " | ".join(cells[0]) + " |", rule, *("| " + " | ".join(row) + " |" for row in cells[1:])]
        )
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row: list[str]) -> str:
        padded = (cell.rjust(widths[i]) if numeric[i] else cell.ljust(widths[i]) for i, cell in enumerate(row))
        return "  ".join(padded).rstrip()

    return "\n".join([line(cells[0]), "  ".join("-" * width for width in widths), *(line(row) for row in cells[1:])])


# A result whose details carry a table under this key ({"title", "header", "rows"}) gets it in latest.md.
DETAILS_TABLE = "table"


def details_tables(results: list[Result]) -> list[str]:
    """latest.md sections for the tables the results carry in their details."""
    lines: list[str] = []
    for result in results:
        table = result.details.get(DETAILS_TABLE)
        if table:
            lines += [f"## {table['title']}", "", grid(table["header"], table["rows"], markdown=True), ""]
    return lines


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
    latency = latency_table(results, markdown=True)
    latency_lines = ["## Latency percentiles beside the baseline", "", latency, ""] if latency else []
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
            *latency_lines,
            *details_tables(results),
            "## Notes",
            "",
            *note_lines,
            "",
        ]
    )
    markdown_path = results_dir / "latest.md"
    markdown_path.write_text(markdown)
    return json_path, markdown_path
