// The report of `pdspec check`: the files it writes, that the page stands alone (no network), that every
// chart is drawn, and that the counterexample timeline reads the trace right.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReportData } from '../properties/report-data.ts';
import { chartWarnings } from '../cli/report/charts.ts';
import { eventFields, protects, renderHtml, specFinding, writeReport } from '../cli/report/render.ts';
import { blockTimeline } from '../cli/report/timeline.ts';
import { makeHeader, type TraceEvent } from '../spec/trace-format.ts';
import { FIXTURE_EVENTS, FIXTURE_HEADER, reportFixture } from './report-fixture.ts';

let dir: string;
let html: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pdspec-report-'));
  const out = await writeReport(reportFixture(), dir);
  html = await readFile(out.html, 'utf8');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The HTML of one section, by id. */
function section(page: string, id: string): string {
  const start = page.indexOf(`<section id="${id}"`);
  if (start === -1) return '';
  return page.slice(start, page.indexOf('</section>', start));
}

describe('writeReport', () => {
  it('writes index.html and report.json into the directory and returns their paths', async () => {
    const sub = join(dir, 'nested', 'report');
    const out = await writeReport(reportFixture(), sub);
    expect(out).toEqual({ html: join(sub, 'index.html'), json: join(sub, 'report.json') });
    expect((await readFile(out.html, 'utf8')).startsWith('<!doctype html>')).toBe(true);
  });

  it('report.json is the data, pretty-printed, and reads back equal', async () => {
    const text = await readFile(join(dir, 'report.json'), 'utf8');
    expect(text).toContain('\n  "version": 1,');
    expect(JSON.parse(text)).toEqual(reportFixture());
  });

  it('gives the same bytes for the same data, and Vega-Lite finds nothing to warn about', async () => {
    expect(await renderHtml(reportFixture())).toBe(html);
    expect(chartWarnings()).toEqual([]);
  });
});

describe('the page stands alone', () => {
  it('loads no script, stylesheet, font or image from anywhere', () => {
    expect(html).not.toMatch(/<script[^>]*\ssrc=/i);
    expect(html).not.toMatch(/<link\b/i);
    expect(html).not.toMatch(/@import|@font-face/i);
    expect(html).not.toMatch(/<img\b|<iframe\b|<object\b|<embed\b/i);
    for (const m of html.matchAll(/url\(([^)]*)\)/g)) expect(m[1]).toMatch(/^#/);
  });

  it('every src and href is relative or an anchor; web links are plain links to sources only', () => {
    const refs = [...html.matchAll(/\s(src|href|xlink:href)="([^"]*)"/g)].map((m) => m[2]);
    expect(refs.length).toBeGreaterThan(5);
    const sources = section(html, 'sources');
    for (const ref of refs) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(ref) || ref.startsWith('//')) {
        expect(ref).toMatch(/^https?:\/\//);
        expect(sources).toContain(`<a href="${ref}" rel="noreferrer">${ref}</a>`);
      }
    }
    // No URL outside the sources section at all, not even in SVG namespace declarations.
    expect(html.replace(sources, '')).not.toMatch(/https?:\/\//);
  });

  it('links each counterexample by its trace file, relative to the report', () => {
    expect(html).toContain('href="counterexamples/eager-resize-campaign.jsonl"');
    expect(html).toContain('href="report.json"');
  });
});

describe('a counterexample from a crash', () => {
  it('has only the format fields in its header, and the page still draws it (what there is)', async () => {
    const data = reportFixture();
    const check = data.policies.flatMap((p) => p.checks).find((c) => c.counterexample)!;
    check.counterexample = { ...check.counterexample!, header: { format: 'pdspec-trace', version: 1 } as never, events: [] };
    const page = await renderHtml(data);
    expect(page).toContain(check.counterexample.traceFile);
    expect(page).not.toContain('undefined');
  });
});

describe('the page says what happened', () => {
  it('has the verdict, the command and the seed up front', () => {
    const banner = html.slice(html.indexOf('<header'), html.indexOf('</header>'));
    expect(banner).toContain('Violated');
    expect(banner).toContain('npx pdspec check --policy semi-pd-slo --policy ./policies/eager-resize.ts --seed 42 --self-test');
    expect(banner).toMatch(/<dt>seed<\/dt><dd>42<\/dd>/);
  });

  it('has a summary cell for every check of every policy, the failure linked to its counterexample', () => {
    const summary = section(html, 'summary');
    expect(summary.match(/<td class="cell">/g)).toHaveLength(10);
    expect(summary).toContain('<a href="#cx-eager-resize-campaign">NoFreeWhileInFlight ↓</a>');
    expect(html).toContain('id="cx-eager-resize-campaign"');
  });

  it('draws every chart: comparison, sweeps, distributions, split, KV and the counterexample timeline', () => {
    const svgs = [...html.matchAll(/<svg [^>]*data-chart="([^"]+)"/g)].map((m) => m[1]);
    expect(svgs).toEqual([
      'cx-eager-resize-campaign-timeline',
      'compare-rate90',
      'compare-azure-conv',
      'compare-azure-code',
      'compare-poisson',
      ...['policy-semi-pd-slo', 'policy-eager-resize'].flatMap((p) => ['attainment', 'goodput', 'ttft', 'tpot', 'split', 'kv'].map((c) => `${p}-${c}`)),
    ]);
    for (const svg of html.match(/<svg [\s\S]*?<\/svg>/g) ?? []) {
      expect(svg).toMatch(/role="img" aria-label="[^"]{10,}"/);
      expect(svg).toMatch(/role-title-text/); // every chart has a title
      expect(svg).toMatch(/role-axis-title/); // and labelled axes
      expect(svg).toMatch(/class="mark-(line|rect|symbol|area)[^"]*role-mark/);
    }
  });

  it('ids inside charts are unique on the page', () => {
    const ids = [...html.matchAll(/\sid="([^"]+)"/g)].map((m) => m[1]);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('shows the failure: the rule, what it protects, the spec’s reason, the replay command and every event', () => {
    const cx = section(html, 'failures');
    expect(cx).toContain('No block on the free list is used by a step or transfer in flight');
    expect(cx).toContain('The spec refuses line 22');
    expect(cx).toContain('block 2: still used by step 2 of D0, in flight');
    expect(cx).toContain('<code id="cx-eager-resize-campaign-replay">npx pdspec conform report/counterexamples/eager-resize-campaign.jsonl</code>');
    expect(cx.match(/<tr class="ev-/g)).toHaveLength(FIXTURE_EVENTS.length);
    expect(cx).toMatch(/<tr class="ev-free offending" aria-label="the offending event"><td class="line num">22<\/td>/);
    expect(cx).toContain('<span class="k">batch=</span>[r1:1, r2:1]');
  });

  it('has the self-test table and where the numbers come from', () => {
    const zoo = section(html, 'self-test');
    expect(zoo.match(/<tr><th scope="row">Z\d+<\/th>/g)).toHaveLength(9);
    expect(zoo).toContain('≠ expected <code>FreeListUnique</code>');
    expect(zoo).toContain('<strong>9 of 9</strong> caught, 8 by the rule expected');
    const sources = section(html, 'sources');
    expect(sources).toContain('llama3-8b-h100');
    expect(sources).toContain('AzureLLMInferenceTrace_conv.csv');
  });

  it('escapes whatever the data holds', async () => {
    const data = reportFixture();
    data.policies[1].name = '<script>alert(1)</script>';
    data.command = 'pdspec check --policy "a&b"';
    const page = await renderHtml(data);
    expect(page).not.toContain('<script>alert(1)</script>');
    expect(page).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(page).toContain('--policy &quot;a&amp;b&quot;');
    expect(page.match(/<script>/g)).toHaveLength(1);
  });
});

describe('other shapes of data', () => {
  it('a run that holds: one policy, no failures, no self-test, no run detail', async () => {
    const data: ReportData = reportFixture();
    data.verdict = 'holds';
    data.policies = [data.policies[0]];
    delete data.policies[0].run;
    delete data.selfTest;
    const page = await renderHtml(data);
    expect(page).toContain('<span class="word">Holds</span>: all 5 checks passed');
    expect(page).not.toContain('id="failures"');
    expect(page).not.toContain('id="compare"');
    expect(page).not.toContain('id="self-test"');
    expect(page.match(/<svg /g)).toHaveLength(2);
  });

  it('empty sweeps and an empty run draw nothing rather than fail', async () => {
    const data = reportFixture();
    data.policies[0].sweeps[1].points = [];
    data.policies[0].run = { workload: 'azure-conv', rate: 4, ttftSamples: [], tpotSamples: [], split: [], resizes: [], kv: [] };
    const page = await renderHtml(data);
    expect(page).not.toContain('data-chart="policy-semi-pd-slo-ttft"');
    expect(page).not.toContain('data-chart="policy-semi-pd-slo-kv"');
    expect(page).toContain('data-chart="policy-semi-pd-slo-attainment"');
    expect(chartWarnings()).toEqual([]);
  });

  it('a monotonicity failure shows its smallest pair', async () => {
    const data = reportFixture();
    Object.assign(data.policies[1].checks[3], {
      status: 'fail',
      property: 'M2',
      detail: 'A longer prefill queue lowered the prefill share.',
      pair: { left: 'queue 3, share 60', right: 'queue 4, everything else equal', outcome: 'share 55 < 60' },
    });
    const page = await renderHtml(data);
    const card = section(page, 'failures');
    expect(card).toContain('id="cx-eager-resize-m2"');
    expect(card).toContain('more prefill (or decode) pressure, everything else equal, never lowers');
    expect(card).toContain('<td>share 55 &lt; 60</td>');
    expect(page).toContain('<span class="word">Violated</span>: 2 of 10 checks failed');
  });

  it('a warning is shown apart from failures, with its pair and replay command, and does not fail the run', async () => {
    const data = reportFixture();
    data.verdict = 'holds';
    const eager = data.policies[1];
    Object.assign(eager.checks[1], { status: 'pass', property: 'NoLeak, SingleOwnership, NothingLost', family: 'Safety' });
    delete eager.checks[1].counterexample;
    Object.assign(eager.checks[4], {
      status: 'warn',
      property: 'M3',
      family: 'Monotonicity',
      seconds: 12.5,
      detail: 'A scheduling anomaly: 256 more blocks lowered attainment on azure-conv at 4 req/s.',
      pair: { left: '4,096 blocks: 88.1 %', right: '4,352 blocks: 86.9 %', outcome: 'attainment fell by 1.2 points' },
      replay: 'npx pdspec check --policy ./policies/eager-resize.ts --only M3 --seed 42',
    });
    const page = await renderHtml(data);
    expect(page).not.toContain('id="failures"');
    const warnings = section(page, 'warnings');
    expect(warnings).toContain('id="cx-eager-resize-m3"');
    expect(warnings).toContain('<span class="badge warn"><span aria-hidden="true">▲</span>warn</span>');
    expect(warnings).toContain('<code id="cx-eager-resize-m3-replay">npx pdspec check --policy ./policies/eager-resize.ts --only M3 --seed 42</code>');
    expect(warnings).toContain('<td>attainment fell by 1.2 points</td>');
    expect(section(page, 'summary')).toContain('<a href="#cx-eager-resize-m3">M3 ↓</a>');
    expect(page).toContain('<span class="word">Holds</span>: no check failed (9 passed, 1 warning)');
    expect(page).toContain('1 warning, which does not fail the run');
    expect(page).toContain('href="#warnings">▲ Warnings (1)</a>');
  });

  it('a starvation counterexample marks the repeating events', async () => {
    const data = reportFixture();
    const cx = data.policies[1].checks[1].counterexample!;
    cx.events = cx.events.slice(0, 18);
    cx.cycle = 3;
    const page = await renderHtml(data);
    expect(page.match(/<tr class="[^"]*\bcycle\b/g)).toHaveLength(3);
    expect(page).toContain('the last 3 events repeat forever');
  });
});

describe('the counterexample, read from the trace', () => {
  it('the fixture is a real counterexample: the spec refuses its last line with the rule the check names', () => {
    const data = reportFixture();
    const check = data.policies[1].checks[1];
    const finding = specFinding(check.counterexample!);
    expect(finding).toMatchObject({ line: FIXTURE_EVENTS.length + 1, rule: check.property, kind: 'guard' });
    expect(protects(check)).toMatch(/^No block on the free list/);
  });

  it('ownership runs from alloc to free, per block, with steps in flight over the blocks they use', () => {
    const tl = blockTimeline(FIXTURE_HEADER, FIXTURE_EVENTS);
    expect(tl.rows.map((r) => r.label)).toEqual(['block 0', 'block 1', 'block 2', 'block 3', 'block 4', 'block 5', 'block 6', 'block 7']);
    expect(tl.requests).toEqual(['r1', 'r2']);
    expect(tl.owners.filter((o) => o.req === 'r2')).toEqual([
      { row: 2, req: 'r2', from: 12, to: 22, open: false, lane: 0, lanes: 1 },
      { row: 3, req: 'r2', from: 12, to: 22, open: false, lane: 0, lanes: 1 },
    ]);
    expect(tl.owners.find((o) => o.row === 4)).toMatchObject({ req: 'r1', from: 18, open: true });
    // Step 2 of D0 began at line 19 over r1's and r2's blocks and is still in flight when r2's are freed.
    expect(tl.uses.filter((u) => u.op === 'step 2 of D0').map((u) => [u.row, u.open])).toEqual([
      [0, true],
      [1, true],
      [4, true],
      [2, true],
      [3, true],
    ]);
    expect(tl.lanes.map((l) => l.label)).toEqual(['P0 (prefill)', 'D0 (decode)']);
    expect(tl.ops.map((o) => [o.label, o.from, o.to, o.open])).toEqual([
      ['step 1: r1', 5, 7, false],
      ['step 2: r2', 13, 14, false],
      ['step 2: r1, r2', 19, 22, true],
    ]);
    expect(tl.touched.get(22)).toEqual([2, 3]);
  });

  it('two owners of one block at once are drawn side by side, and a free of a block not owned is marked', () => {
    const header = makeHeader({ mode: 'semi-pd', blocks: 4, blockSize: 4, sms: 132 });
    const events: TraceEvent[] = [
      { t: 0, ev: 'arrive', req: 'r1', prompt: 4 },
      { t: 0, ev: 'arrive', req: 'r2', prompt: 8 },
      { t: 0, ev: 'alloc_take', worker: 'P0', req: 'r2', blocks: [1, 2] },
      { t: 0, ev: 'alloc_take', worker: 'D0', req: 'r1', blocks: [1] },
      { t: 0, ev: 'free', req: 'r1', blocks: [3] },
    ];
    const tl = blockTimeline(header, events);
    const row1 = tl.owners.filter((o) => o.row === 1);
    expect(row1.map((o) => [o.req, o.lane, o.lanes])).toEqual([
      ['r2', 0, 2],
      ['r1', 1, 2],
    ]);
    expect(tl.strays).toEqual([{ row: 3, line: 6, what: 'free of block 3, not owned by r1' }]);
  });

  it('with two GPUs, a row is a block of one pool, and a transfer holds both sides', () => {
    const header = makeHeader({ mode: 'disaggregated', blocks: 40, blockSize: 4, sms: 132 });
    const events: TraceEvent[] = [
      { t: 0, ev: 'arrive', req: 'r1', prompt: 4 },
      { t: 0, ev: 'alloc', worker: 'P0', req: 'r1', blocks: [0] },
      { t: 0, ev: 'alloc', worker: 'D0', req: 'r1', blocks: [0] },
      { t: 0, ev: 'transfer_begin', xfer: 'x1', req: 'r1', from: 'P0', to: 'D0' },
      { t: 0, ev: 'transfer_end', xfer: 'x1' },
      { t: 0, ev: 'free', req: 'r1', blocks: [0] },
    ];
    const tl = blockTimeline(header, events);
    expect(tl.rows.map((r) => r.label)).toEqual(['GPU 0 · block 0', 'GPU 1 · block 0']);
    expect(tl.hiddenBlocks).toBe(78);
    expect(tl.uses.map((u) => [u.row, u.op, u.from, u.to])).toEqual([
      [0, 'transfer x1', 5, 6],
      [1, 'transfer x1', 5, 6],
    ]);
    expect(tl.owners.map((o) => [o.row, o.open])).toEqual([
      [0, false],
      [1, true],
    ]);
    expect(tl.lanes.map((l) => l.label)).toEqual(['transfers']);
  });

  it('writes events in the trace vocabulary', () => {
    expect(eventFields({ t: 0, ev: 'alloc', worker: 'D0', req: 'r1', blocks: [0, 1] })).toBe(
      '<span class="k">worker=</span>D0 <span class="k">req=</span>r1 <span class="k">blocks=</span>[0, 1]',
    );
  });
});
