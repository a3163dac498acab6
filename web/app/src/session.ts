// The signed-in session, in memory only: the access token (a short-lived JWT) and the
// refresh token the server hands out in `login`'s answer. Neither is written to
// localStorage, sessionStorage or a cookie, so a reload or a new tab starts signed out;
// within the page the access token is renewed before it expires by spending the refresh
// token (`refreshToken` rotates it: each one is spent once, so refreshes never overlap).

export interface SessionUser {
  id: string;
  email: string;
}

interface Tokens {
  accessToken: string;
  accessTokenExpiresAt: string;
  refreshToken: string;
  user: SessionUser;
}

const AUTH_FIELDS = "accessToken accessTokenExpiresAt refreshToken user { id email }";
const LOGIN = `mutation Login($email: String!, $password: String!) {
  login(email: $email, password: $password) { ${AUTH_FIELDS} } }`;
const REFRESH = `mutation Refresh($token: String!) {
  refreshToken(refreshToken: $token) { ${AUTH_FIELDS} } }`;
const LOGOUT = `mutation Logout($token: String!) { logout(refreshToken: $token) }`;
const RENEW_BEFORE_MS = 60_000;

type Listener = (user: SessionUser | null) => void;

async function call<T>(query: string, variables: Record<string, unknown>, token?: string) {
  // Not api.ts's gql: that one refreshes on 401, which would recurse.
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch("/graphql", {
    method: "POST",
    headers,
    body: JSON.stringify({ query, variables }),
    credentials: "omit",
  });
  const body = (await response.json()) as {
    data?: T;
    errors?: { message: string; extensions?: { code?: string } }[];
  };
  if (body.errors?.length || !body.data) {
    throw new Error(body.errors?.map((e) => e.message).join(" ") ?? "No answer.");
  }
  return body.data;
}

class Session {
  private tokens: Tokens | null = null;
  private timer: number | undefined;
  private refreshing: Promise<boolean> | null = null;
  private listeners = new Set<Listener>();

  accessToken(): string | null {
    return this.tokens?.accessToken ?? null;
  }

  user(): SessionUser | null {
    return this.tokens?.user ?? null;
  }

  onChange(listener: Listener): void {
    this.listeners.add(listener);
  }

  async login(email: string, password: string): Promise<void> {
    const data = await call<{ login: Tokens }>(LOGIN, { email, password });
    this.set(data.login);
  }

  /** Spends the refresh token for a new pair; false (and signed out) when it is refused. */
  refresh(): Promise<boolean> {
    if (!this.refreshing) {
      this.refreshing = this.renew().finally(() => {
        this.refreshing = null;
      });
    }
    return this.refreshing;
  }

  async logout(): Promise<void> {
    const tokens = this.tokens;
    this.set(null);
    if (tokens) {
      try {
        await call(LOGOUT, { token: tokens.refreshToken }, tokens.accessToken);
      } catch {
        // The session is gone from this page either way; the token expires on its own.
      }
    }
  }

  private async renew(): Promise<boolean> {
    const current = this.tokens;
    if (!current) return false;
    try {
      const data = await call<{ refreshToken: Tokens }>(REFRESH, { token: current.refreshToken });
      this.set(data.refreshToken);
      return true;
    } catch {
      this.set(null);
      return false;
    }
  }

  private set(tokens: Tokens | null): void {
    const changed = (this.tokens?.user.id ?? null) !== (tokens?.user.id ?? null);
    this.tokens = tokens;
    window.clearTimeout(this.timer);
    if (tokens) {
      const due = Date.parse(tokens.accessTokenExpiresAt) - Date.now() - RENEW_BEFORE_MS;
      this.timer = window.setTimeout(() => void this.refresh(), Math.max(due, 5_000));
    }
    if (changed) for (const listener of this.listeners) listener(this.user());
  }
}

export const session = new Session();
