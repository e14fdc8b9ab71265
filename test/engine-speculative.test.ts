// Speculative decoding in the engine, on the cost model (engine/sched/speculation.ts): the n-gram proposer
// and greedy acceptance as functions; the options and what is refused; the oracle drafter in every mode,
// whose runs write trace v3 (every item names its first position, a verify its drafts and the ids it
// writes, its end the accepted count) that conforms, give every request the tokens of plain greedy decoding
// and take fewer steps the better the drafts; the engine's observable state agrees with the spec after
// every step; and with speculative decoding off the traces are what they were (v1, v2, no v3 field).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Engine, EngineConfigError, MODES, type EngineOptions, type Mode } from '../engine/engine.ts';
import { acceptedPrefix, ngramProposal } from '../engine/sched/speculation.ts';
import { MemorySink } from '../engine/trace-sink.ts';
import type { WorkloadRequest } from '../engine/workloads/types.ts';
import { checkText, TraceChecker } from '../spec/checker.ts';
import type { BatchItem, TraceEvent } from '../spec/trace-format.ts';
import { cyclingPolicy, explain, PROFILE, smallWorkload, tracedRun } from './engine-fixtures.ts';

describe('the n-gram proposer (vLLM NgramProposer)', () => {
  it("vLLM's docstring example: [1, 2, 3, 4, 2, 3], n-grams 2..3, k 4 proposes [4, 2, 3]", () => {
    expect(ngramProposal([1, 2, 3, 4, 2, 3], 2, 3, 4)).toEqual([4, 2, 3]);
  });

  it('the longest suffix n-gram first, at its earliest occurrence; the proposal stops at k and at the end of the tokens', () => {
    // Suffix [7, 8, 9] occurs at 1 (then 10 11 follow); the shorter [8, 9] occurs earlier, at 0, but longer wins.
    expect(ngramProposal([8, 9, 5, 7, 8, 9, 10, 11, 7, 8, 9], 1, 3, 2)).toEqual([10, 11]);
    expect(ngramProposal([8, 9, 5, 7, 8, 9, 10, 11, 7, 8, 9], 1, 2, 2)).toEqual([5, 7]);
    // A run of one token: the earliest occurrence overlaps the suffix, and proposes up to the end.
    expect(ngramProposal([4, 6, 6, 6, 6], 1, 3, 5)).toEqual([6]);
    expect(ngramProposal([1, 2, 3], 1, 3, 3)).toEqual([]);
    expect(ngramProposal([1, 2, 1], 2, 3, 3)).toEqual([]);
    expect(ngramProposal([1, 2, 1], 1, 3, 3)).toEqual([2, 1]);
    expect(ngramProposal([5], 1, 3, 3)).toEqual([]);
    expect(ngramProposal([1, 2, 1], 1, 3, 0)).toEqual([]);
  });

  it('greedy acceptance: drafts while each equals the argmax after the position before it', () => {
    expect(acceptedPrefix([4, 5, 6], [4, 5, 6, 9])).toBe(3);
    expect(acceptedPrefix([4, 5, 6], [4, 7, 6, 9])).toBe(1);
    expect(acceptedPrefix([4, 5, 6], [1, 5, 6, 9])).toBe(0);
    expect(acceptedPrefix([], [3])).toBe(0);
  });
});

const base = (workload: WorkloadRequest[], extra: Partial<EngineOptions> = {}): EngineOptions => ({ mode: 'unified', workload, profile: PROFILE, blocks: 64, blockSize: 4, ...extra });

describe('the options', () => {
  const one: WorkloadRequest[] = [{ id: 'a', arrival: 0, prompt: 4, output: 4 }];
  it.each([
    [{ drafter: 'eagle' }, /speculative drafter must be ngram or oracle, got "eagle"/],
    [{ drafter: 'oracle' }, /speculative acceptance must be a probability in \[0, 1\], got undefined/],
    [{ drafter: 'oracle', acceptance: 1.5 }, /acceptance must be a probability in \[0, 1\], got 1.5/],
    [{ drafter: 'ngram', k: 0 }, /speculative k \(drafts per verify\) must be an integer in 1\.\.64, got 0/],
    [{ drafter: 'ngram', min: 3, max: 2 }, /max \(longest n-gram, ≥ min 3\) must be an integer in 3\.\.1024, got 2/],
    [{ drafter: 'ngram', acceptance: 0.5 }, /speculative option 'acceptance' does not apply to the ngram drafter \(its options: k, min, max, freeRejected\)/],
    [{ drafter: 'oracle', acceptance: 0.5, min: 2 }, /option 'min' does not apply to the oracle drafter/],
  ])('refuses %j in one line', (speculative, message) => {
    expect(() => new Engine(base(one, { speculative: speculative as never }))).toThrow(EngineConfigError);
    expect(() => new Engine(base(one, { speculative: speculative as never }))).toThrow(message);
  });

  it('refuses asynchronous scheduling, and the oracle with a model executor', () => {
    expect(() => new Engine(base(one, { speculative: { drafter: 'ngram' }, asyncScheduling: true }))).toThrow(/does not run with asynchronous scheduling/);
    const model = { name: 'cpu', wantsTokenHistory: true, execute: () => ({ duration: 1, tokens: [] }), transferTime: () => 0, workerInitTime: () => 0 };
    expect(() => new Engine(base(one, { speculative: { drafter: 'oracle', acceptance: 1 }, executor: model }))).toThrow(/with a model executor use the ngram drafter/);
  });

  it('off (absent or null): the trace is v1, or v2 with prefix caching, and its items carry no v3 field', () => {
    for (const extra of [{}, { speculative: null }, { prefixCaching: true }]) {
      const run = tracedRun(base(smallWorkload(1, 10), extra));
      expect(run.verdict.verdict).toBe('conforms');
      expect(run.result.header.version).toBe('prefixCaching' in extra ? 2 : 1);
      expect(run.result.speculative).toBeNull();
      expect(run.text).not.toMatch(/"from"|"draft"|"ids"|"accepted"/);
    }
  });
});

/** The batch items and step ends of a trace, for what the v3 fields say. */
function items(events: readonly TraceEvent[]): BatchItem[] {
  return events.flatMap((e) => (e.ev === 'step_begin' ? e.batch : []));
}

function outputsOf(options: EngineOptions): Map<string, number[]> {
  const engine = new Engine({ ...options, recordOutputs: true });
  engine.runToCompletion();
  return engine.outputs();
}

describe('the oracle drafter on the cost model', () => {
  const workload = smallWorkload(3, 24, { prompt: 'uniform:1:60', output: 'uniform:1:40', rate: 50, abortFraction: 0.15, abortAfter: 0.2 });
  const setups = (mode: Mode): EngineOptions[] =>
    [0, 0.5, 1].map((acceptance) =>
      base(workload, {
        mode,
        blocks: 48,
        unifiedChunk: 16,
        prefillChunk: 32,
        speculative: { drafter: 'oracle', k: 3, acceptance },
        policy: mode === 'semi-pd' || mode === 'nexus' ? cyclingPolicy(mode, 0.05) : null,
      }),
    );

  it.each(MODES)('%s: trace v3 conforms (quiescent), every request gets its plain greedy tokens, and good drafts save steps', (mode) => {
    const plain = outputsOf({ ...setups(mode)[0], speculative: null });
    const steps: number[] = [];
    let preemptions = 0;
    for (const options of setups(mode)) {
      const run = tracedRun(options);
      const acceptance = (options.speculative as { acceptance: number }).acceptance;
      expect(run.verdict.verdict, `acceptance ${acceptance}\n${explain(run.verdict)}`).toBe('conforms');
      expect(run.result.header.version).toBe(3);
      expect(outputsOf(options), `acceptance ${acceptance}`).toEqual(plain);
      const its = items(run.sink.events);
      expect(its.every((it) => typeof it.from === 'number')).toBe(true);
      const verifies = its.filter((it) => it.draft);
      const s = run.result.speculative!;
      expect(verifies.length).toBe(s.verifies);
      expect(verifies.every((it) => it.tokens === it.draft! + 1 && it.ids!.length === it.tokens)).toBe(true);
      expect(s.drafted).toBe(verifies.reduce((a, it) => a + it.draft!, 0));
      if (acceptance === 0) expect(s.accepted).toBe(0);
      if (acceptance === 1) expect(s.accepted).toBe(s.drafted);
      if (acceptance === 0.5) expect(s.accepted / s.drafted).toBeGreaterThan(0.2);
      steps.push(run.sink.events.filter((e) => e.ev === 'step_begin').length);
      preemptions += run.result.metrics.preemptions;
    }
    // The more drafts are right, the fewer steps (acceptance 0, 0.5, 1).
    expect(steps[1]).toBeLessThan(steps[0]);
    expect(steps[2]).toBeLessThan(steps[1]);
    expect(preemptions, 'the small pool preempts').toBeGreaterThan(0);
  });

  it('a verify owes its accepted drafts, then one more token; the next step starts at the accepted length, and rejected positions keep their blocks', () => {
    const run = tracedRun(base([{ id: 'a', arrival: 0, prompt: 5, output: 30 }], { blockSize: 2, speculative: { drafter: 'oracle', k: 3, acceptance: 0.5 } }));
    expect(run.verdict.verdict, explain(run.verdict)).toBe('conforms');
    const events = run.sink.events;
    let held = 0;
    let keptPastAccepted = false;
    let checked = 0;
    for (let i = 0; i < events.length; i++) {
      const e = events[i];
      if (e.ev === 'alloc') held += e.blocks.length;
      if (e.ev !== 'step_end' || !e.accepted) continue;
      const begin = events.slice(0, i).reverse().find((x) => x.ev === 'step_begin')! as Extract<TraceEvent, { ev: 'step_begin' }>;
      const item = begin.batch[0];
      const a = e.accepted.a;
      const tokens = events.slice(i + 1, i + 2 + a) as Extract<TraceEvent, { ev: 'token' }>[];
      expect(tokens.every((t) => t.ev === 'token')).toBe(true);
      expect(tokens.slice(0, a).map((t) => t.token)).toEqual(item.ids!.slice(1, 1 + a));
      const next = events.slice(i + 2 + a).find((x) => x.ev === 'step_begin') as Extract<TraceEvent, { ev: 'step_begin' }> | undefined;
      if (next) {
        expect(next.batch[0].from).toBe(item.from! + 1 + a);
        expect(next.batch[0].ids![0]).toBe(tokens[a].token);
      }
      // Blocks were allocated for every draft position; rolled-back ones stay with the request.
      if (Math.ceil((item.from! + 1 + a) / 2) < held) keptPastAccepted = true;
      checked++;
    }
    expect(checked).toBeGreaterThan(5);
    expect(keptPastAccepted).toBe(true);
  });

  it('no draft past the output limit: a verify never owes more tokens than the request has left', () => {
    const run = tracedRun(base(smallWorkload(6, 30, { output: 'uniform:1:8' }), { speculative: { drafter: 'oracle', k: 4, acceptance: 1 } }));
    expect(run.verdict.verdict, explain(run.verdict)).toBe('conforms');
    expect(run.result.metrics.requests.finished).toBe(30);
    for (const r of run.result.records) expect(r.generated).toBe(r.maxTokens);
  });

  it('with shared KV (v3 includes v2): prefix hits, forks with copy-on-write, and verifies in one conforming trace', () => {
    const shared = smallWorkload(8, 20, { rate: 60, prompt: 'uniform:8:40', output: 'uniform:2:30' }).map((r, i) => ({
      ...r,
      ...(i % 3 === 0 ? { prefix: { id: `sys${i % 2}`, length: Math.min(r.prompt, 12) } } : {}),
      ...(i % 4 === 1 ? { n: 2 } : {}),
    }));
    for (const mode of MODES) {
      const options = base(shared, { mode, blocks: 60, prefixCaching: true, speculative: { drafter: 'oracle', k: 2, acceptance: 0.7 } });
      const run = tracedRun(options);
      expect(run.verdict.verdict, `${mode}\n${explain(run.verdict)}`).toBe('conforms');
      expect(run.result.header).toMatchObject({ version: 3, prefixCache: 'hash' });
      expect(run.result.sharing.forks, mode).toBeGreaterThan(0);
      expect(run.result.sharing.hits, mode).toBeGreaterThan(0);
      expect(run.result.speculative!.accepted, mode).toBeGreaterThan(0);
      expect(outputsOf(options), mode).toEqual(outputsOf({ ...options, speculative: null }));
    }
  });

  it.each(MODES)('%s: observe() and the engine’s books agree with the spec after every step (verifies, aborts, preemption, resizes, shared KV)', (mode) => {
    const workload = smallWorkload(4, 24, { rate: 50, abortFraction: 0.2, abortAfter: 0.15 }).map((r, i) => ({
      ...r,
      ...(i % 4 === 0 ? { n: 2 } : {}),
      ...(i % 3 === 0 ? { prefix: { id: `p${i % 2}`, length: Math.min(r.prompt, 12) } } : {}),
    }));
    const engine = new Engine({
      ...base(workload, { mode, blocks: 40, prefillChunk: 64, prefixCaching: true, speculative: { drafter: 'oracle', k: 3, acceptance: 0.6 } }),
      policy: mode === 'semi-pd' || mode === 'nexus' ? cyclingPolicy(mode, 0.04) : null,
    });
    const checker = new TraceChecker({ quiescent: true, system: { retireEnded: false } });
    checker.feed(JSON.stringify(engine.header));
    let verifies = 0;
    while (!engine.done) {
      for (const ev of engine.stepOnce()) {
        checker.feed(JSON.stringify(ev));
        if (ev.ev === 'step_end' && ev.accepted) verifies++;
      }
      expect(checker.done, 'the spec refused an event').toBe(false);
      expect(engine.checkBookkeeping()).toEqual([]);
      const sys = checker.sys!;
      const view = engine.observe();
      sys.requestIds.forEach((id, i) => {
        const spec = sys.requests[i];
        const mine = view.requests[id];
        expect({ id, state: mine.state, generated: mine.generated, computed: mine.computed }).toEqual({ id, state: spec.value, generated: spec.context.generated, computed: spec.context.computed });
      });
      expect(view.sharing!.holders).toEqual(sys.blocks.map((b) => b.context.owners));
    }
    const verdict = checker.end();
    expect(verdict.verdict, explain(verdict)).toBe('conforms');
    expect(verifies).toBeGreaterThan(10);
  });

  it('the same seed gives the same trace; another seed draws other drafts, and the same tokens', () => {
    const options = (seed: number) => base(smallWorkload(5, 16), { seed, speculative: { drafter: 'oracle', k: 3, acceptance: 0.5 } });
    const trace = (seed: number) => {
      const sink = new MemorySink();
      new Engine({ ...options(seed), trace: sink }).runToCompletion();
      return sink.text();
    };
    expect(trace(1)).toBe(trace(1));
    expect(trace(1)).not.toBe(trace(2));
    const tokens = (seed: number) => [...outputsOf(options(seed)).values()];
    expect(outputsOf({ ...options(1), speculative: null })).toEqual(outputsOf(options(1)));
    expect(tokens(2)).toEqual([...outputsOf({ ...options(2), speculative: null }).values()]);
  });
});

describe('pdspec run --speculative on the cost model', () => {
  const root = join(import.meta.dirname, '..');
  const pdspec = (...args: string[]) => spawnSync(process.execPath, [join(root, 'bin', 'pdspec.js'), ...args], { cwd: root, encoding: 'utf8', env: { ...process.env, CI: 'true' } });
  const dir = mkdtempSync(join(tmpdir(), 'pdspec-speculative-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const run = ['run', '--workload', 'poisson', '--requests', '40', '--mode', 'unified', '--seed', '4'];

  it('the oracle: a v3 trace that conforms, the summary line, and the plain run’s tokens', () => {
    const trace = join(dir, 'oracle.jsonl');
    const r = pdspec(...run, '--speculative', 'oracle', '--acceptance', '0.7', '--draft-k', '4', '--outputs', '--trace-out', trace);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/speculative decoding \(oracle drafter, k 4, acceptance 0\.7\): \d+ verify step\(s\) with \d+ verify item\(s\), \d+ draft token\(s\) proposed, \d+ accepted \(\d+\.\d %\), \d+ rolled back; \d+ plain decode item\(s\)/);
    const text = readFileSync(trace, 'utf8');
    expect(JSON.parse(text.split('\n', 1)[0]).version).toBe(3);
    const verdict = checkText(text, { quiescent: true });
    expect(verdict.verdict, explain(verdict)).toBe('conforms');
    const plain = pdspec(...run, '--outputs');
    const ids = (out: string) => out.slice(out.indexOf('outputs (token ids):'));
    expect(ids(r.stdout)).toEqual(ids(plain.stdout));
    expect(plain.stdout).not.toMatch(/speculative decoding/);
  });

  it.each([
    [['--speculative', 'eagle'], /--speculative must be one of ngram, oracle, got 'eagle'/],
    [['--acceptance', '0.5'], /--acceptance needs --speculative ngram\|oracle/],
    [['--draft-k', '2'], /--draft-k needs --speculative/],
    [['--speculative', 'oracle'], /--speculative oracle needs --acceptance P/],
    [['--speculative', 'oracle', '--acceptance', '2'], /--acceptance must be a probability in \[0, 1\], got '2'/],
    [['--speculative', 'ngram', '--acceptance', '0.5'], /--acceptance is the oracle drafter’s/],
    [['--speculative', 'ngram', '--ngram', '3:2'], /--ngram must be MIN:MAX with 1 ≤ MIN ≤ MAX/],
    [['--speculative', 'ngram', '--draft-k', '0'], /--draft-k/],
    [['--speculative', 'ngram', '--async-scheduling'], /does not run with asynchronous scheduling/],
    [['--speculative', 'oracle', '--acceptance', '1', '--executor', 'cpu'], /with a model executor use the ngram drafter/],
  ])('bad input %j: exit 2 with one line', (args, message) => {
    const r = pdspec(...run, ...(args as string[]));
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(message as RegExp);
  });
});
