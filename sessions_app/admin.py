"""Staff console: sessions, their event logs, and the server processes."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Count
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince

from sessions_app import errors
from sessions_app.clock import utcnow
from sessions_app.models import TERMINAL_STATES, Event, ProcessLease, Session, Subscription, lease_alive_q
from sessions_app.selectors import sessions_idleness
from sessions_app.services.sessions import session_abort, session_end


class LiveFilter(admin.SimpleListFilter):
    title = "liveness"
    parameter_name = "live"

    def lookups(self, request, model_admin):
        return [("live", "Not ended"), ("ended", "Ended")]

    def queryset(self, request, queryset):
        if self.value() == "live":
            return queryset.exclude(state__in=TERMINAL_STATES)
        if self.value() == "ended":
            return queryset.filter(state__in=TERMINAL_STATES)
        return queryset


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin):
    list_display = (
        "short_id",
        "kind",
        "state_badge",
        "phase",
        "next_action",
        "subscribers",
        "idle_for",
        "heartbeat_age",
        "last_seq",
        "share_feedback",
        "created_at",
    )
    list_filter = (LiveFilter, "state", "kind", "next_action", "elcor", "share_feedback", "created_at")
    search_fields = ("id", "owner__username", "error__code")
    readonly_fields = (
        "id",
        "kind",
        "state",
        "phase",
        "next_action",
        "token_hash",
        "owner",
        # Consent is the client's to give at creation; staff can see it, not change it.
        "share_feedback",
        "created_at",
        "state_changed_at",
        "last_heartbeat_at",
        "last_subscriber_left_at",
        "ended_at",
        "last_seq",
        "pending_input",
        "result",
        "error",
    )
    fields = (*readonly_fields[:7], "elcor", "window_ms", "language", "num_speakers", *readonly_fields[7:])
    actions = ("end_sessions", "abort_sessions")
    date_hierarchy = "created_at"
    list_per_page = 50

    def get_queryset(self, request):
        now = utcnow()
        live = lease_alive_q(now=now, via="subscriptions__lease__")
        sessions = super().get_queryset(request).annotate(live_subscribers=Count("subscriptions", filter=live))
        # The reaper's own rule, so "idle for" says what the reaper will act on.
        return sessions_idleness(sessions, now=now)

    @admin.display(description="id", ordering="id")
    def short_id(self, obj: Session) -> str:
        return str(obj.id)[:8]

    @admin.display(description="state", ordering="state")
    def state_badge(self, obj: Session):
        colour = {"running": "#2a7", "input_required": "#c80", "pending": "#888"}.get(obj.state, "#555")
        return format_html('<b style="color:{}">{}</b>', colour, obj.state)

    @admin.display(description="subscribers", ordering="live_subscribers")
    def subscribers(self, obj: Session) -> int:
        return obj.live_subscribers

    @admin.display(description="idle for", ordering="idle_since")
    def idle_for(self, obj: Session) -> str:
        if obj.is_terminal or obj.busy:
            return "—"
        return timesince(obj.idle_since, timezone.now())

    @admin.display(description="heartbeat age", ordering="last_heartbeat_at")
    def heartbeat_age(self, obj: Session) -> str:
        return timesince(obj.last_heartbeat_at, timezone.now()) if obj.last_heartbeat_at else "never"

    @admin.action(description="End selected sessions (done)")
    def end_sessions(self, request, queryset):
        ended = 0
        for session in queryset.exclude(state__in=TERMINAL_STATES):
            session_end(session=session)
            ended += 1
        self.message_user(request, f"Ended {ended} session(s).", messages.SUCCESS)

    @admin.action(description="Abort selected sessions")
    def abort_sessions(self, request, queryset):
        aborted = 0
        for session in queryset.exclude(state__in=TERMINAL_STATES):
            session_abort(
                session=session,
                code=errors.SESSION_ABORTED_BY_STAFF,
                message=f"Aborted by {request.user.get_username()}.",
            )
            aborted += 1
        self.message_user(request, f"Aborted {aborted} session(s).", messages.SUCCESS)

    def has_add_permission(self, request) -> bool:
        # Sessions are opened through the API, which hands out the token.
        return False


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ("session_short", "seq", "type", "ts", "data_preview")
    list_filter = ("type",)
    search_fields = ("session__id",)
    list_select_related = ("session",)
    readonly_fields = ("session", "seq", "type", "ts", "data")
    list_per_page = 100

    @admin.display(description="session", ordering="session")
    def session_short(self, obj: Event) -> str:
        return str(obj.session_id)[:8]

    @admin.display(description="data")
    def data_preview(self, obj: Event) -> str:
        text = str(obj.data)
        return text if len(text) <= 120 else text[:117] + "..."

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        # The log is append-only; corrections would break every subscriber's replay.
        return False


@admin.register(ProcessLease)
class ProcessLeaseAdmin(admin.ModelAdmin):
    list_display = ("id", "role", "hostname", "pid", "alive", "started_at", "lease_expires_at", "last_passes")
    list_filter = ("role", "hostname")
    readonly_fields = ("id", "role", "hostname", "pid", "started_at", "lease_expires_at", "stopped_at", "passes")

    @admin.display(boolean=True, description="alive")
    def alive(self, obj: ProcessLease) -> bool:
        return obj.is_alive(utcnow())

    @admin.display(description="last passes")
    def last_passes(self, obj: ProcessLease) -> str:
        now = timezone.now()
        parts = []
        for loop, info in sorted(obj.passes.items()):
            at = timezone.datetime.fromisoformat(info["at"])
            parts.append(f"{loop}: {timesince(at, now)} ago ({info['count']})")
        return "; ".join(parts) or "—"

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = ("session", "transport", "lease", "created_at")
    list_filter = ("transport",)
    list_select_related = ("session", "lease")

    def has_add_permission(self, request) -> bool:
        return False
