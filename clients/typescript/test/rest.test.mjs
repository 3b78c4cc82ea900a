// The REST client against a running server: typed answers, typed errors.
import assert from "node:assert/strict";
import { test } from "node:test";

import { ApiError, NetworkError, TodoClient, isResyncRequired } from "../dist/index.js";
import { clientFor, server, unique } from "./helpers.mjs";

test("creates, reads, updates, completes, trashes and restores a task", async () => {
  const api = clientFor(server().token);
  const title = unique("Pay rent");
  const created = await api.createTask(
    { title, priority: "high", tags: ["home"], due_date: "2031-05-01T09:00:00Z" },
    { idempotencyKey: unique("key").replace(/\s/g, "-") },
  );
  assert.equal(created.title, title);
  assert.equal(created.priority, "high");
  assert.deepEqual(created.tags, ["home"]);

  const updated = await api.updateTask(
    created.id,
    { priority: "urgent" },
    { version: created.version },
  );
  assert.equal(updated.priority, "urgent");
  assert.equal(updated.version, created.version + 1);

  const page = await api.listTasks({ q: title.split(" ").at(-1), status: "pending" });
  assert.deepEqual(
    page.results.map((task) => task.id),
    [created.id],
  );
  assert.equal(typeof page.sequence, "number");

  const done = await api.completeTask(created.id);
  assert.equal(done.completed, true);
  await api.deleteTask(created.id);
  await assert.rejects(api.getTask(created.id), (error) => error.status === 404);
  const trash = await api.listTrash();
  assert.ok(trash.results.some((task) => task.id === created.id));
  const restored = await api.restoreTask(created.id);
  assert.equal(restored.id, created.id);
  assert.equal((await api.getTask(created.id)).completed, true);
});

test("errors carry the API's code and the offending fields", async () => {
  const api = clientFor(server().token);
  const invalid = await api.createTask({ title: "x".repeat(500) }).catch((error) => error);
  assert.ok(invalid instanceof ApiError, String(invalid));
  assert.equal(invalid.status, 400);
  assert.ok(invalid.fieldError("title"), JSON.stringify(invalid.body));

  const created = await api.createTask({ title: unique("Mine") });
  const stale = await api
    .updateTask(created.id, { title: "again" }, { version: created.version + 5 })
    .catch((error) => error);
  assert.equal(stale.status, 409);
  assert.equal(typeof stale.code, "string");

  const stranger = clientFor(server().otherToken);
  const hidden = await stranger.getTask(created.id).catch((error) => error);
  assert.equal(hidden.status, 404);
  assert.equal(hidden.code, "not_found");

  const anonymous = new TodoClient({ baseUrl: server().url, token: "not-a-jwt" });
  const refused = await anonymous.listTasks().catch((error) => error);
  assert.equal(refused.status, 401);
  assert.ok(refused.code, "a 401 has a code too");

  const gone = await api.changes(10 ** 12).catch((error) => error);
  assert.equal(gone.status, 410);
  assert.ok(isResyncRequired(gone));

  const offline = new TodoClient({ baseUrl: "http://127.0.0.1:9", token: "t" });
  await assert.rejects(offline.listTasks(), NetworkError);
});
