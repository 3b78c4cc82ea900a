import { betterAuth } from "better-auth";
import { memoryAdapter } from "better-auth/adapters/memory";
import { nextCookies } from "better-auth/next-js";
import { jwt } from "better-auth/plugins";

import { authSettings } from "./settings";

type Store = Record<string, Record<string, unknown>[]>;

/**
 * Users, sessions and signing keys live in this process (Better Auth's memory adapter): the
 * example needs no database and no native module. One store per process, shared by every
 * route bundle that imports this module. A deployment swaps in a database adapter (a `pg`
 * Pool, then `npx @better-auth/cli migrate`); nothing else changes.
 */
const store: Store = ((globalThis as { __todoAuthStore?: Store }).__todoAuthStore ??= {
  user: [],
  session: [],
  account: [],
  verification: [],
  jwks: [],
});

const settings = authSettings();

export const auth = betterAuth({
  baseURL: settings.baseURL,
  secret: settings.secret,
  database: memoryAdapter(store),
  emailAndPassword: { enabled: true, autoSignIn: true, minPasswordLength: 8 },
  plugins: [
    jwt({
      // EdDSA (Ed25519) is among the API's JWKS algorithms (JWT_ALGORITHMS: RS256, ES256, EdDSA).
      jwks: { keyPairConfig: { alg: "EdDSA", crv: "Ed25519" } },
      jwt: {
        issuer: settings.issuer,
        audience: settings.audience,
        expirationTime: "15m",
        // `sub` is the user id, the API's only notion of who the caller is.
        definePayload: ({ user }) => ({ name: user.name, email: user.email }),
      },
    }),
    nextCookies(),
  ],
});
