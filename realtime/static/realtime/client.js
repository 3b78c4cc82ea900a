/**
 * Live task updates from the task backend's `/ws/tasks/` socket.
 *
 * A dependency-free ES module: it connects with a bearer token (sent as the WebSocket
 * subprotocol `bearer, <token>`), reconnects with exponential backoff and jitter, resumes from
 * the last sequence it saw, answers heartbeats, and calls handlers per event type.
 * The protocol is described in docs/realtime.md.
 *
 *   import { TaskSocket } from "/static/realtime/client.js";
 *   const socket = new TaskSocket({
 *     token: () => getFreshToken(),          // a string, or a function (may be async)
 *     onResync: () => reloadTasksFromRest(),  // first connect, and whenever state must be refetched
 *   });
 *   socket.on("task.created", (frame) => addTask(frame.task));
 *   socket.on("task.deleted", (frame) => removeTask(frame.task_id));
 *   socket.on("*", (frame) => console.log(frame.event_type, frame.sequence));
 *   socket.connect();
 */

/** Close codes the server sends (see docs/realtime.md). */
export const CloseCode = Object.freeze({
  BAD_REQUEST: 4400,
  UNAUTHORIZED: 4401,
  FORBIDDEN: 4403,
  NOT_FOUND: 4404,
  TOKEN_EXPIRED: 4408,
  TOO_SLOW: 4409,
  POLICY: 4429,
});

const FATAL = new Set([
  CloseCode.BAD_REQUEST,
  CloseCode.UNAUTHORIZED,
  CloseCode.FORBIDDEN,
  CloseCode.NOT_FOUND,
]);

/** Where the socket lives when the page is served by the backend itself. */
export function defaultUrl(location = globalThis.location) {
  if (!location) throw new Error("Pass `url` outside a browser page.");
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws/tasks/`;
}

export class TaskSocket {
  /**
   * @param {object} options
   * @param {string | (() => string | Promise<string>)} options.token  bearer JWT, or a function
   *        returning one (called before every connection: the place to refresh it).
   * @param {string} [options.url]  e.g. "wss://api.example.com/ws/tasks/"; same host by default.
   * @param {number | null} [options.lastSequence]  resume after this sequence (e.g. persisted).
   * @param {(reason: string, lastSequence: number) => void} [options.onResync]  the client's
   *        state must be (re)loaded from the REST API: reason "initial" on a first connection,
   *        or the server's reason ("expired", "too_many_missed", ...).
   * @param {(frame: object) => void} [options.onHello]
   * @param {(status: string, detail?: object) => void} [options.onStatus]  "connecting",
   *        "open", "reconnecting", "closed".
   * @param {(code: number, reason: string) => void} [options.onAuthError]  the token was refused
   *        (no reconnect happens until `connect()` is called again).
   * @param {(sequence: number) => void} [options.onSequence]  to persist the cursor.
   * @param {(frame: object) => void} [options.onError]  error frames from the server.
   * @param {"protocol" | "query"} [options.tokenTransport]  "protocol" (default) keeps the
   *        token out of URLs; "query" sends `?token=` for clients that cannot set subprotocols.
   * @param {number} [options.minDelay]  first reconnect delay in ms (default 500).
   * @param {number} [options.maxDelay]  longest reconnect delay in ms (default 30000).
   * @param {typeof WebSocket} [options.WebSocket]  an implementation (default: the global one).
   */
  constructor(options) {
    if (!options || options.token == null) throw new TypeError("TaskSocket needs a token.");
    this._options = options;
    this._url = options.url || defaultUrl();
    this._WebSocket = options.WebSocket || globalThis.WebSocket;
    this._lastSequence = Number.isInteger(options.lastSequence) ? options.lastSequence : null;
    this._handlers = new Map();
    this._ws = null;
    this._attempt = 0;
    this._timer = null;
    this._watchdog = null;
    this._pingInterval = 25;
    this._stopped = true;
    this._opening = false;
    this._token = null;
    this._expiredToken = null;
    this._state = "idle";
    this._onOnline = () => {
      if (!this._stopped && this._state === "reconnecting") this._reconnectNow();
    };
  }

  /** The newest sequence this client has applied (null before the first `hello`). */
  get lastSequence() {
    return this._lastSequence;
  }

  /** "idle", "connecting", "open", "reconnecting" or "closed". */
  get state() {
    return this._state;
  }

  /**
   * Call `handler(frame)` for events of `eventType` ("task.created", "notification.created",
   * ...) or "*" for all. Returns a function that removes the handler.
   */
  on(eventType, handler) {
    if (!this._handlers.has(eventType)) this._handlers.set(eventType, new Set());
    this._handlers.get(eventType).add(handler);
    return () => this._handlers.get(eventType)?.delete(handler);
  }

  connect() {
    this._stopped = false;
    if (globalThis.addEventListener) globalThis.addEventListener("online", this._onOnline);
    if (!this._ws) this._open();
    return this;
  }

  /** Close for good (no reconnect). */
  close() {
    this._stopped = true;
    clearTimeout(this._timer);
    clearTimeout(this._watchdog);
    if (globalThis.removeEventListener) globalThis.removeEventListener("online", this._onOnline);
    const ws = this._ws;
    this._ws = null;
    if (ws && ws.readyState <= 1) ws.close(1000, "client_closed");
    this._setState("closed");
  }

  /** Send a frame ({type: "ping"} ...); false when not connected. */
  send(frame) {
    if (!this._ws || this._ws.readyState !== 1) return false;
    this._ws.send(JSON.stringify(frame));
    return true;
  }

  // --- internals -------------------------------------------------------------------------

  _setState(state, detail) {
    this._state = state;
    this._options.onStatus?.(state, detail);
  }

  async _open() {
    if (this._opening || this._ws) return;
    this._opening = true;
    this._setState(this._attempt ? "reconnecting" : "connecting");
    let token;
    try {
      const source = this._options.token;
      token = typeof source === "function" ? await source() : source;
    } catch (error) {
      this._opening = false;
      this._scheduleReconnect();
      return;
    }
    this._opening = false;
    if (this._stopped) return;
    if (!token) {
      this._fail(CloseCode.UNAUTHORIZED, "missing_token");
      return;
    }
    if (token === this._expiredToken) {
      // The token source handed back the token the server just called expired.
      this._fail(CloseCode.TOKEN_EXPIRED, "token_expired");
      return;
    }
    this._token = token;
    const url = new URL(this._url, globalThis.location?.href);
    if (this._lastSequence !== null) url.searchParams.set("last_sequence", String(this._lastSequence));
    let protocols;
    if (this._options.tokenTransport === "query") url.searchParams.set("token", token);
    else protocols = ["bearer", token];
    let ws;
    try {
      ws = protocols ? new this._WebSocket(url.toString(), protocols) : new this._WebSocket(url.toString());
    } catch (error) {
      this._scheduleReconnect();
      return;
    }
    this._ws = ws;
    ws.onmessage = (message) => {
      if (this._ws !== ws) return;
      this._armWatchdog();
      this._handle(message.data);
    };
    ws.onclose = (event) => {
      if (this._ws !== ws) return;
      this._ws = null;
      clearTimeout(this._watchdog);
      this._closed(event.code, event.reason);
    };
    ws.onopen = () => {
      if (this._ws === ws) this._armWatchdog();
    };
  }

  _handle(data) {
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    switch (frame.type) {
      case "hello": {
        this._attempt = 0;
        this._pingInterval = Number(frame.ping_interval) || this._pingInterval;
        const fresh = this._lastSequence === null;
        if (fresh) this._advance(frame.last_sequence);
        this._setState("open", frame);
        this._options.onHello?.(frame);
        if (fresh) this._options.onResync?.("initial", frame.last_sequence);
        break;
      }
      case "event": {
        if (this._lastSequence !== null && frame.sequence <= this._lastSequence) return;
        this._advance(frame.sequence);
        this._emit(frame.event_type, frame);
        this._emit("*", frame);
        break;
      }
      case "resync":
        this._lastSequence = null;
        this._advance(frame.last_sequence);
        this._options.onResync?.(frame.reason, frame.last_sequence);
        break;
      case "ping":
        this.send({ type: "pong" });
        break;
      case "error":
        this._options.onError?.(frame);
        break;
      default:
        break;
    }
  }

  _advance(sequence) {
    if (!Number.isInteger(sequence)) return;
    if (this._lastSequence === null || sequence > this._lastSequence) {
      this._lastSequence = sequence;
      this._options.onSequence?.(sequence);
    }
  }

  _emit(type, frame) {
    const handlers = this._handlers.get(type);
    if (!handlers) return;
    for (const handler of handlers) {
      try {
        handler(frame);
      } catch (error) {
        setTimeout(() => {
          throw error;
        });
      }
    }
  }

  _closed(code, reason) {
    if (this._stopped) {
      this._setState("closed");
      return;
    }
    if (FATAL.has(code) || (code === CloseCode.TOKEN_EXPIRED && typeof this._options.token !== "function")) {
      this._fail(code, reason);
      return;
    }
    if (code === CloseCode.TOKEN_EXPIRED) {
      this._expiredToken = this._token;
      this._reconnectNow();
      return;
    }
    this._scheduleReconnect({ code, reason });
  }

  _fail(code, reason) {
    this._stopped = true;
    this._setState("closed", { code, reason });
    this._options.onAuthError?.(code, reason);
  }

  _scheduleReconnect(detail) {
    if (this._stopped) return;
    const min = this._options.minDelay ?? 500;
    const max = this._options.maxDelay ?? 30000;
    const delay = Math.min(max, min * 2 ** Math.min(this._attempt, 16)) * (0.5 + Math.random() / 2);
    this._attempt += 1;
    this._setState("reconnecting", { ...detail, delay });
    clearTimeout(this._timer);
    this._timer = setTimeout(() => this._open(), delay);
  }

  _reconnectNow() {
    clearTimeout(this._timer);
    this._open();
  }

  // The server pings every `ping_interval` seconds; silence for much longer than that means
  // the connection is dead even if the browser has not noticed yet.
  _armWatchdog() {
    clearTimeout(this._watchdog);
    const ws = this._ws;
    this._watchdog = setTimeout(() => {
      if (this._ws === ws && ws) {
        this._ws = null;
        ws.onclose = null;
        ws.close(4000, "heartbeat_timeout");
        this._closed(4000, "heartbeat_timeout");
      }
    }, this._pingInterval * 2500);
  }
}

/** Create a TaskSocket and connect it. */
export function connectTasks(options) {
  return new TaskSocket(options).connect();
}
