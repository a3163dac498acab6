// A small history router: same-origin link clicks become pushState navigations, each route
// renders into <main>. After a navigation the page's h1 takes focus (screen readers hear
// the new page; keyboard users start from its top) and the title names the page.

export interface PageContext {
  main: HTMLElement;
  params: Record<string, string>;
  /** Aborted when the user navigates away: pending requests stop, late answers are dropped. */
  signal: AbortSignal;
  query: URLSearchParams;
}

export type Page = (context: PageContext) => Promise<void> | void;

interface Route {
  pattern: RegExp;
  keys: string[];
  page: Page;
}

const routes: Route[] = [];
let current: AbortController | null = null;
let notFound: Page = () => undefined;

export function route(path: string, page: Page): void {
  const keys: string[] = [];
  const pattern = path.replace(/:(\w+)/g, (_, key: string) => {
    keys.push(key);
    return "([^/]+)";
  });
  routes.push({ pattern: new RegExp(`^${pattern}/?$`), keys, page });
}

export function fallback(page: Page): void {
  notFound = page;
}

export function navigate(href: string, { replace = false } = {}): void {
  if (replace) history.replaceState(null, "", href);
  else history.pushState(null, "", href);
  void render(true);
}

export function setTitle(title: string): void {
  document.title = title ? `${title} · propintel` : "propintel";
}

/** Focus the page's heading once it is rendered (after a navigation, not on first load). */
export function focusHeading(main: HTMLElement): void {
  const heading = main.querySelector("h1");
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus({ preventScroll: false });
  }
}

let navigated = false;

async function render(moved: boolean): Promise<void> {
  current?.abort();
  const controller = new AbortController();
  current = controller;
  const main = document.getElementById("main") as HTMLElement;
  main.replaceChildren();
  main.setAttribute("aria-busy", "true");
  const path = location.pathname;
  const query = new URLSearchParams(location.search);
  let page = notFound;
  let params: Record<string, string> = {};
  for (const candidate of routes) {
    const match = candidate.pattern.exec(path);
    if (match) {
      page = candidate.page;
      params = Object.fromEntries(
        candidate.keys.map((key, i) => [key, decodeURIComponent(match[i + 1])]),
      );
      break;
    }
  }
  navigated = navigated || moved;
  try {
    await page({ main, params, signal: controller.signal, query });
  } finally {
    if (!controller.signal.aborted) {
      main.removeAttribute("aria-busy");
      if (navigated) focusHeading(main);
      if (moved) window.scrollTo(0, 0);
    }
  }
}

export function start(): void {
  document.addEventListener("click", (event) => {
    if (event.defaultPrevented || event.button !== 0) return;
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    const anchor = (event.target as Element).closest("a");
    if (!anchor || anchor.target || anchor.hasAttribute("download")) return;
    const url = new URL(anchor.href, location.href);
    if (url.origin !== location.origin || url.pathname.startsWith("/graphql")) return;
    if (url.hash && url.pathname === location.pathname) return; // in-page (the skip link)
    event.preventDefault();
    navigate(url.pathname + url.search);
  });
  window.addEventListener("popstate", () => void render(true));
  void render(false);
}
