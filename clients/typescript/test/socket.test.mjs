// The socket and the synced copy against a running server: live frames, resume by sequence,
// and recovery through the change feed or a new snapshot after a resync.
import assert from "node:assert/strict";
import { test } from "node:test";

import { TaskSocket, TaskSync } from "../dist/index.js";
import { clientFor, eventually, server, unique } from "./helpers.mjs";

function openSocket(api, token, options = {}) {
  const frames = [];
  let hello;
  let refusal;
  const socket = new TaskSocket({
    url: api.socketUrl,
    token,
    onHello: (frame) => (hello = frame),
    onAuthError: (code, reason) => (refusal = `${code} ${reason}`),
    ...options,
  });
  socket.on("*", (frame) => frames.push(frame));
  socket.connect();
  const opened = eventually(
    () => {
      if (refusal) throw new Error(`refused: ${refusal}`);
      return hello;
    },
    5000,
    "hello",
  );
  return { socket, frames, opened };
}

test("a socket gets its user's changes live, and what it missed when it resumes", async (t) => {
  const { token, otherToken } = server();
  const api = clientFor(token);
  const live = openSocket(api, token);
  const stranger = openSocket(api, otherToken);
  t.after(() => {
    live.socket.close();
    stranger.socket.close();
  });
  await Promise.all([live.opened, stranger.opened]);

  const title = unique("Live");
  const created = await api.createTask({ title });
  const frame = await eventually(() => live.frames.find((f) => f.task_id === created.id));
  assert.equal(frame.event_type, "task.created");
  assert.equal(frame.task.title, title);
  const seenUpTo = live.socket.lastSequence;
  assert.equal(seenUpTo, frame.sequence);
  live.socket.close();

  const missed = [await api.createTask({ title: unique("Missed 1") })];
  missed.push(await api.createTask({ title: unique("Missed 2") }));
  const resumed = openSocket(api, token, { lastSequence: seenUpTo });
  t.after(() => resumed.socket.close());
  await eventually(() => resumed.frames.find((f) => f.task_id === missed[1].id), 5000, "replay");
  assert.deepEqual(
    resumed.frames.filter((f) => f.event_type === "task.created").map((f) => f.task_id),
    missed.map((task) => task.id),
  );
  const sequences = resumed.frames.map((f) => f.sequence);
  assert.deepEqual(
    sequences,
    [...sequences].sort((a, b) => a - b),
  );
  assert.ok(sequences[0] > seenUpTo, "nothing it had already seen is sent again");
  assert.equal(stranger.frames.length, 0, "another user's socket hears nothing");
});

test("a synced copy starts from a snapshot and follows live changes", async (t) => {
  const api = clientFor(server().token);
  const before = await api.createTask({ title: unique("Before") });
  const recoveries = [];
  const sync = new TaskSync({
    client: api,
    onRecovered: (how, notice) => recoveries.push([how, notice.reason]),
  });
  t.after(() => sync.stop());
  sync.start();
  await eventually(() => recoveries.length, 5000, "snapshot");
  assert.ok(sync.tasks.has(before.id));
  assert.deepEqual(recoveries, [["snapshot", "initial"]]);

  const after = await api.createTask({ title: unique("After") });
  await eventually(() => sync.tasks.has(after.id), 5000, "live create");
  await api.updateTask(after.id, { priority: "urgent" });
  await eventually(() => sync.tasks.get(after.id)?.priority === "urgent", 5000, "live update");
  await api.deleteTask(after.id);
  await eventually(() => !sync.tasks.has(after.id), 5000, "live delete");
  await api.restoreTask(after.id);
  await eventually(() => sync.tasks.has(after.id), 5000, "live restore");
});

test("after a resync the change feed fills the gap; past the feed, a new snapshot", async (t) => {
  const api = clientFor(server().token);
  const start = await api.listTasks({ limit: 1 });
  const createdMeanwhile = await api.createTask({ title: unique("While away") });

  // A cursor the server never handed out: the socket answers resync (unknown_sequence) and the
  // feed 410 resync_required, so the copy is loaded again from the list.
  const recoveries = [];
  const lost = new TaskSync({
    client: api,
    initial: { tasks: [], sequence: start.sequence + 10 ** 9 },
    onRecovered: (how, notice) => recoveries.push([how, notice.reason]),
  });
  t.after(() => lost.stop());
  lost.start();
  await eventually(() => recoveries.length, 5000, "recovery");
  await lost.settled();
  assert.deepEqual(recoveries, [["snapshot", "unknown_sequence"]]);
  assert.ok(lost.tasks.has(createdMeanwhile.id));
  assert.ok(lost.cursor < start.sequence + 10 ** 9);

  // A socket that cannot replay (a stand-in that answers resync at once) while the feed still
  // has the events: the gap is filled from the feed, without a snapshot.
  class ResyncingSocket {
    constructor() {
      this.readyState = 1;
      setTimeout(() => {
        this.onmessage?.({
          data: JSON.stringify({
            type: "hello",
            user_id: "u",
            last_sequence: 0,
            ping_interval: 25,
          }),
        });
        this.onmessage?.({
          data: JSON.stringify({ type: "resync", reason: "expired", last_sequence: 0 }),
        });
      }, 1);
    }
    send() {}
    close() {}
  }
  const fromFeed = [];
  const behind = new TaskSync({
    client: api,
    WebSocket: ResyncingSocket,
    initial: { tasks: [], sequence: start.sequence },
    onRecovered: (how, notice) => fromFeed.push([how, notice.reason]),
  });
  t.after(() => behind.stop());
  behind.start();
  await eventually(() => fromFeed.length, 5000, "feed recovery");
  await behind.settled();
  assert.deepEqual(fromFeed, [["feed", "expired"]]);
  assert.deepEqual(
    [...behind.tasks.keys()],
    [createdMeanwhile.id],
    "only what changed after the cursor",
  );
});
