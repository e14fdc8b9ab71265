// The report's charts: Vega-Lite specs built from ReportData, rendered to SVG strings at write time so the
// page needs no script and no network. Text, axes and legends draw in `currentColor`, so one SVG reads on a
// light page, a dark page and paper alike.
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { RunDetail, Sweep } from '../../properties/report-data.ts';
import type { BlockTimeline } from './timeline.ts';

// ---------------------------------------------------------------------------------------------
// Colours: one hue per policy, everywhere in the report; shades of it tell a policy's workloads apart.

/** Policy hues, chosen to stay apart for the common colour-vision deficiencies and away from status red/green. */
export const POLICY_COLORS = ['#2f6db5', '#d9731a', '#7b52c4', '#12877a', '#b8456b', '#5f6b7a'];
export const policyColor = (i: number): string => POLICY_COLORS[i % POLICY_COLORS.length];

/** Request colours in a counterexample timeline (Tableau 10 without its red, which marks the violation). */
const REQUEST_COLORS = ['#4e79a7', '#f28e2b', '#59a14f', '#b07aa1', '#76b7b2', '#edc948', '#9c755f', '#ff9da7', '#bab0ac'];
export const VIOLATION = '#d62728';
const SLO_COLOR = '#c0392b';
const REFERENCE = '#8a919c';

function rgb(hex: string): [number, number, number] {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

/** Mixes a colour toward black (f < 0) or white (f > 0). */
export function shade(hex: string, f: number): string {
  const target = f < 0 ? 0 : 255;
  const a = Math.abs(f);
  return `#${rgb(hex)
    .map((c) => Math.round(c + (target - c) * a).toString(16).padStart(2, '0'))
    .join('')}`;
}

/** Shades of a policy's hue for its workloads: dark, base, light, … */
export function workloadShades(base: string, n: number): string[] {
  const steps = [-0.35, 0, 0.4, -0.6, 0.6];
  return Array.from({ length: n }, (_, i) => shade(base, steps[i % steps.length]));
}

/** Black or white text, whichever reads on the background. */
function inkOn(hex: string): string {
  const [r, g, b] = rgb(hex).map((c) => {
    const s = c / 255;
    return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.4 ? '#111' : '#fff';
}

// Line styles and point shapes by position, so that series read without colour too.
const DASHES = [[1, 0], [7, 3], [2, 2], [8, 3, 2, 3], [4, 4]];
const SHAPES = ['circle', 'square', 'triangle-up', 'diamond', 'cross'];

// ---------------------------------------------------------------------------------------------
// Common look

const FONT = 'system-ui, -apple-system, Segoe UI, Roboto, Helvetica Neue, Arial, sans-serif';

/** Widths of a full-width, half-width and third-width chart, in px (the page is 1100 px wide). */
export const WIDTH = { full: 1060, half: 520, third: 344 } as const;

const CONFIG = {
  // The page gives each chart one accessible name (role="img" on the SVG); per-mark ARIA labels would only add bytes.
  aria: false,
  background: null,
  font: FONT,
  padding: 4,
  autosize: { type: 'fit-x', contains: 'padding' },
  view: { stroke: null },
  title: { color: 'currentColor', subtitleColor: 'currentColor', fontSize: 14, fontWeight: 600, subtitleFontSize: 11.5, anchor: 'start', offset: 10, subtitlePadding: 4 },
  axis: {
    labelColor: 'currentColor',
    titleColor: 'currentColor',
    domainColor: REFERENCE,
    tickColor: REFERENCE,
    gridColor: 'rgba(128,128,128,0.22)',
    labelFontSize: 11,
    titleFontSize: 11.5,
    titleFontWeight: 600,
    labelFlush: false,
  },
  legend: { labelColor: 'currentColor', titleColor: 'currentColor', labelFontSize: 11, titleFontSize: 11, titleFontWeight: 600, symbolStrokeWidth: 2, orient: 'top', direction: 'horizontal' },
  text: { font: FONT },
} as const;

// Specs are assembled from plain objects: Vega-Lite's spec types are too deep a union to check piecewise;
// compile checks them instead, and its warnings fail the report's tests.
function withConfig(spec: Record<string, unknown>): TopLevelSpec {
  return { $schema: 'https://vega.github.io/schema/vega-lite/v6.json', config: CONFIG, ...spec } as unknown as TopLevelSpec;
}

// Vega lays out titles, legends and labels by text width. In Node there is no canvas to measure with and
// its fallback guesses 0.8 em a character, which squeezes plots to make room for text that is not there.
// Helvetica's advance widths (1/1000 em, ASCII 32–126), widened a little for the fonts Linux substitutes,
// are close enough for layout.
const HELVETICA =
  '278,278,355,556,556,889,667,191,333,333,389,584,278,333,278,278,556,556,556,556,556,556,556,556,556,556,278,278,584,584,584,556,1015,667,667,722,722,667,611,778,722,278,500,667,556,833,722,778,667,778,722,667,611,722,667,944,667,667,611,278,278,278,469,556,333,556,556,500,556,556,278,556,556,222,222,500,222,833,556,556,556,556,333,500,278,556,500,722,500,500,500,334,260,334,584'
    .split(',')
    .map(Number);

export function textWidth(text: string, fontSize: number, bold = false): number {
  let em = 0;
  for (const ch of text) {
    const c = ch.codePointAt(0)!;
    em += c >= 32 && c <= 126 ? HELVETICA[c - 32] : 600;
  }
  return (em / 1000) * fontSize * 1.08 * (bold ? 1.06 : 1);
}

interface TextItem {
  fontSize?: number;
  fontWeight?: string | number;
}
(vega as unknown as { textMetrics: { width: (item: TextItem, text: string) => number } }).textMetrics.width = (item, text) => {
  const weight = item.fontWeight;
  const bold = weight === 'bold' || (typeof weight === 'number' && weight >= 600) || (typeof weight === 'string' && Number(weight) >= 600);
  return textWidth(String(text ?? ''), item.fontSize ?? 11, bold);
};

/** Axis ticks at exactly these values: Vega thins explicit values down to its default tick count otherwise. */
function ticksAt(values: number[]) {
  return { values, tickCount: values.length };
}

// ---------------------------------------------------------------------------------------------
// Rendering

/** Rounds the numbers inside geometry attributes: smaller files, and no float noise in diffs. */
function tidy(svg: string): string {
  return svg.replace(/ (d|transform|x|y|x1|x2|y1|y2|width|height|points)="([^"]*)"/g, (_m, name: string, value: string) => {
    const v = value.replace(/-?\d+\.\d{3,}(e-?\d+)?/g, (num) => String(Number(Number(num).toFixed(2))));
    return ` ${name}="${v}"`;
  });
}

/**
 * The chart as an inline SVG string. `id` prefixes every id inside it (clip paths, gradients), so that many
 * charts can share one page and the same data always gives the same bytes.
 */
export async function renderSvg(spec: TopLevelSpec, id: string, label: string): Promise<string> {
  const logger = collector(id);
  const view = new vega.View(vega.parse(compile(spec, { logger }).spec), { renderer: 'none', logLevel: vega.Warn });
  view.logger(logger);
  let svg = await view.toSVG();
  view.finalize();
  const ids = new Map<string, string>();
  svg = tidy(svg)
    .replace(/ xmlns(:xlink)?="[^"]*"/g, '') // inline SVG in HTML needs no namespace declarations
    // Vega numbers clip paths with a counter global to the process; number them per chart instead.
    .replace(/( id="|url\(#|href="#)([^")]+)/g, (_m, lead: string, old: string) => {
      if (!ids.has(old)) ids.set(old, `${id}-${ids.size + 1}`);
      return `${lead}${ids.get(old)}`;
    });
  return svg.replace(/^<svg /, `<svg role="img" aria-label="${escapeAttr(label)}" data-chart="${escapeAttr(id)}" `);
}

const warnings: string[] = [];

/** Warnings Vega and Vega-Lite gave while rendering (a chart spec that needs fixing), oldest first. */
export const chartWarnings = (): readonly string[] => warnings;

/** A logger for Vega and Vega-Lite that keeps their warnings for chartWarnings instead of printing them. */
function collector(id: string) {
  return vega.logger(vega.Warn, undefined, (method, level, args) => {
    if (method === 'error') throw new Error(`${id}: ${args.map(String).join(' ')}`);
    warnings.push(`${id}: ${level} ${args.map(String).join(' ')}`);
  });
}

function escapeAttr(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');
}

// ---------------------------------------------------------------------------------------------
// Units

/** Seconds or milliseconds, whichever keeps the numbers readable. */
export function timeUnit(maxSeconds: number): { unit: 's' | 'ms'; scale: number } {
  return maxSeconds < 1 ? { unit: 'ms', scale: 1000 } : { unit: 's', scale: 1 };
}

export function fmtNum(x: number, digits = 3): string {
  if (!Number.isFinite(x)) return String(x);
  return String(Number(x.toPrecision(digits)));
}

// ---------------------------------------------------------------------------------------------
// Sweeps: attainment and goodput against the request rate

export interface WorkloadStyle {
  workloads: string[];
  colors: string[];
}

function sweepRows(sweeps: Sweep[]) {
  return sweeps.flatMap((s) => s.points.map((p) => ({ workload: s.workload, rate: p.rate, attainment: p.attainment, goodput: p.goodput })));
}

function workloadEncoding(style: WorkloadStyle) {
  const legend = { title: null };
  return {
    color: { field: 'workload', type: 'nominal', scale: { domain: style.workloads, range: style.colors }, legend },
    strokeDash: { field: 'workload', type: 'nominal', scale: { domain: style.workloads, range: DASHES.slice(0, style.workloads.length) }, legend },
    shape: { field: 'workload', type: 'nominal', scale: { domain: style.workloads, range: SHAPES.slice(0, style.workloads.length) }, legend },
  };
}

/** The rate at 90 % in words, for legends and captions. */
export function rate90Text(rate: number | null): string {
  return rate === null ? 'never ≥ 90 %' : `≥ 90 % up to ${fmtNum(rate)} req/s`;
}

export function attainmentSpec(policy: string, sweeps: Sweep[], style: WorkloadStyle, width: number = WIDTH.half): TopLevelSpec {
  const rows = sweepRows(sweeps);
  const maxRate = Math.max(...rows.map((r) => r.rate));
  const marks90 = sweeps.filter((s) => s.rateAt90 !== null).map((s) => ({ workload: s.workload, rate: s.rateAt90, attainment: 0.9, zero: 0 }));
  const enc = workloadEncoding(style);
  const x = { field: 'rate', type: 'quantitative', title: 'request rate per GPU (req/s)', scale: { zero: true, nice: true } };
  return withConfig({
    title: { text: 'SLO attainment vs request rate', subtitle: `${policy} · requests meeting both SLOs; ◆ the highest rate at 90 %` },
    width,
    height: 250,
    layer: [
      {
        data: { values: [{ y: 0.9, rate: maxRate }] },
        layer: [
          { mark: { type: 'rule', strokeDash: [4, 3], color: REFERENCE, strokeWidth: 1.2 }, encoding: { y: { field: 'y', type: 'quantitative' } } },
          {
            mark: { type: 'text', align: 'right', baseline: 'bottom', dy: -3, fontSize: 10.5, fill: 'currentColor', opacity: 0.75 },
            encoding: { x: { field: 'rate', type: 'quantitative' }, y: { field: 'y', type: 'quantitative' }, text: { value: '90 % target' } },
          },
        ],
      },
      {
        data: { values: marks90 },
        layer: [
          {
            mark: { type: 'rule', strokeDash: [2, 2], strokeWidth: 1.2, opacity: 0.9 },
            encoding: { x: { ...x }, y: { field: 'zero', type: 'quantitative' }, y2: { field: 'attainment' }, color: enc.color },
          },
          {
            mark: { type: 'point', shape: 'diamond', filled: true, size: 130, stroke: 'white', strokeWidth: 1, opacity: 1 },
            encoding: { x: { ...x }, y: { field: 'attainment', type: 'quantitative' }, color: enc.color },
          },
        ],
      },
      {
        data: { values: rows },
        mark: { type: 'line', strokeWidth: 2.2, point: { filled: true, size: 40 } },
        encoding: {
          x,
          y: { field: 'attainment', type: 'quantitative', title: 'SLO attainment', scale: { domain: [0, 1] }, axis: { format: '.0%', ...ticksAt([0, 0.2, 0.4, 0.6, 0.8, 0.9, 1]) } },
          ...enc,
        },
      },
    ],
  });
}

export function goodputSpec(policy: string, sweeps: Sweep[], style: WorkloadStyle, width: number = WIDTH.half): TopLevelSpec {
  const rows = sweepRows(sweeps);
  const maxRate = Math.max(...rows.map((r) => r.rate));
  const enc = workloadEncoding(style);
  return withConfig({
    title: { text: 'Goodput vs request rate', subtitle: `${policy} · requests per second meeting both SLOs` },
    width,
    height: 250,
    layer: [
      {
        data: { values: [{ rate: 0, goodput: 0 }, { rate: maxRate, goodput: maxRate }] },
        layer: [
          { mark: { type: 'line', strokeDash: [4, 3], color: REFERENCE, strokeWidth: 1.2 }, encoding: { x: { field: 'rate', type: 'quantitative' }, y: { field: 'goodput', type: 'quantitative' } } },
          {
            transform: [{ filter: 'datum.rate > 0' }],
            mark: { type: 'text', align: 'right', baseline: 'top', dx: -4, dy: 4, fontSize: 10.5, fill: 'currentColor', opacity: 0.75, angle: 0 },
            encoding: { x: { field: 'rate', type: 'quantitative' }, y: { field: 'goodput', type: 'quantitative' }, text: { value: 'goodput = rate' } },
          },
        ],
      },
      {
        data: { values: rows },
        mark: { type: 'line', strokeWidth: 2.2, point: { filled: true, size: 40 } },
        encoding: {
          x: { field: 'rate', type: 'quantitative', title: 'request rate per GPU (req/s)', scale: { zero: true } },
          y: { field: 'goodput', type: 'quantitative', title: 'goodput per GPU (req/s within SLO)', scale: { zero: true } },
          ...enc,
        },
      },
    ],
  });
}

// ---------------------------------------------------------------------------------------------
// Latency distributions: ECDFs with the SLO

export interface EcdfSummary {
  within: number;
  p50: number;
  p90: number;
  p99: number;
  unit: 's' | 'ms';
  scale: number;
}

function sortedCopy(xs: number[]): number[] {
  return [...xs].filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
}

export function quantileOf(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

export function ecdfSummary(samples: number[], slo: number | null): EcdfSummary {
  const s = sortedCopy(samples);
  const { unit, scale } = timeUnit(Math.max(s[s.length - 1] ?? 0, slo ?? 0));
  const within = slo === null || s.length === 0 ? NaN : s.filter((x) => x <= slo).length / s.length;
  return { within, p50: quantileOf(s, 0.5), p90: quantileOf(s, 0.9), p99: quantileOf(s, 0.99), unit, scale };
}

/** At most this many ECDF steps: more adds bytes, not information, at chart resolution. */
const ECDF_POINTS = 240;

export function ecdfSpec(opts: { title: string; metric: string; policy: string; samples: number[]; slo: number | null; color: string; width?: number }): TopLevelSpec {
  const s = sortedCopy(opts.samples);
  const sum = ecdfSummary(s, opts.slo);
  const n = s.length;
  const stride = Math.max(1, Math.ceil(n / ECDF_POINTS));
  const points: { x: number; y: number }[] = [{ x: 0, y: 0 }];
  for (let i = 0; i < n; i += stride) points.push({ x: s[i] * sum.scale, y: i / n });
  if (n) points.push({ x: s[n - 1] * sum.scale, y: 1 });
  const slo = opts.slo === null ? null : opts.slo * sum.scale;
  const pct = Number.isNaN(sum.within) ? '' : ` · ${(sum.within * 100).toFixed(0)} % within`;
  const xMax = Math.max(n ? s[n - 1] * sum.scale : 0, slo ?? 0);
  const leftOfLine = slo !== null && slo > 0.62 * xMax;
  const layers: Record<string, unknown>[] = [
    {
      data: { values: points },
      mark: { type: 'line', interpolate: 'step-after', color: opts.color, strokeWidth: 2.2 },
      encoding: {
        x: { field: 'x', type: 'quantitative', title: `${opts.metric} (${sum.unit})`, scale: { zero: true, nice: true } },
        y: { field: 'y', type: 'quantitative', title: 'fraction of requests ≤ x', scale: { domain: [0, 1] }, axis: { format: '.0%' } },
      },
    },
  ];
  if (slo !== null) {
    layers.push({
      data: { values: [{ x: slo, y: 0.04 }] },
      layer: [
        { mark: { type: 'rule', color: SLO_COLOR, strokeDash: [5, 3], strokeWidth: 1.6 }, encoding: { x: { field: 'x', type: 'quantitative' } } },
        {
          // The label goes on whichever side of the SLO line has room.
          mark: { type: 'text', align: leftOfLine ? 'right' : 'left', dx: leftOfLine ? -5 : 5, baseline: 'bottom', fontSize: 10.5, fontWeight: 600, fill: SLO_COLOR },
          encoding: { x: { field: 'x', type: 'quantitative' }, y: { field: 'y', type: 'quantitative' }, text: { value: `SLO ${fmtNum(slo)} ${sum.unit}${pct}` } },
        },
      ],
    });
  }
  return withConfig({
    title: { text: opts.title, subtitle: `${opts.policy} · cumulative share of requests; the red line is the SLO` },
    width: opts.width ?? WIDTH.half,
    height: 220,
    layer: layers,
  });
}

// ---------------------------------------------------------------------------------------------
// What happened over time: the split (with resizes shaded) and KV occupancy

export function runEnd(run: RunDetail): number {
  const ts = [...run.split.map((s) => s.t), ...run.kv.map((k) => k.t), ...run.resizes.map((r) => r.end)];
  return ts.length ? Math.max(...ts) : 1;
}

function resizeLayer(run: RunDetail) {
  return {
    data: { values: run.resizes.map((r) => ({ begin: r.begin, end: r.end, what: 'resize in progress' })) },
    mark: { type: 'rect', opacity: 0.22 },
    encoding: {
      x: { field: 'begin', type: 'quantitative' },
      x2: { field: 'end' },
      fill: { field: 'what', type: 'nominal', title: null, scale: { range: ['#7f8691'] }, legend: { symbolType: 'square', symbolOpacity: 0.5 } },
    },
  };
}

export function splitSpec(policy: string, run: RunDetail, color: string, width: number = WIDTH.full): TopLevelSpec {
  const end = runEnd(run);
  const rows: { t: number; share: number; phase: string }[] = [];
  for (const s of run.split) {
    rows.push({ t: s.t, share: s.prefill, phase: 'prefill' }, { t: s.t, share: s.decode, phase: 'decode' });
  }
  const last = run.split[run.split.length - 1];
  if (last && last.t < end) rows.push({ t: end, share: last.prefill, phase: 'prefill' }, { t: end, share: last.decode, phase: 'decode' });
  return withConfig({
    title: { text: 'Prefill / decode split over time', subtitle: `${policy} · ${run.workload} at ${fmtNum(run.rate)} req/s · share of SMs per phase; shaded: a resize in progress (${run.resizes.length} in all)` },
    width,
    height: 170,
    layer: [
      resizeLayer(run),
      {
        data: { values: rows },
        mark: { type: 'line', interpolate: 'step-after', strokeWidth: 2.4 },
        encoding: {
          x: { field: 't', type: 'quantitative', title: 'time (s)', scale: { domain: [0, end], nice: false } },
          y: { field: 'share', type: 'quantitative', title: 'share of SMs (%)', scale: { domain: [0, 100], nice: false }, axis: ticksAt([0, 25, 50, 75, 100]) },
          color: { field: 'phase', type: 'nominal', title: null, scale: { domain: ['prefill', 'decode'], range: [color, shade(color, -0.45)] } },
          strokeDash: { field: 'phase', type: 'nominal', title: null, scale: { domain: ['prefill', 'decode'], range: [[1, 0], [6, 3]] } },
        },
      },
    ],
  });
}

export function kvSpec(policy: string, run: RunDetail, color: string, width: number = WIDTH.full): TopLevelSpec {
  const end = runEnd(run);
  return withConfig({
    title: { text: 'KV-cache occupancy over time', subtitle: `${policy} · ${run.workload} at ${fmtNum(run.rate)} req/s · share of the pool's blocks owned by requests` },
    width,
    height: 150,
    layer: [
      resizeLayer(run),
      {
        data: { values: run.kv },
        layer: [
          { mark: { type: 'area', color, opacity: 0.22, interpolate: 'monotone' }, encoding: { x: { field: 't', type: 'quantitative' }, y: { field: 'usage', type: 'quantitative' } } },
          {
            mark: { type: 'line', color, strokeWidth: 1.8, interpolate: 'monotone' },
            encoding: {
              x: { field: 't', type: 'quantitative', title: 'time (s)', scale: { domain: [0, end], nice: false } },
              y: { field: 'usage', type: 'quantitative', title: 'blocks in use', scale: { domain: [0, 1] }, axis: { format: '.0%', ...ticksAt([0, 0.25, 0.5, 0.75, 1]) } },
            },
          },
        ],
      },
    ],
  });
}

// ---------------------------------------------------------------------------------------------
// Policies side by side

export interface PolicyStyle {
  names: string[];
  colors: string[];
}

function policyEncoding(style: PolicyStyle) {
  const legend = { title: null };
  return {
    color: { field: 'policy', type: 'nominal', scale: { domain: style.names, range: style.colors }, legend },
    shape: { field: 'policy', type: 'nominal', scale: { domain: style.names, range: SHAPES.slice(0, style.names.length) }, legend },
    strokeDash: { field: 'policy', type: 'nominal', scale: { domain: style.names, range: DASHES.slice(0, style.names.length) }, legend },
  };
}

export function compareRate90Spec(rows: { workload: string; policy: string; rate: number | null }[], style: PolicyStyle, workloads: string[]): TopLevelSpec {
  const values = rows.map((r) => ({ ...r, value: r.rate ?? 0, label: r.rate === null ? 'never' : `${fmtNum(r.rate)} req/s` }));
  const enc = policyEncoding(style);
  return withConfig({
    title: { text: 'Highest request rate at 90 % SLO attainment', subtitle: 'per GPU, per workload and policy · longer is better' },
    width: WIDTH.full,
    height: Math.max(120, workloads.length * style.names.length * 22 + 20),
    data: { values },
    encoding: {
      y: { field: 'workload', type: 'nominal', title: null, sort: workloads, axis: { labelFontSize: 12, labelFontWeight: 600, labelPadding: 8 } },
      x: { field: 'value', type: 'quantitative', title: 'request rate per GPU (req/s)', scale: { zero: true }, axis: { tickCount: 8 } },
    },
    layer: [
      { mark: { type: 'bar', height: { band: 0.8 }, cornerRadiusEnd: 2 }, encoding: { yOffset: { field: 'policy', type: 'nominal', sort: style.names }, color: enc.color } },
      {
        mark: { type: 'text', align: 'left', baseline: 'middle', dx: 5, fontSize: 11, fill: 'currentColor' },
        encoding: { yOffset: { field: 'policy', type: 'nominal', sort: style.names, bandPosition: 0.5 }, text: { field: 'label' } },
      },
    ],
  });
}

export function compareAttainmentSpec(workload: string, slo: { ttft: number; tpot: number }, rows: { policy: string; rate: number; attainment: number }[], style: PolicyStyle): TopLevelSpec {
  const enc = policyEncoding(style);
  return withConfig({
    title: { text: workload, subtitle: `SLO: TTFT ≤ ${fmtNum(slo.ttft)} s, TPOT ≤ ${fmtNum(slo.tpot * 1000)} ms` },
    width: WIDTH.third,
    height: 200,
    layer: [
      { data: { values: [{ y: 0.9 }] }, mark: { type: 'rule', strokeDash: [4, 3], color: REFERENCE, strokeWidth: 1.2 }, encoding: { y: { field: 'y', type: 'quantitative' } } },
      {
        data: { values: rows },
        mark: { type: 'line', strokeWidth: 2.2, point: { filled: true, size: 36 } },
        encoding: {
          x: { field: 'rate', type: 'quantitative', title: 'request rate per GPU (req/s)', scale: { zero: true } },
          y: { field: 'attainment', type: 'quantitative', title: 'SLO attainment', scale: { domain: [0, 1] }, axis: { format: '.0%', ...ticksAt([0, 0.25, 0.5, 0.75, 0.9, 1]) } },
          ...enc,
        },
      },
    ],
  });
}

// ---------------------------------------------------------------------------------------------
// A counterexample's timeline: which request owned which block at each line of the trace

export function requestColor(i: number): string {
  return REQUEST_COLORS[i % REQUEST_COLORS.length];
}

export function timelineSpec(tl: BlockTimeline, opts: { title: string; subtitle: string; offending: number | null; why?: string; cycle?: number }): TopLevelSpec {
  const rowH = 26;
  // Rows from the top: one per worker with steps in flight, a separator row, then one per block.
  const nLanes = tl.lanes.length;
  const top = nLanes ? nLanes + 1 : 0;
  const yBlock = (row: number) => top + row;
  const nRows = top + tl.rows.length;
  const lo = tl.first - 0.6;
  const hi = tl.last + 0.9;
  const colors = tl.requests.map((_, i) => requestColor(i));
  const reqIndex = new Map(tl.requests.map((r, i) => [r, i]));
  // A bar is labelled only where its label fits inside it (long traces make short bars).
  const pxPerLine = (WIDTH.full - 90) / (hi - lo);
  const fits = (label: string, x: number, x2: number, size: number) => ((x2 - x) * pxPerLine >= textWidth(label, size, true) + 8 ? label : '');
  // Within a block row: owners fill the upper part (split in lanes when two owners overlap), in-flight use a strip below.
  const owners = tl.owners.map((o) => {
    const y0 = yBlock(o.row) + 0.12;
    const h = 0.58 / o.lanes;
    const color = colors[reqIndex.get(o.req) ?? 0];
    return {
      req: o.req,
      x: o.from - 0.35,
      x2: o.open ? hi : o.to + 0.35,
      y: y0 + o.lane * h,
      y2: y0 + (o.lane + 1) * h - (o.lanes > 1 ? 0.03 : 0),
      mid: y0 + (o.lane + 0.5) * h,
      ink: inkOn(color),
      label: '',
      full: o.lane > 0 ? `${o.req} · second owner` : o.req,
    };
  });
  const uses = tl.uses.map((u) => ({ op: u.op, x: u.from - 0.35, x2: u.open ? hi : u.to + 0.35, y: yBlock(u.row) + 0.76, y2: yBlock(u.row) + 0.9, what: 'in use by a step or transfer in flight' }));
  const ops = tl.ops.map((o) => {
    const h = 0.7 / o.subs;
    const y0 = o.lane + 0.15 + o.sub * h;
    const x = o.from - 0.35;
    const x2 = o.open ? hi : o.to + 0.35;
    return { label: fits(o.label, x, x2, 10), x, x2, y: y0, y2: y0 + h - (o.subs > 1 ? 0.04 : 0), mid: y0 + h / 2 };
  });
  for (const o of owners) o.label = fits(o.full, o.x, o.x2, 10.5);
  const offendingRows = opts.offending === null ? [] : (tl.touched.get(opts.offending) ?? []);
  const hits = offendingRows.map((r) => ({ x: opts.offending! - 0.48, x2: opts.offending! + 0.48, y: yBlock(r) + 0.04, y2: yBlock(r) + 0.96 }));
  const strays = tl.strays.map((s) => ({ x: s.line, y: yBlock(s.row) + 0.45, what: s.what }));
  const labels = [...tl.lanes.map((l) => l.label), ...(nLanes ? [''] : []), ...tl.rows.map((r) => r.label)];
  const yScale = { domain: [0, nRows], reverse: true, nice: false, zero: false };
  const xScale = { domain: [lo, hi], nice: false, zero: false };
  const span = tl.last - tl.first;
  const tickStep = span > 60 ? 10 : span > 30 ? 5 : span > 15 ? 2 : 1;
  const ticks: number[] = [];
  for (let l = Math.ceil(tl.first / tickStep) * tickStep; l <= tl.last; l += tickStep) ticks.push(l);
  const labelRows = labels.map((_, i) => i).filter((i) => labels[i] !== '');

  const rect = (extra: Record<string, unknown> = {}) => ({ x: { field: 'x', type: 'quantitative' }, x2: { field: 'x2' }, y: { field: 'y', type: 'quantitative' }, y2: { field: 'y2' }, ...extra });
  const layers: Record<string, unknown>[] = [];
  // Alternate row bands make a block's row easy to follow across the chart; the first layer also owns the axes.
  layers.push({
    data: { values: tl.rows.filter((r) => r.row % 2 === 1).map((r) => ({ y: yBlock(r.row), y2: yBlock(r.row) + 1, x: lo, x2: hi })) },
    mark: { type: 'rect', fill: 'rgba(128,128,128,0.08)' },
    encoding: rect({
      x: { field: 'x', type: 'quantitative', scale: xScale, title: 'trace line (the header is line 1)', axis: { ...ticksAt(ticks), format: 'd', grid: true, gridDash: [2, 3] } },
      y: {
        field: 'y',
        type: 'quantitative',
        scale: yScale,
        title: null,
        axis: { ...ticksAt(labelRows.map((i) => i + 0.5)), labelExpr: `${JSON.stringify(labels)}[floor(datum.value)]`, labelOverlap: false, grid: false, ticks: false, domain: false, labelFontSize: 11, labelPadding: 6 },
      },
    }),
  });
  if (nLanes) {
    layers.push({
      data: { values: [{ y: nLanes + 0.5 }] },
      mark: { type: 'rule', color: REFERENCE, strokeDash: [1, 3], strokeWidth: 1 },
      encoding: { y: { field: 'y', type: 'quantitative' } },
    });
  }
  if (opts.cycle && opts.cycle > 0) {
    const from = tl.last - opts.cycle + 1;
    layers.push({
      data: { values: [{ x: from - 0.5, x2: hi, label: `↻ the last ${opts.cycle} events repeat forever` }] },
      layer: [
        { mark: { type: 'rect', fill: VIOLATION, opacity: 0.08 }, encoding: { x: { field: 'x', type: 'quantitative' }, x2: { field: 'x2' } } },
        { mark: { type: 'text', align: 'left', baseline: 'bottom', dx: 3, dy: -4, fill: VIOLATION, fontSize: 10.5 }, encoding: { x: { field: 'x', type: 'quantitative' }, y: { datum: 0 }, text: { field: 'label' } } },
      ],
    });
  }
  if (ops.length) {
    layers.push({
      data: { values: ops },
      layer: [
        { mark: { type: 'rect', cornerRadius: 2, fill: '#6b7280', stroke: 'rgba(0,0,0,0.35)', strokeWidth: 0.6 }, encoding: rect() },
        { mark: { type: 'text', align: 'left', baseline: 'middle', dx: 4, fontSize: 10, fill: '#fff', limit: 0 }, encoding: { x: { field: 'x', type: 'quantitative' }, y: { field: 'mid', type: 'quantitative' }, text: { field: 'label' } } },
      ],
    });
  }
  layers.push({
    data: { values: owners },
    layer: [
      {
        mark: { type: 'rect', cornerRadius: 2, stroke: 'rgba(0,0,0,0.35)', strokeWidth: 0.6 },
        encoding: rect({
          color: { field: 'req', type: 'nominal', title: 'owner', scale: { domain: tl.requests, range: colors }, legend: { title: 'owner', orient: 'top', symbolType: 'square' } },
        }),
      },
      {
        mark: { type: 'text', align: 'left', baseline: 'middle', dx: 4, fontSize: 10.5, fontWeight: 600 },
        encoding: { x: { field: 'x', type: 'quantitative' }, y: { field: 'mid', type: 'quantitative' }, text: { field: 'label' }, color: { field: 'ink', type: 'nominal', scale: null } },
      },
    ],
  });
  if (uses.length) {
    layers.push({
      data: { values: uses },
      mark: { type: 'rect', cornerRadius: 1, opacity: 0.7 },
      encoding: rect({
        fill: { field: 'what', type: 'nominal', title: null, scale: { range: ['currentColor'] }, legend: { orient: 'top', symbolType: 'square', symbolOpacity: 0.7, labelLimit: 400 } },
      }),
    });
  }
  if (strays.length) {
    layers.push({
      data: { values: strays },
      mark: { type: 'point', shape: 'cross', size: 120, filled: true, color: VIOLATION, angle: 45 },
      encoding: { x: { field: 'x', type: 'quantitative' }, y: { field: 'y', type: 'quantitative' } },
    });
  }
  if (opts.offending !== null) {
    layers.push({
      data: { values: [{ x: opts.offending, label: `✗ line ${opts.offending}${opts.why ? ` · ${opts.why}` : ''}` }] },
      layer: [
        { mark: { type: 'rule', color: VIOLATION, strokeWidth: 2 }, encoding: { x: { field: 'x', type: 'quantitative' } } },
        {
          mark: { type: 'text', align: 'right', baseline: 'bottom', dx: -4, dy: -4, fill: VIOLATION, fontWeight: 700, fontSize: 11 },
          encoding: { x: { field: 'x', type: 'quantitative' }, y: { datum: 0 }, text: { field: 'label' } },
        },
      ],
    });
    if (hits.length) layers.push({ data: { values: hits }, mark: { type: 'rect', fill: null, stroke: VIOLATION, strokeWidth: 2.2, cornerRadius: 3 }, encoding: rect() });
  }
  return withConfig({
    title: { text: opts.title, subtitle: opts.subtitle },
    width: WIDTH.full,
    height: Math.max(80, nRows * rowH),
    layer: layers,
    resolve: { scale: { color: 'independent', fill: 'independent' } },
  });
}
