// Charts (uPlot: canvas, small, maintained). Each chart sits in an element with role="img"
// and an aria-label that says what it shows; the page puts the same numbers in a table for
// screen readers and keyboard users. `data-points` on that element counts what is drawn.

import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

import { h } from "../dom";
import { formatCompactPrice, formatDate, formatPrice } from "../format";

const INK = "#1f2933";
const GRID = "#d9dee3";
const ACCENT = "#0b5cad";
const BAND = "rgba(11, 92, 173, 0.18)";

function axes(): uPlot.Axis[] {
  return [
    { stroke: INK, grid: { stroke: GRID, width: 1 }, ticks: { stroke: GRID } },
    {
      stroke: INK,
      grid: { stroke: GRID, width: 1 },
      ticks: { stroke: GRID },
      size: 64,
      values: (_u, values) => values.map((v) => formatCompactPrice(v)),
    },
  ];
}

/** Draws into `frame` at its width, and again whenever that width changes. */
function mount(frame: HTMLElement, options: Omit<uPlot.Options, "width" | "height">, data: uPlot.AlignedData): void {
  const size = () => ({
    width: Math.max(frame.clientWidth, 240),
    height: Math.round(Math.min(Math.max(frame.clientWidth * 0.5, 200), 340)),
  });
  const plot = new uPlot({ ...options, ...size() }, data, frame);
  let last = frame.clientWidth;
  new ResizeObserver(() => {
    if (frame.clientWidth !== last && frame.isConnected) {
      last = frame.clientWidth;
      plot.setSize(size());
    }
  }).observe(frame);
}

function paddedRange(epochs: number[]): [number, number] {
  const min = Math.min(...epochs);
  const max = Math.max(...epochs);
  const pad = Math.max((max - min) * 0.04, 180 * 86_400);
  return [min - pad, max + pad];
}

export interface SalePoint {
  date: string;
  epoch: number;
  price: number;
}

/** Every sale as a point (newest last), joined by a thin line. */
export function priceHistoryChart(points: SalePoint[], label: string): HTMLElement {
  const frame = h("div", {
    class: "chart",
    role: "img",
    "aria-label": label,
    "data-points": points.length,
  });
  const sorted = [...points].sort((a, b) => a.epoch - b.epoch);
  // mount after insertion: uPlot measures the frame.
  queueMicrotask(() =>
    mount(
      frame,
      {
        legend: { show: false },
        cursor: { points: { size: 9 } },
        scales: {
          // Padded so the first and last sales are off the edges (one sale: half a year
          // either side, not uPlot's default day-wide span with the point in a corner).
          x: { time: true, range: paddedRange(sorted.map((p) => p.epoch)) },
          y: { range: (_u, min, max) => [Math.min(0, min), max * 1.1] },
        },
        axes: axes(),
        series: [
          {},
          {
            label: "Price",
            stroke: ACCENT,
            width: 1.5,
            points: { show: true, size: 8, fill: ACCENT },
            value: (_u, v) => formatPrice(v),
          },
        ],
      },
      [sorted.map((p) => p.epoch), sorted.map((p) => p.price)],
    ),
  );
  return frame;
}

export interface PeriodPoint {
  period: string;
  epoch: number;
  median: number | null;
  p25: number | null;
  p75: number | null;
}

/** The median per period as a line, the p25–p75 range as a band around it. */
export function medianBandChart(periods: PeriodPoint[], label: string): HTMLElement {
  const frame = h("div", {
    class: "chart",
    role: "img",
    "aria-label": label,
    "data-points": periods.filter((p) => p.median !== null).length,
  });
  queueMicrotask(() =>
    mount(
      frame,
      {
        legend: { show: false },
        scales: { x: { time: true } },
        axes: axes(),
        series: [
          { value: (_u, v) => formatDate(new Date(v * 1000).toISOString()) },
          { label: "25th percentile", stroke: "rgba(11, 92, 173, 0.5)", width: 1 },
          {
            label: "Median",
            stroke: ACCENT,
            width: 2,
            points: { show: periods.length < 40, size: 5, fill: ACCENT },
          },
          { label: "75th percentile", stroke: "rgba(11, 92, 173, 0.5)", width: 1 },
        ],
        bands: [{ series: [3, 1], fill: BAND }],
      },
      [
        periods.map((p) => p.epoch),
        periods.map((p) => p.p25),
        periods.map((p) => p.median),
        periods.map((p) => p.p75),
      ],
    ),
  );
  return frame;
}
