// Renders a `BenchReport`'s load runs as the chart `docs/benchmarks.md` shows:
// throughput against p99 ack latency, as a standalone SVG.
import type { BenchReport, LoadResult } from '../types.ts';
import { formatCompact, formatMs } from './format.ts';
import { linearScale, logScale } from './scales.ts';
import { coordinate, marker, xml, type Shape } from './svg.ts';

const WIDTH = 720;
const HEIGHT = 420;
const PLOT = { left: 72, right: 696, top: 52, bottom: 296 } as const;
const FONT = "system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif";
const TEXT_COLOR = '#1f2328';
const MUTED_COLOR = '#59636e';
const GRID_COLOR = '#e6e8eb';

interface Series {
  readonly key: string;
  readonly name: string;
  readonly color: string;
  readonly shape: Shape;
  readonly points: readonly { x: number; y: number; label?: string }[];
  readonly line: boolean;
}

const point = (run: LoadResult, label?: string) => ({
  x: run.throughput,
  y: run.latency.p99,
  ...(label === undefined ? {} : { label }),
});

const describeRun = (run: LoadResult) =>
  `${formatCompact(run.throughput)}/s, p99 ${formatMs(run.latency.p99)} ms`;

/** Throughput against p99 ack latency for every load run in the report, as a standalone SVG. */
export function renderChart(report: BenchReport): string {
  const series: Series[] = [
    {
      key: 'batch',
      name: 'Sweep: batch size and wait',
      color: '#0969da',
      shape: 'circle',
      points: report.sweeps.batch.map((entry) => point(entry.result, entry.label)),
      line: true,
    },
    {
      key: 'connections',
      name: 'Sweep: connections and window',
      color: '#bc4c00',
      shape: 'square',
      points: report.sweeps.connections.map((entry) => point(entry.result, entry.label)),
      line: true,
    },
    {
      key: 'peak',
      name: `Peak run: ${describeRun(report.peak)}`,
      color: '#1a7f37',
      shape: 'triangleUp',
      points: [point(report.peak)],
      line: false,
    },
    {
      key: 'half-rate',
      name: `Half rate: ${describeRun(report.halfRate)}`,
      color: '#8250df',
      shape: 'triangleDown',
      points: [point(report.halfRate)],
      line: false,
    },
    {
      key: 'baseline',
      name: `Per-message design: ${describeRun(report.baseline.baseline)}`,
      color: '#cf222e',
      shape: 'cross',
      points: [point(report.baseline.baseline)],
      line: false,
    },
    {
      key: 'spendstream',
      name: `spendstream, single frames: ${describeRun(report.baseline.spendstream)}`,
      color: '#6e5500',
      shape: 'diamond',
      points: [point(report.baseline.spendstream)],
      line: false,
    },
  ];

  // Points without a finite throughput or latency cannot be placed; the legend still shows them.
  const plotted = series.flatMap((entry) =>
    entry.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y)),
  );
  const maxX = Math.max(0, ...plotted.map((p) => p.x));
  const latencies = plotted.map((p) => p.y);
  const maxY = Math.max(0, ...latencies);
  const positive = latencies.filter((y) => y > 0);
  const minY = positive.length === 0 ? 0 : Math.min(...positive);
  // Log scale when the latencies span more than a factor of 20; linear otherwise.
  const useLog = minY > 0 && maxY / minY > 20;
  const x = linearScale(maxX * 1.05, PLOT.left, PLOT.right);
  const y = useLog
    ? logScale(minY, maxY, PLOT.bottom, PLOT.top)
    : linearScale(maxY * 1.1, PLOT.bottom, PLOT.top);
  const yFloor = useLog ? (y.ticks[0] ?? minY) : 0;
  const px = (value: number) => x.toPixel(Math.max(0, value));
  const py = (value: number) => y.toPixel(Math.max(yFloor, value));

  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" ` +
      `viewBox="0 0 ${WIDTH} ${HEIGHT}" role="img" font-family="${xml(FONT)}">`,
    '<title>Throughput vs p99 ack latency</title>',
    `<rect x="0" y="0" width="${WIDTH}" height="${HEIGHT}" fill="#ffffff"/>`,
    `<text x="${WIDTH / 2}" y="26" text-anchor="middle" font-size="16" font-weight="600" ` +
      `fill="${TEXT_COLOR}">Throughput vs p99 ack latency</text>`,
  );
  if (report.smoke) {
    out.push(
      `<text x="${WIDTH / 2}" y="43" text-anchor="middle" font-size="11" fill="#cf222e">` +
        'Smoke run: figures are not representative</text>',
    );
  }

  // Grid, ticks and tick labels.
  out.push('<g font-size="11">');
  for (const tick of x.ticks) {
    const at = coordinate(x.toPixel(tick));
    out.push(
      `<line x1="${at}" y1="${PLOT.top}" x2="${at}" y2="${PLOT.bottom}" stroke="${GRID_COLOR}"/>`,
      `<line x1="${at}" y1="${PLOT.bottom}" x2="${at}" y2="${PLOT.bottom + 5}" stroke="${MUTED_COLOR}"/>`,
      `<text x="${at}" y="${PLOT.bottom + 18}" text-anchor="middle" fill="${MUTED_COLOR}">` +
        `${xml(formatCompact(tick))}</text>`,
    );
  }
  for (const tick of y.ticks) {
    const at = coordinate(y.toPixel(tick));
    out.push(
      `<line x1="${PLOT.left}" y1="${at}" x2="${PLOT.right}" y2="${at}" stroke="${GRID_COLOR}"/>`,
      `<line x1="${PLOT.left - 5}" y1="${at}" x2="${PLOT.left}" y2="${at}" stroke="${MUTED_COLOR}"/>`,
      `<text x="${PLOT.left - 8}" y="${at}" dy="0.35em" text-anchor="end" fill="${MUTED_COLOR}">` +
        `${xml(formatCompact(tick))}</text>`,
    );
  }
  out.push('</g>');

  // Axes and their titles.
  out.push(
    `<path d="M${PLOT.left},${PLOT.top} V${PLOT.bottom} H${PLOT.right}" fill="none" ` +
      `stroke="${MUTED_COLOR}"/>`,
    `<text x="${(PLOT.left + PLOT.right) / 2}" y="${PLOT.bottom + 38}" text-anchor="middle" ` +
      `font-size="12" fill="${TEXT_COLOR}">Throughput (purchases/s)</text>`,
    `<text transform="translate(20 ${(PLOT.top + PLOT.bottom) / 2}) rotate(-90)" ` +
      `text-anchor="middle" font-size="12" fill="${TEXT_COLOR}">` +
      `${useLog ? 'p99 ack latency (ms, log scale)' : 'p99 ack latency (ms)'}</text>`,
  );

  // Series: lines first, then markers, then point labels on top.
  for (const entry of series) {
    const points = entry.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
    out.push(`<g data-series-group="${xml(entry.key)}">`);
    if (entry.line && points.length > 1) {
      const path = points.map((p) => `${coordinate(px(p.x))},${coordinate(py(p.y))}`).join(' ');
      out.push(
        `<polyline points="${path}" fill="none" stroke="${entry.color}" stroke-width="1.5" ` +
          'stroke-opacity="0.6"/>',
      );
    }
    for (const p of points) {
      // Single-point series carry the figures in their name already.
      const title =
        p.label === undefined
          ? entry.name
          : `${p.label}: ${formatCompact(p.x)}/s, p99 ${formatMs(p.y)} ms`;
      out.push(
        `<g>${marker(entry.shape, px(p.x), py(p.y), entry.color, ` data-series="${xml(entry.key)}"`)}` +
          `<title>${xml(title)}</title></g>`,
      );
    }
    for (const p of points) {
      if (p.label === undefined) continue;
      const atRight = px(p.x) > PLOT.right - 90;
      // Batch labels above their points, connection labels below, so the two sweeps collide less.
      const dy = entry.key === 'connections' ? 15 : -7;
      out.push(
        `<text x="${coordinate(px(p.x) + (atRight ? -8 : 8))}" y="${coordinate(py(p.y) + dy)}" ` +
          `text-anchor="${atRight ? 'end' : 'start'}" font-size="10" fill="${TEXT_COLOR}" ` +
          'stroke="#ffffff" stroke-width="3" stroke-linejoin="round" paint-order="stroke">' +
          `${xml(p.label)}</text>`,
      );
    }
    out.push('</g>');
  }

  // Legend: two columns, three rows, below the x-axis title.
  out.push('<g font-size="11">');
  series.forEach((entry, index) => {
    const column = index % 2;
    const row = Math.floor(index / 2);
    const lx = PLOT.left + column * 320;
    const ly = PLOT.bottom + 62 + row * 21;
    if (entry.line) {
      out.push(
        `<line x1="${lx - 8}" y1="${ly}" x2="${lx + 8}" y2="${ly}" stroke="${entry.color}" ` +
          'stroke-width="1.5" stroke-opacity="0.6"/>',
      );
    }
    out.push(
      marker(entry.shape, lx, ly, entry.color),
      `<text x="${lx + 14}" y="${ly}" dy="0.35em" fill="${TEXT_COLOR}">${xml(entry.name)}</text>`,
    );
  });
  out.push('</g>');

  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
