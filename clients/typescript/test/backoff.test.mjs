// The socket's reconnect policy, without a server: a WebSocket stand-in records each connect.
import assert from "node:assert/strict";
import { test } from "node:test";

import { TaskSocket, backoffDelay } from "../dist/index.js";

test("back-off doubles from 500 ms up to 30 s, with jitter in the upper half", () => {
  const low = (attempt) => backoffDelay(attempt, {}, () => 0);
  const high = (attempt) => backoffDelay(attempt, {}, () => 1);
  assert.deepEqual([0, 1, 2, 3].map(low), [250, 500, 1000, 2000]);
  assert.deepEqual([0, 1, 2, 3].map(high), [500, 1000, 2000, 4000]);
  assert.equal(high(20), 30_000);
  assert.equal(low(20), 15_000);
  const spread = new Set(Array.from({ length: 20 }, () => backoffDelay(4)));
  assert.ok(spread.size > 10, "jitter spreads the retries");
});

class FakeSocket {
  static instances = [];
  constructor(url, protocols) {
    this.url = url;
    this.protocols = protocols;
    this.readyState = 0;
    this.sent = [];
    FakeSocket.instances.push(this);
  }
  send(data) {
    this.sent.push(JSON.parse(data));
  }
  close() {
    this.readyState = 3;
  }
  serverSends(frame) {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }
  serverCloses(code, reason = "") {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
}

const tick = (ms = 5) => new Promise((resolve) => setTimeout(resolve, ms));

test("reconnects after a drop with the last sequence, drops duplicates, answers pings", async () => {
  FakeSocket.instances = [];
  const statuses = [];
  const seen = [];
  const socket = new TaskSocket({
    url: "ws://api.example/ws/tasks/",
    token: () => "tok",
    WebSocket: FakeSocket,
    backoff: { initialMs: 4, maxMs: 8 },
    onStatus: (status) => statuses.push(status),
  });
  socket.on("*", (frame) => seen.push(frame.sequence));
  socket.connect();
  await tick();
  const first = FakeSocket.instances[0];
  assert.equal(first.url, "ws://api.example/ws/tasks/");
  assert.deepEqual(first.protocols, ["bearer", "tok"]);
  first.serverSends({ type: "hello", user_id: "u", last_sequence: 7, ping_interval: 25 });
  first.serverSends({ type: "event", event_type: "task.created", sequence: 8, task_id: 1 });
  first.serverSends({ type: "event", event_type: "task.created", sequence: 8, task_id: 1 });
  first.serverSends({ type: "ping" });
  assert.deepEqual(first.sent, [{ type: "pong" }]);
  first.serverCloses(1006);
  await tick(30);
  const second = FakeSocket.instances[1];
  assert.ok(second, "reconnected");
  assert.equal(second.url, "ws://api.example/ws/tasks/?last_sequence=8");
  second.serverSends({ type: "hello", user_id: "u", last_sequence: 9, ping_interval: 25 });
  second.serverSends({ type: "event", event_type: "task.updated", sequence: 9, task_id: 1 });
  assert.deepEqual(seen, [8, 9]);
  assert.deepEqual(statuses, ["connecting", "open", "reconnecting", "open"]);
  socket.close();
  assert.equal(socket.status, "closed");
});

test("a refused token stops it for good; an expired one is renewed when it can be", async () => {
  FakeSocket.instances = [];
  const refusals = [];
  const refused = new TaskSocket({
    url: "ws://api.example/ws/tasks/",
    token: "fixed",
    WebSocket: FakeSocket,
    backoff: { initialMs: 1, maxMs: 1 },
    onAuthError: (code, reason) => refusals.push([code, reason]),
  });
  refused.connect();
  await tick();
  FakeSocket.instances[0].serverCloses(4408, "token_expired");
  await tick(20);
  assert.equal(FakeSocket.instances.length, 1, "a fixed token is not retried");
  assert.deepEqual(refusals, [[4408, "token_expired"]]);

  FakeSocket.instances = [];
  let issued = 0;
  const renewing = new TaskSocket({
    url: "ws://api.example/ws/tasks/",
    token: async () => `token-${++issued}`,
    WebSocket: FakeSocket,
    backoff: { initialMs: 1, maxMs: 1 },
  });
  renewing.connect();
  await tick();
  FakeSocket.instances[0].serverCloses(4408, "token_expired");
  await tick(20);
  assert.deepEqual(FakeSocket.instances[1].protocols, ["bearer", "token-2"]);
  FakeSocket.instances[1].serverCloses(4401, "invalid_token");
  await tick(20);
  assert.equal(FakeSocket.instances.length, 2);
  assert.equal(renewing.status, "closed");
});
