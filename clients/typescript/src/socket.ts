import type { EventFrame, HelloFrame, ResyncFrame, ServerFrame, ErrorFrame } from "./frames.js";
import { type TokenSource, resolveToken } from "./rest.js";

/** The constructor this client needs: the browser's `WebSocket`, Node's (22+, or 20 with
 * `--experimental-websocket`), or any class with the same shape. */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}
export type WebSocketConstructor = new (url: string, protocols?: string[]) => WebSocketLike;

export type SocketStatus = "connecting" | "open" | "reconnecting" | "closed";

/** Close codes after which reconnecting with the same settings cannot help (docs/realtime.md). */
export const FATAL_CLOSE_CODES: ReadonlySet<number> = new Set([4400, 4401, 4403, 4404]);
export const TOKEN_EXPIRED = 4408;

export interface BackoffOptions {
  /** First delay (ms) before the full jitter is applied. */
  initialMs?: number;
  /** The delay never grows past this (ms). */
  maxMs?: number;
}

/**
 * Delay before reconnect number `attempt` (0-based): doubling from `initialMs` up to `maxMs`,
 * then a random point in its upper half ("equal jitter"), so a server restart is not met by
 * every client at the same instant yet no client retries at once in a loop.
 */
export function backoffDelay(
  attempt: number,
  { initialMs = 500, maxMs = 30_000 }: BackoffOptions = {},
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return ceiling / 2 + random() * (ceiling / 2);
}

/** Why the client's state must be loaded again: the server's resync reasons, or `initial`
 * on a start without a cursor. */
export interface ResyncNotice {
  reason: ResyncFrame["reason"] | "initial";
  last_sequence: number;
}

export interface TaskSocketOptions {
  /** `ws(s)://host/ws/tasks/` (see `TodoClient.socketUrl`). */
  url: string;
  /** A token, or a function called before every connect (so an expired one can be renewed). */
  token: TokenSource;
  /** The last sequence this client applied; without one the server's `hello` sets it. */
  lastSequence?: number | null;
  WebSocket?: WebSocketConstructor;
  backoff?: BackoffOptions;
  random?: () => number;
  onStatus?: (status: SocketStatus) => void;
  onHello?: (frame: HelloFrame) => void;
  onResync?: (notice: ResyncNotice) => void;
  onSequence?: (sequence: number) => void;
  /** The server refused for good (4400, 4401, 4403, 4404; 4408 without a token function). */
  onAuthError?: (code: number, reason: string) => void;
  onServerError?: (frame: ErrorFrame) => void;
}

type Listener = (frame: EventFrame) => void;

/**
 * The task socket: resumes from the last applied sequence, drops what it already saw,
 * answers heartbeats, notices a silent dead connection, and reconnects with back-off.
 */
export class TaskSocket {
  lastSequence: number | null;
  status: SocketStatus = "closed";
  private readonly options: TaskSocketOptions;
  private readonly WebSocketImpl: WebSocketConstructor;
  private readonly listeners = new Map<string, Set<Listener>>();
  private socket: WebSocketLike | null = null;
  private attempt = 0;
  private stopped = true;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private watchdog: ReturnType<typeof setTimeout> | null = null;
  private pingIntervalMs = 25_000;

  constructor(options: TaskSocketOptions) {
    this.options = options;
    this.lastSequence = options.lastSequence ?? null;
    const impl =
      options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket ?? null;
    if (!impl) {
      throw new Error(
        "No WebSocket implementation: pass `WebSocket`, or run Node 22+ " +
          "(Node 20: --experimental-websocket).",
      );
    }
    this.WebSocketImpl = impl;
  }

  /** Listen to one event type (`task.updated`) or to all of them (`*`). Returns an unsubscribe. */
  on(eventType: string, listener: Listener): () => void {
    let set = this.listeners.get(eventType);
    if (!set) {
      set = new Set();
      this.listeners.set(eventType, set);
    }
    set.add(listener);
    return () => set.delete(listener);
  }

  connect(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.attempt = 0;
    globalThis.addEventListener?.("online", this.reconnectNow);
    void this.open();
  }

  close(): void {
    this.stopped = true;
    globalThis.removeEventListener?.("online", this.reconnectNow);
    this.clearTimers();
    this.detach()?.close(1000, "client_closed");
    this.setStatus("closed");
  }

  private readonly reconnectNow = (): void => {
    if (this.stopped || this.status !== "reconnecting") return;
    this.clearTimers();
    void this.open();
  };

  private async open(): Promise<void> {
    this.setStatus(this.attempt === 0 ? "connecting" : "reconnecting");
    let token: string | null;
    try {
      token = await resolveToken(this.options.token);
    } catch {
      token = null;
    }
    if (this.stopped) return;
    if (!token) {
      this.fail(4401, "missing_token");
      return;
    }
    const url = new URL(this.options.url);
    if (this.lastSequence !== null) {
      url.searchParams.set("last_sequence", String(this.lastSequence));
    }
    const socket = new this.WebSocketImpl(url.toString(), ["bearer", token]);
    this.socket = socket;
    socket.onmessage = (event) => this.receive(event.data);
    socket.onclose = (event) => {
      if (this.socket === socket) this.closed(event.code, event.reason);
    };
    socket.onerror = () => {};
    this.armWatchdog();
  }

  private receive(data: unknown): void {
    this.armWatchdog();
    let frame: ServerFrame;
    try {
      frame = JSON.parse(String(data)) as ServerFrame;
    } catch {
      return;
    }
    switch (frame.type) {
      case "hello":
        this.attempt = 0;
        this.pingIntervalMs = Math.max(1, frame.ping_interval) * 1000;
        this.armWatchdog();
        this.setStatus("open");
        this.options.onHello?.(frame);
        if (this.lastSequence === null) {
          this.advance(frame.last_sequence);
          this.options.onResync?.({ reason: "initial", last_sequence: frame.last_sequence });
        }
        break;
      case "event":
        if (this.lastSequence !== null && frame.sequence <= this.lastSequence) return;
        this.advance(frame.sequence);
        this.emit(frame);
        break;
      case "resync":
        this.advance(frame.last_sequence);
        this.options.onResync?.({ reason: frame.reason, last_sequence: frame.last_sequence });
        break;
      case "ping":
        this.socket?.send(JSON.stringify({ type: "pong" }));
        break;
      case "error":
        this.options.onServerError?.(frame);
        break;
      default:
        break;
    }
  }

  private emit(frame: EventFrame): void {
    for (const key of [frame.event_type, "*"]) {
      for (const listener of this.listeners.get(key) ?? []) listener(frame);
    }
  }

  private advance(sequence: number): void {
    this.lastSequence = sequence;
    this.options.onSequence?.(sequence);
  }

  private closed(code: number, reason: string): void {
    this.socket = null;
    this.clearTimers();
    if (this.stopped) return;
    const renewable = typeof this.options.token === "function";
    if (FATAL_CLOSE_CODES.has(code) || (code === TOKEN_EXPIRED && !renewable)) {
      this.fail(code, reason);
      return;
    }
    if (code === TOKEN_EXPIRED) this.attempt = 0;
    this.scheduleReconnect();
  }

  private fail(code: number, reason: string): void {
    this.stopped = true;
    this.clearTimers();
    this.setStatus("closed");
    this.options.onAuthError?.(code, reason);
  }

  private scheduleReconnect(): void {
    this.setStatus("reconnecting");
    const delay = backoffDelay(this.attempt, this.options.backoff, this.options.random);
    this.attempt += 1;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      void this.open();
    }, delay);
  }

  /** Nothing heard for 2.5 ping intervals: the connection is dead even if no close came. */
  private armWatchdog(): void {
    if (this.watchdog) clearTimeout(this.watchdog);
    this.watchdog = setTimeout(() => {
      this.watchdog = null;
      this.detach()?.close(4000, "heartbeat_timeout");
      if (!this.stopped) this.scheduleReconnect();
    }, this.pingIntervalMs * 2.5);
  }

  private detach(): WebSocketLike | null {
    const socket = this.socket;
    this.socket = null;
    if (socket) {
      socket.onmessage = null;
      socket.onclose = null;
    }
    return socket;
  }

  private clearTimers(): void {
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    if (this.watchdog) clearTimeout(this.watchdog);
    this.reconnectTimer = null;
    this.watchdog = null;
  }

  private setStatus(status: SocketStatus): void {
    if (this.status === status) return;
    this.status = status;
    this.options.onStatus?.(status);
  }
}
