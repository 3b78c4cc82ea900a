// Shared by the tests: the server under test comes from the environment (the pytest wrapper
// clients/tests/test_typescript_client.py starts one and issues the tokens).
import assert from "node:assert/strict";

import { TodoClient } from "../dist/index.js";

export function server() {
  const url = process.env.TODO_API_URL;
  const token = process.env.TODO_TOKEN;
  const otherToken = process.env.TODO_OTHER_TOKEN;
  assert.ok(
    url && token && otherToken,
    "TODO_API_URL, TODO_TOKEN and TODO_OTHER_TOKEN must be set: run these tests through " +
      "`pytest clients/tests/test_typescript_client.py`, which starts a server.",
  );
  return { url, token, otherToken };
}

export function clientFor(token) {
  return new TodoClient({ baseUrl: server().url, token });
}

/** Resolves with the first value `take` returns that is not undefined, or fails after `ms`. */
export function waitFor(subscribe, take, ms = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`nothing after ${ms} ms`)), ms);
    subscribe((value) => {
      const result = take(value);
      if (result !== undefined) {
        clearTimeout(timer);
        resolve(result);
      }
    });
  });
}

export function unique(label) {
  return `${label} ${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
}

/** Resolves with `check()`'s first truthy value, polled every 10 ms, or fails after `ms`. */
export async function eventually(check, ms = 5000, what = "condition") {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not true after ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
