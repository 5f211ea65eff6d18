"""Staff views of audio streams (who holds each session's producer, and what it sent) and of
the feedback people gave on tones."""

from __future__ import annotations

from django.contrib import admin

from sessions_app.clock import utcnow
from voice_app.annotation import TONE_LABELS
from voice_app.models import AudioStream, Feedback


@admin.register(AudioStream)
class AudioStreamAdmin(admin.ModelAdmin):
    list_display = ("id", "session", "lease", "open", "opened_at", "closed_at", "close_code", "windows", "bytes")
    list_filter = ("close_code",)
    search_fields = ("session__id",)
    list_select_related = ("session", "lease")
    readonly_fields = [field.name for field in AudioStream._meta.fields]

    @admin.display(boolean=True, description="open")
    def open(self, obj: AudioStream) -> bool:
        return obj.closed_at is None and obj.lease is not None and obj.lease.is_alive(utcnow())

    def has_add_permission(self, request) -> bool:
        return False


class SharedFilter(admin.SimpleListFilter):
    title = "shared for training"
    parameter_name = "shared"

    def lookups(self, request, model_admin):
        return [("yes", "Shared"), ("no", "Not shared")]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(session__share_feedback=self.value() == "yes")
        return queryset


class ToneLabelFilter(admin.SimpleListFilter):
    title = "tone label"
    parameter_name = "tone_label"

    def lookups(self, request, model_admin):
        return [(name, name) for name in TONE_LABELS]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(tone__label=self.value())
        return queryset


@admin.register(Feedback)
class FeedbackAdmin(admin.ModelAdmin):
    list_display = ("session_short", "seq", "tone_label", "verdict", "label", "shared", "created_at")
    list_filter = ("verdict", SharedFilter, ToneLabelFilter, "label")
    search_fields = ("session__id",)
    list_select_related = ("session",)
    readonly_fields = [field.name for field in Feedback._meta.fields]
    date_hierarchy = "created_at"

    @admin.display(description="session", ordering="session")
    def session_short(self, obj: Feedback) -> str:
        return str(obj.session_id)[:8]

    @admin.display(description="tone label")
    def tone_label(self, obj: Feedback) -> str:
        return obj.tone.get("label", "—")

    @admin.display(boolean=True, description="shared", ordering="session__share_feedback")
    def shared(self, obj: Feedback) -> bool:
        return obj.session.share_feedback

    def has_add_permission(self, request) -> bool:
        # Feedback comes from the people who heard the session, through the API.
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        # The row mirrors the last `tone.feedback` in the log; an edit here would contradict it.
        return False
