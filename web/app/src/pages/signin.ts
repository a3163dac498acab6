import { describe, gql } from "../api";
import { field, formStatus } from "../components/form";
import { h } from "../dom";
import { navigate, setTitle, type PageContext } from "../router";
import { session } from "../session";

const REGISTER = `mutation Register($email: String!, $password: String!) {
  register(email: $email, password: $password) { id }
}`;

/** Only our own paths: `next` comes from the URL, and must not send anyone elsewhere. */
function nextPath(query: URLSearchParams): string {
  const next = query.get("next") ?? "/account";
  return next.startsWith("/") && !next.startsWith("//") ? next : "/account";
}

function accountForm(
  mode: "signin" | "register",
  query: URLSearchParams,
): HTMLElement {
  const email = field("Email", { type: "email", name: "email", autocomplete: "email", required: true });
  const password = field(
    "Password",
    {
      type: "password",
      name: "password",
      autocomplete: mode === "register" ? "new-password" : "current-password",
      required: true,
      minlength: mode === "register" ? "8" : "1",
    },
    mode === "register" ? "At least 8 characters." : undefined,
  );
  const status = formStatus();
  const submit = h("button", { type: "submit", class: "button" }, mode === "register" ? "Create account" : "Sign in");
  const form = h("form", { novalidate: false }, email.row, password.row, submit, status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    status.textContent = mode === "register" ? "Creating your account…" : "Signing in…";
    try {
      if (mode === "register") await gql(REGISTER, { email: email.input.value, password: password.input.value });
      await session.login(email.input.value, password.input.value);
      navigate(nextPath(query), { replace: true });
    } catch (error) {
      status.textContent = error instanceof Error ? error.message : describe(error);
      status.classList.add("error");
      submit.disabled = false;
    }
  });
  return form;
}

export function signInPage({ main, query }: PageContext): void {
  setTitle("Sign in");
  const next = query.get("next");
  main.append(
    h(
      "section",
      { class: "narrow" },
      h("h1", {}, "Sign in"),
      accountForm("signin", query),
      h("p", {}, "New here? ", h("a", { href: `/register${next ? `?next=${encodeURIComponent(next)}` : ""}` }, "Create an account"), "."),
      h("p", { class: "muted" }, "You stay signed in while this tab is open: the app keeps no token on this device."),
    ),
  );
}

export function registerPage({ main, query }: PageContext): void {
  setTitle("Create an account");
  const next = query.get("next");
  main.append(
    h(
      "section",
      { class: "narrow" },
      h("h1", {}, "Create an account"),
      accountForm("register", query),
      h("p", {}, "Have an account? ", h("a", { href: `/signin${next ? `?next=${encodeURIComponent(next)}` : ""}` }, "Sign in"), "."),
    ),
  );
}
