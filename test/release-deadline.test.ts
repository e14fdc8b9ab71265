// Release deadlines (ReleaseWithin) and the trace v3 clock events: `tick` carries time, `idle` is an at-rest
// point judged where it stands. A deadline is missed at the first event past it, never earlier.
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkText, formatVerdict, type CheckOptions, type Verdict } from '../spec/checker.ts';
import { RULE_NAMES, RULES } from '../spec/invariants.ts';
import { FormatError, readEvent, readHeader } from '../spec/trace-format.ts';
import { tracedRun } from './engine-fixtures.ts';

const root = join(import.meta.dirname, '..');

const V3 = { format: 'pdspec-trace', version: 3, mode: 'unified', blocks: 8, blockSize: 4, sms: 132 };
const header = (extra: Record<string, unknown> = {}) => JSON.stringify({ ...V3, ...extra });

/** One request through a unified worker, ending at `end`; its blocks are still held afterwards. */
function served(req: string, blocks: number[], start: number, end: number): string[] {
  return [
    { t: start, ev: 'arrive', req, prompt: 4, maxTokens: 1 },
    { t: start, ev: 'schedule', req, worker: 'U0' },
    { t: start, ev: 'alloc', worker: 'U0', req, blocks },
    { t: start, ev: 'step_begin', worker: 'U0', step: `s-${req}`, batch: [{ req, tokens: 4, from: 0 }] },
    { t: start, ev: 'step_end', worker: 'U0', step: `s-${req}` },
    { t: start, ev: 'token', req, index: 0 },
    { t: end, ev: 'finish', req },
  ].map((e) => JSON.stringify(e));
}

const ev = (e: Record<string, unknown>) => JSON.stringify(e);
const check = (lines: string[], options: CheckOptions = {}, h = header()) => checkText([h, ...lines].join('\n'), options);

function violation(v: Verdict) {
  expect(v.verdict).toBe('violation');
  if (v.verdict !== 'violation') throw new Error('not a violation');
  return v;
}

describe('ReleaseWithin: everything an ended request held is free within D of its release', () => {
  // r1 finishes at t = 1 holding block 0: due free by t = 1 + 5 = 6.
  const r1 = served('r1', [0], 0, 1);

  it('a free exactly at the deadline is in time', () => {
    expect(check([...r1, ev({ t: 6, ev: 'free', req: 'r1', blocks: [0] })], { releaseWithin: 5, quiescent: true }).verdict).toBe('conforms');
  });

  it('just past the deadline, the violation is reported at the first later event: the late free itself', () => {
    const v = violation(check([...r1, ev({ t: 6.001, ev: 'free', req: 'r1', blocks: [0] })], { releaseWithin: 5 }));
    expect(v.finding).toMatchObject({ rule: 'ReleaseWithin', family: 'NoLeak', kind: 'deadline', line: 9 });
    expect(v.conformingPrefix).toBe(8);
    expect(v.finding.message).toContain('due free by t=6 s');
    expect(v.finding.message).toContain('block(s) 0');
  });

  it('an event of another request at the deadline does not reveal it; the first one past it does', () => {
    const lines = [...r1, ev({ t: 6, ev: 'arrive', req: 'r2', prompt: 4 }), ev({ t: 7, ev: 'arrive', req: 'r3', prompt: 4 }), ev({ t: 8, ev: 'free', req: 'r1', blocks: [0] })];
    const v = violation(check(lines, { releaseWithin: 5 }));
    expect(v.finding.line).toBe(10); // the arrival of r3 at t = 7, not the free at t = 8
    expect(v.finding.event).toContain('"r3"');
  });

  it('a tick reveals a missed deadline on a quiet stream', () => {
    const v = violation(check([...r1, ev({ t: 3, ev: 'tick' }), ev({ t: 6.5, ev: 'tick' })], { releaseWithin: 5 }));
    expect(v.finding).toMatchObject({ rule: 'ReleaseWithin', line: 10, event: '{"t":6.5,"ev":"tick"}' });
  });

  it('without a deadline, a late free conforms (the leak a timeout cleans up)', () => {
    expect(check([...r1, ev({ t: 500, ev: 'free', req: 'r1', blocks: [0] })], { quiescent: true }).verdict).toBe('conforms');
  });

  it('a request with a step in flight at its end gets its deadline from that step\'s end', () => {
    // r1 decodes; it is aborted at t = 1 while a step holds its block; the step ends at t = 4.
    const lines = [
      ev({ t: 0, ev: 'arrive', req: 'r1', prompt: 4, maxTokens: 4 }),
      ev({ t: 0, ev: 'schedule', req: 'r1', worker: 'U0' }),
      ev({ t: 0, ev: 'alloc', worker: 'U0', req: 'r1', blocks: [0, 1] }),
      ev({ t: 0, ev: 'step_begin', worker: 'U0', step: 1, batch: [{ req: 'r1', tokens: 4, from: 0 }] }),
      ev({ t: 0, ev: 'step_end', worker: 'U0', step: 1 }),
      ev({ t: 0, ev: 'token', req: 'r1', index: 0 }),
      ev({ t: 0, ev: 'join', req: 'r1', worker: 'U0' }),
      ev({ t: 0.5, ev: 'step_begin', worker: 'U0', step: 2, batch: [{ req: 'r1', tokens: 1, from: 4 }] }),
      ev({ t: 1, ev: 'abort', req: 'r1' }),
      ev({ t: 4, ev: 'step_end', worker: 'U0', step: 2 }),
    ];
    // Due by 4 + 5 = 9, not 1 + 5 = 6.
    expect(check([...lines, ev({ t: 8, ev: 'tick' }), ev({ t: 9, ev: 'free', req: 'r1', blocks: [0, 1] })], { releaseWithin: 5, quiescent: true }).verdict).toBe('conforms');
    const v = violation(check([...lines, ev({ t: 9.5, ev: 'free', req: 'r1', blocks: [0, 1] })], { releaseWithin: 5 }));
    expect(v.finding).toMatchObject({ rule: 'ReleaseWithin', line: 12 });
    expect(v.finding.message).toContain('completed at t=4 s');
    expect(v.finding.message).toContain('due free by t=9 s');
  });

  it('a transfer that never begins does not move the deadline (bug zoo Z7)', () => {
    // Disaggregated: r1 prefilled on P0 and rejected by the decode side before any transfer.
    const h = header({ mode: 'disaggregated', blocks: 4 });
    const lines = [
      ev({ t: 0, ev: 'arrive', req: 'r1', prompt: 4, maxTokens: 4 }),
      ev({ t: 0, ev: 'schedule', req: 'r1', worker: 'P0' }),
      ev({ t: 0, ev: 'alloc', worker: 'P0', req: 'r1', blocks: [0] }),
      ev({ t: 0, ev: 'step_begin', worker: 'P0', step: 1, batch: [{ req: 'r1', tokens: 4, from: 0 }] }),
      ev({ t: 0, ev: 'step_end', worker: 'P0', step: 1 }),
      ev({ t: 0, ev: 'token', req: 'r1', index: 0 }),
      ev({ t: 1, ev: 'abort', req: 'r1' }),
      ev({ t: 40, ev: 'tick' }),
    ];
    expect(violation(check(lines, { releaseWithin: 30 }, h)).finding).toMatchObject({ rule: 'ReleaseWithin', line: 9 });
  });

  it('several requests: each has its own deadline, and the earliest one missed is reported', () => {
    const lines = [
      ...served('r1', [0], 0, 1), // due by 6
      ...served('r2', [1], 2, 3), // due by 8
      ev({ t: 5, ev: 'free', req: 'r2', blocks: [1] }),
      ev({ t: 5.5, ev: 'tick' }),
      ev({ t: 7, ev: 'tick' }),
    ];
    const v = violation(check(lines, { releaseWithin: 5 }));
    expect(v.finding.line).toBe(18);
    expect(v.finding.message).toMatch(/^request r1 /);
    // r1 in time, r2 late: r2 is reported, and only once its own deadline has passed.
    const late = [...served('r1', [0], 0, 1), ...served('r2', [1], 2, 3), ev({ t: 6, ev: 'free', req: 'r1', blocks: [0] }), ev({ t: 8, ev: 'tick' }), ev({ t: 8.5, ev: 'tick' })];
    const v2 = violation(check(late, { releaseWithin: 5 }));
    expect(v2.finding.line).toBe(18);
    expect(v2.finding.message).toMatch(/^request r2 /);
  });

  it('a state slot counts among what a request holds', () => {
    const h = header({ stateSlots: 2 });
    const lines = [
      ev({ t: 0, ev: 'arrive', req: 'r1', prompt: 4, maxTokens: 1 }),
      ev({ t: 0, ev: 'schedule', req: 'r1', worker: 'U0' }),
      ev({ t: 0, ev: 'slot_alloc', worker: 'U0', req: 'r1', slot: 0 }),
      ev({ t: 0, ev: 'alloc', worker: 'U0', req: 'r1', blocks: [0] }),
      ev({ t: 0, ev: 'step_begin', worker: 'U0', step: 1, batch: [{ req: 'r1', tokens: 4, from: 0 }] }),
      ev({ t: 0, ev: 'step_end', worker: 'U0', step: 1 }),
      ev({ t: 0, ev: 'token', req: 'r1', index: 0 }),
      ev({ t: 1, ev: 'finish', req: 'r1' }),
      ev({ t: 1, ev: 'free', req: 'r1', blocks: [0] }),
      ev({ t: 9, ev: 'slot_free', req: 'r1', slot: 0 }),
    ];
    const v = violation(check(lines, { releaseWithin: 5 }, h));
    expect(v.finding).toMatchObject({ rule: 'ReleaseWithin', line: 11 });
    expect(v.finding.message).toContain('1 state slot(s)');
  });

  it('the v3 header may promise a deadline; the option overrides it', () => {
    const h = header({ releaseWithin: 5 });
    const late = [...r1, ev({ t: 7, ev: 'free', req: 'r1', blocks: [0] })];
    expect(violation(check(late, {}, h)).finding.rule).toBe('ReleaseWithin');
    expect(check(late, { releaseWithin: 10 }, h).verdict).toBe('conforms');
    expect(violation(check([...r1, ev({ t: 2, ev: 'free', req: 'r1', blocks: [0] })], { releaseWithin: 0.5 }, h)).finding.rule).toBe('ReleaseWithin');
  });

  it('a deadline of 0: the free must come at the very time of the release', () => {
    expect(check([...r1, ev({ t: 1, ev: 'free', req: 'r1', blocks: [0] })], { releaseWithin: 0, quiescent: true }).verdict).toBe('conforms');
    expect(violation(check([...r1, ev({ t: 1.5, ev: 'free', req: 'r1', blocks: [0] })], { releaseWithin: 0 })).finding.line).toBe(9);
  });

  it('at the end of input a deadline not yet passed is no ReleaseWithin: the at-rest rules judge what is still held', () => {
    // The trace stops at t = 3 with r1's block held (due by 6): a leak as far as the trace goes.
    const v = violation(check([...r1, ev({ t: 3, ev: 'tick' })], { releaseWithin: 5 }));
    expect(v.finding).toMatchObject({ rule: 'EndedRequestsRelease', kind: 'at-rest', line: 10, event: '(end of trace)' });
    // A free at the deadline as the last event conforms.
    expect(check([...r1, ev({ t: 6, ev: 'free', req: 'r1', blocks: [0] })], { releaseWithin: 5 }).verdict).toBe('conforms');
  });

  it('the verdict in words names the line, the rule and the deadline', () => {
    const text = formatVerdict('t.jsonl', check([...r1, ev({ t: 6.5, ev: 'tick' })], { releaseWithin: 5 }));
    expect(text).toContain('t.jsonl:9: violation of ReleaseWithin (NoLeak)');
    expect(text).toContain('event:   {"t":6.5,"ev":"tick"}');
    expect(text).toContain('the event itself is allowed');
    expect(text).toContain('conforming prefix: lines 1–8 (7 event(s))');
  });

  it('is the one deadline rule of the catalogue', () => {
    expect(RULE_NAMES.filter((n) => RULES[n].kind === 'deadline')).toEqual(['ReleaseWithin']);
    expect(RULES.ReleaseWithin.family).toBe('NoLeak');
  });
});

describe('idle: the engine says it is at rest, and the at-rest rules are judged there', () => {
  const r1 = served('r1', [0], 0, 1);

  it('idle after every free conforms, and the run may go on', () => {
    const lines = [...r1, ev({ t: 1, ev: 'free', req: 'r1', blocks: [0] }), ev({ t: 2, ev: 'idle' }), ...served('r2', [0], 3, 4), ev({ t: 4, ev: 'free', req: 'r2', blocks: [0] }), ev({ t: 4, ev: 'idle' })];
    expect(check(lines, { quiescent: true })).toMatchObject({ verdict: 'conforms', requests: 2, ended: 2 });
  });

  it('idle before an ended request frees its blocks: EndedRequestsRelease at the idle line', () => {
    const v = violation(check([...r1, ev({ t: 2, ev: 'idle' }), ev({ t: 3, ev: 'free', req: 'r1', blocks: [0] })]));
    expect(v.finding).toMatchObject({ rule: 'EndedRequestsRelease', kind: 'at-rest', line: 9, event: '{"t":2,"ev":"idle"}' });
    expect(v.conformingPrefix).toBe(8);
    const text = formatVerdict('t.jsonl', v);
    expect(text).toContain('t.jsonl:9: violation of EndedRequestsRelease');
    expect(text).toContain('the engine says it is idle');
    expect(text).toContain('conforming prefix: lines 1–8 (7 event(s))');
  });

  it('idle while a request is live: EveryRequestEnds', () => {
    const v = violation(check([ev({ t: 0, ev: 'arrive', req: 'r1', prompt: 4 }), ev({ t: 1, ev: 'idle' })]));
    expect(v.finding).toMatchObject({ rule: 'EveryRequestEnds', line: 3 });
  });

  it('idle while a step is in flight: QuiescentAllFree', () => {
    const lines = [
      ev({ t: 0, ev: 'arrive', req: 'r1', prompt: 4, maxTokens: 2 }),
      ev({ t: 0, ev: 'schedule', req: 'r1', worker: 'U0' }),
      ev({ t: 0, ev: 'alloc', worker: 'U0', req: 'r1', blocks: [0] }),
      ev({ t: 0, ev: 'step_begin', worker: 'U0', step: 1, batch: [{ req: 'r1', tokens: 4, from: 0 }] }),
      ev({ t: 1, ev: 'abort', req: 'r1' }),
      ev({ t: 2, ev: 'idle' }),
    ];
    const v = violation(check(lines));
    expect(v.finding).toMatchObject({ rule: 'QuiescentAllFree', line: 7 });
    expect(v.finding.message).toContain('step 1 of U0');
  });

  it('tick and idle are v3 events: bad input under a v2 header, and they take no fields', () => {
    expect(() => readEvent({ t: 0, ev: 'tick' }, 2)).toThrow(/event 'tick' needs trace version 3; the header says version 2/);
    expect(() => readEvent({ t: 0, ev: 'idle' }, 1)).toThrow(FormatError);
    expect(() => readEvent({ t: 0, ev: 'idle', req: 'r1' }, 3)).toThrow(/unknown field 'req'/);
    expect(readEvent({ t: 1, ev: 'tick', note: 'heartbeat' }, 3)).toMatchObject({ ev: 'tick', t: 1 });
  });

  it('releaseWithin is a v3 header field of seconds ≥ 0', () => {
    expect(readHeader({ ...V3, releaseWithin: 30 }).releaseWithin).toBe(30);
    expect(() => readHeader({ ...V3, version: 2, releaseWithin: 30 })).toThrow(/'releaseWithin' needs trace version 3/);
    expect(() => readHeader({ ...V3, releaseWithin: -1 })).toThrow(/releaseWithin/);
    expect(() => readHeader({ ...V3, releaseWithin: '30' })).toThrow(/releaseWithin/);
  });
});

describe('pdspec conform --release-within and streaming', () => {
  const pdspec = (args: string[], input?: string) => spawnSync(process.execPath, [join(root, 'bin', 'pdspec.js'), 'conform', ...args], { cwd: root, encoding: 'utf8', ...(input !== undefined ? { input } : {}) });
  const z07 = 'examples/traces/zoo/z07-prefill-blocks-pinned-until-timeout.jsonl';

  it('catches Z7 with a deadline, accepts it without one', () => {
    const r = pdspec([z07, '--release-within', '30', '--json']);
    expect(r.status).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ verdict: 'violation', conformingPrefix: 11, finding: { line: 12, rule: 'ReleaseWithin', kind: 'deadline' } });
    expect(pdspec([z07, '--quiescent']).status).toBe(0);
    expect(pdspec([z07, '--release-within=480', '--quiescent']).status).toBe(0);
  });

  it('a bad --release-within or a v3 event under a v2 header: exit 2, one line', () => {
    for (const value of ['-1', 'abc', '', 'Infinity', '1e999']) {
      const r = pdspec([z07, '--release-within', value]);
      expect(r.status, value).toBe(2);
      expect(r.stderr.trim().split('\n'), value).toEqual([`pdspec conform: --release-within must be a number of seconds ≥ 0 (e.g. 30), got '${value}'`]);
      expect(r.stdout).toBe('');
    }
    const v2 = pdspec(['examples/traces/v3/bad-input/tick-in-v2-trace.jsonl']);
    expect(v2.status).toBe(2);
    expect(v2.stderr.trim().split('\n')).toEqual(["examples/traces/v3/bad-input/tick-in-v2-trace.jsonl:3: bad input: event 'tick' needs trace version 3; the header says version 2"]);
  });

  /** Writes `lines` to `conform -` and keeps standard input open: the verdict must come without its end. */
  async function openStream(args: string[], lines: string[]): Promise<{ status: number | null; stderr: string }> {
    const child = spawn(process.execPath, [join(root, 'bin', 'pdspec.js'), 'conform', '-', ...args], { cwd: root });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((done) => child.on('close', done));
    const timer = setTimeout(() => child.kill(), 20_000);
    child.stdin.write(`${lines.join('\n')}\n`);
    const status = await exited;
    clearTimeout(timer);
    child.stdin.destroy();
    return { status, stderr };
  }

  it('conform - judges an idle line as it comes, without waiting for the end of input', async () => {
    const { status, stderr } = await openStream([], [header(), ...served('r1', [0], 0, 1), ev({ t: 2, ev: 'idle' })]);
    expect(status).toBe(1);
    expect(stderr).toContain('(stdin):9: violation of EndedRequestsRelease');
  });

  it('conform - reports a missed deadline at the tick that passes it, on an open stream', async () => {
    const { status, stderr } = await openStream(['--release-within', '5'], [header(), ...served('r1', [0], 0, 1), ev({ t: 4, ev: 'tick' }), ev({ t: 7, ev: 'tick' })]);
    expect(status).toBe(1);
    expect(stderr).toContain('(stdin):10: violation of ReleaseWithin');
  });

  it('conform - accepts an idle at rest and reads on to the end', () => {
    const r = pdspec(['-', '--quiescent', '--release-within', '5'], [header(), ...served('r1', [0], 0, 1), ev({ t: 1, ev: 'free', req: 'r1', blocks: [0] }), ev({ t: 2, ev: 'idle' }), ev({ t: 9, ev: 'tick' })].join('\n'));
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^\(stdin\): conforms — 10 events, 1 request\(s\), 1 ended, quiescent/);
  });
});

describe('the engine\'s Z7 switch under a release deadline', () => {
  // As in test/engine-faults.test.ts: a fills the decode pool, b (prefilled) waits for decode-side blocks and is rejected.
  const scenario = {
    mode: 'disaggregated' as const,
    workload: [
      { id: 'a', arrival: 0, prompt: 40, output: 20 },
      { id: 'b', arrival: 0.001, prompt: 28, output: 2 },
      { id: 'c', arrival: 0.5, prompt: 8, output: 2 },
    ],
    blocks: 16,
    blockSize: 4,
    decodeAdmitTimeout: 0.05,
  };

  it('the fault-free engine frees at the very time a release begins; with rejectionNotTold the leak is ReleaseWithin at the first event past the deadline', () => {
    const clean = tracedRun(scenario);
    expect(checkText(clean.text, { quiescent: true, releaseWithin: 0 }).verdict).toBe('conforms');
    const faulty = tracedRun({ ...scenario, faults: { rejectionNotTold: true } });
    const v = violation(checkText(faulty.text, { releaseWithin: 0.01 }));
    expect(v.finding).toMatchObject({ rule: 'ReleaseWithin', kind: 'deadline' });
    expect(v.finding.message).toMatch(/^request b aborted at t=/);
    const abort = faulty.sink.events.find((e) => e.ev === 'abort' && e.req === 'b')!;
    const at = faulty.sink.events[v.finding.line - 2];
    expect(at.t).toBeGreaterThan(abort.t + 0.01);
    // Every event before it is within the deadline.
    expect(faulty.sink.events[v.finding.line - 3].t).toBeLessThanOrEqual(abort.t + 0.01);
  });
});
