import { ApiError, NetworkError, errorFromBody } from "./errors.js";
import type { ChangePage, Task, TaskPage } from "./frames.js";
import type { components, operations } from "./generated/openapi.js";

type Schemas = components["schemas"];
type Query<Op extends keyof operations> = NonNullable<operations[Op]["parameters"]["query"]>;

export type TaskListQuery = Query<"tasks_list">;
export type TaskCreate = Schemas["TaskWriteRequest"];
export type TaskPatch = Schemas["PatchedTaskPatchRequest"];
export type TrashPage = Schemas["TrashPage"];
export type Occurrences = Schemas["Occurrences"];
export type NotificationPage = Schemas["NotificationPage"];
export type BulkRequest = Schemas["BulkRequest"];
export type BulkResult = Schemas["BulkResult"];
export type DeleteOptions = Query<"tasks_destroy">;

/** A bearer token, or a function that returns a current one (called before each request). */
export type TokenSource = string | (() => string | null | Promise<string | null>);

export interface ClientOptions {
  /** The API's origin, e.g. `http://127.0.0.1:8000` (no trailing `/api`). */
  baseUrl: string;
  token: TokenSource;
  /** A `fetch` to use instead of the global one (tests, server-side rendering). */
  fetch?: typeof fetch;
}

export interface WriteOptions {
  /** Sent as `Idempotency-Key`: a retried write with the same key runs once. */
  idempotencyKey?: string;
  /** The version the change is based on, sent as `If-Match` (a stale one is a 409). */
  version?: number;
}

interface RequestOptions extends WriteOptions {
  query?: Record<string, unknown>;
  body?: unknown;
}

export async function resolveToken(source: TokenSource): Promise<string | null> {
  return typeof source === "function" ? await source() : source;
}

/** Query values as the API reads them: lists repeat the parameter, booleans are `true`/`false`. */
function queryString(query: Record<string, unknown> | undefined): string {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query ?? {})) {
    if (value === undefined || value === null) continue;
    for (const item of Array.isArray(value) ? value : [value]) params.append(name, String(item));
  }
  const text = params.toString();
  return text ? `?${text}` : "";
}

function retryAfterSeconds(response: Response): number | null {
  const value = response.headers.get("Retry-After");
  const seconds = value === null ? Number.NaN : Number(value);
  return Number.isFinite(seconds) ? seconds : null;
}

/**
 * The REST API, typed from its OpenAPI schema. Every method answers the parsed body or throws
 * `ApiError` (with the API's `error.code` and `error.fields`) or `NetworkError`.
 */
export class TodoClient {
  readonly baseUrl: string;
  private readonly token: TokenSource;
  private readonly fetchImpl: typeof fetch;

  constructor(options: ClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.token = options.token;
    this.fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis);
  }

  /** The WebSocket URL on the same host: `ws(s)://host/ws/tasks/`. */
  get socketUrl(): string {
    return `${this.baseUrl.replace(/^http/, "ws")}/ws/tasks/`;
  }

  /** The current bearer token (the `token` option, called if it is a function). */
  currentToken(): Promise<string | null> {
    return resolveToken(this.token);
  }

  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const headers: Record<string, string> = { Accept: "application/json" };
    const token = await this.currentToken();
    if (token) headers.Authorization = `Bearer ${token}`;
    if (options.body !== undefined) headers["Content-Type"] = "application/json";
    if (options.idempotencyKey) headers["Idempotency-Key"] = options.idempotencyKey;
    if (options.version !== undefined) headers["If-Match"] = `"${options.version}"`;
    let response: Response;
    try {
      response = await this.fetchImpl(`${this.baseUrl}${path}${queryString(options.query)}`, {
        method,
        headers,
        body: options.body === undefined ? undefined : JSON.stringify(options.body),
      });
    } catch (cause) {
      throw new NetworkError(`${method} ${path} got no answer`, { cause });
    }
    const text = await response.text();
    let body: unknown = null;
    if (text) {
      try {
        body = JSON.parse(text);
      } catch {
        body = text;
      }
    }
    if (!response.ok) throw errorFromBody(response.status, body, retryAfterSeconds(response));
    return body as T;
  }

  listTasks(query: TaskListQuery = {}): Promise<TaskPage> {
    return this.request("GET", "/api/tasks/", { query });
  }

  getTask(id: number): Promise<Task> {
    return this.request("GET", `/api/tasks/${id}/`);
  }

  createTask(task: TaskCreate, options: WriteOptions = {}): Promise<Task> {
    return this.request("POST", "/api/tasks/", { ...options, body: task });
  }

  updateTask(id: number, patch: TaskPatch, options: WriteOptions = {}): Promise<Task> {
    return this.request("PATCH", `/api/tasks/${id}/`, { ...options, body: patch });
  }

  completeTask(id: number, options: WriteOptions = {}): Promise<Task> {
    return this.request("POST", `/api/tasks/${id}/complete/`, options);
  }

  reopenTask(id: number, options: WriteOptions = {}): Promise<Task> {
    return this.request("POST", `/api/tasks/${id}/reopen/`, options);
  }

  skipTask(id: number, options: WriteOptions = {}): Promise<Task> {
    return this.request("POST", `/api/tasks/${id}/skip/`, options);
  }

  /** To the trash (undo with `restoreTask`), or gone at once with `permanent: true`. */
  async deleteTask(id: number, query: DeleteOptions = {}, options: WriteOptions = {}) {
    await this.request<null>("DELETE", `/api/tasks/${id}/`, { ...options, query });
  }

  restoreTask(id: number, options: WriteOptions = {}): Promise<Task> {
    return this.request("POST", `/api/tasks/${id}/restore/`, options);
  }

  listTrash(query: Query<"tasks_trash"> = {}): Promise<TrashPage> {
    return this.request("GET", "/api/tasks/trash/", { query });
  }

  occurrences(id: number, query: Query<"tasks_occurrences"> = {}): Promise<Occurrences> {
    return this.request("GET", `/api/tasks/${id}/occurrences/`, { query });
  }

  bulk(request: BulkRequest, options: WriteOptions = {}): Promise<BulkResult> {
    return this.request("POST", "/api/tasks/bulk/", { ...options, body: request });
  }

  /** The caller's events after `since`; an `ApiError` with code `resync_required` (410) when
   * they are no longer kept: reload with `listTasks` and continue from its `sequence`. */
  changes(since: number, limit?: number): Promise<ChangePage> {
    return this.request("GET", "/api/changes/", { query: { since, limit } });
  }

  notifications(query: Query<"notifications_list"> = {}): Promise<NotificationPage> {
    return this.request("GET", "/api/notifications/", { query });
  }
}

export function isResyncRequired(error: unknown): boolean {
  return error instanceof ApiError && error.code === "resync_required";
}
