/** Read at request time (never inlined into the build), so one build runs anywhere. */
export function authSettings() {
  const baseURL = process.env.BETTER_AUTH_URL ?? "http://localhost:3000";
  return {
    baseURL,
    secret: process.env.BETTER_AUTH_SECRET ?? buildTimeSecret(),
    issuer: process.env.TODO_JWT_ISSUER ?? baseURL,
    audience: process.env.TODO_JWT_AUDIENCE ?? "todo-api",
  };
}

export function apiUrl(): string {
  return (process.env.TODO_API_URL ?? "http://127.0.0.1:8000").replace(/\/+$/, "");
}

/** `next build` loads the auth route to collect its page data without serving it; a running
 * server without BETTER_AUTH_SECRET still fails at its first request, as it should. */
function buildTimeSecret(): string | undefined {
  return process.env.NEXT_PHASE === "phase-production-build"
    ? "only-while-building-never-serves-a-request"
    : undefined;
}
