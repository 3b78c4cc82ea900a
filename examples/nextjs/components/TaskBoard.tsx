"use client";

import {
  ApiError,
  type SocketStatus,
  type Task,
  type TaskCreate,
  type TaskListQuery,
  type TaskPatch,
  TaskSocket,
  TodoClient,
} from "@todo-app/client";
import { useRouter } from "next/navigation";
import {
  type FormEvent,
  type ReactNode,
  useCallback,
  useEffect,
  useId,
  useMemo,
  useRef,
  useState,
} from "react";

import { apiToken, authClient, forgetApiToken } from "@/lib/auth-client";

type Priority = Task["priority"];
const PRIORITIES: Priority[] = ["low", "medium", "high", "urgent"];
const ORDERINGS = [
  ["-created_at", "Newest"],
  ["due_date", "Due date"],
  ["-priority", "Priority"],
  ["title", "Title"],
  ["-updated_at", "Recently changed"],
] as const;
const UNDO_MS = 8000;

interface Filters {
  q: string;
  status: NonNullable<TaskListQuery["status"]>;
  priority: "" | Priority;
  tag: string;
  due: "" | NonNullable<TaskListQuery["due"]>;
  ordering: string;
}

const DEFAULT_FILTERS: Filters = {
  q: "",
  status: "pending",
  priority: "",
  tag: "",
  due: "",
  ordering: "-created_at",
};

function browserTimeZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
}

function toQuery(filters: Filters): TaskListQuery {
  const query: TaskListQuery = {
    status: filters.status,
    ordering: [filters.ordering],
    limit: 100,
    timezone: browserTimeZone() as TaskListQuery["timezone"],
  };
  if (filters.q.trim()) query.q = filters.q.trim();
  if (filters.priority) query.priority = [filters.priority];
  if (filters.tag.trim()) query.tags = [filters.tag.trim()];
  if (filters.due) query.due = filters.due;
  return query;
}

function tagList(text: string): string[] {
  return text
    .split(",")
    .map((tag) => tag.trim())
    .filter(Boolean);
}

/** A UTC instant as the value of a `datetime-local` input, in this browser's zone. */
function localInputValue(iso: string | null): string {
  if (!iso) return "";
  const date = new Date(iso);
  const shifted = new Date(date.getTime() - date.getTimezoneOffset() * 60_000);
  return shifted.toISOString().slice(0, 16);
}

function describeError(error: unknown): string {
  if (error instanceof ApiError) {
    const field = error.fields[0];
    return field?.field ? `${field.field}: ${field.message}` : error.message;
  }
  return error instanceof Error ? error.message : String(error);
}

export function TaskBoard({ apiUrl, userName }: { apiUrl: string; userName: string }) {
  const router = useRouter();
  const client = useMemo(() => new TodoClient({ baseUrl: apiUrl, token: apiToken }), [apiUrl]);
  const [filters, setFilters] = useState<Filters>(DEFAULT_FILTERS);
  const [tasks, setTasks] = useState<Task[]>([]);
  const [count, setCount] = useState(0);
  const [loaded, setLoaded] = useState(false);
  const [live, setLive] = useState<SocketStatus>("connecting");
  const [error, setError] = useState<string | null>(null);
  const [editing, setEditing] = useState<number | null>(null);
  const [trashed, setTrashed] = useState<Task | null>(null);
  const filtersRef = useRef(filters);
  const latestRequest = useRef(0);

  /** The list for the current filters; an answer older than the latest request is dropped. */
  const load = useCallback(async () => {
    const request = ++latestRequest.current;
    try {
      const page = await client.listTasks(toQuery(filtersRef.current));
      if (request !== latestRequest.current) return;
      setTasks(page.results);
      setCount(page.count);
      setLoaded(true);
      setError(null);
    } catch (failure) {
      if (request === latestRequest.current) setError(describeError(failure));
    }
  }, [client]);

  useEffect(() => {
    filtersRef.current = filters;
    const timer = setTimeout(() => void load(), filters.q ? 200 : 0);
    return () => clearTimeout(timer);
  }, [filters, load]);

  // Any change to the user's tasks, from this tab, another one, the agent (MCP) or the admin,
  // arrives on the socket; the list is asked for again with the filters and sort it shows.
  useEffect(() => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const refresh = () => {
      clearTimeout(timer);
      timer = setTimeout(() => void load(), 25);
    };
    const socket = new TaskSocket({
      url: client.socketUrl,
      token: apiToken,
      onStatus: setLive,
      onResync: refresh,
      onAuthError: (code, reason) => {
        if (code === 4401 || code === 4408) {
          forgetApiToken();
          router.replace("/sign-in");
        } else {
          setError(`Live updates refused (${code} ${reason}): check the API's allowed origins.`);
        }
      },
    });
    socket.on("*", (frame) => {
      if (frame.event_type.startsWith("task.")) refresh();
    });
    socket.connect();
    return () => {
      clearTimeout(timer);
      socket.close();
    };
  }, [client, load, router]);

  useEffect(() => {
    if (!trashed) return;
    const timer = setTimeout(() => setTrashed(null), UNDO_MS);
    return () => clearTimeout(timer);
  }, [trashed]);

  async function run(action: () => Promise<unknown>) {
    try {
      await action();
      setError(null);
    } catch (failure) {
      setError(describeError(failure));
    }
    await load();
  }

  async function create(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const formElement = event.currentTarget;
    const form = new FormData(formElement);
    const due = String(form.get("due_date") ?? "");
    await run(async () => {
      await client.createTask({
        title: String(form.get("title") ?? ""),
        priority: String(form.get("priority")) as Priority,
        tags: tagList(String(form.get("tags") ?? "")),
        due_date: due || null,
        timezone: browserTimeZone() as TaskCreate["timezone"],
      });
      formElement.reset();
    });
  }

  async function save(task: Task, form: FormData) {
    const due = String(form.get("due_date") ?? "");
    const patch: TaskPatch = {
      title: String(form.get("title") ?? ""),
      description: String(form.get("description") ?? ""),
      priority: String(form.get("priority")) as Priority,
      tags: tagList(String(form.get("tags") ?? "")),
      due_date: due || null,
    };
    await run(async () => {
      await client.updateTask(task.id, patch, { version: task.version });
      setEditing(null);
    });
  }

  async function remove(task: Task) {
    await run(async () => {
      await client.deleteTask(task.id);
      setTrashed(task);
    });
  }

  async function undo() {
    const task = trashed;
    setTrashed(null);
    if (task) await run(() => client.restoreTask(task.id));
  }

  async function signOut() {
    await authClient.signOut();
    forgetApiToken();
    router.replace("/sign-in");
    router.refresh();
  }

  const update = (change: Partial<Filters>) => setFilters((current) => ({ ...current, ...change }));

  return (
    <main>
      <header className="bar">
        <h1>Tasks</h1>
        <span className="live" data-testid="live" data-state={live} aria-live="polite">
          {live === "open" ? "Live" : live}
        </span>
        <span>
          {userName}{" "}
          <button type="button" onClick={() => void signOut()}>
            Sign out
          </button>
        </span>
      </header>

      <form className="card row" onSubmit={create} aria-label="New task">
        <Field label="Title" className="grow">
          {(id) => (
            <input id={id} name="title" required maxLength={200} placeholder="What needs doing?" />
          )}
        </Field>
        <Field label="Priority">
          {(id) => (
            <select id={id} name="priority" defaultValue="medium">
              {PRIORITIES.map((p) => (
                <option key={p}>{p}</option>
              ))}
            </select>
          )}
        </Field>
        <Field label="Tags">{(id) => <input id={id} name="tags" placeholder="home, work" />}</Field>
        <Field label="Due">{(id) => <input id={id} name="due_date" type="datetime-local" />}</Field>
        <button className="primary" type="submit">
          Add
        </button>
      </form>

      <section className="card" aria-label="Filters">
        <div className="row">
          <Field label="Search" className="grow">
            {(id) => (
              <input
                id={id}
                type="search"
                value={filters.q}
                onChange={(e) => update({ q: e.target.value })}
                placeholder='words, "a phrase", -not'
              />
            )}
          </Field>
          <Field label="Status">
            {(id) => (
              <select
                id={id}
                value={filters.status}
                onChange={(e) => update({ status: e.target.value as Filters["status"] })}
              >
                <option value="pending">Pending</option>
                <option value="completed">Completed</option>
                <option value="all">All</option>
              </select>
            )}
          </Field>
          <Field label="Priority">
            {(id) => (
              <select
                id={id}
                value={filters.priority}
                onChange={(e) => update({ priority: e.target.value as Filters["priority"] })}
              >
                <option value="">Any</option>
                {PRIORITIES.map((p) => (
                  <option key={p}>{p}</option>
                ))}
              </select>
            )}
          </Field>
          <Field label="Tag">
            {(id) => (
              <input
                id={id}
                value={filters.tag}
                onChange={(e) => update({ tag: e.target.value })}
              />
            )}
          </Field>
          <Field label="Due">
            {(id) => (
              <select
                id={id}
                value={filters.due}
                onChange={(e) => update({ due: e.target.value as Filters["due"] })}
              >
                <option value="">Any time</option>
                <option value="overdue">Overdue</option>
                <option value="today">Today</option>
                <option value="this_week">This week</option>
                <option value="this_month">This month</option>
                <option value="none">No date</option>
              </select>
            )}
          </Field>
          <Field label="Sort">
            {(id) => (
              <select
                id={id}
                value={filters.ordering}
                onChange={(e) => update({ ordering: e.target.value })}
              >
                {ORDERINGS.map(([value, label]) => (
                  <option key={value} value={value}>
                    {label}
                  </option>
                ))}
              </select>
            )}
          </Field>
        </div>
        {error && (
          <p className="error" role="alert">
            {error}
          </p>
        )}
      </section>

      <section className="card" aria-label="Tasks">
        <p className="count" data-testid="count">
          {count} {count === 1 ? "task" : "tasks"}
        </p>
        {loaded && tasks.length === 0 && <p className="empty">Nothing here.</p>}
        <ul className="tasks">
          {tasks.map((task) =>
            editing === task.id ? (
              <TaskEditor
                key={task.id}
                task={task}
                onSave={(form) => void save(task, form)}
                onCancel={() => setEditing(null)}
              />
            ) : (
              <TaskRow
                key={task.id}
                task={task}
                onToggle={() =>
                  void run(() =>
                    task.completed ? client.reopenTask(task.id) : client.completeTask(task.id),
                  )
                }
                onEdit={() => setEditing(task.id)}
                onDelete={() => void remove(task)}
              />
            ),
          )}
        </ul>
      </section>

      {trashed && (
        <div className="toast" role="status" data-testid="undo-toast">
          <span>Deleted “{trashed.title}”.</span>
          <button type="button" onClick={() => void undo()}>
            Undo
          </button>
        </div>
      )}
    </main>
  );
}

function TaskRow({
  task,
  onToggle,
  onEdit,
  onDelete,
}: {
  task: Task;
  onToggle: () => void;
  onEdit: () => void;
  onDelete: () => void;
}) {
  return (
    <li className="task" data-testid="task" data-task-id={task.id} data-completed={task.completed}>
      <input
        type="checkbox"
        className="done"
        checked={task.completed}
        onChange={onToggle}
        aria-label={task.completed ? `Reopen ${task.title}` : `Complete ${task.title}`}
      />
      <div>
        <div className="title">{task.title}</div>
        {task.description && <div>{task.description}</div>}
        <div className="meta">
          <span className="badge" data-priority={task.priority}>
            {task.priority}
          </span>
          {task.tags.map((tag) => (
            <span key={tag} className="tag">
              #{tag}
            </span>
          ))}
          {task.due_date && <span>due {new Date(task.due_date).toLocaleString()}</span>}
          {task.recurrence_pattern !== "none" && <span>repeats {task.recurrence_pattern}</span>}
        </div>
      </div>
      <div className="actions">
        <button type="button" onClick={onEdit} aria-label={`Edit ${task.title}`}>
          Edit
        </button>
        <button
          type="button"
          className="danger"
          onClick={onDelete}
          aria-label={`Delete ${task.title}`}
        >
          Delete
        </button>
      </div>
    </li>
  );
}

function TaskEditor({
  task,
  onSave,
  onCancel,
}: {
  task: Task;
  onSave: (form: FormData) => void;
  onCancel: () => void;
}) {
  return (
    <li className="task" data-testid="task-editor" data-task-id={task.id}>
      <span />
      <form
        className="row"
        aria-label={`Edit ${task.title}`}
        onSubmit={(event) => {
          event.preventDefault();
          onSave(new FormData(event.currentTarget));
        }}
      >
        <Field label="Title" className="grow">
          {(id) => (
            <input id={id} name="title" defaultValue={task.title} required maxLength={200} />
          )}
        </Field>
        <Field label="Description" className="grow">
          {(id) => <textarea id={id} name="description" defaultValue={task.description} rows={2} />}
        </Field>
        <Field label="Priority">
          {(id) => (
            <select id={id} name="priority" defaultValue={task.priority}>
              {PRIORITIES.map((p) => (
                <option key={p}>{p}</option>
              ))}
            </select>
          )}
        </Field>
        <Field label="Tags">
          {(id) => <input id={id} name="tags" defaultValue={task.tags.join(", ")} />}
        </Field>
        <Field label="Due">
          {(id) => (
            <input
              id={id}
              name="due_date"
              type="datetime-local"
              defaultValue={localInputValue(task.due_date)}
            />
          )}
        </Field>
        <button className="primary" type="submit">
          Save
        </button>
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
      </form>
      <span />
    </li>
  );
}

/** A label bound to its control by id, so the control's name is the label alone (a label
 * wrapped around a select would also be named by the select's options). */
function Field({
  label,
  className,
  children,
}: {
  label: string;
  className?: string;
  children: (id: string) => ReactNode;
}) {
  const id = useId();
  return (
    <div className={className ? `field ${className}` : "field"}>
      <label htmlFor={id}>{label}</label>
      {children(id)}
    </div>
  );
}
