"""`python -m bench` (`make bench`): Linnet's benchmarks, each beside a baseline measured in the same run.

Prints the machine, then a table (name, value, baseline, ratio, units), and writes
bench/results/<timestamp>.json (every number with its details) and bench/results/latest.md.
Each benchmark is a module with `run(ctx: BenchContext) -> list[Result]`; add one to
BENCHES to have it run.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import shutil
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from bench.environment import BenchContext, machine, prepare, redis_clear
from bench.report import RATIO_NOTE, Result, text_table, write
from bench.server import raise_open_file_limit

# name -> module; run in this order. Each module's docstring says how it measures.
BENCHES: dict[str, str] = {
    "fanout": "bench.fanout",
    "memory": "bench.memory",
    "reaper": "bench.reaper",
    "replay": "bench.replay",
    "audio": "bench.audio",
    "drain": "bench.drain",
}

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes: a fast check that everything runs")
    parser.add_argument(
        "--only",
        action="append",
        choices=list(BENCHES),
        metavar="NAME",
        help=f"run only this benchmark (repeatable): {', '.join(BENCHES)}",
    )
    parser.add_argument("--no-redis", action="store_true", help="skip the channels-redis measurements")
    parser.add_argument(
        "--keep-workdir", action="store_true", help="keep the temporary database and server logs for a look"
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="where to write the results")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    started_at = datetime.now(UTC)
    started = time.monotonic()
    raise_open_file_limit()
    ctx: BenchContext = prepare(quick=args.quick, with_redis=not args.no_redis)
    # The services log at INFO (every reaped session, every closed socket); the table is the output.
    logging.getLogger().setLevel(logging.WARNING)

    results: list[Result] = []
    failed: list[str] = []
    about: dict[str, str] = {}
    try:
        about = machine(ctx)
        print("Linnet benchmarks" + (" (--quick)" if ctx.quick else ""))
        for key, value in about.items():
            print(f"  {key}: {value}")
        for name in args.only or list(BENCHES):
            print(f"\n== {name}", flush=True)
            began = time.monotonic()
            try:
                results += importlib.import_module(BENCHES[name]).run(ctx)
            except Exception:
                failed.append(name)
                traceback.print_exc()
                ctx.note(f"{name} failed; see the traceback above")
            print(f"  ({time.monotonic() - began:.1f} s)", flush=True)
    finally:
        if ctx.redis_url:
            redis_clear(ctx.redis_url)
        if args.keep_workdir:
            print(f"kept {ctx.workdir}")
        else:
            shutil.rmtree(ctx.workdir, ignore_errors=True)

    duration = time.monotonic() - started
    print(f"\n{text_table(results)}\n\n{RATIO_NOTE}")
    for note in ctx.notes:
        print(f"note: {note}")
    run = {"started_at": started_at.isoformat(timespec="seconds"), "duration_s": duration, "argv": argv}
    json_path, markdown_path = write(
        results_dir=args.results_dir,
        stamp=started_at.strftime("%Y%m%dT%H%M%SZ"),
        machine=about,
        run=run,
        results=results,
        notes=ctx.notes,
    )
    print(f"wrote {json_path} and {markdown_path} ({duration:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
