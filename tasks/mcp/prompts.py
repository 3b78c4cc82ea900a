"""Prompts for the jobs an agent is most often asked to do with a task list, each written
around the tools and resources this server has, so the agent does the job in few calls."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import MCPServer
from pydantic import Field

from tasks.mcp.schemas import TimeZone
from tasks.models import MAX_LIMIT


def plan_my_day(timezone: TimeZone = None) -> str:
    """Plan today: what is due, what is overdue, and an order to do it in."""
    zone = timezone or "UTC"
    return (
        f"Help me plan my day (time zone {zone}).\n"
        f"1. Call list_tasks with due='today', status='pending', timezone='{zone}' and "
        "ordering=['-priority', 'due_date'].\n"
        f"2. Call list_tasks with due='overdue', timezone='{zone}'.\n"
        "3. Propose an order for today: overdue urgent/high first, then today's tasks by due "
        "time and priority. Keep it to what fits in one day and say what should move.\n"
        "4. Ask before changing anything; then use update_task (new due_date or priority) or "
        "complete_task, one task_id at a time."
    )


def weekly_review(
    timezone: TimeZone = None,
    focus: Annotated[
        str | None, Field(max_length=200, description="A tag or theme to look at closely.")
    ] = None,
) -> str:
    """Review the week: what got done, what slipped, what comes next."""
    zone = timezone or "UTC"
    focus_line = f" Pay particular attention to '{focus}'." if focus else ""
    return (
        f"Run my weekly review (time zone {zone}).{focus_line}\n"
        f"1. Done: list_tasks with status='completed', due='this_week', timezone='{zone}'.\n"
        f"2. Slipped: list_tasks with due='overdue', timezone='{zone}'.\n"
        "3. Next: read the resource tasks://upcoming (the next 7 days).\n"
        "4. Open ends: list_tasks with due='none', status='pending', "
        "ordering=['-priority'].\n"
        "Summarise each group in a few lines, then suggest at most five changes (reschedule, "
        "reprioritise, delete what no longer matters) and wait for my yes before calling "
        "update_task, complete_task or delete_task."
    )


def triage_overdue(
    limit: Annotated[
        int, Field(ge=1, le=MAX_LIMIT, description="How many overdue tasks to go through.")
    ] = 20,
) -> str:
    """Go through overdue tasks one by one: do, reschedule, or drop."""
    return (
        f"Triage my overdue tasks, at most {limit}.\n"
        f"1. Call list_tasks with due='overdue', ordering=['due_date'], limit={limit}.\n"
        "2. For each, suggest one of: done (complete_task), reschedule (update_task with a "
        "realistic due_date), lower the priority (update_task), or drop (delete_task; for a "
        "recurring task say whether the series should stop: stop_series).\n"
        "3. Show the whole plan as a list first; apply it only after I agree, and report "
        "each tool result."
    )


def register(server: MCPServer) -> None:
    server.prompt(name="plan_my_day", title="Plan my day")(plan_my_day)
    server.prompt(name="weekly_review", title="Weekly review")(weekly_review)
    server.prompt(name="triage_overdue", title="Triage overdue")(triage_overdue)
