/** One offending input, as the API names it (`tags[0]`, `Idempotency-Key`, `operations[3].op`). */
export interface FieldError {
  field: string | null;
  code: string;
  message: string;
}

/**
 * An answer other than 2xx. The API always answers `{"error": {"code", "message", "fields"}}`
 * under `/api/`, so `code` is stable and safe to branch on (`not_found`, `version_conflict`,
 * `resync_required`, `not_in_trash`, ...).
 */
export class ApiError extends Error {
  override readonly name = "ApiError";
  readonly status: number;
  readonly code: string;
  readonly fields: FieldError[];
  readonly body: unknown;
  /** Seconds to wait, from `Retry-After` (429, 503, 409 `idempotency_key_in_flight`). */
  readonly retryAfter: number | null;

  constructor(options: {
    status: number;
    code: string;
    message: string;
    fields?: FieldError[];
    body?: unknown;
    retryAfter?: number | null;
  }) {
    super(options.message);
    this.status = options.status;
    this.code = options.code;
    this.fields = options.fields ?? [];
    this.body = options.body;
    this.retryAfter = options.retryAfter ?? null;
  }

  /** The first error about `field`, if any: handy for showing it next to a form input. */
  fieldError(field: string): FieldError | undefined {
    return this.fields.find((item) => item.field === field);
  }
}

/** The request never got an answer (offline, DNS, connection refused, CORS refused). */
export class NetworkError extends Error {
  override readonly name = "NetworkError";

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A body that is not the API's JSON error shape becomes an `ApiError` with a generic code. */
export function errorFromBody(status: number, body: unknown, retryAfter: number | null): ApiError {
  const error = (body as { error?: Partial<{ code: unknown; message: unknown; fields: unknown }> })
    ?.error;
  if (error && typeof error.code === "string") {
    return new ApiError({
      status,
      code: error.code,
      message: typeof error.message === "string" ? error.message : error.code,
      fields: Array.isArray(error.fields) ? (error.fields as FieldError[]) : [],
      body,
      retryAfter,
    });
  }
  return new ApiError({
    status,
    code: status >= 500 ? "server_error" : "http_error",
    message: `HTTP ${status}`,
    body,
    retryAfter,
  });
}
