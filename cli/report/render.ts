// The report of `pdspec check` (and of `sweep`, `explore --report`, `run --report`): report.json (the data) and index.html (the same data drawn), one
// self-contained page — inline SVG charts and CSS, no external file, font or script — that opens from disk.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { checkText, type Finding } from '../../spec/checker.ts';
import { RULES } from '../../spec/invariants.ts';
import { EVENTS, type TraceEvent } from '../../spec/trace-format.ts';
import type { CheckResult, Counterexample, PolicyReport, ReportData, Status, Sweep, ZooRow } from '../../properties/report-data.ts';
import {
  attainmentSpec,
  compareAttainmentSpec,
  compareRate90Spec,
  ecdfSpec,
  ecdfSummary,
  fmtNum,
  goodputSpec,
  kvSpec,
  policyColor,
  rate90Text,
  renderSvg,
  splitSpec,
  timelineSpec,
  workloadShades,
  type PolicyStyle,
  type WorkloadStyle,
} from './charts.ts';
import { VERDICT_EXIT } from './results.ts';
import { CSS, SCRIPT } from './style.ts';
import { blockTimeline, lineOf } from './timeline.ts';

/** Writes `dir/report.json` (the data, pretty-printed) and `dir/index.html`; returns their paths. */
export async function writeReport(data: ReportData, dir: string): Promise<{ html: string; json: string }> {
  await mkdir(dir, { recursive: true });
  const html = join(dir, 'index.html');
  const json = join(dir, 'report.json');
  await writeFile(json, `${JSON.stringify(data, null, 2)}\n`);
  await writeFile(html, await renderHtml(data));
  return { html, json };
}

// ---------------------------------------------------------------------------------------------
// Text helpers

export function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Plain text with the URLs in it turned into links (the sources section only). */
function linkify(s: string): string {
  const parts = s.split(/(https?:\/\/[^\s)]+)/g);
  return parts.map((p, i) => (i % 2 === 1 ? `<a href="${esc(p)}" rel="noreferrer">${esc(p)}</a>` : esc(p))).join('');
}

/** `8.4 s`, `2 min 23 s`. */
export function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '—';
  if (seconds < 10) return `${Number(seconds.toFixed(2))} s`;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const m = Math.floor(seconds / 60);
  const s = Math.round(seconds - m * 60);
  return `${m} min ${s} s`;
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

class Slugs {
  private used = new Map<string, number>();
  make(...parts: string[]): string {
    const base = parts
      .join('-')
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-+|-+$/g, '') || 'x';
    const n = this.used.get(base) ?? 0;
    this.used.set(base, n + 1);
    return n === 0 ? base : `${base}-${n + 1}`;
  }
}

const STATUS_TEXT: Record<Status, { symbol: string; word: string }> = {
  pass: { symbol: '✓', word: 'pass' },
  fail: { symbol: '✗', word: 'fail' },
  warn: { symbol: '▲', word: 'warn' },
  error: { symbol: '⚠', word: 'error' },
  skipped: { symbol: '–', word: 'skipped' },
};

function badge(status: Status): string {
  const s = STATUS_TEXT[status];
  return `<span class="badge ${status}"><span aria-hidden="true">${s.symbol}</span>${s.word}</span>`;
}

// ---------------------------------------------------------------------------------------------
// What a property protects, in one sentence

const FAMILY_SAYS: Record<string, string> = {
  NoLeak: 'Every block is free or owned; ended requests release their blocks; at quiescence every block is free.',
  SingleOwnership: 'One owner per block, one place on the free list, no free under an in-flight step or transfer, one writer per block and one worker per request, during a resize too.',
  NothingLost: 'No request is dropped by a resize, every request ends exactly once, and no generated token is lost across preemption or migration.',
  SharedKv: 'Shared KV: reference counts are the holders, cache entries map to the contents of their keys, hits skip exactly what they cover, shared blocks are copied before a write, locked entries are not evicted, the cache counters are its size.',
  OutputInvariance: 'Every request gets the tokens it gets alone; speculative decoding emits what plain greedy decoding would, and the cache holds the tokens the output holds.',
  Protocol: 'Requests, workers and resizes move only along the protocol the spec allows.',
};

const CHECK_SAYS: Record<string, string> = {
  M1: 'The latency model: prefill time never rises when the prefill share rises, decode time never rises when the decode share rises, and neither falls when the work grows.',
  M2: 'The policy: more prefill (or decode) pressure, everything else equal, never lowers the prefill (or decode) share.',
  M3: 'The system: for the same workload and seed, looser SLOs, more blocks or more SMs never lower SLO attainment.',
  NoDeadlock: 'No state where live requests exist and nothing can move.',
  NoStarvation: 'Under a fair scheduler, no request waits forever while others keep being served.',
  policy: 'Every decision of a policy is a finite, in-range split reached in its time budget: a policy that throws, returns NaN or out-of-range shares, or hangs, cannot be checked (exit 2).',
};

/** The sentence saying what a check's property protects. */
export function protects(c: CheckResult): string {
  const rule = c.property.trim();
  if (rule in RULES) return RULES[rule as keyof typeof RULES].says;
  const head = rule.split(/[\s,]/)[0];
  if (head in CHECK_SAYS) return CHECK_SAYS[head];
  if (c.check in CHECK_SAYS) return CHECK_SAYS[c.check];
  return FAMILY_SAYS[c.family] ?? c.detail;
}

// ---------------------------------------------------------------------------------------------
// Counterexamples

/** The spec's own verdict on the counterexample: the line it refuses and why (null when it conforms). */
export function specFinding(cx: Counterexample): Finding | null {
  const text = [cx.header, ...cx.events].map((x) => JSON.stringify(x)).join('\n');
  try {
    const v = checkText(text);
    return v.verdict === 'violation' ? v.finding : null;
  } catch {
    return null; // the report still shows the trace; the spec's reason is extra
  }
}

function fieldText(value: unknown): string {
  if (Array.isArray(value)) {
    return `[${value.map((v) => (v !== null && typeof v === 'object' && 'req' in v ? `${(v as { req: string }).req}:${(v as { tokens: number }).tokens}` : String(v))).join(', ')}]`;
  }
  return String(value);
}

/** An event's fields in the trace vocabulary, `key=value`, in the catalogue's order. */
export function eventFields(e: TraceEvent): string {
  const spec = EVENTS[e.ev].fields as Record<string, unknown>;
  const rec = e as unknown as Record<string, unknown>;
  return Object.keys(spec)
    .filter((k) => rec[k] !== undefined)
    .map((k) => `<span class="k">${esc(k)}=</span>${esc(fieldText(rec[k]))}`)
    .join(' ');
}

/** Rows of the event list shown on the page; longer traces are cut at the start (the end is where it broke). */
const MAX_EVENT_ROWS = 400;

function eventTable(cx: Counterexample, offending: number | null): string {
  const n = cx.events.length;
  const start = Math.max(0, n - MAX_EVENT_ROWS);
  const cycleFrom = cx.cycle ? n - cx.cycle : Infinity;
  const rows: string[] = [];
  if (start > 0) rows.push(`<tr><td colspan="5" class="muted">… lines 2–${lineOf(start - 1)} are in the trace file …</td></tr>`);
  for (let i = start; i < n; i++) {
    const e = cx.events[i];
    const line = lineOf(i);
    const cls = [`ev-${e.ev}`, line === offending ? 'offending' : '', i >= cycleFrom ? 'cycle' : ''].filter(Boolean).join(' ');
    const label = line === offending ? ' aria-label="the offending event"' : '';
    rows.push(
      `<tr class="${cls}"${label}><td class="line num">${line}</td><td class="t num">${e.t.toFixed(3)}</td><td class="ev">${esc(e.ev)}</td><td>${eventFields(e)}</td><td class="note">${e.note ? esc(e.note) : ''}</td></tr>`,
    );
  }
  return `<div class="table-wrap"><table class="events"><thead><tr><th>line</th><th>t (s)</th><th>event</th><th>fields</th><th>note</th></tr></thead><tbody>${rows.join('')}</tbody></table></div>`;
}

function headerFacts(cx: Counterexample): string {
  // A failure before the engine wrote its header (a crash) has only the format fields: show what there is.
  const h = cx.header as Partial<typeof cx.header>;
  const facts = [
    h.mode,
    h.blocks !== undefined ? `${h.blocks} blocks × ${h.blockSize} tokens${(h.gpus ?? 1) > 1 ? ` per GPU, ${h.gpus} GPUs` : ''}` : undefined,
    h.sms !== undefined ? `${h.sms} SMs` : undefined,
    h.split ? `split ${h.split.prefill}/${h.split.decode}` : undefined,
    h.allocator ? `allocator ${h.allocator}` : undefined,
    ...(h.workers ?? []).map((w) => `${w.id}: ${w.role} ${w.share} %${(h.gpus ?? 1) > 1 ? ` on GPU ${w.gpu}` : ''}`),
  ].filter((f): f is string => f !== undefined);
  return `<div class="facts">${facts.map((f) => `<span class="chip">${esc(f)}</span>`).join('')}</div>`;
}

function codeBlock(id: string, text: string): string {
  return `<div class="codeblock"><pre><code id="${id}">${esc(text)}</code></pre><button type="button" data-copy="${id}" hidden>Copy</button></div>`;
}

async function failureCard(p: PolicyReport, c: CheckResult, anchor: string): Promise<string> {
  const parts: string[] = [];
  parts.push(`<article class="card failure ${c.status}" id="${anchor}">`);
  parts.push(`<div class="failure-head">${badge(c.status)}<h3>${esc(c.property)}</h3><span class="chip">${esc(c.family)}</span></div>`);
  parts.push(`<p class="where">policy <strong>${esc(p.name)}</strong> · check <strong>${esc(c.check)}</strong> · ${duration(c.seconds)}</p>`);
  parts.push(`<div class="protects"><span class="label">What it protects</span>${esc(protects(c))}</div>`);
  parts.push(`<p>${esc(c.detail)}</p>`);
  const cx = c.counterexample;
  if (c.pair) {
    parts.push(
      `<h4>The smallest pair that shows it</h4><table class="pair"><tbody><tr><td>left</td><td>${esc(c.pair.left)}</td></tr><tr><td>right</td><td>${esc(c.pair.right)}</td></tr><tr><td>outcome</td><td>${esc(c.pair.outcome)}</td></tr></tbody></table>`,
    );
  }
  if (!cx && c.replay) parts.push(`<div class="replay"><span class="label">Replay it</span>${codeBlock(`${anchor}-replay`, c.replay)}</div>`);
  if (cx) {
    const finding = specFinding(cx);
    const offending = finding && finding.kind !== 'at-rest' ? finding.line : null;
    if (finding) {
      const where = finding.kind === 'at-rest' ? 'The trace ends in a state that breaks' : `The spec refuses line ${finding.line} (<code>${esc(eventName(finding.event))}</code>) under`;
      const how = finding.kind === 'guard' && finding.guard ? ` — guard <code>${esc(finding.guard)}</code> of the ${esc(finding.machine ?? '')} machine` : '';
      parts.push(`<p class="finding"><span class="label">✗ ${where} ${esc(finding.rule)}:</span> ${esc(finding.message)}${how}.</p>`);
    }
    parts.push(`<div class="replay"><span class="label">Replay it</span>${codeBlock(`${anchor}-replay`, cx.replay)}</div>`);
    parts.push(`<p>Trace file: <a href="${esc(cx.traceFile)}">${esc(cx.traceFile)}</a> · ${plural(cx.events.length, 'event')}${cx.cycle ? ` · the last ${cx.cycle} repeat forever` : ''}</p>`);
    parts.push(headerFacts(cx));
    // No timeline without the header's pools and workers (a crash before the engine wrote them).
    const tl = cx.header.workers ? blockTimeline(cx.header, cx.events) : null;
    if (tl && (tl.owners.length > 0 || tl.strays.length > 0)) {
      const subtitle = `which request owns which KV block at each line of the trace${offending ? `; ✗ marks line ${offending}, where the spec refuses the trace` : ''}`;
      const svg = await renderSvg(
        timelineSpec(tl, { title: 'Counterexample timeline: steps in flight and KV block ownership', subtitle, offending, why: finding?.message, cycle: cx.cycle }),
        `${anchor}-timeline`,
        `Timeline of the counterexample for ${c.property}: block ownership by request over the trace lines`,
      );
      const hidden = tl.hiddenBlocks > 0 ? ` ${plural(tl.hiddenBlocks, 'block')} the trace never touches are left out.` : '';
      parts.push(
        `<figure class="chart timeline" data-kind="counterexample-timeline">${svg}<figcaption><strong>How to read it:</strong> the top rows are the workers, with each step from its <code>step_begin</code> to its <code>step_end</code>. Below, one row per KV block: a bar is a request owning the block from its <code>alloc</code> to its <code>free</code>, labelled with the request; the dark strip under it is a step or transfer in flight that uses the block, and a <code>free</code> must not come before that strip ends. Two bars in one row at once are two owners.${hidden}</figcaption></figure>`,
      );
    } else {
      parts.push(`<p class="muted">No KV block is allocated in this trace, so there is no ownership timeline; the events below tell the story.</p>`);
    }
    parts.push(`<details open><summary>The trace, event by event (${plural(cx.events.length, 'event')})</summary>${eventTable(cx, offending)}</details>`);
  }
  parts.push(`</article>`);
  return parts.join('\n');
}

function eventName(eventText: string): string {
  try {
    const o = JSON.parse(eventText) as { ev?: unknown };
    return typeof o.ev === 'string' ? o.ev : eventText;
  } catch {
    return eventText;
  }
}

// ---------------------------------------------------------------------------------------------
// The page

interface Context {
  slugs: Slugs;
  policyIds: Map<PolicyReport, string>;
  failureIds: Map<CheckResult, string>;
  workloads: string[];
}

function failing(c: CheckResult): boolean {
  return c.status === 'fail' || c.status === 'error';
}

/** A check that gets a card of its own: a failure, or a warning (a finding that does not fail the run). */
function carded(c: CheckResult): boolean {
  return failing(c) || c.status === 'warn';
}

/** Badges counting checks by status: `✓ 8 pass ✗ 1 fail`. */
function tally(checks: CheckResult[]): string {
  return (['pass', 'fail', 'error', 'warn', 'skipped'] as Status[])
    .map((s) => [s, checks.filter((c) => c.status === s).length] as const)
    .filter(([, n]) => n > 0)
    .map(([s, n]) => `<span class="badge ${s}"><span aria-hidden="true">${STATUS_TEXT[s].symbol}</span>${n} ${STATUS_TEXT[s].word}</span>`)
    .join('');
}

function banner(data: ReportData, ctx: Context): string {
  const all = data.policies.flatMap((p) => p.checks.map((c) => ({ p, c })));
  const count = (s: Status) => all.filter((x) => x.c.status === s).length;
  const failed = all.filter((x) => failing(x.c));
  const holds = data.verdict === 'holds';
  const ran = all.length - count('skipped');
  const warned = all.filter((x) => x.c.status === 'warn');
  const badInput = data.verdict === 'bad-input';
  const headline = data.verdict === 'internal-error'
    ? '<span class="word">Internal error</span>: the engine crashed, so this run is no verdict'
    : badInput
    ? `<span class="word">Bad input</span>: ${count('error') === 1 ? 'a policy faulted' : `${count('error')} checks stopped by a policy fault`}`
    : holds
    ? `<span class="word">Holds</span>: ${
        ran < all.length ? `no check that ran failed (${ran} of ${all.length} ran)` : warned.length ? `no check failed (${count('pass')} passed, ${plural(warned.length, 'warning')})` : `all ${plural(all.length, 'check')} passed`
      }`
    : `<span class="word">Violated</span>: ${failed.length} of ${plural(all.length, 'check')} failed`;
  const warnText = warned.length
    ? ` ${plural(warned.length, 'warning')}, which ${warned.length === 1 ? 'does' : 'do'} not fail the run: ${warned
        .slice(0, 3)
        .map((x) => `<a href="#${ctx.failureIds.get(x.c)}">${esc(x.c.property)}</a> for ${esc(x.p.name)}`)
        .join('; ')}${warned.length > 3 ? '; …' : ''}.`
    : '';
  const lede = holds
    ? `No property broke for ${data.policies.map((p) => esc(p.name)).join(', ')}.${warnText}`
    : failed.length
      ? `${failed
          .slice(0, 3)
          .map((x) => `<a href="#${ctx.failureIds.get(x.c)}"><strong>${esc(x.c.property)}</strong></a> for ${esc(x.p.name)} (${esc(x.c.check)})`)
          .join('; ')}${failed.length > 3 ? `; and ${failed.length - 3} more` : ''}. ${failed.some((x) => x.c.counterexample) ? (failed.length === 1 ? 'Its replayable counterexample is below.' : 'Each comes with its evidence below.') : 'The evidence is below.'}`
      : 'The self-test or an error made the run fail; see below.';
  const ledeAll = holds ? lede : `${lede}${warnText}`;
  const started = data.startedAt.replace('T', ' ').replace(/:\d\d(\.\d+)?Z$/, ' UTC');
  return `<header class="card banner ${data.verdict}" role="banner">
<div class="mark" aria-hidden="true">${holds ? '✓' : '✗'}</div>
<div>
<p class="eyebrow">${esc(commandOf(data))} · report</p>
<h1>${headline}</h1>
<p class="lede">${ledeAll}</p>
<dl class="meta">
<div class="wide"><dt>command</dt><dd><code>${esc(data.command)}</code></dd></div>
<div><dt>seed</dt><dd>${data.seed}</dd></div>
<div><dt>started</dt><dd>${esc(started)}</dd></div>
<div><dt>took</dt><dd>${duration(data.seconds)}</dd></div>
<div><dt>exit code</dt><dd>${VERDICT_EXIT[data.verdict]} (${data.verdict.replace('-', ' ')})</dd></div>
<div><dt>policies</dt><dd>${data.policies.length}</dd></div>
</dl>
<div class="tally">${tally(all.map((x) => x.c))}</div>
</div>
</header>`;
}

function nav(data: ReportData, ctx: Context): string {
  const links: string[] = ['<a href="#summary">Summary</a>'];
  const nFail = data.policies.flatMap((p) => p.checks).filter(failing).length;
  if (nFail) links.push(`<a class="fail-link" href="#failures">✗ What failed (${nFail})</a>`);
  const nWarn = data.policies.flatMap((p) => p.checks).filter((c) => c.status === 'warn').length;
  if (nWarn) links.push(`<a class="warn-link" href="#warnings">▲ Warnings (${nWarn})</a>`);
  if (data.policies.length > 1) links.push('<a href="#compare">Policies compared</a>');
  for (const p of data.policies) links.push(`<a href="#${ctx.policyIds.get(p)}">${esc(p.name)}</a>`);
  if (data.selfTest?.length) links.push('<a href="#self-test">Self-test</a>');
  links.push('<a href="#sources">Sources</a>');
  return `<nav class="toc" aria-label="Sections">${links.join('')}</nav>`;
}

function summaryTable(data: ReportData, ctx: Context): string {
  const checks: string[] = [];
  for (const p of data.policies) for (const c of p.checks) if (!checks.includes(c.check)) checks.push(c.check);
  const head = data.policies.map((p, i) => `<th scope="col" style="--policy:${policyColor(i)}"><span class="swatch" aria-hidden="true"></span>${esc(p.name)}</th>`).join('');
  const body = checks.map((name) => {
    const results = data.policies.map((p) => p.checks.find((c) => c.check === name));
    const rep = results.find((c) => c && c.status === 'pass') ?? results.find((c) => c);
    const cells = results.map((c) => {
      if (!c) return `<td class="cell"><span class="muted">not run</span></td>`;
      const link = carded(c) ? `<a href="#${ctx.failureIds.get(c)}">${esc(c.property)} ↓</a>` : '';
      return `<td class="cell">${badge(c.status)} ${link}<span class="secs">${c.status === 'skipped' ? 'not required' : duration(c.seconds)}</span></td>`;
    });
    const cls = results.some((c) => c && failing(c)) ? ' class="has-fail"' : results.some((c) => c?.status === 'warn') ? ' class="has-warn"' : '';
    return `<tr${cls}><th scope="row">${esc(name)}<small>${esc(rep?.family ?? '')}</small></th><td class="covers">${esc(rep?.property ?? '')}</td>${cells.join('')}</tr>`;
  });
  const totals = data.policies.map((p) => `<td class="num" style="text-align:left">${duration(p.checks.reduce((s, c) => s + c.seconds, 0))}</td>`).join('');
  return `<section id="summary"><h2>Summary</h2><p class="intro">Each check for each policy: its status, how long it took, and for a failure a link to the counterexample.</p>
<div class="card table-wrap"><table class="summary"><thead><tr><th scope="col">check</th><th scope="col">what it covers</th>${head}</tr></thead><tbody>${body.join('')}</tbody><tfoot><tr><th scope="row">total</th><td></td>${totals}</tr></tfoot></table></div></section>`;
}

async function failuresSection(data: ReportData, ctx: Context): Promise<string> {
  const failures: string[] = [];
  const warnings: string[] = [];
  for (const p of data.policies)
    for (const c of p.checks) if (carded(c)) (failing(c) ? failures : warnings).push(await failureCard(p, c, ctx.failureIds.get(c)!));
  const out: string[] = [];
  if (failures.length)
    out.push(
      `<section id="failures"><h2>What failed</h2><p class="intro">Each failure with the rule that broke, what that rule protects, the command that replays it, and the shrunk counterexample drawn as a timeline.</p>${failures.join('\n')}</section>`,
    );
  if (warnings.length)
    out.push(
      `<section id="warnings"><h2>Warnings</h2><p class="intro">Findings that do not fail the run: a monotonicity property the policy does not claim, or a scheduling anomaly of the system. Each with its evidence and the command that shows it again.</p>${warnings.join('\n')}</section>`,
    );
  return out.join('\n');
}

function figure(svg: string, caption: string, kind: string): string {
  return `<figure class="chart" data-kind="${kind}">${svg}<figcaption>${caption}</figcaption></figure>`;
}

async function compareSection(data: ReportData, ctx: Context): Promise<string> {
  if (data.policies.length < 2) return '';
  const style: PolicyStyle = { names: data.policies.map((p) => p.name), colors: data.policies.map((_, i) => policyColor(i)) };
  const rows = ctx.workloads.flatMap((w) =>
    data.policies.flatMap((p) => {
      const s = p.sweeps.find((x) => x.workload === w);
      return s ? [{ workload: w, policy: p.name, rate: s.rateAt90 }] : [];
    }),
  );
  const bars = await renderSvg(compareRate90Spec(rows, style, ctx.workloads), 'compare-rate90', 'Highest request rate per GPU at 90 % SLO attainment, per workload and policy');
  const small: string[] = [];
  for (const w of ctx.workloads) {
    const withW = data.policies.filter((p) => p.sweeps.some((s) => s.workload === w));
    if (!withW.length) continue;
    const slo = withW[0].sweeps.find((s) => s.workload === w)!.slo;
    const pts = withW.flatMap((p) => p.sweeps.find((s) => s.workload === w)!.points.map((pt) => ({ policy: p.name, rate: pt.rate, attainment: pt.attainment })));
    if (!pts.length) continue;
    const svg = await renderSvg(compareAttainmentSpec(w, slo, pts, style), ctx.slugs.make('compare', w), `SLO attainment vs request rate on ${w}, one line per policy`);
    small.push(figure(svg, `Dashed line: the 90 % target.`, 'compare-attainment'));
  }
  return `<section id="compare"><h2>Policies compared</h2><p class="intro">The same workloads and SLOs for every policy. A policy that keeps 90 % of requests within their SLOs up to a higher rate serves more load on the same GPU.</p>
${figure(bars, 'The rate is the highest point of the sweep still at ≥ 90 % attainment; “never” means no rate reached it.', 'compare-rate90')}
<div class="grid three" style="margin-top:16px">${small.join('')}</div></section>`;
}

function sweepTable(s: Sweep): string {
  const ms = (x: number) => fmtNum(x * 1000);
  const rows = s.points
    .map(
      (p) =>
        `<tr><td class="num">${fmtNum(p.rate)}</td><td class="num">${(p.attainment * 100).toFixed(1)} %</td><td class="num">${fmtNum(p.goodput)}</td><td class="num">${fmtNum(p.ttft.p50)} / ${fmtNum(p.ttft.p90)} / ${fmtNum(p.ttft.p99)}</td><td class="num">${ms(p.tpot.p50)} / ${ms(p.tpot.p90)} / ${ms(p.tpot.p99)}</td><td class="num">${fmtNum(p.e2e.p50)} / ${fmtNum(p.e2e.p99)}</td><td class="num">${p.resizes}</td></tr>`,
    )
    .join('');
  return `<p class="table-title"><strong>${esc(s.workload)}</strong> · SLO TTFT ≤ ${fmtNum(s.slo.ttft)} s, TPOT ≤ ${fmtNum(s.slo.tpot * 1000)} ms · ${rate90Text(s.rateAt90)}</p>
<div class="table-wrap"><table><thead><tr><th class="num">rate per GPU (req/s)</th><th class="num">attainment</th><th class="num">goodput per GPU (req/s)</th><th class="num">TTFT p50 / p90 / p99 (s)</th><th class="num">TPOT p50 / p90 / p99 (ms)</th><th class="num">E2E p50 / p99 (s)</th><th class="num">resizes</th></tr></thead><tbody>${rows}</tbody></table></div>`;
}

async function policySection(p: PolicyReport, index: number, ctx: Context): Promise<string> {
  const color = policyColor(index);
  const id = ctx.policyIds.get(p)!;
  const present = ctx.workloads.filter((w) => p.sweeps.some((s) => s.workload === w));
  const style: WorkloadStyle = { workloads: present, colors: workloadShades(color, present.length) };
  const sweeps = present.map((w) => p.sweeps.find((s) => s.workload === w)!).filter((s) => s.points.length > 0);
  const parts: string[] = [];
  parts.push(`<section class="policy" id="${id}" style="--policy:${color}">`);
  const kpis = sweeps
    .map((s) => `<li><span class="v">${s.rateAt90 === null ? 'never' : `${fmtNum(s.rateAt90)} req/s`}</span><span class="k">${esc(s.workload)} at ≥ 90 % attainment</span></li>`)
    .join('');
  parts.push(`<div class="policy-head"><div><h2><span class="swatch" aria-hidden="true"></span>${esc(p.name)}</h2>
<p class="muted">source <code>${esc(p.source)}</code> · ${p.claimsMonotone ? 'claims monotonicity (M3 required)' : 'no monotonicity claim'}</p><div class="tally">${tally(p.checks)}</div></div><ul class="kpis">${kpis}</ul></div>`);

  if (sweeps.length) {
    const att = await renderSvg(attainmentSpec(p.name, sweeps, style), `${id}-attainment`, `SLO attainment vs request rate for ${p.name}, one line per workload`);
    const good = await renderSvg(goodputSpec(p.name, sweeps, style), `${id}-goodput`, `Goodput vs request rate for ${p.name}, one line per workload`);
    const r90 = sweeps.map((s) => `${esc(s.workload)} ${s.rateAt90 === null ? 'never' : `${fmtNum(s.rateAt90)} req/s`}`).join(' · ');
    parts.push(`<div class="grid two">${figure(att, `<strong>Rate at 90 %:</strong> ${r90}. Higher and further right is better; the dotted drop lines mark each workload's rate at 90 %.`, 'attainment')}${figure(good, 'Where a line leaves the diagonal, requests start missing their SLOs; the peak is the most on-time work the policy delivers.', 'goodput')}</div>`);
  }

  const run = p.run;
  if (run) {
    const slo = run.slo ?? p.sweeps.find((s) => s.workload === run.workload)?.slo ?? null;
    parts.push(`<h4>One run in detail: ${esc(run.workload)} at ${fmtNum(run.rate)} req/s</h4>`);
    const figs: string[] = [];
    for (const [metric, samples, sloValue, name] of [
      ['TTFT', run.ttftSamples, slo?.ttft ?? null, 'Time to first token'],
      ['TPOT', run.tpotSamples, slo?.tpot ?? null, 'Time per output token'],
    ] as const) {
      if (!samples.length) continue;
      const sum = ecdfSummary(samples, sloValue);
      const f = (x: number) => `${fmtNum(x * sum.scale)} ${sum.unit}`;
      const svg = await renderSvg(
        ecdfSpec({ title: `${name} (${metric}) distribution`, metric, policy: p.name, samples, slo: sloValue, color }),
        `${id}-${metric.toLowerCase()}`,
        `Cumulative distribution of ${metric} for ${p.name}, with the SLO marked`,
      );
      const within = Number.isNaN(sum.within) ? '' : ` · <strong>${(sum.within * 100).toFixed(1)} %</strong> within the ${f(sloValue!)} SLO`;
      figs.push(figure(svg, `${plural(samples.length, 'request')} · p50 ${f(sum.p50)} · p90 ${f(sum.p90)} · p99 ${f(sum.p99)}${within}`, metric.toLowerCase()));
    }
    if (figs.length) parts.push(`<div class="grid two">${figs.join('')}</div>`);
    const stack: string[] = [];
    if (run.split.length) {
      const svg = await renderSvg(splitSpec(p.name, run, color), `${id}-split`, `Prefill and decode share of SMs over time for ${p.name}, resizes shaded`);
      stack.push(figure(svg, `Solid: prefill share; dashed: decode share (semi-PD lets them sum past 100 %). ${plural(run.resizes.length, 'resize')}; each shaded band runs from the request for a new split to the moment it is stable.`, 'split'));
    }
    if (run.kv.length) {
      const svg = await renderSvg(kvSpec(p.name, run, color), `${id}-kv`, `KV-cache occupancy over time for ${p.name}`);
      const peak = Math.max(...run.kv.map((k) => k.usage));
      stack.push(figure(svg, `Peak ${(peak * 100).toFixed(0)} % of the pool. Near 100 % the decode worker preempts requests to make room.`, 'kv'));
    }
    if (stack.length) parts.push(`<div class="stack">${stack.join('')}</div>`);
  }

  const checkRows = p.checks
    .map((c) => {
      const name = carded(c) ? `<a href="#${ctx.failureIds.get(c)}">${esc(c.property)}</a>` : esc(c.property);
      return `<tr><th scope="row">${esc(c.check)}</th><td>${badge(c.status)}</td><td>${name}<br><small>${esc(c.detail)}</small></td><td class="num">${c.status === 'skipped' ? '—' : duration(c.seconds)}</td></tr>`;
    })
    .join('');
  parts.push(`<h4>Checks</h4><div class="card table-wrap"><table><thead><tr><th>check</th><th>status</th><th>property and what came out</th><th class="num">time</th></tr></thead><tbody>${checkRows}</tbody></table></div>`);
  if (sweeps.length) parts.push(`<details class="card sweeps"><summary>The sweep numbers behind the charts</summary>${sweeps.map(sweepTable).join('')}</details>`);
  parts.push(`</section>`);
  return parts.join('\n');
}

function selfTestSection(rows: ZooRow[] | undefined): string {
  if (!rows?.length) return '';
  const caught = rows.filter((r) => r.caught).length;
  const exact = rows.filter((r) => r.caught && r.property === r.expected).length;
  const body = rows
    .map((r) => {
      const caughtCell = r.caught ? badge('pass').replace('pass</span>', 'caught</span>') : badge('fail').replace('fail</span>', 'missed</span>');
      const match = r.property === r.expected;
      const prop = r.property === null ? '<span class="muted">—</span>' : `<code>${esc(r.property)}</code>`;
      const vs = match ? `<span class="match" title="as expected">= expected</span>` : `<span class="mismatch">≠ expected <code>${esc(r.expected)}</code></span>`;
      const replay = r.replay ? `<code class="replay-line">${esc(r.replay)}</code>` : '';
      return `<tr><th scope="row">${esc(r.id)}</th><td class="fault">${esc(r.fault)}${replay}</td><td>${caughtCell}</td><td>${prop} ${vs}</td><td class="num">${r.events}</td><td class="num">${r.traceEvents}</td><td class="num">${duration(r.seconds)}</td></tr>`;
    })
    .join('');
  return `<section id="self-test"><h2>Self-test: the bug zoo</h2><p class="intro">Real KV-cache and scheduling bugs from vLLM, SGLang, TensorRT-LLM and semi-PD, switched back on as engine faults: the kit must catch each. <strong>${caught} of ${rows.length}</strong> caught, ${exact} by the rule expected.</p>
<div class="card table-wrap"><table class="zoo"><thead><tr><th>id</th><th>fault and replay</th><th>caught</th><th>rule that broke vs expected</th><th class="num">input size</th><th class="num">trace events</th><th class="num">time</th></tr></thead><tbody>${body}</tbody></table></div>
<p class="muted">Input size: requests and environment commands of the shrunk input. Trace events: events up to the violation.</p></section>`;
}

function sourcesSection(data: ReportData): string {
  const s = data.sources;
  return `<section id="sources"><h2>Where the numbers come from</h2><div class="card"><dl class="sources">
<dt>Cost-model profile</dt><dd>${linkify(s.profile)}</dd>
<dt>Workload traces</dt><dd><ul>${s.traces.map((t) => `<li>${linkify(t)}</li>`).join('')}</ul></dd>
${s.notes.length ? `<dt>Notes</dt><dd><ul>${s.notes.map((n) => `<li>${linkify(n)}</li>`).join('')}</ul></dd>` : ''}
<dt>Data</dt><dd>Every number on this page is in <a href="report.json">report.json</a> beside it; each counterexample is a trace file that <code>pdspec conform</code> replays.</dd>
</dl></div></section>`;
}

/** The command that made the report: `pdspec check`, `pdspec explore`, `pdspec run` or `pdspec sweep`. */
function commandOf(data: ReportData): string {
  const m = /^(?:npx )?pdspec (\w+)/.exec(data.command);
  return `pdspec ${m ? m[1] : 'check'}`;
}

/** The whole page as one HTML string (deterministic: the same data gives the same bytes). */
export async function renderHtml(data: ReportData): Promise<string> {
  const slugs = new Slugs();
  const ctx: Context = { slugs, policyIds: new Map(), failureIds: new Map(), workloads: [] };
  for (const p of data.policies) {
    ctx.policyIds.set(p, slugs.make('policy', p.name));
    for (const c of p.checks) if (carded(c)) ctx.failureIds.set(c, slugs.make('cx', p.name, c.check));
    for (const s of p.sweeps) if (!ctx.workloads.includes(s.workload)) ctx.workloads.push(s.workload);
  }
  const sections = [
    banner(data, ctx),
    nav(data, ctx),
    summaryTable(data, ctx),
    await failuresSection(data, ctx),
    await compareSection(data, ctx),
  ];
  for (const [i, p] of data.policies.entries()) sections.push(await policySection(p, i, ctx));
  sections.push(selfTestSection(data.selfTest), sourcesSection(data));
  const title = `${commandOf(data)}: ${data.verdict.replace('-', ' ')} — ${data.policies.map((p) => p.name).join(', ')}`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>${esc(title)}</title>
<style>${CSS}</style>
</head>
<body>
<main>
${sections.filter(Boolean).join('\n')}
<footer>${esc(commandOf(data))} report · format v${data.version} · seed ${data.seed} · the data: <a href="report.json">report.json</a></footer>
</main>
<script>${SCRIPT}</script>
</body>
</html>
`;
}
