import type { components } from "./generated/openapi.js";

export type Task = components["schemas"]["Task"];
export type TaskPage = components["schemas"]["TaskPage"];
export type Change = components["schemas"]["Change"];
export type ChangePage = components["schemas"]["ChangePage"];
export type Notification = components["schemas"]["Notification"];

/** First frame of every accepted socket: the user's newest sequence at connect time. */
export interface HelloFrame {
  type: "hello";
  user_id: string;
  last_sequence: number;
  ping_interval: number;
}

/** One change, in the user's sequence order (docs/realtime.md). */
export interface EventFrame {
  type: "event";
  event_type: string;
  sequence: number;
  event_id: string;
  timestamp: string;
  task_id: number | null;
  /** The task as `GET /api/tasks/<id>/` shows it after the change; null for deletes. */
  task: Task | null;
  changed_fields?: string[];
  notification?: Notification | null;
}

/** Why the server cannot replay what the client missed. */
export type ResyncReason = "expired" | "too_many_missed" | "unknown_sequence" | "resume_too_late";

export interface ResyncFrame {
  type: "resync";
  reason: ResyncReason;
  last_sequence: number;
}

export interface PingFrame {
  type: "ping";
}

export interface PongFrame {
  type: "pong";
}

export interface ErrorFrame {
  type: "error";
  code: string;
  message: string;
}

export type ServerFrame =
  HelloFrame | EventFrame | ResyncFrame | PingFrame | PongFrame | ErrorFrame;

/** Event types that remove a task from every list. */
export const TASK_GONE_EVENTS: ReadonlySet<string> = new Set(["task.deleted", "task.purged"]);
