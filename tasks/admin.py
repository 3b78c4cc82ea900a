"""Operators' view of tasks. Every change made here goes through ``tasks.services``, so it is
validated the same way and produces the same events as a change from the API; actions that
delete or end something ask first, on a page that lists what will happen."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import Q
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.text import Truncator

from events.actors import acting_as, actor_for
from tasks import search, services
from tasks.errors import TaskError
from tasks.models import TRASH_RETENTION, Priority, Task
from tasks.representation import task_to_dict
from tasks.validation import check_fields

# Cells of the task list are cut to these lengths, so the list fits a 1,400 px window.
TITLE_CELL_CHARS = 60
USER_CELL_CHARS = 20
RULE_CELL_CHARS = 24


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


class TrashFilter(admin.SimpleListFilter):
    title = "trash"
    parameter_name = "trash"

    def lookups(self, request, model_admin):
        return [("no", "Not in the trash"), ("yes", "In the trash")]

    def queryset(self, request, queryset):
        if self.value() == "no":
            return queryset.filter(deleted_at__isnull=True)
        if self.value() == "yes":
            return queryset.filter(deleted_at__isnull=False)
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
        return [(tag, Truncator(tag).chars(USER_CELL_CHARS)) for tag in top]

    def queryset(self, request, queryset):
        tag = self.value()
        if tag:
            return queryset.filter(tags_folded__contains=[tag.lower()])
        return queryset


def _cut(text: str, chars: int) -> str:
    """A list cell: the text cut to ``chars`` (and by the list's stylesheet to its column's
    width), the whole of it on hover."""
    return format_html('<span class="cut" title="{}">{}</span>', text, Truncator(text).chars(chars))


def split_tags(text: str) -> list[str]:
    """``"home, errands"`` -> ``["home", "errands"]``; empty pieces are dropped."""
    return [piece.strip() for piece in text.split(",") if piece.strip()]


class TaskAdminForm(forms.ModelForm):
    priority_label = forms.ChoiceField(
        label="Priority",
        choices=[(label, label) for label in Priority.labels_list()],
        initial="medium",
    )
    tags_text = forms.CharField(
        label="Tags",
        required=False,
        help_text="Comma-separated, e.g. home, errands.",
        widget=forms.TextInput(attrs={"size": 60}),
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
            "due_at",
            "recurrence_rule",
            "timezone",
            "completed",
        ]

    # Form field -> the representation field the services take.
    _CHANGES = {
        "title": "title",
        "description": "description",
        "priority_label": "priority",
        "tags_text": "tags",
        "due_at": "due_date",
        "reminder": "reminder_time",
        "recurrence_rule": "recurrence_pattern",
        "timezone": "timezone",
        "completed": "completed",
    }
    _FORM_FIELDS = {change: field for field, change in _CHANGES.items()}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            data = task_to_dict(self.instance)
            self.fields["priority_label"].initial = data["priority"]
            self.fields["tags_text"].initial = ", ".join(data["tags"])
            self.fields["reminder"].initial = data["reminder_time"] or ""
            if "user_id" in self.fields:  # not on the read-only view of a task in the trash
                self.fields["user_id"].disabled = True

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
        """Every field as the services take it (a new task)."""
        data = self.cleaned_data
        return {
            "title": data["title"],
            "description": data.get("description") or "",
            "priority": data["priority_label"],
            "tags": split_tags(data.get("tags_text") or ""),
            "due_date": data.get("due_at"),
            "reminder_time": data.get("reminder") or None,
            "recurrence_pattern": data.get("recurrence_rule") or "none",
            "timezone": data.get("timezone") or "UTC",
            "completed": bool(data.get("completed")),
        }

    def changed_fields(self) -> dict:
        """Only what the operator edited: an untouched field is never written back, so its
        stored value (a series, a tag with a comma in it, a due time to the microsecond) stays."""
        changes = self.to_changes()
        return {
            self._CHANGES[name]: changes[self._CHANGES[name]]
            for name in self.changed_data
            if name in self._CHANGES
        }


@dataclass(frozen=True)
class Consequence:
    """One line of a confirmation page: a task and what the action will do to it."""

    task: Task
    effects: list[str]


def _in_trash(task: Task) -> list[str] | None:
    if task.deleted_at is None:
        return None
    return ["already in the trash: nothing changes (purge it to delete it for good)"]


def _series_effect(task: Task, *, stop_series: bool) -> list[str]:
    if task.series_id is None:
        return []
    if stop_series:
        return ["its series ends: no further instance is created"]
    return ["its series goes on: completing another instance still creates the next one"]


def _delete_effects(task: Task, *, stop_series: bool) -> list[str]:
    already = _in_trash(task)
    if already is not None:
        return already
    days = TRASH_RETENTION.days
    effects = [
        f"the task goes to the trash (restorable for {days} days, then purged); a "
        "task.deleted event is recorded and clients are told"
    ]
    if task.remind_at is not None:
        effects.append("its reminder is cancelled")
    return effects + _series_effect(task, stop_series=stop_series)


def _purge_effects(task: Task) -> list[str]:
    return [
        "the task is deleted for good, with no way back; a task.purged event is recorded"
        if task.deleted_at is not None
        else "the task is deleted for good, without going through the trash; a task.deleted "
        "event is recorded",
        *(["its reminder is cancelled"] if task.remind_at is not None else []),
    ]


def _restore_effects(task: Task) -> list[str]:
    if task.deleted_at is None:
        return ["not in the trash: nothing changes"]
    effects = ["the task comes back as it was; a task.restored event is recorded"]
    if task.remind_at is not None:
        effects.append("its reminder is scheduled again if its time is still to come")
    return effects


def _stop_series_effects(task: Task) -> list[str]:
    if task.series_id is None:
        return ["not recurring: nothing changes"]
    return [
        f"the rule {Truncator(task.recurrence_rule).chars(60)!r} is removed; the task stays",
        "completing it creates no next instance; a task.updated event is recorded",
    ]


def _as_operator(view: Callable) -> Callable:
    @functools.wraps(view)
    def acting(request, *args, **kwargs):
        actor = actor_for("admin", admin_user=request.user.get_username())
        with acting_as(actor):
            return view(request, *args, **kwargs)

    return acting


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    form = TaskAdminForm
    list_display = (
        "id",
        "title_cell",
        "user_cell",
        "priority",
        "done_cell",
        "due_cell",
        "rule_cell",
    )
    list_display_links = ("id", "title_cell")
    list_filter = ("priority", "completed", DueFilter, TagFilter, TrashFilter)
    search_fields = ("title", "description", "=user_id", "=id")
    show_full_result_count = False
    list_per_page = 50
    ordering = ("-id",)
    readonly_fields = (
        "created_at",
        "updated_at",
        "completed_at",
        "deleted_at",
        "remind_at",
        "series_id",
        "series_index",
        "version",
    )
    fieldsets = (
        (None, {"fields": ("user_id", "title", "description", "priority_label", "tags_text")}),
        ("When", {"fields": ("due_at", "timezone", "reminder", "recurrence_rule", "completed")}),
        ("Record", {"fields": readonly_fields}),
    )

    def get_urls(self):
        """Every view of this admin records its changes as the operator's (``events.actors``)."""
        urls = super().get_urls()
        for pattern in urls:
            if hasattr(pattern, "callback"):
                pattern.callback = _as_operator(pattern.callback)
        return urls

    actions = [
        "complete_tasks",
        "reopen_tasks",
        "stop_series",
        "delete_tasks",
        "delete_and_stop_series",
        "restore_tasks",
        "purge_tasks",
    ]
    confirmation_template = "admin/tasks/task/action_confirmation.html"

    @admin.display(description="title", ordering="title")
    def title_cell(self, obj: Task) -> str:
        return _cut(obj.title, TITLE_CELL_CHARS)

    @admin.display(description="user", ordering="user_id")
    def user_cell(self, obj: Task) -> str:
        return _cut(obj.user_id, USER_CELL_CHARS)

    @admin.display(description="done", boolean=True, ordering="completed")
    def done_cell(self, obj: Task) -> bool:
        return obj.completed

    @admin.display(description="due", ordering="due_at")
    def due_cell(self, obj: Task) -> str:
        return "" if obj.due_at is None else f"{timezone.localtime(obj.due_at):%Y-%m-%d %H:%M}"

    @admin.display(description="repeats", ordering="recurrence_rule")
    def rule_cell(self, obj: Task) -> str:
        return "" if obj.recurrence_rule == "none" else _cut(obj.recurrence_rule, RULE_CELL_CHARS)

    # What the read-only view (a task in the trash) shows for the form's own fields.
    @admin.display(description="tags")
    def tags_text(self, obj: Task) -> str:
        return ", ".join(obj.tags)

    @admin.display(description="reminder")
    def reminder(self, obj: Task) -> str:
        return task_to_dict(obj)["reminder_time"] or ""

    def has_change_permission(self, request, obj=None):
        # A task in the trash is read-only until it is restored (the services refuse it).
        if obj is not None and obj.deleted_at is not None:
            return False
        return super().has_change_permission(request, obj)

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # the bulk delete bypasses the services
        return actions

    # --- saving through the services ------------------------------------------------------

    def save_model(self, request, obj, form, change):
        try:
            task = self._save_through_services(obj, form, change)
        except TaskError as exc:
            # Checked in the form already; what is left is a race (a concurrent change).
            self.message_user(request, f"Not saved: {exc.message}", messages.ERROR)
            request._task_not_saved = True
            return
        # The form never fills the instance (the service writes the row): load what was
        # saved, so the messages and the log name the task by its title.
        obj.pk = task.pk
        obj.refresh_from_db()

    def _save_through_services(self, obj: Task, form: TaskAdminForm, change: bool) -> Task:
        if change:
            task, _ = services.task_update(
                user_id=obj.user_id, task_id=obj.pk, changes=form.changed_fields()
            )
            return task
        changes = form.to_changes()
        completed = changes.pop("completed")
        task = services.task_create(
            user_id=form.cleaned_data["user_id"],
            timezone_name=changes.pop("timezone"),
            **changes,
        )
        if completed:
            task = services.task_complete(user_id=task.user_id, task_id=task.pk)
        return task

    def response_add(self, request, obj, post_url_continue=None):
        if getattr(request, "_task_not_saved", False):
            return HttpResponseRedirect(request.path)
        return super().response_add(request, obj, post_url_continue)

    def response_change(self, request, obj):
        if getattr(request, "_task_not_saved", False):
            return HttpResponseRedirect(request.path)
        return super().response_change(request, obj)

    def delete_model(self, request, obj):
        services.task_delete(user_id=obj.user_id, task_id=obj.pk)

    def delete_queryset(self, request, queryset):
        for user_id, task_id in queryset.values_list("user_id", "id"):
            services.task_delete(user_id=user_id, task_id=task_id)

    # --- actions --------------------------------------------------------------------------

    def _each(self, request, queryset, service: Callable[..., object], verb: str) -> None:
        done = 0
        for user_id, task_id in queryset.values_list("user_id", "id"):
            try:
                service(user_id=user_id, task_id=task_id)
                done += 1
            except TaskError as exc:
                self.message_user(request, f"Task {task_id}: {exc.message}", messages.ERROR)
        self.message_user(request, f"{verb} {done} task(s).", messages.SUCCESS)

    def _confirmed(
        self,
        request,
        queryset,
        *,
        title: str,
        effects: Callable[[Task], list[str]],
        button: str,
    ):
        """None once the operator has confirmed; until then the page that lists, task by
        task, what the action will do (as Django's own delete action does)."""
        if request.POST.get("post") == "yes":
            return None
        consequences = [Consequence(task, effects(task)) for task in queryset.order_by("id")]
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "subtitle": None,
            "button": button,
            "consequences": consequences,
            "queryset": queryset,
            "opts": self.model._meta,
            "action": request.POST.get("action", ""),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "media": self.media,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.confirmation_template, context)

    @admin.action(description="Mark selected tasks complete")
    def complete_tasks(self, request, queryset):
        self._each(request, queryset, services.task_complete, "Completed")

    @admin.action(description="Reopen selected tasks")
    def reopen_tasks(self, request, queryset):
        self._each(request, queryset, services.task_reopen, "Reopened")

    @admin.action(description="Move selected tasks to the trash (with their events)")
    def delete_tasks(self, request, queryset):
        page = self._confirmed(
            request,
            queryset,
            title="Move these tasks to the trash?",
            effects=lambda task: _delete_effects(task, stop_series=False),
            button="Yes, move them to the trash",
        )
        if page is not None:
            return page
        self._each(
            request, queryset.filter(deleted_at__isnull=True), services.task_delete, "Trashed"
        )
        return None

    @admin.action(description="Move selected tasks to the trash and end their series")
    def delete_and_stop_series(self, request, queryset):
        page = self._confirmed(
            request,
            queryset,
            title="Move these tasks to the trash and end their series?",
            effects=lambda task: _delete_effects(task, stop_series=True),
            button="Yes, trash them and end the series",
        )
        if page is not None:
            return page

        def delete_ending_series(*, user_id: str, task_id: int) -> dict:
            return services.task_delete(user_id=user_id, task_id=task_id, stop_series=True)

        self._each(
            request, queryset.filter(deleted_at__isnull=True), delete_ending_series, "Trashed"
        )
        return None

    @admin.action(description="Restore selected tasks from the trash")
    def restore_tasks(self, request, queryset):
        page = self._confirmed(
            request,
            queryset,
            title="Restore these tasks from the trash?",
            effects=_restore_effects,
            button="Yes, restore them",
        )
        if page is not None:
            return page
        self._each(
            request, queryset.filter(deleted_at__isnull=False), services.task_restore, "Restored"
        )
        return None

    @admin.action(description="Delete selected tasks for good (purge)")
    def purge_tasks(self, request, queryset):
        page = self._confirmed(
            request,
            queryset,
            title="Delete these tasks for good?",
            effects=_purge_effects,
            button="Yes, delete them for good",
        )
        if page is not None:
            return page

        def purge(*, user_id: str, task_id: int) -> dict:
            return services.task_delete(user_id=user_id, task_id=task_id, permanent=True)

        self._each(request, queryset, purge, "Purged")
        return None

    @admin.action(description="Stop repeating selected tasks (keep the tasks)")
    def stop_series(self, request, queryset):
        page = self._confirmed(
            request,
            queryset,
            title="Stop these tasks repeating?",
            effects=_stop_series_effects,
            button="Yes, stop repeating",
        )
        if page is not None:
            return page

        def end_rule(*, user_id: str, task_id: int) -> Task:
            task, _ = services.task_update(
                user_id=user_id, task_id=task_id, changes={"recurrence_pattern": "none"}
            )
            return task

        repeating = queryset.exclude(series_id=None).filter(deleted_at__isnull=True)
        self._each(request, repeating, end_rule, "Stopped")
        return None

    def get_search_results(self, request, queryset, search_term):
        if search_term.isdigit():
            return queryset.filter(Q(pk=int(search_term)) | Q(user_id=search_term)), False
        # The API's search (accents, stems, every language, phrases), over every user's tasks,
        # or the tasks of a user id typed whole.
        query = search.parse(search_term, user_id=None)
        if query is None:
            return super().get_search_results(request, queryset, search_term)
        return queryset.filter(Q(query.matches()) | Q(user_id=search_term.strip())), False
