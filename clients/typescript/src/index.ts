export { ApiError, NetworkError, type FieldError } from "./errors.js";
export type {
  Change,
  ChangePage,
  ErrorFrame,
  EventFrame,
  HelloFrame,
  Notification,
  ResyncFrame,
  ResyncReason,
  ServerFrame,
  Task,
  TaskPage,
} from "./frames.js";
export { TASK_GONE_EVENTS } from "./frames.js";
export {
  TodoClient,
  isResyncRequired,
  type BulkRequest,
  type BulkResult,
  type ClientOptions,
  type DeleteOptions,
  type NotificationPage,
  type Occurrences,
  type TaskCreate,
  type TaskListQuery,
  type TaskPatch,
  type TokenSource,
  type TrashPage,
  type WriteOptions,
} from "./rest.js";
export {
  FATAL_CLOSE_CODES,
  TOKEN_EXPIRED,
  TaskSocket,
  backoffDelay,
  type BackoffOptions,
  type ResyncNotice,
  type SocketStatus,
  type TaskSocketOptions,
  type WebSocketConstructor,
  type WebSocketLike,
} from "./socket.js";
export { TaskSync, type TaskSyncOptions } from "./sync.js";
export type { components, operations, paths } from "./generated/openapi.js";
export type * as Events from "./generated/events.js";
