"""Staff view of audio streams: who holds each session's producer, and what it sent."""

from __future__ import annotations

from django.contrib import admin

from sessions_app.clock import utcnow
from voice_app.models import AudioStream


@admin.register(AudioStream)
class AudioStreamAdmin(admin.ModelAdmin):
    list_display = ("id", "session", "worker", "open", "opened_at", "closed_at", "close_code", "windows", "bytes")
    list_filter = ("close_code",)
    search_fields = ("session__id",)
    list_select_related = ("session", "worker")
    readonly_fields = [field.name for field in AudioStream._meta.fields]

    @admin.display(boolean=True, description="open")
    def open(self, obj: AudioStream) -> bool:
        alive = obj.worker is not None and obj.worker.stopped_at is None and obj.worker.lease_expires_at >= utcnow()
        return obj.closed_at is None and alive

    def has_add_permission(self, request) -> bool:
        return False
