// Policies in any language (`--policy exec:COMMAND`, engine/policies/exec.ts, docs/policy-protocol.md): the
// Python example of semi-PD's Algorithm 1 decides exactly as the built-in does and is checked by pdspec;
// every way a command can break the protocol — a crash, a hang, a malformed line, a wrong version, an
// invalid decision — is a fault naming the observation (exit 2 on the command line), never a verdict.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { EXEC_PROTOCOL_VERSION, loadPolicy, loadPolicyInstances } from '../engine/policies/index.ts';
import { latencyModel } from '../engine/profile.ts';
import { faultOf, loadError } from './policy-faults.ts';
import { observation, percentiles, PROFILE } from './policy-observation.ts';

const root = join(import.meta.dirname, '..');
const pdspec = (...args: string[]) => spawnSync(process.execPath, [join(root, 'bin', 'pdspec.js'), ...args], { cwd: root, encoding: 'utf8', timeout: 540_000 });
const scratch = mkdtempSync(join(tmpdir(), 'pdspec-exec-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const PYTHON = spawnSync('python3', ['--version'], { encoding: 'utf8' });
const HAS_PYTHON = PYTHON.status === 0;
const SEMI_PD_PY = `exec:python3 ${join(root, 'examples/policies/semi_pd.py')}`;
if (!HAS_PYTHON) console.warn('policy-exec: the Python example is not checked: python3 is not installed (.ci/run installs it)');

/**
 * A policy command in plain Node (so the failure modes are tested wherever pdspec runs): it speaks the protocol
 * correctly, a 50/50 → prefill-heavy policy, until MODE says otherwise at the observation whose TTFT p90 is 7 s
 * (or at the AT-th observation: `fixture.mjs MODE AT`).
 */
const FIXTURE = join(scratch, 'fixture.mjs');
writeFileSync(
  FIXTURE,
  `import { createInterface } from 'node:readline';
const mode = process.argv[2] ?? 'good';
const at = Number(process.argv[3] ?? 0);
let seen = 0;
const out = (m) => process.stdout.write(JSON.stringify(m) + '\\n');
const lines = createInterface({ input: process.stdin });
let started = false;
lines.on('line', (line) => {
  const m = JSON.parse(line);
  if (!started) {
    started = true;
    if (mode === 'silent-exit') process.exit(3);
    if (mode === 'refuse') return out({ type: 'error', message: 'unknown option ' + Object.keys(m.options)[0] });
    const version = mode === 'version' ? 2 : m.version;
    return out({ type: 'hello', protocol: 'pdspec-policy', version, name: 'fixture-' + mode, interval: 2, instances: true });
  }
  if (m.type !== 'observe') return;
  seen += 1;
  const trigger = m.observation.ttft.p90 === 7 || seen === at;
  if (trigger && mode === 'crash') process.exit(9);
  if (trigger && mode === 'hang') { for (;;) {} }
  if (trigger && mode === 'malformed') return process.stdout.write('split please\\n');
  if (trigger && mode === 'raise') return out({ type: 'error', seq: m.seq, message: 'ZeroDivisionError: division by zero' });
  if (trigger && mode === 'range') return out({ type: 'decision', seq: m.seq, decision: { split: { prefill: 140, decode: 40 } } });
  if (trigger && mode === 'seq') return out({ type: 'decision', seq: m.seq + 1, decision: {} });
  if (trigger && mode === 'nan') return process.stdout.write('{"type":"decision","seq":' + m.seq + ',"decision":{"split":{"prefill":NaN,"decode":50}}}\\n');
  if (trigger && mode === 'model') {
    out({ type: 'model', seq: m.seq, fn: 'prefillTime', args: [100, 1024] });
    lines.once('line', (reply) => out({ type: 'decision', seq: m.seq, decision: { split: { prefill: Math.min(100, 1 + Math.round(JSON.parse(reply).value * 1000)), decode: 50 } } }));
    return;
  }
  if (mode === 'noisy') process.stderr.write('thinking about ' + m.seq + '\\n');
  const heavy = m.observation.ttft.p90 > m.observation.slo.ttft;
  out({ type: 'decision', seq: m.seq, decision: heavy ? { split: { prefill: 70, decode: 30 } } : {} });
});
`,
);
const fixture = (mode: string) => `exec:node ${FIXTURE} ${mode}`;
const TRIGGER = observation({ time: 42, ttft: percentiles(7) });

describe('a command speaking the protocol', () => {
  it('loads isolated, answers observations, and its decisions are validated', async () => {
    const handle = await loadPolicy(fixture('good'), { profile: PROFILE });
    try {
      expect(handle).toMatchObject({ name: 'fixture-good', isolated: true, interval: 2, claimsMonotone: false, source: fixture('good') });
      expect(handle.decide(observation())).toEqual({});
      expect(handle.decide(observation({ ttft: percentiles(3) }))).toEqual({ split: { prefill: 70, decode: 30 } });
      // An observation with NaN percentiles (an empty window) travels as null and is answered.
      expect(handle.decide(observation({ ttft: percentiles(Number.NaN, 0) }))).toEqual({});
      expect(handle.stats().decisions).toBe(3);
    } finally {
      await handle.close();
    }
  });

  it('answers latency-model queries from the profile during a decision', async () => {
    const handle = await loadPolicy(fixture('model'), { profile: PROFILE });
    try {
      const expected = Math.min(100, 1 + Math.round(latencyModel(PROFILE).prefillTime(100, 1024) * 1000));
      expect(handle.decide(TRIGGER)).toEqual({ split: { prefill: expected, decode: 50 } });
    } finally {
      await handle.close();
    }
  });

  it('makes fresh instances in the same process when it says it keeps instances', async () => {
    const instances = await loadPolicyInstances(fixture('good'), { profile: PROFILE });
    try {
      expect(instances.fresh).not.toBeNull();
      const a = instances.fresh!();
      const b = instances.fresh!();
      expect(a.decide(observation({ ttft: percentiles(3) }))).toEqual({ split: { prefill: 70, decode: 30 } });
      expect(b.decide(observation())).toEqual({});
    } finally {
      await instances.close();
    }
  });

  it('pdspec explore --policy exec:… searches with its splits and exits when done', () => {
    const t0 = performance.now();
    const r = spawnSync(process.execPath, [join(root, 'bin', 'pdspec.js'), 'explore', '--policy', fixture('good'), '--requests', '2', '--blocks', '4', '--json'], { cwd: root, encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ verdict: 'verified' });
    expect(performance.now() - t0).toBeLessThan(30_000);
  });

  it('shows what the command writes on standard error marked as the policy\'s, never on pdspec\'s output', () => {
    const r = pdspec('monotonicity', 'M2', fixture('noisy'), '{"numRuns":5,"clauses":["deterministic"]}');
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/\[policy output\] thinking about \d+/);
    expect(r.stdout).not.toContain('thinking about');
  });
});

describe('docs/policy-protocol.schema.json', () => {
  it('every line both ways of a recorded session is valid against it, and broken lines are not', async () => {
    const schema = JSON.parse(readFileSync(join(root, 'docs', 'policy-protocol.schema.json'), 'utf8'));
    const ajv = new Ajv2020({ allErrors: true, strict: false });
    ajv.addSchema(schema);
    const toPolicy = ajv.getSchema('urn:pdspec:policy-protocol#/$defs/toPolicy')!;
    const fromPolicy = ajv.getSchema('urn:pdspec:policy-protocol#/$defs/fromPolicy')!;
    const inLog = join(scratch, 'in.jsonl');
    const outLog = join(scratch, 'out.jsonl');
    // The session recorded on both pipes by tee, around the fixture that asks the model before deciding.
    const handle = await loadPolicy(`exec:tee ${inLog} | node ${FIXTURE} model 3 | tee ${outLog}`, { profile: PROFILE });
    const instances = await loadPolicyInstances(fixture('good'), { profile: PROFILE });
    try {
      handle.decide(observation());
      handle.decide(observation({ ttft: percentiles(Number.NaN, 0), arrivalRate: Number.NaN }));
      handle.decide(observation({ ttft: percentiles(3) }));
      handle.decide(observation({ shareRule: 'exact', split: { prefill: 50, decode: 50 } }));
    } finally {
      await handle.close();
      await instances.close();
    }
    const lines = (file: string) => readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const sent = lines(inLog);
    const received = lines(outLog);
    expect(sent.map((m) => m.type)).toEqual(['hello', 'observe', 'observe', 'observe', 'model', 'observe']);
    expect(received.map((m) => m.type)).toEqual(['hello', 'decision', 'decision', 'model', 'decision', 'decision']);
    for (const m of sent) expect(toPolicy(m), `${JSON.stringify(m)}: ${ajv.errorsText(toPolicy.errors)}`).toBe(true);
    for (const m of received) expect(fromPolicy(m), `${JSON.stringify(m)}: ${ajv.errorsText(fromPolicy.errors)}`).toBe(true);
    expect(sent[2].observation.ttft.p90).toBeNull();
    for (const bad of [
      { type: 'hello', protocol: 'pdspec-policy', version: 1 },
      { type: 'decision', seq: 0, decision: {} },
      { type: 'decision', seq: 1, decision: { split: { prefill: 140, decode: 40 } } },
      { type: 'decision', seq: 1, decision: { splits: {} } },
      { type: 'model', seq: 1, fn: 'prefillTime', args: [100] },
      { type: 'model', seq: 1, fn: 'queueTime', args: [100, 1] },
    ])
      expect(fromPolicy(bad), JSON.stringify(bad)).toBe(false);
  });
});

describe('every failure of a command is a fault naming the observation', () => {
  const cases: [mode: string, kind: string, detail: RegExp][] = [
    ['crash', 'unavailable', /^its process exited \(code 9\) before answering this observation$/],
    ['malformed', 'malformed', /malformed line from the policy's process \(not JSON.*\): split please/],
    ['nan', 'malformed', /not JSON/],
    ['raise', 'threw', /decide raised: ZeroDivisionError: division by zero/],
    ['range', 'out-of-range', /split\.prefill = 140/],
    ['seq', 'malformed', /expected a reply to observation seq \d+, got seq \d+/],
  ];
  for (const [mode, kind, detail] of cases)
    it(`${mode}: a '${kind}' fault at t=42`, async () => {
      const handle = await loadPolicy(fixture(mode), { profile: PROFILE });
      try {
        expect(handle.decide(observation())).toEqual({});
        const fault = faultOf(handle, TRIGGER);
        expect(fault.kind).toBe(kind);
        expect(fault.detail).toMatch(detail);
        expect(fault.message).toContain(`policy 'fixture-${mode}' fault (${kind}) at t=42.000 s`);
        // The process is of no more use after a protocol break or a crash: later decisions say so.
        if (mode !== 'raise' && mode !== 'range') expect(faultOf(handle, observation()).kind).toBe('unavailable');
      } finally {
        await handle.close();
      }
    });

  it('hang: stopped at the time budget, a timeout fault naming the observation, the process group killed', async () => {
    const handle = await loadPolicy(fixture('hang'), { profile: PROFILE, timeBudgetMs: 300 });
    const t0 = performance.now();
    const fault = faultOf(handle, TRIGGER);
    expect(performance.now() - t0).toBeLessThan(5000);
    expect(fault.kind).toBe('timeout');
    expect(fault.message).toContain('at t=42.000 s');
    await handle.close();
    // No process of the fixture is left spinning.
    await new Promise((r) => setTimeout(r, 200));
    const left = spawnSync('pgrep', ['-f', `${FIXTURE} hang`], { encoding: 'utf8' });
    if (left.error === undefined) expect(left.stdout.trim()).toBe('');
  });

  it('load errors are one line naming the policy: wrong version, refusal, an exit before the handshake, no command', async () => {
    expect((await loadError(fixture('version'))).message).toBe(
      `cannot load policy '${fixture('version')}': it speaks protocol version 2; this pdspec speaks version ${EXEC_PROTOCOL_VERSION}`,
    );
    expect((await loadError(fixture('refuse'), { policyOptions: { colour: 'red' } })).message).toContain('it refused to start: unknown option colour');
    expect((await loadError(fixture('silent-exit'))).message).toContain('its process exited (code 3) before the handshake');
    expect((await loadError('exec:')).message).toContain('exec: needs a command');
    expect((await loadError('exec:no-such-command-pdspec-test')).message).toMatch(/its process exited \(code 127\) before the handshake/);
    expect((await loadError(fixture('good'), { isolate: false })).message).toContain('a command runs only isolated');
  });

  it('on the command line: exit 2, one line naming the observation, no stack trace', () => {
    for (const [mode, pattern] of [
      ['crash 3', /^pdspec monotonicity: the policy faulted: policy 'fixture-crash' fault \(unavailable\) at t=[\d.]+ s, split \d+\/\d+ .*: its process exited \(code 9\) before answering this observation$/m],
      // M2 shrinks a failing case on fresh instances of the same process: the fault it ends on may be a later
      // observation's 'unavailable', which still names the broken line.
      ['malformed 3', /^pdspec monotonicity: the policy faulted: policy 'fixture-malformed' fault \((malformed|unavailable)\) at t=[\d.]+ s, split .*malformed line from the policy's process \(not JSON.*\): split please$/m],
      // A hang is stopped by whichever watch sees it first: the policy's own time budget or the check's guard.
      ['hang 3', /^pdspec monotonicity: (the policy faulted: )?policy 'fixture-hang' fault \((timeout|unavailable)\) at t=[\d.]+ s, split .*(time budget|did not return within 1000 ms)/m],
      ['version', /^pdspec monotonicity: cannot load policy 'exec:node .*fixture\.mjs version': it speaks protocol version 2; this pdspec speaks version 1$/m],
    ] as const) {
      const r = pdspec('monotonicity', 'M2', fixture(mode), '{"numRuns":20}');
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr).toMatch(pattern);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
  });
});

describe.skipIf(!HAS_PYTHON)('the Python example: semi-PD Algorithm 1 (examples/policies/semi_pd.py)', () => {
  it('decides exactly as the built-in semi-pd on the same observations, history included', async () => {
    const py = await loadPolicyInstances(SEMI_PD_PY, { profile: PROFILE });
    const js = await loadPolicyInstances('semi-pd', { profile: PROFILE });
    try {
      expect(py.handle).toMatchObject({ name: 'semi-pd-py', interval: 5, claimsMonotone: false });
      const window = fc.record({
        ttft: fc.oneof(fc.double({ min: 0.01, max: 10, noNaN: true }), fc.constant(Number.NaN)),
        tpot: fc.oneof(fc.double({ min: 0.001, max: 1, noNaN: true }), fc.constant(Number.NaN)),
        rate: fc.double({ min: 0, max: 30, noNaN: true }),
        prompts: fc.array(fc.integer({ min: 1, max: 8192 }), { maxLength: 6 }),
        batch: fc.integer({ min: 0, max: 64 }),
      });
      fc.assert(
        fc.property(fc.constantFrom('oversubscribe', 'exact'), fc.array(window, { minLength: 1, maxLength: 6 }), (rule, windows) => {
          const a = py.fresh!();
          const b = js.fresh!();
          let split = rule === 'exact' ? { prefill: 50, decode: 50 } : { prefill: 80, decode: 100 };
          windows.forEach((w, i) => {
            const obs = observation({
              time: 5 * (i + 1),
              shareRule: rule,
              split,
              arrivalRate: w.rate,
              prefillQueue: { requests: w.prompts.length, tokens: w.prompts.reduce((s, p) => s + p, 0), promptLengths: w.prompts },
              decodeBatch: { requests: w.batch, contextTokens: w.batch * 900 },
              ttft: Number.isNaN(w.ttft) ? percentiles(Number.NaN, 0) : percentiles(w.ttft),
              tpot: Number.isNaN(w.tpot) ? percentiles(Number.NaN, 0) : percentiles(w.tpot),
            });
            const mine = a.decide(obs);
            expect(mine).toEqual(b.decide(obs));
            split = mine.split ?? split;
          });
          void a.close();
          void b.close();
        }),
        { seed: 17, numRuns: 60 },
      );
    } finally {
      await py.close();
      await js.close();
    }
  });

  it('pdspec monotonicity M2 checks it: deterministic, and the same finding as the built-in, replayable', () => {
    const py = pdspec('monotonicity', 'M2', SEMI_PD_PY, '--json');
    const js = pdspec('monotonicity', 'M2', 'semi-pd', '--json');
    expect(py.stderr).not.toMatch(/\n\s+at /);
    expect(py.status).toBe(js.status);
    const [p, j] = [JSON.parse(py.stdout), JSON.parse(js.stdout)];
    expect(p.clauses.find((c: { clause: string }) => c.clause === 'deterministic').holds).toBe(true);
    expect(p.clauses.map((c: { holds: boolean }) => c.holds)).toEqual(j.clauses.map((c: { holds: boolean }) => c.holds));
    expect(p.counterexample?.path).toBe(j.counterexample?.path);
    expect(p.replay).toContain(`'${SEMI_PD_PY}'`);
    // The printed replay, run as printed, finds the same counterexample again.
    if (p.counterexample) {
      const replay = spawnSync('bash', ['-c', `${p.replay.replace(/^npx pdspec /, `"${process.execPath}" bin/pdspec.js `)} --json`], { cwd: root, encoding: 'utf8' });
      const again = JSON.parse(replay.stdout);
      expect(again.counterexample.summary).toBe(p.counterexample.summary);
      expect(again.counterexample.lines).toEqual(p.counterexample.lines);
    }
  });

  it('pdspec check --policy exec:… verifies it end to end: explore, campaign, M1–M3, sweeps', { timeout: 600_000 }, () => {
    const report = join(scratch, 'check-report');
    const r = pdspec('check', '--policy', SEMI_PD_PY, '--budget', '10', '--json', '--report', report);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.status, r.stderr).toBe(0);
    const data = JSON.parse(r.stdout);
    expect(data.verdict).toBe('holds');
    const [policy] = data.policies;
    expect(policy).toMatchObject({ name: 'semi-pd-py', source: SEMI_PD_PY });
    expect(policy.checks.map((c: { check: string }) => c.check)).toEqual(['explore', 'campaign', 'M1', 'M2', 'M3', 'sweeps']);
    // M2's prefill clause fails for semi-PD's Algorithm 1 too (a finding, not claimed); determinism holds.
    expect(policy.checks.find((c: { check: string }) => c.check === 'M2').detail).toContain('decisions are deterministic');
    expect(policy.checks.filter((c: { status: string }) => c.status === 'fail' || c.status === 'error')).toEqual([]);
  });

  it('an unknown option is refused at the handshake: exit 2, one line', async () => {
    const err = await loadError(SEMI_PD_PY, { policyOptions: { stepp: 2 } });
    expect(err.message).toContain("it refused to start: unknown option 'stepp' for policy 'semi-pd-py'");
  });
});
