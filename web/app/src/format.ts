const money = new Intl.NumberFormat("en-AU", {
  style: "currency",
  currency: "AUD",
  maximumFractionDigits: 0,
});
const compact = new Intl.NumberFormat("en-AU", {
  style: "currency",
  currency: "AUD",
  notation: "compact",
  maximumFractionDigits: 2,
});
const day = new Intl.DateTimeFormat("en-AU", {
  day: "numeric",
  month: "short",
  year: "numeric",
  timeZone: "UTC",
});
const area = new Intl.NumberFormat("en-AU", { maximumFractionDigits: 1 });

export function formatPrice(value: number | null | undefined): string {
  return value === null || value === undefined ? "–" : money.format(value);
}

export function formatCompactPrice(value: number): string {
  return compact.format(value);
}

/** `2024-03-05` (a GraphQL Date) -> "5 Mar 2024". */
export function formatDate(value: string | null | undefined): string {
  return value ? day.format(new Date(`${value.slice(0, 10)}T00:00:00Z`)) : "–";
}

export function formatArea(value: number | null | undefined): string {
  return value === null || value === undefined ? "Not recorded" : `${area.format(value)} m²`;
}

/** Seconds since the epoch of a GraphQL Date (for the charts' time axes). */
export function epochSeconds(value: string): number {
  return Date.parse(`${value.slice(0, 10)}T00:00:00Z`) / 1000;
}

export function titleCase(value: string): string {
  return value.toLowerCase().replace(/\b[a-z]/g, (c) => c.toUpperCase());
}

/** "Erskineville 2043" (a locality recorded without a postcode: its name alone). */
export function localityName(locality: { name: string; postcode: string }): string {
  return `${titleCase(locality.name)} ${locality.postcode}`.trim();
}
