"use client";

import Link from "next/link";
import { useRouter } from "next/navigation";
import { type FormEvent, useState } from "react";

import { authClient, forgetApiToken } from "@/lib/auth-client";

export function AuthForm({ mode }: { mode: "sign-in" | "sign-up" }) {
  const router = useRouter();
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const signingUp = mode === "sign-up";

  async function submit(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const email = String(form.get("email") ?? "");
    const password = String(form.get("password") ?? "");
    setBusy(true);
    setError(null);
    forgetApiToken();
    const { error: failure } = signingUp
      ? await authClient.signUp.email({ email, password, name: String(form.get("name") ?? "") })
      : await authClient.signIn.email({ email, password });
    setBusy(false);
    if (failure) {
      setError(failure.message ?? "That did not work; check the fields and try again.");
      return;
    }
    router.replace("/");
    router.refresh();
  }

  return (
    <main className="auth">
      <div className="card">
        <h1>{signingUp ? "Create your account" : "Sign in"}</h1>
        <form onSubmit={submit} aria-label={signingUp ? "Sign up" : "Sign in"}>
          {signingUp && (
            <label>
              Name
              <input name="name" autoComplete="name" required />
            </label>
          )}
          <label>
            Email
            <input name="email" type="email" autoComplete="email" required />
          </label>
          <label>
            Password
            <input
              name="password"
              type="password"
              minLength={8}
              autoComplete={signingUp ? "new-password" : "current-password"}
              required
            />
          </label>
          <button className="primary" type="submit" disabled={busy}>
            {signingUp ? "Sign up" : "Sign in"}
          </button>
          {error && (
            <p className="error" role="alert">
              {error}
            </p>
          )}
        </form>
        <p>
          {signingUp ? (
            <Link href="/sign-in">I have an account</Link>
          ) : (
            <Link href="/sign-up">Create an account</Link>
          )}
        </p>
      </div>
    </main>
  );
}
