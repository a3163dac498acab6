import "./style.css";

import { h } from "./dom";
import { accountPage } from "./pages/account";
import { notFoundPage } from "./pages/common";
import { homePage } from "./pages/home";
import { localityPage } from "./pages/locality";
import { propertyPage } from "./pages/property";
import { registerPage, signInPage } from "./pages/signin";
import { fallback, navigate, route, setTitle, start } from "./router";
import { session, type SessionUser } from "./session";

route("/", homePage);
route("/property/:id", propertyPage);
route("/locality/:id", localityPage);
route("/signin", signInPage);
route("/register", registerPage);
route("/account", accountPage);
fallback(({ main }) => {
  setTitle("Not found");
  notFoundPage(main, "Page");
});

function renderNav(user: SessionUser | null): void {
  const nav = document.getElementById("account-nav") as HTMLElement;
  if (!user) {
    nav.replaceChildren(h("a", { href: "/signin" }, "Sign in"), h("a", { href: "/register" }, "Register"));
    return;
  }
  const out = h("button", { type: "button", class: "link-button" }, "Sign out");
  out.addEventListener("click", () => {
    navigate("/");
    void session.logout(); // signed out on this page at once; the server revokes the token
  });
  nav.replaceChildren(h("a", { href: "/account" }, "My account"), out);
}

session.onChange(renderNav);
renderNav(session.user());
start();
