import { h, uniqueId } from "../dom";

/** A labelled input (the label names it; a hint, when given, describes it). */
export function field(
  label: string,
  attrs: Record<string, string | boolean>,
  hint?: string,
): { row: HTMLElement; input: HTMLInputElement } {
  const id = uniqueId("field");
  const hintId = hint ? `${id}-hint` : undefined;
  const input = h("input", { id, ...attrs, "aria-describedby": hintId });
  const row = h(
    "div",
    { class: "field" },
    h("label", { for: id }, label),
    input,
    hint ? h("p", { id: hintId, class: "hint" }, hint) : null,
  );
  return { row, input };
}

/** Where a form's result or error is announced. */
export function formStatus(): HTMLElement {
  return h("p", { class: "form-status", role: "status", "aria-live": "polite" });
}
