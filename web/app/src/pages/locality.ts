import { ApiError, gql } from "../api";
import { medianBandChart, type PeriodPoint } from "../components/chart";
import { h } from "../dom";
import { epochSeconds, formatDate, formatPrice, localityName, titleCase } from "../format";
import { propertyPath } from "../paths";
import { setTitle, type PageContext } from "../router";
import { failure, loading, notFoundPage, region } from "./common";

const STATS = "salesCount medianPrice p25Price p75Price medianPricePerM2";
const PROPERTY_FIELDS = "id address isStrata lastSalePrice lastSaleDate";
const LOCALITY = `query Locality($id: ID!, $first: Int!) {
  node(id: $id) {
    ... on Locality {
      id name postcode district
      all: stats { ${STATS} }
      houses: stats(isStrata: false) { ${STATS} }
      strata: stats(isStrata: true) { ${STATS} }
      properties(first: $first, orderBy: LAST_SALE_DATE_DESC) {
        totalCount pageInfo { hasNextPage endCursor } nodes { ${PROPERTY_FIELDS} }
      }
    }
  }
}`;
const MORE = `query LocalityProperties($id: ID!, $first: Int!, $after: String!) {
  node(id: $id) {
    ... on Locality {
      properties(first: $first, after: $after, orderBy: LAST_SALE_DATE_DESC) {
        pageInfo { hasNextPage endCursor } nodes { ${PROPERTY_FIELDS} }
      }
    }
  }
}`;
// Its own request: the chart's series must not hold up (or break) the rest of the page.
const SERIES = `query LocalitySeries($id: ID!) {
  node(id: $id) {
    ... on Locality {
      statsSeries(interval: QUARTER) { period periodStart salesCount medianPrice p25Price p75Price }
    }
  }
}`;
const PAGE = 20;

interface Stats {
  salesCount: number;
  medianPrice: number | null;
  p25Price: number | null;
  p75Price: number | null;
  medianPricePerM2: number | null;
}

interface PropertyRow {
  id: string;
  address: string;
  isStrata: boolean;
  lastSalePrice: number;
  lastSaleDate: string;
}

interface Properties {
  totalCount?: number;
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
  nodes: PropertyRow[];
}

interface Locality {
  id?: string;
  name: string;
  postcode: string;
  district: string | null;
  all: Stats;
  houses: Stats;
  strata: Stats;
  properties: Properties;
}

interface Period {
  period: string;
  periodStart: string;
  salesCount: number;
  medianPrice: number | null;
  p25Price: number | null;
  p75Price: number | null;
}

function statsTable(locality: Locality): HTMLElement {
  const rows: [string, Stats][] = [
    ["All properties", locality.all],
    ["Houses and land", locality.houses],
    ["Strata (units)", locality.strata],
  ];
  return h(
    "div",
    { class: "table-scroll", tabindex: 0, role: "group", "aria-label": "Statistics table" },
    h(
      "table",
      {},
      h("caption", {}, "Market sales, every year on record"),
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", { scope: "col" }, "Kind"),
          h("th", { scope: "col", class: "num" }, "Sales"),
          h("th", { scope: "col", class: "num" }, "Median"),
          h("th", { scope: "col", class: "num" }, "25th–75th percentile"),
          h("th", { scope: "col", class: "num" }, "Median per m²"),
        ),
      ),
      h(
        "tbody",
        {},
        ...rows.map(([kind, stats]) =>
          h(
            "tr",
            {},
            h("th", { scope: "row" }, kind),
            h("td", { class: "num" }, stats.salesCount.toLocaleString("en-AU")),
            h("td", { class: "num" }, formatPrice(stats.medianPrice)),
            h("td", { class: "num" }, stats.p25Price === null ? "–" : `${formatPrice(stats.p25Price)} – ${formatPrice(stats.p75Price)}`),
            h("td", { class: "num" }, formatPrice(stats.medianPricePerM2)),
          ),
        ),
      ),
    ),
  );
}

function seriesSection(name: string, periods: Period[]): Node[] {
  const shown = periods.filter((p) => p.salesCount > 0);
  if (!shown.length) return [h("p", {}, "No sales to chart.")];
  const points: PeriodPoint[] = periods.map((p) => ({
    period: p.period,
    epoch: epochSeconds(p.periodStart),
    median: p.medianPrice,
    p25: p.p25Price,
    p75: p.p75Price,
  }));
  const last = shown[shown.length - 1];
  const label =
    `Median sale price by quarter in ${name}, with the 25th to 75th percentile band: ` +
    `${shown.length} quarters from ${shown[0].period} to ${last.period}; ` +
    `${last.period}: median ${formatPrice(last.medianPrice)}`;
  const table = h(
    "details",
    {},
    h("summary", {}, "The numbers by quarter"),
    h(
      "div",
      { class: "table-scroll", tabindex: 0, role: "group", "aria-label": "Quarterly table" },
      h(
        "table",
        {},
        h("caption", {}, `Market sales in ${name} by quarter`),
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            h("th", { scope: "col" }, "Quarter"),
            h("th", { scope: "col", class: "num" }, "Sales"),
            h("th", { scope: "col", class: "num" }, "25th percentile"),
            h("th", { scope: "col", class: "num" }, "Median"),
            h("th", { scope: "col", class: "num" }, "75th percentile"),
          ),
        ),
        h(
          "tbody",
          {},
          ...[...shown].reverse().map((p) =>
            h(
              "tr",
              {},
              h("th", { scope: "row" }, p.period),
              h("td", { class: "num" }, p.salesCount),
              h("td", { class: "num" }, formatPrice(p.p25Price)),
              h("td", { class: "num" }, formatPrice(p.medianPrice)),
              h("td", { class: "num" }, formatPrice(p.p75Price)),
            ),
          ),
        ),
      ),
    ),
  );
  return [medianBandChart(points, label), table];
}

function propertyItems(rows: PropertyRow[]): HTMLElement[] {
  return rows.map((p) =>
    h(
      "li",
      {},
      h("a", { href: propertyPath(p.id) }, p.address),
      h("span", { class: "muted" }, ` ${p.isStrata ? "Strata" : "House/land"} · ${formatPrice(p.lastSalePrice)} · ${formatDate(p.lastSaleDate)}`),
    ),
  );
}

export async function localityPage({ main, params, signal }: PageContext): Promise<void> {
  main.append(loading("the suburb"));
  let locality: Locality | null;
  try {
    const data = await gql<{ node: Locality | null }>(LOCALITY, { id: params.id, first: PAGE }, { signal });
    locality = data.node && "name" in data.node ? data.node : null;
  } catch (error) {
    if (signal.aborted) return;
    if (error instanceof ApiError && error.code === "BAD_USER_INPUT") return notFoundPage(main, "Suburb");
    main.replaceChildren(h("h1", {}, "Suburb"), failure(error));
    return;
  }
  if (signal.aborted) return;
  if (!locality) return notFoundPage(main, "Suburb");
  const name = localityName(locality);
  setTitle(name);

  const chart = h("div", {}, loading("the quarterly medians"));
  const list = h("ul", { class: "cards" }, ...propertyItems(locality.properties.nodes));
  const more = h("button", { type: "button", class: "button secondary" }, "Show more");
  let page = locality.properties.pageInfo;
  more.hidden = !page.hasNextPage;
  more.addEventListener("click", async () => {
    if (!page.endCursor) return;
    more.disabled = true;
    try {
      const data = await gql<{ node: { properties: Properties } }>(MORE, { id: params.id, first: PAGE, after: page.endCursor });
      const items = propertyItems(data.node.properties.nodes);
      list.append(...items);
      page = data.node.properties.pageInfo;
      more.hidden = !page.hasNextPage;
      items[0]?.querySelector("a")?.focus(); // keyboard users continue where the new rows start
    } catch (error) {
      more.after(failure(error));
    } finally {
      more.disabled = false;
    }
  });

  main.replaceChildren(
    h(
      "div",
      { class: "page-head" },
      h("h1", {}, name),
      h("p", { class: "muted" }, locality.district ? `${titleCase(locality.district)} · NSW` : "NSW"),
    ),
    region("median-h", "Median price by quarter", chart),
    region("stats-h", "Statistics", statsTable(locality)),
    region(
      "recent-h",
      "Recent sales",
      h("p", { class: "muted" }, `${(locality.properties.totalCount ?? 0).toLocaleString("en-AU")} properties on record, most recently sold first.`),
      list,
      more,
    ),
  );

  try {
    const data = await gql<{ node: { statsSeries: Period[] } | null }>(SERIES, { id: params.id }, { signal });
    if (!signal.aborted) chart.replaceChildren(...seriesSection(name, data.node?.statsSeries ?? []));
  } catch (error) {
    if (!signal.aborted) chart.replaceChildren(failure(error));
  }
}
