"""What a valid session option is, stated once.

The Session model's field validators (and with them every admin form) and the API's
request schema (its 422s and /api/openapi.json) both read these, so a value one of them
refuses the other refuses too: a window the stream cannot cut must never reach the database.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator

WINDOW_MS_MIN = 100
WINDOW_MS_MAX = 3000
WINDOW_MS_STEP = 100
WINDOW_MS_STEP_MESSAGE = f"window_ms must be a multiple of {WINDOW_MS_STEP}"

LANGUAGE_MIN_LENGTH = 2
LANGUAGE_MAX_LENGTH = 16
# A BCP 47-shaped tag: "en", "pt-BR", "zh-Hant-TW".
LANGUAGE_PATTERN = r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$"
LANGUAGE_MESSAGE = "language must be a language tag such as en or pt-BR"

NUM_SPEAKERS_MIN = 1
NUM_SPEAKERS_MAX = 16


def validate_window_ms_step(value: int) -> None:
    """Refuse a window the 100 ms audio frames cannot fill exactly."""
    if value % WINDOW_MS_STEP:
        raise ValidationError(WINDOW_MS_STEP_MESSAGE, code="window_ms_step")


WINDOW_MS_VALIDATORS = [MinValueValidator(WINDOW_MS_MIN), MaxValueValidator(WINDOW_MS_MAX), validate_window_ms_step]
# The pattern asks for two letters or more; LANGUAGE_MAX_LENGTH is the column's max_length.
LANGUAGE_VALIDATORS = [RegexValidator(LANGUAGE_PATTERN, LANGUAGE_MESSAGE)]
NUM_SPEAKERS_VALIDATORS = [MinValueValidator(NUM_SPEAKERS_MIN), MaxValueValidator(NUM_SPEAKERS_MAX)]
