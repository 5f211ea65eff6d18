"""`python manage.py linnet_feedback_export`: tone feedback people agreed to share, as JSON Lines.

Only sessions created with `share_feedback: true` are exported; the feedback of every other
session never leaves the database.
"""

from __future__ import annotations

import json
from typing import TextIO

from django.core.management.base import BaseCommand, CommandParser

from voice_app.selectors import feedback_shared_iter


class Command(BaseCommand):
    help = "Write the shared tone feedback (tone data, verdict, corrected label) as JSON Lines."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--output", metavar="FILE", help="Write to FILE instead of stdout.")

    def handle(self, *args, output: str | None, **options) -> None:
        if output is None:
            written = write_lines(self.stdout)
        else:
            with open(output, "w", encoding="utf-8") as file:
                written = write_lines(file)
        # On stderr, so stdout stays pure JSON Lines for a pipe.
        self.stderr.write(f"{written} feedback line(s) exported", style_func=self.style.SUCCESS)


def write_lines(stream: TextIO) -> int:
    written = 0
    for example in feedback_shared_iter():
        stream.write(json.dumps(example, ensure_ascii=False, separators=(",", ":")) + "\n")
        written += 1
    return written
