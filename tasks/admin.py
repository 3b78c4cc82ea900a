"""Operators' view of tasks. Every change made here goes through ``tasks.services``, so it is
validated the same way and produces the same events as a change from the API."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.db.models import Q
from django.utils import timezone

from tasks import services
from tasks.errors import TaskError
from tasks.models import Priority, Task
from tasks.representation import task_to_dict
from tasks.validation import check_fields


class DueFilter(admin.SimpleListFilter):
    title = "due"
    parameter_name = "due"

    def lookups(self, request, model_admin):
        return [
            ("overdue", "Overdue"),
            ("today", "Next 24 hours"),
            ("week", "Next 7 days"),
            ("none", "No due date"),
        ]

    def queryset(self, request, queryset):
        now = timezone.now()
        value = self.value()
        if value == "overdue":
            return queryset.filter(due_at__lt=now, completed=False)
        if value == "today":
            return queryset.filter(due_at__gte=now, due_at__lt=now + timedelta(days=1))
        if value == "week":
            return queryset.filter(due_at__gte=now, due_at__lt=now + timedelta(days=7))
        if value == "none":
            return queryset.filter(due_at__isnull=True)
        return queryset


class TagFilter(admin.SimpleListFilter):
    """The most used tags (sampled from recent tasks, so it stays cheap on large tables)."""

    title = "tag"
    parameter_name = "tag"

    def lookups(self, request, model_admin):
        counts: dict[str, int] = {}
        for tags in Task.objects.order_by("-id").values_list("tags", flat=True)[:2000]:
            for tag in tags:
                counts[tag.lower()] = counts.get(tag.lower(), 0) + 1
        top = sorted(counts, key=lambda tag: (-counts[tag], tag))[:25]
        return [(tag, tag) for tag in top]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(tags_folded__contains=[self.value().lower()])
        return queryset


class TaskAdminForm(forms.ModelForm):
    priority_label = forms.ChoiceField(
        label="Priority",
        choices=[(label, label) for label in Priority.labels_list()],
        initial="medium",
    )
    reminder = forms.CharField(
        required=False,
        help_text="Before due (30m, 1h, 2d, 1w) or an ISO 8601 time; empty for none.",
    )

    class Meta:
        model = Task
        fields = [
            "user_id",
            "title",
            "description",
            "tags",
            "due_at",
            "recurrence_rule",
            "timezone",
            "completed",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            data = task_to_dict(self.instance)
            self.fields["priority_label"].initial = data["priority"]
            self.fields["reminder"].initial = data["reminder_time"] or ""
            self.fields["user_id"].disabled = True

    _FORM_FIELDS = {
        "due_date": "due_at",
        "reminder_time": "reminder",
        "recurrence_pattern": "recurrence_rule",
        "priority": "priority_label",
    }

    def _post_clean(self):
        # The services validate and write; the model instance is not saved from the form.
        if self.errors:
            return
        try:
            check_fields(self.to_changes())
        except TaskError as exc:
            field = self._FORM_FIELDS.get(exc.field or "", exc.field)
            self.add_error(field if field in self.fields else None, exc.message)

    def to_changes(self) -> dict:
        data = self.cleaned_data
        return {
            "title": data["title"],
            "description": data.get("description") or "",
            "priority": data["priority_label"],
            "tags": data.get("tags") or [],
            "due_date": data.get("due_at"),
            "reminder_time": data.get("reminder") or None,
            "recurrence_pattern": data.get("recurrence_rule") or "none",
            "timezone": data.get("timezone") or "UTC",
            "completed": bool(data.get("completed")),
        }


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    form = TaskAdminForm
    list_display = (
        "id",
        "title",
        "user_id",
        "priority",
        "completed",
        "due_at",
        "recurrence_rule",
        "updated_at",
    )
    list_filter = ("priority", "completed", DueFilter, TagFilter)
    search_fields = ("title", "description", "=user_id", "=id")
    show_full_result_count = False
    list_per_page = 50
    ordering = ("-id",)
    readonly_fields = (
        "created_at",
        "updated_at",
        "completed_at",
        "remind_at",
        "series_id",
        "series_index",
        "version",
    )
    actions = ["complete_tasks", "reopen_tasks", "delete_tasks"]

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # the bulk delete bypasses the services
        return actions

    def save_model(self, request, obj, form, change):
        changes = form.to_changes()
        try:
            if change:
                task, _ = services.task_update(user_id=obj.user_id, task_id=obj.pk, changes=changes)
            else:
                completed = changes.pop("completed")
                task = services.task_create(
                    user_id=form.cleaned_data["user_id"],
                    timezone_name=changes.pop("timezone"),
                    **changes,
                )
                if completed:
                    task = services.task_complete(user_id=task.user_id, task_id=task.pk)
        except TaskError as exc:
            # Checked in the form already; what is left is a race (a concurrent change).
            self.message_user(request, f"Not saved: {exc.message}", messages.ERROR)
            return
        obj.pk = task.pk

    def delete_model(self, request, obj):
        services.task_delete(user_id=obj.user_id, task_id=obj.pk)

    def delete_queryset(self, request, queryset):
        for user_id, task_id in queryset.values_list("user_id", "id"):
            services.task_delete(user_id=user_id, task_id=task_id)

    def _each(self, request, queryset, service, verb: str) -> None:
        done = 0
        for user_id, task_id in queryset.values_list("user_id", "id"):
            try:
                service(user_id=user_id, task_id=task_id)
                done += 1
            except TaskError as exc:
                self.message_user(request, f"Task {task_id}: {exc.message}", messages.ERROR)
        self.message_user(request, f"{verb} {done} task(s).", messages.SUCCESS)

    @admin.action(description="Mark selected tasks complete")
    def complete_tasks(self, request, queryset):
        self._each(request, queryset, services.task_complete, "Completed")

    @admin.action(description="Reopen selected tasks")
    def reopen_tasks(self, request, queryset):
        self._each(request, queryset, services.task_reopen, "Reopened")

    @admin.action(description="Delete selected tasks (with their events)")
    def delete_tasks(self, request, queryset):
        self._each(request, queryset, services.task_delete, "Deleted")

    def get_search_results(self, request, queryset, search_term):
        if search_term.isdigit():
            return queryset.filter(Q(pk=int(search_term)) | Q(user_id=search_term)), False
        return super().get_search_results(request, queryset, search_term)
