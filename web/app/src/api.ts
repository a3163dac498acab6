// The GraphQL client: POST /graphql on our own origin, with the session's access token when
// signed in. A 401 (the token expired or was revoked) spends the refresh token once and
// retries; when that fails too the session ends.

import { session } from "./session";

export interface GraphQLErrorShape {
  message: string;
  path?: (string | number)[];
  extensions?: { code?: string; argument?: string };
}

export class ApiError extends Error {
  constructor(
    message: string,
    readonly errors: GraphQLErrorShape[] = [],
    readonly status = 200,
  ) {
    super(message);
  }

  get code(): string | undefined {
    return this.errors[0]?.extensions?.code;
  }
}

interface Answer<T> {
  data?: T | null;
  errors?: GraphQLErrorShape[];
}

async function post<T>(
  query: string,
  variables: Record<string, unknown>,
  token: string | null,
  signal?: AbortSignal,
): Promise<{ status: number; body: Answer<T> }> {
  const headers: Record<string, string> = {
    "content-type": "application/json",
    accept: "application/graphql-response+json, application/json",
  };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch("/graphql", {
    method: "POST",
    headers,
    body: JSON.stringify({ query, variables }),
    signal,
    credentials: "omit", // no cookies: the token is the credential
  });
  let body: Answer<T>;
  try {
    body = (await response.json()) as Answer<T>;
  } catch {
    throw new ApiError(`The server answered ${response.status}.`, [], response.status);
  }
  return { status: response.status, body };
}

/** Runs an operation; throws ApiError when it has errors (`partial` keeps data with errors). */
export async function gql<T>(
  query: string,
  variables: Record<string, unknown> = {},
  options: { signal?: AbortSignal; partial?: boolean } = {},
): Promise<T> {
  const token = session.accessToken();
  let { status, body } = await post<T>(query, variables, token, options.signal);
  if (status === 401 && token) {
    if (await session.refresh()) {
      ({ status, body } = await post<T>(query, variables, session.accessToken(), options.signal));
    } else {
      ({ status, body } = await post<T>(query, variables, null, options.signal));
    }
  }
  const errors = body.errors ?? [];
  if (errors.length && !(options.partial && body.data)) {
    throw new ApiError(errors.map((e) => e.message).join(" "), errors, status);
  }
  if (!body.data) throw new ApiError(`The server answered ${status} without data.`, [], status);
  return body.data;
}

/** The first error of a failed call, as a sentence for the page. */
export function describe(error: unknown): string {
  if (error instanceof ApiError) return error.message;
  if (error instanceof DOMException && error.name === "AbortError") return "Cancelled.";
  return "The server could not be reached. Try again.";
}
