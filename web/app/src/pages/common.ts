import { describe } from "../api";
import { h } from "../dom";

export function loading(what: string): HTMLElement {
  return h("p", { class: "loading", role: "status" }, `Loading ${what}…`);
}

export function failure(error: unknown): HTMLElement {
  return h("p", { class: "error", role: "alert" }, describe(error));
}

export function notFoundPage(main: HTMLElement, what: string): void {
  main.replaceChildren(
    h("h1", {}, `${what} not found`),
    h("p", {}, "It may have been removed, or the link is wrong. ", h("a", { href: "/" }, "Search again"), "."),
  );
}

/** A section with a visible h2 that names it (a region landmark for screen readers). */
export function region(id: string, title: string, ...children: (Node | string)[]): HTMLElement {
  return h(
    "section",
    { class: "panel", "aria-labelledby": id },
    h("h2", { id }, title),
    ...children,
  );
}

/** A definition list of facts: [term, description] pairs. */
export function facts(rows: [string, Node | string][]): HTMLElement {
  return h(
    "dl",
    { class: "facts" },
    ...rows.map(([term, value]) => h("div", {}, h("dt", {}, term), h("dd", {}, value))),
  );
}
