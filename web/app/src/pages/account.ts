import { gql } from "../api";
import { field, formStatus } from "../components/form";
import { h, uniqueId } from "../dom";
import { formatDate, formatPrice, titleCase } from "../format";
import { propertyPath } from "../paths";
import { navigate, setTitle, type PageContext } from "../router";
import { session } from "../session";
import { failure, loading, region } from "./common";

const ME = `query Me {
  me {
    email
    savedSearches { id name frequency createdAt lastMatchedAt filter { localityName postcode isStrata } }
    watches { id estimateChangePct createdAt property { id address lastSalePrice } }
    alerts(first: 20) {
      nodes {
        id kind createdAt readAt matchCount
        property { id address }
        sale { price contractDate }
        savedSearch { name }
        estimateChange { previous current changePct }
      }
    }
  }
}`;
const CREATE_SEARCH = `mutation CreateSavedSearch($input: CreateSavedSearchInput!) { createSavedSearch(input: $input) { id } }`;
const DELETE_SEARCH = `mutation DeleteSavedSearch($id: ID!) { deleteSavedSearch(id: $id) }`;
const UNWATCH = `mutation Unwatch($id: ID!) { unwatchProperty(id: $id) }`;
const MARK_READ = `mutation MarkRead { markAlertsRead(all: true) }`;

interface SavedSearch {
  id: string;
  name: string;
  frequency: string;
  createdAt: string;
  lastMatchedAt: string | null;
  filter: { localityName: string | null; postcode: string | null; isStrata: boolean | null };
}

interface Watch {
  id: string;
  estimateChangePct: number;
  property: { id: string; address: string; lastSalePrice: number } | null;
}

interface Alert {
  id: string;
  kind: string;
  createdAt: string;
  readAt: string | null;
  matchCount: number | null;
  property: { id: string; address: string } | null;
  sale: { price: number; contractDate: string } | null;
  savedSearch: { name: string } | null;
  estimateChange: { previous: number; current: number; changePct: number } | null;
}

interface Me {
  email: string;
  savedSearches: SavedSearch[];
  watches: Watch[];
  alerts: { nodes: Alert[] };
}

function alertText(alert: Alert): string {
  switch (alert.kind) {
    case "PROPERTY_SOLD":
      return `Sold${alert.sale ? ` for ${formatPrice(alert.sale.price)} on ${formatDate(alert.sale.contractDate)}` : ""}`;
    case "ESTIMATE_CHANGED":
      return alert.estimateChange
        ? `Estimate moved ${alert.estimateChange.changePct.toFixed(1)}%: ${formatPrice(alert.estimateChange.previous)} → ${formatPrice(alert.estimateChange.current)}`
        : "Estimate changed";
    case "SALE_MATCHED":
      return `New sale matching “${alert.savedSearch?.name ?? "a saved search"}”${alert.sale ? `: ${formatPrice(alert.sale.price)}` : ""}`;
    case "DIGEST":
      return `${alert.matchCount ?? 0} new sales matching “${alert.savedSearch?.name ?? "a saved search"}”`;
    default:
      return alert.kind;
  }
}

function searchForm(reload: () => void): HTMLElement {
  const name = field("Name", { type: "text", required: true, maxlength: "100" });
  const locality = field("Suburb", { type: "text", autocomplete: "off" }, "Suburb name, postcode, or both.");
  const postcode = field("Postcode", { type: "text", inputmode: "numeric", pattern: "[0-9]{4}", maxlength: "4" });
  const frequencyId = uniqueId("frequency");
  const frequency = h(
    "select",
    { id: frequencyId },
    h("option", { value: "INSTANT" }, "As they happen"),
    h("option", { value: "DAILY" }, "Daily digest"),
    h("option", { value: "WEEKLY" }, "Weekly digest"),
  );
  const status = formStatus();
  const form = h(
    "form",
    { class: "inline-form" },
    name.row,
    locality.row,
    postcode.row,
    h("div", { class: "field" }, h("label", { for: frequencyId }, "Alerts"), frequency),
    h("button", { type: "submit", class: "button" }, "Save search"),
    status,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const filter: Record<string, string> = {};
    if (locality.input.value.trim()) filter.localityName = locality.input.value.trim();
    if (postcode.input.value.trim()) filter.postcode = postcode.input.value.trim();
    try {
      await gql(CREATE_SEARCH, { input: { name: name.input.value, filter, frequency: frequency.value } });
      reload();
    } catch (error) {
      status.replaceChildren(failure(error));
    }
  });
  return form;
}

export async function accountPage(context: PageContext): Promise<void> {
  const { main, signal } = context;
  setTitle("My account");
  if (!session.user()) {
    navigate(`/signin?next=${encodeURIComponent("/account")}`, { replace: true });
    return;
  }
  main.append(h("h1", {}, "My account"), loading("your account"));
  let me: Me | null;
  try {
    me = (await gql<{ me: Me | null }>(ME, {}, { signal })).me;
  } catch (error) {
    if (!signal.aborted) main.replaceChildren(h("h1", {}, "My account"), failure(error));
    return;
  }
  if (signal.aborted) return;
  if (!me) {
    navigate("/signin?next=%2Faccount", { replace: true });
    return;
  }
  const reload = (): void => navigate("/account", { replace: true });
  // `what`: read after the visible label by screen readers (which of the rows it acts on).
  const action = (label: string, run: () => Promise<unknown>, what = ""): HTMLButtonElement => {
    const button = h(
      "button",
      { type: "button", class: "button secondary small" },
      label,
      what ? h("span", { class: "visually-hidden" }, ` ${what}`) : null,
    );
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        await run();
        reload();
      } catch (error) {
        button.disabled = false;
        button.after(failure(error));
      }
    });
    return button;
  };

  const unread = me.alerts.nodes.filter((a) => !a.readAt).length;
  main.replaceChildren(
    h("h1", {}, "My account"),
    h("p", { class: "muted" }, `Signed in as ${me.email}.`),
    region(
      "watches-h",
      "Watched properties",
      me.watches.length
        ? h(
            "ul",
            { class: "cards" },
            ...me.watches.map((watch) =>
              h(
                "li",
                {},
                watch.property ? h("a", { href: propertyPath(watch.property.id) }, watch.property.address) : "A removed property",
                h("span", { class: "muted" }, ` alerts past ${watch.estimateChangePct}% estimate change `),
                watch.property ? action("Stop watching", () => gql(UNWATCH, { id: watch.property!.id }), watch.property.address) : null,
              ),
            ),
          )
        : h("p", {}, "None yet: open a property and press Watch."),
    ),
    region(
      "alerts-h",
      "Alerts",
      me.alerts.nodes.length
        ? h(
            "ul",
            { class: "cards" },
            ...me.alerts.nodes.map((alert) =>
              h(
                "li",
                { class: alert.readAt ? "" : "unread" },
                h("strong", {}, alertText(alert)),
                alert.property ? [" · ", h("a", { href: propertyPath(alert.property.id) }, alert.property.address)] : null,
                h("span", { class: "muted" }, ` · ${formatDate(alert.createdAt)}${alert.readAt ? "" : " · unread"}`),
              ),
            ),
          )
        : h("p", {}, "No alerts yet."),
      unread ? action("Mark all read", () => gql(MARK_READ)) : "",
    ),
    region(
      "searches-h",
      "Saved searches",
      me.savedSearches.length
        ? h(
            "ul",
            { class: "cards" },
            ...me.savedSearches.map((search) =>
              h(
                "li",
                {},
                h("strong", {}, search.name),
                h(
                  "span",
                  { class: "muted" },
                  ` ${[search.filter.localityName && titleCase(search.filter.localityName), search.filter.postcode].filter(Boolean).join(" ")} · ${search.frequency.toLowerCase()} `,
                ),
                action("Delete", () => gql(DELETE_SEARCH, { id: search.id }), search.name),
              ),
            ),
          )
        : h("p", {}, "No saved searches yet."),
      h("h3", {}, "New saved search"),
      searchForm(reload),
    ),
  );
}
