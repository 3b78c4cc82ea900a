// The live board: the REST API for reads and writes, the task socket for changes made anywhere
// else (another tab, the chat agent through MCP, the admin, a recurring series, a reminder).
import { TaskSocket } from "./client.js";
import { describeRule } from "./rules.js";

const TOKEN_KEY = "todo.board.token";
const PAGE_SIZE = 50;
const UNDO_MS = 10000;
const timeZone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";

const $ = (id) => document.getElementById(id);
const state = {
  token: null,
  socket: null,
  tasks: [], // in display order, as the server sorted them
  total: 0,
  limit: PAGE_SIZE,
  loadSeq: 0,
  reloadTimer: null,
  editingId: null,
  notes: [],
  unread: 0,
};

// --- token -----------------------------------------------------------------------------------

function tokenFromHash() {
  const hash = new URLSearchParams(location.hash.slice(1));
  const token = hash.get("token");
  if (token) {
    // The fragment never reaches the server; drop it from the address bar and history too.
    history.replaceState(null, "", location.pathname + location.search);
  }
  return token;
}

function claims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), "=")));
  } catch {
    return null;
  }
}

function signIn(token) {
  const payload = claims(token);
  if (!payload || typeof payload.sub !== "string") {
    showSignIn("That does not look like a token.");
    return;
  }
  if (payload.exp && payload.exp * 1000 < Date.now()) {
    showSignIn("That token has expired.");
    return;
  }
  state.token = token;
  localStorage.setItem(TOKEN_KEY, token);
  $("signin").hidden = true;
  $("board").hidden = false;
  $("who").hidden = false;
  $("who").textContent = payload.sub;
  $("sign-out").hidden = false;
  $("inbox-button").hidden = false;
  startSocket();
  // Show the list at once; the socket's hello reloads it, and from then on nothing is missed.
  load();
}

function signOut(message) {
  state.socket?.close();
  state.socket = null;
  state.token = null;
  state.tasks = [];
  state.notes = [];
  state.editingId = null;
  localStorage.removeItem(TOKEN_KEY);
  render();
  setUnread(0);
  closeInbox(false);
  showSignIn(message);
}

function showSignIn(message) {
  $("board").hidden = true;
  $("who").hidden = true;
  $("sign-out").hidden = true;
  $("inbox-button").hidden = true;
  $("signin").hidden = false;
  setLive("idle");
  const error = $("signin-error");
  error.hidden = !message;
  error.textContent = message || "";
}

async function signInWithPassword(event) {
  event.preventDefault();
  const button = $("password-submit");
  button.disabled = true;
  try {
    const response = await fetch("/api/auth/token/", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ username: $("username").value, password: $("password").value }),
    });
    const data = await response.json().catch(() => null);
    if (!response.ok) {
      const wait = response.headers.get("Retry-After");
      const message =
        response.status === 429
          ? `Too many attempts; try again in ${wait || "a few"} seconds.`
          : data?.error?.message || `Sign-in failed (${response.status}).`;
      showSignIn(message);
      $("password").select();
      return;
    }
    $("password").value = "";
    signIn(data.token);
    $("new-title").focus();
  } catch {
    showSignIn("The server could not be reached.");
  } finally {
    button.disabled = false;
  }
}

// --- REST ------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message || `Request failed (${status})`);
    this.status = status;
    this.body = body;
  }
}

async function api(method, path, body, headers = {}) {
  const response = await fetch(path, {
    method,
    headers: {
      Authorization: `Bearer ${state.token}`,
      Accept: "application/json",
      ...(body ? { "Content-Type": "application/json" } : {}),
      ...headers,
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  if (response.status === 401) {
    signOut("Your token was refused; sign in again.");
    throw new ApiError(401, null);
  }
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

function errorText(error) {
  const field = error.body?.error?.fields?.[0];
  return field?.field ? `${field.field}: ${field.message}` : error.message;
}

function query(offset, limit) {
  const params = new URLSearchParams({ limit: String(limit), offset: String(offset), timezone: timeZone });
  const q = $("q").value.trim();
  if (q) params.set("q", q);
  params.set("status", $("status").value);
  if ($("priority").value) params.set("priority", $("priority").value);
  if ($("due").value) params.set("due", $("due").value);
  const tag = $("tag").value.trim();
  if (tag) params.set("tags", tag);
  if ($("ordering").value) params.set("ordering", $("ordering").value);
  return params;
}

async function load() {
  if (!state.token) return;
  const seq = ++state.loadSeq;
  try {
    const tasks = [];
    let total = 0;
    // The API pages by at most 100; "show more" may have asked for more than that.
    do {
      const limit = Math.min(100, state.limit - tasks.length);
      const page = await api("GET", `/api/tasks/?${query(tasks.length, limit)}`);
      if (seq !== state.loadSeq) return; // a newer load is on its way
      tasks.push(...page.results);
      total = page.count;
      if (page.results.length < limit) break;
    } while (tasks.length < state.limit && tasks.length < total);
    state.tasks = tasks;
    state.total = total;
    render();
    if (!document.body.dataset.loaded) performance.mark("board-loaded");
    document.body.dataset.loaded = "true";
  } catch (error) {
    if (error.status !== 401) toast(error.message, "error");
  }
}

// Changes from the socket are applied at once, then the list is reloaded shortly after so that
// server-side search, filters and order have the last word.
function scheduleReload(delay = 400) {
  clearTimeout(state.reloadTimer);
  state.reloadTimer = setTimeout(load, delay);
}

// --- live ------------------------------------------------------------------------------------

function setLive(status) {
  const labels = { open: "live", connecting: "connecting", reconnecting: "reconnecting", closed: "offline", idle: "offline" };
  $("live").dataset.state = status;
  $("live-text").textContent = labels[status] || status;
}

function startSocket() {
  state.socket?.close();
  const socket = new TaskSocket({
    token: () => state.token,
    onStatus: (status) => setLive(status),
    onResync: () => {
      load();
      loadInbox();
    },
    onAuthError: (code, reason) => {
      signOut(reason === "token_expired" ? "Your token has expired; sign in again." : "Your token was refused; sign in again.");
    },
  });
  // A skipped occurrence leaves the pending list; a restored task comes back like a new one.
  for (const type of ["task.created", "task.updated", "task.completed", "task.reopened", "task.skipped", "task.restored"]) {
    socket.on(type, (frame) => {
      if (frame.task) upsert(frame.task, frame.event_type);
      scheduleReload();
    });
  }
  for (const type of ["task.deleted", "task.purged"]) {
    socket.on(type, (frame) => {
      remove(frame.task_id);
      scheduleReload();
    });
  }
  socket.on("notification.created", (frame) => noteArrived(frame.notification));
  socket.on("notification.read", (frame) => noteChanged(frame.notification));
  socket.on("notification.dismissed", (frame) => noteChanged(frame.notification));
  state.socket = socket;
  socket.connect();
}

function matchesFilters(task) {
  const status = $("status").value;
  if (task.deleted_at) return false;
  if (status === "pending" && (task.completed || task.skipped_at)) return false;
  if (status === "completed" && !task.completed) return false;
  if (status === "skipped" && !task.skipped_at) return false;
  const priority = $("priority").value;
  if (priority && task.priority !== priority) return false;
  const tag = $("tag").value.trim().toLowerCase();
  if (tag && !task.tags.some((t) => t.toLowerCase() === tag)) return false;
  return true;
}

function upsert(task, eventType) {
  const index = state.tasks.findIndex((t) => t.id === task.id);
  const keep = matchesFilters(task) && !$("q").value.trim();
  if (index >= 0 && state.tasks[index].version > task.version) return; // older than what we have
  if (index >= 0 && keep) state.tasks[index] = task;
  else if (index >= 0) {
    state.tasks.splice(index, 1);
    state.total = Math.max(0, state.total - 1);
  } else if (keep && (eventType === "task.created" || eventType === "task.restored")) {
    state.tasks.unshift(task);
    state.total += 1;
  } else if (keep) {
    state.tasks.push(task);
    state.total += 1;
  }
  render(task.id);
}

function remove(taskId) {
  const index = state.tasks.findIndex((t) => t.id === taskId);
  if (index >= 0) {
    state.tasks.splice(index, 1);
    state.total = Math.max(0, state.total - 1);
    render();
  }
}

// --- rendering -------------------------------------------------------------------------------

const dateFormat = new Intl.DateTimeFormat(undefined, { weekday: "short", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });

function describeDue(task) {
  if (!task.due_date) return null;
  const due = new Date(task.due_date);
  const now = new Date();
  const startOfToday = new Date(now.getFullYear(), now.getMonth(), now.getDate());
  const startOfTomorrow = new Date(startOfToday.getTime() + 86400000);
  let when = "";
  let kind = "later";
  if (!task.completed && due < now) {
    when = "overdue · ";
    kind = "overdue";
  } else if (due < startOfTomorrow) {
    when = "today · ";
    kind = "today";
  }
  return { text: `${when}${dateFormat.format(due)}`, kind, iso: task.due_date };
}

function describeReminder(value) {
  if (!value) return null;
  return `reminder ${/^\d+[mhdw]$/.test(value) ? `${value} before` : dateFormat.format(new Date(value))}`;
}

function show(el, text) {
  el.hidden = !text;
  if (text) el.textContent = text;
}

function renderTask(task, highlight) {
  const item = $("task-template").content.firstElementChild.cloneNode(true);
  item.dataset.id = String(task.id);
  item.dataset.version = String(task.version);
  item.dataset.priority = task.priority;
  item.classList.toggle("completed", task.completed);
  item.classList.toggle("skipped", Boolean(task.skipped_at));
  if (highlight) item.classList.add("flash");
  const done = item.querySelector(".done");
  done.checked = task.completed;
  done.setAttribute("aria-label", `Done: ${task.title}`);
  done.addEventListener("change", () => toggle(task, done));
  const badge = item.querySelector(".badge");
  badge.textContent = task.priority;
  badge.dataset.priority = task.priority;
  item.querySelector(".title").textContent = task.title;
  show(item.querySelector(".description"), task.description);
  const due = describeDue(task);
  const dueEl = item.querySelector(".due");
  show(dueEl, due?.text);
  if (due) {
    dueEl.dataset.kind = due.kind;
    dueEl.title = due.iso;
  }
  const rule = describeRule(task.recurrence_pattern);
  const ruleEl = item.querySelector(".recurrence");
  show(ruleEl, rule && `↻ ${rule}`);
  if (rule) ruleEl.title = task.recurrence_pattern;
  show(item.querySelector(".reminder"), describeReminder(task.reminder_time));
  const tags = item.querySelector(".tags");
  for (const tag of task.tags) {
    const chip = document.createElement("button");
    chip.type = "button";
    chip.className = "tag";
    chip.textContent = `#${tag}`;
    chip.setAttribute("aria-label", `Show tag ${tag}`);
    chip.addEventListener("click", () => {
      $("tag").value = tag;
      state.limit = PAGE_SIZE;
      load();
    });
    tags.append(chip);
  }
  const edit = item.querySelector(".edit");
  edit.setAttribute("aria-label", `Edit ${task.title}`);
  edit.addEventListener("click", () => openEditor(task.id));
  const recurring = Boolean(rule);
  const open = !task.completed && !task.skipped_at;
  const skip = item.querySelector(".skip");
  skip.hidden = !(recurring && open);
  skip.addEventListener("click", () => skipOccurrence(task, skip));
  const next = item.querySelector(".next");
  next.hidden = !(recurring && task.due_date);
  next.addEventListener("click", () => toggleOccurrences(task, item, next));
  const del = item.querySelector(".delete");
  del.setAttribute("aria-label", `Delete ${task.title}`);
  del.addEventListener("click", (event) => destroy(task, item, event.detail === 0));
  return item;
}

// Items are kept by id and version, so a change elsewhere rebuilds only what changed and an open
// editor (and the focus inside it) survives live updates.
function render(highlightId) {
  const list = $("tasks");
  const existing = new Map([...list.children].map((el) => [el.dataset.id, el]));
  const wanted = [];
  for (const task of state.tasks) {
    const key = String(task.id);
    const old = existing.get(key);
    const keep = old && (task.id === state.editingId || (old.dataset.version === String(task.version) && task.id !== highlightId));
    wanted.push(keep ? old : renderTask(task, task.id === highlightId));
    existing.delete(key);
  }
  for (const el of existing.values()) el.remove();
  if (state.editingId !== null && !state.tasks.some((t) => t.id === state.editingId)) state.editingId = null;
  wanted.forEach((el, index) => {
    const current = list.children[index];
    if (current !== el) list.insertBefore(el, current || null);
  });
  while (list.children.length > wanted.length) list.lastElementChild.remove();
  const shown = state.tasks.length;
  $("summary").textContent = state.total === 0 ? "Nothing here." : `${shown} of ${state.total}`;
  $("more").hidden = shown >= state.total;
}

function toast(text, kind = "info", action = null) {
  const el = document.createElement("div");
  el.className = `toast ${kind}`;
  const message = document.createElement("span");
  message.textContent = text;
  el.append(message);
  let timer = null;
  const close = () => {
    clearTimeout(timer);
    el.remove();
  };
  if (action) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "toast-action";
    button.textContent = action.label;
    button.addEventListener("click", () => {
      close();
      action.run();
    });
    button.addEventListener("keydown", (event) => {
      if (event.key === "Escape") close();
    });
    el.append(button);
  }
  $("toasts").append(el);
  timer = setTimeout(close, action ? UNDO_MS : 5000);
  return el;
}

// --- editing ---------------------------------------------------------------------------------

function pad(n) {
  return String(n).padStart(2, "0");
}

// datetime-local speaks the browser's wall clock; the API gets an exact instant back.
function toLocalInput(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function ruleInput(text) {
  return !text || text === "none" ? "never" : text;
}

function ruleValue(text) {
  const value = text.trim();
  return !value || /^(never|none)$/i.test(value) ? null : value;
}

function openEditor(taskId) {
  const task = state.tasks.find((t) => t.id === taskId);
  if (!task) return;
  if (state.editingId !== null && state.editingId !== taskId) closeEditor(false);
  const item = $("tasks").querySelector(`[data-id="${taskId}"]`);
  if (!item) return;
  state.editingId = taskId;
  item.querySelector(".editor")?.remove();
  const form = $("editor-template").content.firstElementChild.cloneNode(true);
  fillEditor(form, task);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    saveEditor(form, taskId);
  });
  form.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      closeEditor(true);
    } else if (event.key === "Enter" && event.target.tagName === "TEXTAREA" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  form.querySelector(".cancel").addEventListener("click", () => closeEditor(true));
  const rule = form.elements.rule;
  rule.addEventListener("input", () => showRuleWords(form));
  item.classList.add("editing");
  item.querySelector(".body").append(form);
  form.elements.title.focus();
}

// The form remembers the version it shows: a save sends only what the person changed from it,
// with that version as If-Match, whatever live updates arrived meanwhile.
const editorBase = new WeakMap();

function fillEditor(form, task) {
  editorBase.set(form, task);
  form.dataset.version = String(task.version);
  form.elements.title.value = task.title;
  form.elements.description.value = task.description || "";
  form.elements.priority.value = task.priority;
  form.elements.tags.value = task.tags.join(", ");
  form.elements.due.value = toLocalInput(task.due_date);
  const reminder = form.elements.reminder;
  const current = task.reminder_time || "";
  if (current && ![...reminder.options].some((o) => o.value === current)) {
    reminder.append(new Option(describeReminder(current).replace(/^reminder /, ""), current));
  }
  reminder.value = current;
  form.elements.rule.value = ruleInput(task.recurrence_pattern);
  form.elements.repeat_from.value = task.repeat_from || "due";
  form.querySelector(".series-only").hidden = !describeRule(task.recurrence_pattern);
  showRuleWords(form);
}

function showRuleWords(form) {
  const value = ruleValue(form.elements.rule.value);
  const words = value && describeRule(value);
  form.querySelector(".rule-words").textContent = words && words !== value ? `Repeats ${words}` : "";
}

function closeEditor(restoreFocus) {
  const taskId = state.editingId;
  state.editingId = null;
  const item = $("tasks").querySelector(`[data-id="${taskId}"]`);
  if (!item) return;
  item.querySelector(".editor")?.remove();
  item.classList.remove("editing");
  const task = state.tasks.find((t) => t.id === taskId);
  if (task && item.dataset.version !== String(task.version)) {
    const fresh = renderTask(task, false);
    item.replaceWith(fresh);
    if (restoreFocus) fresh.querySelector(".edit").focus();
  } else if (restoreFocus) item.querySelector(".edit").focus();
}

function editorChanges(form, task) {
  const f = form.elements;
  const changes = {};
  const title = f.title.value.trim();
  if (title !== task.title) changes.title = title;
  if (f.description.value !== (task.description || "")) changes.description = f.description.value;
  if (f.priority.value !== task.priority) changes.priority = f.priority.value;
  const tags = f.tags.value.split(",").map((t) => t.trim()).filter(Boolean);
  if (tags.join("\n") !== task.tags.join("\n")) changes.tags = tags;
  if (f.due.value !== toLocalInput(task.due_date)) {
    changes.due_date = f.due.value ? new Date(f.due.value).toISOString() : null;
  }
  if (f.reminder.value !== (task.reminder_time || "")) changes.reminder_time = f.reminder.value || null;
  const rule = ruleValue(f.rule.value);
  if ((rule || "none") !== (task.recurrence_pattern || "none")) changes.recurrence_pattern = rule;
  if (f.repeat_from.value !== (task.repeat_from || "due")) changes.repeat_from = f.repeat_from.value;
  if ("due_date" in changes && f.series.checked && describeRule(task.recurrence_pattern)) changes.apply_to = "series";
  return changes;
}

async function saveEditor(form, taskId) {
  const task = editorBase.get(form);
  const errorBox = form.querySelector(".editor-error");
  errorBox.hidden = true;
  if (!state.tasks.some((t) => t.id === taskId)) return closeEditor(false);
  if (!form.elements.title.value.trim()) {
    errorBox.textContent = "title: A task needs a title.";
    errorBox.hidden = false;
    form.elements.title.focus();
    return;
  }
  const changes = editorChanges(form, task);
  if (!Object.keys(changes).length) return closeEditor(true);
  if (!("timezone" in changes) && "due_date" in changes) changes.timezone = task.timezone || timeZone;
  const submit = form.querySelector('button[type="submit"]');
  submit.disabled = true;
  try {
    const updated = await api("PATCH", `/api/tasks/${taskId}/`, changes, { "If-Match": `"${form.dataset.version}"` });
    const index = state.tasks.findIndex((t) => t.id === taskId);
    if (index >= 0) state.tasks[index] = updated;
    closeEditor(true);
    scheduleReload();
  } catch (error) {
    if (error.status === 401) return;
    if (error.body?.error?.code === "version_conflict") {
      await refreshEditor(form, taskId, changes);
      errorBox.textContent = "This task changed meanwhile; the form shows the newest version with your changes. Save again to apply them.";
    } else if (error.status === 404) errorBox.textContent = "This task is gone (deleted elsewhere).";
    else errorBox.textContent = errorText(error);
    errorBox.hidden = false;
    const field = error.body?.error?.fields?.[0]?.field;
    const input = EDITOR_INPUTS[field] || field;
    (form.elements[input] || form.elements.title).focus?.();
  } finally {
    submit.disabled = false;
  }
}

const EDITOR_INPUTS = {
  title: "title",
  description: "description",
  priority: "priority",
  tags: "tags",
  due_date: "due",
  reminder_time: "reminder",
  recurrence_pattern: "rule",
  repeat_from: "repeat_from",
};

// The newest version of the task, with what this person changed kept on top of it.
async function refreshEditor(form, taskId, changes) {
  const typed = Object.keys(changes)
    .filter((key) => EDITOR_INPUTS[key])
    .map((key) => [EDITOR_INPUTS[key], form.elements[EDITOR_INPUTS[key]].value]);
  try {
    const fresh = await api("GET", `/api/tasks/${taskId}/`);
    const index = state.tasks.findIndex((t) => t.id === taskId);
    if (index >= 0) state.tasks[index] = fresh;
    fillEditor(form, fresh);
    for (const [name, value] of typed) form.elements[name].value = value;
    showRuleWords(form);
  } catch {
    // the message already says what happened
  }
}

// --- series ----------------------------------------------------------------------------------

async function skipOccurrence(task, button) {
  button.disabled = true;
  try {
    const updated = await api("POST", `/api/tasks/${task.id}/skip/`, null, { "If-Match": `"${task.version}"` });
    upsert(updated, "task.skipped");
    toast(`Skipped "${task.title}"; the next one is on its way.`);
  } catch (error) {
    if (error.status !== 401) toast(errorText(error), "error");
  } finally {
    button.disabled = false;
  }
}

const occurrenceFormat = new Intl.DateTimeFormat(undefined, { weekday: "short", year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });

async function toggleOccurrences(task, item, button) {
  const list = item.querySelector(".occurrences");
  if (!list.hidden) {
    list.hidden = true;
    button.setAttribute("aria-expanded", "false");
    return;
  }
  try {
    const answer = await api("GET", `/api/tasks/${task.id}/occurrences/?count=5`);
    list.replaceChildren(
      ...answer.results.map((o) => {
        const li = document.createElement("li");
        li.textContent = `${occurrenceFormat.format(new Date(o.due_utc))}${o.task_id === task.id ? " (this one)" : ""}`;
        return li;
      }),
    );
    list.setAttribute("aria-label", `Next dates of ${task.title}`);
    list.hidden = false;
    button.setAttribute("aria-expanded", "true");
  } catch (error) {
    if (error.status !== 401) toast(errorText(error), "error");
  }
}

// --- actions ---------------------------------------------------------------------------------

async function toggle(task, checkbox) {
  checkbox.disabled = true;
  try {
    const updated = await api("POST", `/api/tasks/${task.id}/${task.completed ? "reopen" : "complete"}/`);
    upsert(updated, "task.updated");
  } catch (error) {
    checkbox.checked = task.completed;
    if (error.status !== 401) toast(error.message, "error");
  } finally {
    checkbox.disabled = false;
  }
}

// Delete asks nothing: the task goes to the trash, and the toast offers it back.
async function destroy(task, item, byKeyboard) {
  item.classList.add("leaving");
  const following = item.nextElementSibling || item.previousElementSibling;
  try {
    await api("DELETE", `/api/tasks/${task.id}/`);
    if (state.editingId === task.id) state.editingId = null;
    remove(task.id);
    const note = toast(`Deleted "${task.title}".`, "info", { label: "Undo", run: () => restore(task) });
    if (byKeyboard) note.querySelector("button").focus();
    else following?.querySelector(".done")?.focus({ preventScroll: true });
  } catch (error) {
    item.classList.remove("leaving");
    if (error.status === 404) remove(task.id);
    else if (error.status !== 401) toast(error.message, "error");
  }
}

async function restore(task) {
  try {
    const restored = await api("POST", `/api/tasks/${task.id}/restore/`);
    upsert(restored, "task.restored");
    $("tasks").querySelector(`[data-id="${task.id}"] .done`)?.focus();
  } catch (error) {
    if (error.status !== 401) toast(errorText(error), "error");
  }
}

async function create(event) {
  event.preventDefault();
  const errorBox = $("form-error");
  errorBox.hidden = true;
  const body = {
    title: $("new-title").value.trim(),
    priority: $("new-priority").value,
    timezone: timeZone,
  };
  if (!body.title) return;
  const due = $("new-due").value;
  if (due) body.due_date = due; // wall-clock time in `timezone`
  const tags = $("new-tags").value.split(",").map((t) => t.trim()).filter(Boolean);
  if (tags.length) body.tags = tags;
  if ($("new-recurrence").value !== "none") body.recurrence_pattern = $("new-recurrence").value;
  if ($("new-reminder").value) body.reminder_time = $("new-reminder").value;
  $("add").disabled = true;
  try {
    const task = await api("POST", "/api/tasks/", body);
    upsert(task, "task.created");
    event.target.reset();
    $("new-title").focus();
  } catch (error) {
    if (error.status === 401) return;
    errorBox.textContent = errorText(error);
    errorBox.hidden = false;
  } finally {
    $("add").disabled = false;
  }
}

// --- the notification inbox ------------------------------------------------------------------

function setUnread(count) {
  state.unread = Math.max(0, count);
  const badge = $("unread-count");
  badge.hidden = state.unread === 0;
  badge.textContent = String(state.unread);
  $("inbox-button").setAttribute("aria-label", state.unread ? `Inbox, ${state.unread} unread` : "Inbox");
}

async function loadInbox() {
  if (!state.token) return;
  try {
    const [page, unread] = await Promise.all([
      api("GET", "/api/notifications/?limit=20"),
      api("GET", "/api/notifications/?unread=true&limit=1"),
    ]);
    state.notes = page.results;
    setUnread(unread.count);
    renderInbox();
  } catch (error) {
    if (error.status !== 401) toast(error.message, "error");
  }
}

function renderInbox() {
  const list = $("notes");
  // A live update re-renders the list: keep the keyboard where it was.
  const active = list.contains(document.activeElement) ? document.activeElement : null;
  const activeNote = active?.closest(".note")?.dataset.id;
  const activeLabel = active?.textContent;
  list.replaceChildren(
    ...state.notes.map((note) => {
      const li = document.createElement("li");
      li.className = `note${note.read_at ? "" : " unread"}`;
      li.dataset.id = String(note.id);
      const text = document.createElement("span");
      text.className = "note-text";
      const when = note.due_date ? ` · due ${dateFormat.format(new Date(note.due_date))}` : "";
      text.textContent = `${note.read_at ? "" : "New: "}Reminder: ${note.title}${when}`;
      li.append(text);
      if (!note.read_at) li.append(noteButton("Mark read", `Mark read: ${note.title}`, () => noteAction(note, "read")));
      li.append(noteButton("Dismiss", `Dismiss: ${note.title}`, () => noteAction(note, "dismiss")));
      return li;
    }),
  );
  $("inbox-summary").textContent = state.notes.length ? `${state.unread} unread` : "No notifications.";
  if (active) {
    const note = activeNote && list.querySelector(`[data-id="${activeNote}"]`);
    const same = note && [...note.querySelectorAll("button")].find((b) => b.textContent === activeLabel);
    (same || note?.querySelector("button") || list.querySelector("button") || $("inbox-close")).focus();
  }
}

function noteButton(label, description, run) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "link";
  button.textContent = label;
  button.setAttribute("aria-label", description);
  button.addEventListener("click", run);
  return button;
}

async function noteAction(note, action) {
  try {
    noteChanged(await api("POST", `/api/notifications/${note.id}/${action}/`));
    $("notes").querySelector("button")?.focus();
  } catch (error) {
    if (error.status === 404) noteChanged({ ...note, dismissed_at: new Date().toISOString() });
    else if (error.status !== 401) toast(error.message, "error");
  }
}

function noteArrived(note) {
  if (!note || state.notes.some((n) => n.id === note.id)) return;
  state.notes.unshift(note);
  if (!note.read_at) setUnread(state.unread + 1);
  renderInbox();
  toast(`Reminder: ${note.title}`, "reminder");
  if ("Notification" in window && Notification.permission === "granted") {
    new Notification("Reminder", { body: note.title, tag: `note-${note.id}` });
  }
}

// Another tab (or this one) read or dismissed a notification: the frame may carry only its id.
function noteChanged(note) {
  if (!note) return;
  const index = state.notes.findIndex((n) => n.id === note.id);
  const before = index >= 0 ? state.notes[index] : null;
  const dismissed = Boolean(note.dismissed_at);
  const read = Boolean(note.read_at) || dismissed;
  if (before && !before.read_at && read) setUnread(state.unread - 1);
  if (index >= 0 && dismissed) state.notes.splice(index, 1);
  else if (index >= 0) state.notes[index] = { ...before, ...note };
  if (!before) {
    loadInbox(); // not among the ones shown: the unread count comes from the server
    return;
  }
  renderInbox();
}

function openInbox() {
  $("inbox").hidden = false;
  $("inbox-button").setAttribute("aria-expanded", "true");
  $("desktop-alerts").hidden = !("Notification" in window) || Notification.permission !== "default";
  $("inbox-close").focus();
  loadInbox();
}

function closeInbox(restoreFocus = true) {
  if ($("inbox").hidden) return;
  $("inbox").hidden = true;
  $("inbox-button").setAttribute("aria-expanded", "false");
  if (restoreFocus) $("inbox-button").focus();
}

// Permission is asked only when the user clicks for it.
async function askDesktopAlerts() {
  const answer = await Notification.requestPermission();
  $("desktop-alerts").hidden = answer !== "default";
  toast(answer === "granted" ? "Reminders will also show as desktop notifications." : "Desktop notifications stay off.");
}

// --- wiring ----------------------------------------------------------------------------------

function debounce(fn, ms) {
  let timer;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

function init() {
  $("password-form").addEventListener("submit", signInWithPassword);
  $("signin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    signIn($("token-input").value.trim());
  });
  $("sign-out").addEventListener("click", () => signOut());
  $("new-task").addEventListener("submit", create);
  const reload = () => {
    state.limit = PAGE_SIZE;
    load();
  };
  $("q").addEventListener("input", debounce(reload, 250));
  $("tag").addEventListener("input", debounce(reload, 300));
  for (const id of ["status", "priority", "due", "ordering"]) $(id).addEventListener("change", reload);
  $("more").addEventListener("click", () => {
    state.limit += PAGE_SIZE;
    load();
  });
  $("inbox-button").addEventListener("click", () => ($("inbox").hidden ? openInbox() : closeInbox()));
  $("inbox-close").addEventListener("click", () => closeInbox());
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !$("inbox").hidden && !event.target.closest?.(".editor")) closeInbox();
  });
  $("desktop-alerts").addEventListener("click", askDesktopAlerts);
  window.addEventListener("hashchange", () => {
    const token = tokenFromHash();
    if (token) signIn(token);
  });

  const token = tokenFromHash() || localStorage.getItem(TOKEN_KEY);
  if (token) signIn(token);
  else showSignIn();
}

init();
