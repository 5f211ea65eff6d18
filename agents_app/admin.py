"""Staff views of runs and messages; "Stop run" goes through the same service as the API."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from agents_app.models import Message, Run
from agents_app.services import run_stop


class MessageInline(admin.TabularInline):
    model = Message
    fields = ("role", "content", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ("id", "session", "agent", "status", "phase", "created_at", "started_at", "ended_at", "worker")
    list_filter = ("status", "agent")
    search_fields = ("=id", "=session__id")
    list_select_related = ("session", "worker")
    readonly_fields = [f.name for f in Run._meta.fields]
    inlines = [MessageInline]
    actions = ["stop_runs"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Stop run")
    def stop_runs(self, request: HttpRequest, queryset: QuerySet[Run]) -> None:
        stopped = sum(run_stop(run=run) for run in queryset)
        skipped = queryset.count() - stopped
        self.message_user(request, f"Stopping {stopped} run(s); {skipped} had already ended.", messages.SUCCESS)


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("id", "session", "run", "role", "preview", "created_at")
    list_filter = ("role",)
    search_fields = ("=session__id", "=run__id", "content")
    list_select_related = ("session", "run")
    readonly_fields = ("session", "run", "role", "content", "created_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="content")
    def preview(self, message: Message) -> str:
        return message.content[:80]
