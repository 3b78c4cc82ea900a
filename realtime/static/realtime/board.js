// The live board: the REST API for reads and writes, the task socket for changes made anywhere
// else (another tab, the chat agent through MCP, the admin, a recurring series).
import { TaskSocket } from "./client.js";

const TOKEN_KEY = "todo.board.token";
const PAGE_SIZE = 50;
const PRIORITY_RANK = { low: 1, medium: 2, high: 3, urgent: 4 };
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
  startSocket();
}

function signOut(message) {
  state.socket?.close();
  state.socket = null;
  state.token = null;
  state.tasks = [];
  localStorage.removeItem(TOKEN_KEY);
  render();
  showSignIn(message);
}

function showSignIn(message) {
  $("board").hidden = true;
  $("who").hidden = true;
  $("sign-out").hidden = true;
  $("signin").hidden = false;
  setLive("idle");
  const error = $("signin-error");
  error.hidden = !message;
  error.textContent = message || "";
}

// --- REST ------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message || `Request failed (${status})`);
    this.status = status;
    this.body = body;
  }
}

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: {
      Authorization: `Bearer ${state.token}`,
      Accept: "application/json",
      ...(body ? { "Content-Type": "application/json" } : {}),
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
    onResync: () => load(),
    onAuthError: (code, reason) => {
      signOut(reason === "token_expired" ? "Your token has expired; sign in again." : "Your token was refused; sign in again.");
    },
  });
  for (const type of ["task.created", "task.updated", "task.completed", "task.reopened"]) {
    socket.on(type, (frame) => {
      if (frame.task) upsert(frame.task, frame.event_type);
      scheduleReload();
    });
  }
  socket.on("task.deleted", (frame) => {
    remove(frame.task_id);
    scheduleReload();
  });
  socket.on("notification.created", (frame) => {
    const note = frame.notification || {};
    toast(note.title ? `Reminder: ${note.title}` : "Reminder", "note");
  });
  state.socket = socket;
  socket.connect();
}

function matchesFilters(task) {
  const status = $("status").value;
  if (status === "pending" && task.completed) return false;
  if (status === "completed" && !task.completed) return false;
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
  } else if (keep && eventType === "task.created") {
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

function describeRecurrence(pattern) {
  if (!pattern || pattern === "none") return null;
  return `↻ ${pattern.toLowerCase()}`;
}

function render(highlightId) {
  const list = $("tasks");
  const template = $("task-template");
  const fragment = document.createDocumentFragment();
  for (const task of state.tasks) {
    const item = template.content.firstElementChild.cloneNode(true);
    item.dataset.id = String(task.id);
    item.dataset.priority = task.priority;
    item.classList.toggle("completed", task.completed);
    if (task.id === highlightId) item.classList.add("flash");
    const done = item.querySelector(".done");
    done.checked = task.completed;
    done.addEventListener("change", () => toggle(task, done));
    const badge = item.querySelector(".badge");
    badge.textContent = task.priority;
    badge.dataset.priority = task.priority;
    item.querySelector(".title").textContent = task.title;
    if (task.description) {
      const description = item.querySelector(".description");
      description.hidden = false;
      description.textContent = task.description;
    }
    const due = describeDue(task);
    if (due) {
      const el = item.querySelector(".due");
      el.hidden = false;
      el.textContent = due.text;
      el.dataset.kind = due.kind;
      el.title = due.iso;
    }
    const recurrence = describeRecurrence(task.recurrence_pattern);
    if (recurrence) {
      const el = item.querySelector(".recurrence");
      el.hidden = false;
      el.textContent = recurrence;
    }
    if (task.reminder_time) {
      const el = item.querySelector(".reminder");
      el.hidden = false;
      el.textContent = `reminder ${/^\d+[mhdw]$/.test(task.reminder_time) ? `${task.reminder_time} before` : dateFormat.format(new Date(task.reminder_time))}`;
    }
    const tags = item.querySelector(".tags");
    for (const tag of task.tags) {
      const chip = document.createElement("button");
      chip.type = "button";
      chip.className = "tag";
      chip.textContent = `#${tag}`;
      chip.addEventListener("click", () => {
        $("tag").value = tag;
        state.limit = PAGE_SIZE;
        load();
      });
      tags.append(chip);
    }
    item.querySelector(".delete").addEventListener("click", () => destroy(task, item));
    fragment.append(item);
  }
  list.replaceChildren(fragment);
  const shown = state.tasks.length;
  $("summary").textContent = state.total === 0 ? "Nothing here." : `${shown} of ${state.total}`;
  $("more").hidden = shown >= state.total;
}

function toast(text, kind = "info") {
  const el = document.createElement("div");
  el.className = `toast ${kind}`;
  el.textContent = text;
  $("toasts").append(el);
  setTimeout(() => el.remove(), 5000);
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

async function destroy(task, item) {
  item.classList.add("leaving");
  try {
    await api("DELETE", `/api/tasks/${task.id}/`);
    remove(task.id);
  } catch (error) {
    item.classList.remove("leaving");
    if (error.status === 404) remove(task.id);
    else if (error.status !== 401) toast(error.message, "error");
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
    const field = error.body?.error?.fields?.[0];
    errorBox.textContent = field ? `${field.field}: ${field.message}` : error.message;
    errorBox.hidden = false;
  } finally {
    $("add").disabled = false;
  }
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
  window.addEventListener("hashchange", () => {
    const token = tokenFromHash();
    if (token) signIn(token);
  });

  const token = tokenFromHash() || localStorage.getItem(TOKEN_KEY);
  if (token) signIn(token);
  else showSignIn();
}

init();
