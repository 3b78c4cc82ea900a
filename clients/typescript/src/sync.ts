import { type Change, type EventFrame, TASK_GONE_EVENTS, type Task } from "./frames.js";
import { type TodoClient, isResyncRequired } from "./rest.js";
import {
  type ResyncNotice,
  type SocketStatus,
  TaskSocket,
  type TaskSocketOptions,
} from "./socket.js";

const PAGE_SIZE = 100;
const CHANGES_PAGE = 1000;
const SNAPSHOT_ATTEMPTS = 5;

export interface TaskSyncOptions extends Omit<
  TaskSocketOptions,
  "url" | "token" | "onResync" | "onSequence"
> {
  client: TodoClient;
  /** Defaults to the client's own token source. */
  token?: TaskSocketOptions["token"];
  url?: string;
  /** Tasks and the sequence they are consistent with, kept from an earlier run. */
  initial?: { tasks: Task[]; sequence: number };
  /** Called after every change to the local copy, with every task the user has. */
  onChange?: (tasks: Task[], sequence: number | null) => void;
  /** Called with how the copy was (re)loaded: `feed` (change feed) or `snapshot` (full list). */
  onRecovered?: (how: "feed" | "snapshot", notice: ResyncNotice) => void;
  onError?: (error: unknown) => void;
}

/**
 * A live local copy of all of a user's tasks: a snapshot from `GET /api/tasks/`, then every
 * change from the socket in sequence order. When the socket cannot replay what was missed
 * (`resync`), the change feed (`GET /api/changes/?since=`) fills the gap; when the feed no
 * longer has it either (410 `resync_required`), the copy is loaded again from the list.
 */
export class TaskSync {
  readonly tasks = new Map<number, Task>();
  readonly socket: TaskSocket;
  cursor: number | null = null;
  private readonly client: TodoClient;
  private readonly options: TaskSyncOptions;
  private recovering: Promise<void> | null = null;
  private pending: EventFrame[] = [];

  constructor(options: TaskSyncOptions) {
    this.client = options.client;
    this.options = options;
    if (options.initial) {
      for (const task of options.initial.tasks) this.tasks.set(task.id, task);
      this.cursor = options.initial.sequence;
    }
    this.socket = new TaskSocket({
      ...options,
      url: options.url ?? options.client.socketUrl,
      token: options.token ?? (() => options.client.currentToken()),
      lastSequence: this.cursor,
      onResync: (notice) => void this.recover(notice),
    });
    this.socket.on("*", (frame) => this.receive(frame));
  }

  get status(): SocketStatus {
    return this.socket.status;
  }

  start(): void {
    this.socket.connect();
  }

  stop(): void {
    this.socket.close();
  }

  /** The tasks, newest first (a view can sort or filter them as it likes). */
  list(): Task[] {
    return [...this.tasks.values()].sort((a, b) => b.id - a.id);
  }

  /** Wait for a recovery in progress (tests, and views that show a spinner). */
  async settled(): Promise<void> {
    while (this.recovering) await this.recovering;
  }

  private receive(frame: EventFrame): void {
    if (this.recovering) {
      this.pending.push(frame);
      return;
    }
    if (this.cursor !== null && frame.sequence <= this.cursor) return;
    this.applyFrame(frame);
    this.cursor = frame.sequence;
    this.changed();
  }

  private recover(notice: ResyncNotice): Promise<void> {
    if (this.recovering) return this.recovering;
    this.recovering = this.reload(notice)
      .catch((error: unknown) => this.options.onError?.(error))
      .finally(() => {
        this.recovering = null;
        const pending = this.pending;
        this.pending = [];
        for (const frame of pending) this.receive(frame);
        if (this.cursor !== null && (this.socket.lastSequence ?? 0) < this.cursor) {
          this.socket.lastSequence = this.cursor;
        }
        this.changed();
      });
    return this.recovering;
  }

  private async reload(notice: ResyncNotice): Promise<void> {
    if (this.cursor !== null) {
      try {
        await this.catchUp();
        this.options.onRecovered?.("feed", notice);
        return;
      } catch (error) {
        if (!isResyncRequired(error)) throw error;
      }
    }
    await this.snapshot();
    await this.catchUp();
    this.options.onRecovered?.("snapshot", notice);
  }

  /** Every task, page by page; pages read at different sequences are read again, so the copy
   * is one consistent state (a change between two pages could move a task across them). */
  private async snapshot(): Promise<void> {
    for (let attempt = 0; attempt < SNAPSHOT_ATTEMPTS; attempt += 1) {
      const tasks: Task[] = [];
      let sequence: number | null = null;
      let consistent = true;
      for (let offset = 0; ; offset += PAGE_SIZE) {
        const page = await this.client.listTasks({
          status: "all",
          ordering: ["created_at"],
          limit: PAGE_SIZE,
          offset,
        });
        sequence ??= page.sequence;
        consistent &&= page.sequence === sequence;
        tasks.push(...page.results);
        if (offset + PAGE_SIZE >= page.count || page.results.length === 0) break;
      }
      if (consistent || attempt === SNAPSHOT_ATTEMPTS - 1) {
        this.tasks.clear();
        for (const task of tasks) this.tasks.set(task.id, task);
        // Past the last attempt the feed from the first page's sequence still brings every
        // later change; only a task moved between pages could be missing until it changes.
        this.cursor = sequence ?? 0;
        return;
      }
    }
  }

  private async catchUp(): Promise<void> {
    for (;;) {
      const page = await this.client.changes(this.cursor ?? 0, CHANGES_PAGE);
      for (const change of page.changes) this.applyChange(change);
      this.cursor = Math.max(this.cursor ?? 0, page.next_since);
      if (!page.has_more) return;
    }
  }

  private applyFrame(frame: EventFrame): void {
    if (frame.task_id === null) return;
    if (TASK_GONE_EVENTS.has(frame.event_type)) this.tasks.delete(frame.task_id);
    else if (frame.task) this.upsert(frame.task);
  }

  private applyChange(change: Change): void {
    if (change.task_id === null || change.task_id === undefined) return;
    if (change.deleted) this.tasks.delete(change.task_id);
    else if (change.task) this.upsert(change.task);
  }

  /** A task's `version` only grows, so the higher one is always the newer state. */
  private upsert(task: Task): void {
    if (task.deleted_at) {
      this.tasks.delete(task.id);
      return;
    }
    const known = this.tasks.get(task.id);
    if (!known || known.version <= task.version) this.tasks.set(task.id, task);
  }

  private changed(): void {
    this.options.onChange?.(this.list(), this.cursor);
  }
}
