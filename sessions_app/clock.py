"""The one clock the lifecycle code reads, so tests can pass `now=` instead of sleeping."""

from datetime import datetime

from django.utils import timezone


def utcnow() -> datetime:
    return timezone.now()
