// The throughput chart (done and failed tasks per second) drawn with uPlot, loaded only when the page runs:
// without it (npm ci not run) the chart area says so and the rest of the dashboard works.
import { formatClockShort, formatDecimal } from './format.js';
import { strings } from './strings.js';

const UPLOT_URL = '/vendor/uplot/uPlot.esm.js';
const UPLOT_CSS = '/vendor/uplot/uPlot.min.css';

// Room for the longest tick label of the y axis ("20,000"), so big rates are not cut off.
function labelWidth(_u, values) {
  const longest = Math.max(0, ...(values ?? []).map((value) => String(value).length));
  return Math.max(40, Math.ceil(longest * 7.5) + 16);
}

// Resolves to {update(series), relabel()} where series is model.throughputSeries(); relabel() writes the
// chart's texts again in the language of `strings` (its axes follow at the next update). Never rejects.
export async function createThroughputChart(
  container,
  { url = UPLOT_URL, cssUrl = UPLOT_CSS } = {},
) {
  let uPlot;
  try {
    ({ default: uPlot } = await import(url));
  } catch (err) {
    console.warn(`dashboard: uPlot not loaded from ${url}: ${err.message}`);
    const relabel = () => {
      container.textContent = strings.chartUnavailable;
    };
    relabel();
    container.classList.add('unavailable');
    return { update() {}, relabel, available: false };
  }
  const link = document.createElement('link');
  link.rel = 'stylesheet';
  link.href = cssUrl;
  document.head.append(link);

  const css = getComputedStyle(document.documentElement);
  const color = (name) => css.getPropertyValue(name).trim();
  const axis = {
    stroke: color('--muted'),
    grid: { stroke: color('--line'), width: 1 },
    ticks: { stroke: color('--line'), width: 1 },
    font: '12px system-ui, sans-serif',
  };
  const size = () => ({
    width: Math.max(100, container.clientWidth),
    height: Math.max(80, container.clientHeight),
  });
  const plot = new uPlot(
    {
      ...size(),
      legend: { show: false },
      cursor: { drag: { x: false, y: false }, points: { size: 6 } },
      scales: {
        x: { time: true },
        y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.15 : 1] },
      },
      axes: [
        { ...axis, size: 28, space: 70, values: (_u, splits) => splits.map(formatClockShort) },
        { ...axis, size: labelWidth, values: (_u, splits) => splits.map(formatDecimal) },
      ],
      series: [
        {},
        {
          label: strings.chartDone,
          stroke: color('--ok'),
          fill: `${color('--ok')}33`,
          width: 1.5,
          points: { show: false },
        },
        {
          label: strings.chartFailed,
          stroke: color('--down'),
          width: 1.5,
          points: { show: false },
        },
      ],
    },
    [[], [], []],
    container,
  );
  new ResizeObserver(() => plot.setSize(size())).observe(container);
  return {
    available: true,
    update({ x, done, failed }) {
      plot.setData([x, done, failed]);
    },
    relabel() {
      plot.series[1].label = strings.chartDone;
      plot.series[2].label = strings.chartFailed;
    },
  };
}
