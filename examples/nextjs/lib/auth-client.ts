"use client";

import { createAuthClient } from "better-auth/react";
import { jwtClient } from "better-auth/client/plugins";

/** Same origin as the pages: Better Auth's routes are under /api/auth on this app. */
export const authClient = createAuthClient({ plugins: [jwtClient()] });

const RENEW_BEFORE_SECONDS = 60;
let cached: { token: string; expiresAt: number } | null = null;

function expiry(token: string): number {
  try {
    const payload = JSON.parse(atob(token.split(".")[1]!.replace(/-/g, "+").replace(/_/g, "/")));
    return typeof payload.exp === "number" ? payload.exp : 0;
  } catch {
    return 0;
  }
}

/**
 * A JWT for the task API (Better Auth's jwt plugin, `GET /api/auth/token`), kept until a minute
 * before it expires. The typed client calls this before every request and every connect.
 */
export async function apiToken(): Promise<string | null> {
  const now = Date.now() / 1000;
  if (cached && cached.expiresAt - RENEW_BEFORE_SECONDS > now) return cached.token;
  const { data } = await authClient.token();
  if (!data?.token) {
    cached = null;
    return null;
  }
  cached = { token: data.token, expiresAt: expiry(data.token) };
  return data.token;
}

export function forgetApiToken(): void {
  cached = null;
}
