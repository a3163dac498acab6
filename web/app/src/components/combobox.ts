// The address search box: an ARIA 1.2 combobox (an input that controls a listbox of
// suggestions). Typing asks the API after a short pause (the previous request is aborted);
// Up/Down move the active option (aria-activedescendant: focus stays in the input), Enter or a
// click picks it, Escape closes the list (and clears the input when it is already closed).

import { h, uniqueId } from "../dom";

export interface Suggestion {
  id: string;
  label: string;
  detail: string;
  kind: "Address" | "Suburb";
  href: string;
}

export interface ComboboxOptions {
  label: string;
  placeholder?: string;
  debounceMs?: number;
  minLength?: number;
  fetch: (query: string, signal: AbortSignal) => Promise<Suggestion[]>;
  pick: (suggestion: Suggestion) => void;
}

export function combobox(options: ComboboxOptions): HTMLElement {
  const { debounceMs = 150, minLength = 2 } = options;
  const inputId = uniqueId("search");
  const listId = uniqueId("suggestions");
  const statusId = uniqueId("status");
  const input = h("input", {
    id: inputId,
    type: "search",
    role: "combobox",
    "aria-autocomplete": "list",
    "aria-expanded": "false",
    "aria-controls": listId,
    "aria-describedby": statusId,
    autocomplete: "off",
    autocapitalize: "off",
    spellcheck: "false",
    placeholder: options.placeholder ?? "",
    enterkeyhint: "search",
  });
  const list = h("ul", { id: listId, role: "listbox", "aria-label": "Suggestions", hidden: true });
  const status = h("p", { id: statusId, class: "visually-hidden", role: "status" });

  let suggestions: Suggestion[] = [];
  let active = -1;
  let timer: number | undefined;
  let controller: AbortController | null = null;
  let shownFor = "";

  function setActive(index: number): void {
    active = index;
    list.querySelectorAll('[role="option"]').forEach((option, i) => {
      option.setAttribute("aria-selected", String(i === index));
      if (i === index) option.scrollIntoView({ block: "nearest" });
    });
    if (index >= 0) input.setAttribute("aria-activedescendant", `${listId}-${index}`);
    else input.removeAttribute("aria-activedescendant");
  }

  function open(items: Suggestion[], query: string): void {
    suggestions = items;
    shownFor = query;
    list.replaceChildren(
      ...items.map((item, i) =>
        h(
          "li",
          {
            id: `${listId}-${i}`,
            role: "option",
            "aria-selected": "false",
            "data-kind": item.kind,
            // mousedown, not click: it comes before the input's blur closes the list.
            onmousedown: ((event: MouseEvent) => {
              event.preventDefault();
              choose(i);
            }) as EventListener,
            onmousemove: (() => active !== i && setActive(i)) as EventListener,
          },
          h("span", { class: "option-label" }, item.label),
          h("span", { class: "option-detail" }, `${item.kind} · ${item.detail}`),
        ),
      ),
    );
    const expanded = items.length > 0;
    list.hidden = !expanded;
    input.setAttribute("aria-expanded", String(expanded));
    setActive(-1);
    status.textContent = expanded
      ? `${items.length} suggestion${items.length === 1 ? "" : "s"}; use the arrow keys to choose.`
      : query.length >= minLength
        ? "No matches."
        : "";
  }

  function close(): void {
    list.hidden = true;
    input.setAttribute("aria-expanded", "false");
    setActive(-1);
  }

  function choose(index: number): void {
    const item = suggestions[index];
    if (!item) return;
    input.value = item.label;
    close();
    options.pick(item);
  }

  function request(query: string): Promise<Suggestion[]> {
    controller?.abort();
    const mine = new AbortController();
    controller = mine;
    const answer = options.fetch(query, mine.signal).then(
      (items) => {
        if (!mine.signal.aborted && input.value.trim() === query) open(items, query);
        return items;
      },
      (error: unknown) => {
        if (!mine.signal.aborted) status.textContent = "Suggestions are unavailable right now.";
        throw error;
      },
    );
    return answer;
  }

  input.addEventListener("input", () => {
    window.clearTimeout(timer);
    const query = input.value.trim();
    if (query.length < minLength) {
      controller?.abort();
      open([], query);
      return;
    }
    timer = window.setTimeout(() => void request(query).catch(() => undefined), debounceMs);
  });

  input.addEventListener("keydown", (event) => {
    const count = list.hidden ? 0 : suggestions.length;
    switch (event.key) {
      case "ArrowDown":
        event.preventDefault();
        if (list.hidden && suggestions.length) {
          list.hidden = false;
          input.setAttribute("aria-expanded", "true");
          setActive(0);
        } else if (count) setActive((active + 1) % count);
        break;
      case "ArrowUp":
        event.preventDefault();
        if (count) setActive(active <= 0 ? count - 1 : active - 1);
        break;
      case "Enter": {
        event.preventDefault();
        if (active >= 0) {
          choose(active);
          break;
        }
        // Enter before picking: the best match of what is typed (asked now if not yet).
        const query = input.value.trim();
        if (query.length < minLength) break;
        window.clearTimeout(timer);
        const answer = shownFor === query ? Promise.resolve(suggestions) : request(query);
        void answer
          .then((items) => {
            if (input.value.trim() === query && items.length) choose(0);
          })
          .catch(() => undefined);
        break;
      }
      case "Escape":
        if (!list.hidden) {
          event.preventDefault();
          close();
        } else if (input.value) {
          event.preventDefault();
          input.value = "";
          open([], "");
        }
        break;
      case "Home":
      case "End":
        setActive(-1); // the caret moves in the input, as the pattern asks
        break;
    }
  });
  input.addEventListener("blur", () => close());
  input.addEventListener("focus", () => {
    if (suggestions.length && input.value.trim() === shownFor) {
      list.hidden = false;
      input.setAttribute("aria-expanded", "true");
    }
  });

  return h(
    "div",
    { class: "combobox" },
    h("label", { for: inputId }, options.label),
    h("div", { class: "combobox-field" }, input, list),
    status,
  );
}
