import { ApiError, gql } from "../api";
import { priceHistoryChart } from "../components/chart";
import { h } from "../dom";
import { epochSeconds, formatArea, formatDate, formatPrice, localityName } from "../format";
import { localityPath, propertyPath } from "../paths";
import { setTitle, type PageContext } from "../router";
import { session } from "../session";
import { facts, failure, loading, notFoundPage, region } from "./common";

const PAGE_SIZE = 100; // the API's largest page (PROPINTEL_MAX_PAGE_SIZE's default)

const SALE_FIELDS = "id contractDate price isMarketSale areaM2";
const PROPERTY = `query Property($id: ID!, $first: Int!) {
  property(id: $id) {
    id address areaM2 zoning isStrata nature primaryPurpose lastSalePrice lastSaleDate isWatched
    locality { id name postcode }
    sales(first: $first) { totalCount pageInfo { hasNextPage endCursor } nodes { ${SALE_FIELDS} } }
  }
}`;
const MORE_SALES = `query MoreSales($id: ID!, $first: Int!, $after: String!) {
  property(id: $id) {
    sales(first: $first, after: $after) { pageInfo { hasNextPage endCursor } nodes { ${SALE_FIELDS} } }
  }
}`;
// Each on its own: without a trained model `estimate` is an error, which (the field being
// non-null) nulls its property, and must not take the facts or the comparables with it.
const ESTIMATE = `query PropertyEstimate($id: ID!) {
  property(id: $id) { estimate { price low high asOf dataTo extrapolatedDays } }
}`;
const COMPARABLES = `query PropertyComparables($id: ID!) {
  property(id: $id) { comparableSales(first: 5) { id contractDate price areaM2 property { id address } } }
}`;
const WATCH = `mutation Watch($id: ID!) { watchProperty(id: $id) { id } }`;
const UNWATCH = `mutation Unwatch($id: ID!) { unwatchProperty(id: $id) }`;

interface Sale {
  id: string;
  contractDate: string;
  price: number;
  isMarketSale: boolean;
  areaM2: number | null;
}

interface SalesPage {
  totalCount?: number;
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
  nodes: Sale[];
}

interface Property {
  id: string;
  address: string;
  areaM2: number | null;
  zoning: string | null;
  isStrata: boolean;
  nature: string | null;
  primaryPurpose: string | null;
  lastSalePrice: number;
  lastSaleDate: string;
  isWatched: boolean;
  locality: { id: string; name: string; postcode: string };
  sales: SalesPage;
}

interface Estimate {
  price: number;
  low: number;
  high: number;
  asOf: string;
  dataTo: string;
  extrapolatedDays: number;
}

interface Comparable {
  id: string;
  contractDate: string;
  price: number;
  areaM2: number | null;
  property: { id: string; address: string } | null;
}

/** Every sale: the keyset connection page by page (newest first) until its end. */
async function allSales(id: string, first: SalesPage, signal: AbortSignal): Promise<Sale[]> {
  const sales = [...first.nodes];
  let page = first.pageInfo;
  while (page.hasNextPage && page.endCursor) {
    const data = await gql<{ property: { sales: SalesPage } }>(
      MORE_SALES,
      { id, first: PAGE_SIZE, after: page.endCursor },
      { signal },
    );
    sales.push(...data.property.sales.nodes);
    page = data.property.sales.pageInfo;
  }
  return sales;
}

function salesTable(sales: Sale[], address: string): HTMLElement {
  return h(
    "div",
    { class: "table-scroll", tabindex: 0, role: "group", "aria-label": "Sales table" },
    h(
      "table",
      {},
      h("caption", {}, `Every recorded sale of ${address}, newest first`),
      h(
        "thead",
        {},
        h("tr", {}, h("th", { scope: "col" }, "Contract date"), h("th", { scope: "col", class: "num" }, "Price"), h("th", { scope: "col" }, "Kind")),
      ),
      h(
        "tbody",
        {},
        ...sales.map((sale) =>
          h(
            "tr",
            {},
            h("td", {}, formatDate(sale.contractDate)),
            h("td", { class: "num" }, formatPrice(sale.price)),
            h("td", {}, sale.isMarketSale ? "Market sale" : "Non-market"),
          ),
        ),
      ),
    ),
  );
}

function historySection(property: Property, sales: Sale[]): HTMLElement {
  if (!sales.length) return region("history-h", "Price history", h("p", {}, "No sales recorded."));
  const oldest = sales[sales.length - 1];
  const newest = sales[0];
  const label =
    `Price history of ${property.address}: ${sales.length} sale${sales.length === 1 ? "" : "s"}` +
    (sales.length > 1 ? `, from ${formatDate(oldest.contractDate)} (${formatPrice(oldest.price)})` : "") +
    ` to ${formatDate(newest.contractDate)} (${formatPrice(newest.price)})`;
  const chart = priceHistoryChart(
    sales.map((s) => ({ date: s.contractDate, epoch: epochSeconds(s.contractDate), price: s.price })),
    label,
  );
  return region("history-h", "Price history", chart, salesTable(sales, property.address));
}

function watchControl(property: Property): HTMLElement {
  const box = h("div", { class: "watch" });
  const render = (): void => {
    if (!session.user()) {
      box.replaceChildren(
        h("a", { href: `/signin?next=${encodeURIComponent(propertyPath(property.id))}` }, "Sign in to watch this property"),
      );
      return;
    }
    const note = h("p", { class: "muted", role: "status" }, property.isWatched ? "You watch this property: you get an alert when it sells or its estimate moves by more than 5%." : "");
    const button = h("button", { type: "button", class: "button", "aria-pressed": String(property.isWatched) }, "Watch");
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        if (property.isWatched) await gql(UNWATCH, { id: property.id });
        else await gql(WATCH, { id: property.id });
        property.isWatched = !property.isWatched;
        render();
        (box.querySelector("button") as HTMLButtonElement | null)?.focus();
      } catch (error) {
        button.disabled = false;
        note.replaceChildren(failure(error));
      }
    });
    box.replaceChildren(button, note);
  };
  render();
  return box;
}

function estimateSection(estimate: Estimate): HTMLElement {
  const body = h(
    "div",
    {},
    h("p", { class: "estimate-price" }, formatPrice(estimate.price)),
    h("p", {}, `80% interval: ${formatPrice(estimate.low)} – ${formatPrice(estimate.high)}`),
    h(
      "p",
      { class: "muted" },
      `As of ${formatDate(estimate.asOf)}; the model knows sales up to ${formatDate(estimate.dataTo)}.`,
      estimate.extrapolatedDays > 0 ? ` It holds prices flat for the ${estimate.extrapolatedDays} days since.` : "",
    ),
  );
  return body;
}

function comparablesList(comparables: Comparable[]): HTMLElement {
  if (!comparables.length) return h("p", {}, "No comparable sales nearby.");
  return h(
    "ul",
    { class: "cards" },
    ...comparables.map((sale) =>
      h(
        "li",
        {},
        sale.property ? h("a", { href: propertyPath(sale.property.id) }, sale.property.address) : "Address withheld",
        h("span", { class: "muted" }, ` ${formatPrice(sale.price)} · ${formatDate(sale.contractDate)} · ${formatArea(sale.areaM2)}`),
      ),
    ),
  );
}

export async function propertyPage({ main, params, signal }: PageContext): Promise<void> {
  main.append(loading("the property"));
  let property: Property | null;
  try {
    property = (await gql<{ property: Property | null }>(PROPERTY, { id: params.id, first: PAGE_SIZE }, { signal })).property;
  } catch (error) {
    if (signal.aborted) return;
    if (error instanceof ApiError && error.code === "BAD_USER_INPUT") return notFoundPage(main, "Property");
    main.replaceChildren(h("h1", {}, "Property"), failure(error));
    return;
  }
  if (signal.aborted) return;
  if (!property) return notFoundPage(main, "Property");
  const current = property;
  setTitle(current.address);

  const estimateBody = h("div", {}, loading("the estimate"));
  const comparablesBody = h("div", {}, loading("comparable sales"));
  const history = h("div", {}, loading("the sales"));
  const locality = current.locality;
  main.replaceChildren(
    h(
      "div",
      { class: "page-head" },
      h("h1", {}, current.address),
      h("p", { class: "muted" }, h("a", { href: localityPath(locality.id) }, localityName(locality))),
      watchControl(current),
    ),
    h(
      "div",
      { class: "grid" },
      region(
        "facts-h",
        "Facts",
        facts([
          ["Land area", formatArea(current.areaM2)],
          ["Zoning", current.zoning ?? "Not recorded"],
          ["Strata", current.isStrata ? "Yes (a lot in a strata scheme)" : "No"],
          ["Locality", h("a", { href: localityPath(locality.id) }, localityName(locality))],
          ["Last sale", `${formatPrice(current.lastSalePrice)} on ${formatDate(current.lastSaleDate)}`],
        ]),
      ),
      h(
        "section",
        { class: "panel", "aria-labelledby": "estimate-h" },
        h("h2", { id: "estimate-h" }, "Estimate"),
        estimateBody,
      ),
    ),
    history,
    region("comparables-h", "Comparable sales", comparablesBody),
  );

  const estimate = gql<{ property: { estimate: Estimate } | null }>(
    ESTIMATE,
    { id: current.id },
    { signal },
  ).then(
    (data) =>
      estimateBody.replaceChildren(
        data.property ? estimateSection(data.property.estimate) : h("p", {}, "No estimate is available for this property."),
      ),
    (error: unknown) => {
      if (signal.aborted) return;
      // e.g. SERVICE_UNAVAILABLE "No price model is active yet: ..."
      estimateBody.replaceChildren(
        h("p", {}, "No estimate is available right now."),
        h("p", { class: "muted" }, error instanceof ApiError ? error.message : "The server could not be reached."),
      );
    },
  );
  const comparables = gql<{ property: { comparableSales: Comparable[] } | null }>(
    COMPARABLES,
    { id: current.id },
    { signal },
  ).then(
    (data) => comparablesBody.replaceChildren(comparablesList(data.property?.comparableSales ?? [])),
    (error: unknown) => {
      if (!signal.aborted) comparablesBody.replaceChildren(failure(error));
    },
  );
  try {
    const sales = await allSales(current.id, current.sales, signal);
    if (!signal.aborted) history.replaceWith(historySection(current, sales));
  } catch (error) {
    if (!signal.aborted) history.replaceChildren(failure(error));
  }
  await Promise.all([estimate, comparables]);
}
