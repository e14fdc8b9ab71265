// The explorer: the reference spec verifies clean at the default bound, every variant is refuted with a
// shortest counterexample that `pdspec conform` rejects with the same rule, symmetry reduction and the
// one-step allocation under the lock do not change verdicts, and deadlock and starvation are found where
// they were built in. Trace v2 (shared KV): the same at the sharing bound, with the shared-KV variants.
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { describe, expect, it } from 'vitest';
import { sharingConfigFor, sharingReplay } from '../cli/commands/check.ts';
import { configFromArgs, defaultBounds } from '../cli/commands/explore.ts';
import { exploreCheckResult } from '../cli/report/results.ts';
import { configProblems, DEFAULT_CONFIG, headerOf, SHARING_CONFIG, type ExploreConfig } from '../properties/explore/config.ts';
import { counterexampleLines } from '../properties/explore/counterexample.ts';
import { stateKey } from '../properties/explore/canonical.ts';
import { explore, initialNode, successor } from '../properties/explore/explorer.ts';
import { proposals, type Node } from '../properties/explore/generator.ts';
import { defaultConfigFor, SAFETY_VARIANTS, SHARING_VARIANTS, VARIANTS } from '../properties/explore/variants.ts';
import { checkText } from '../spec/checker.ts';

const root = join(import.meta.dirname, '..');

const config = (over: Partial<ExploreConfig> = {}): ExploreConfig => ({ ...DEFAULT_CONFIG, ...over });

describe('the reference spec', () => {
  it('verifies clean at the default bound (3 requests, 6 blocks, one resize, aborts and preemption)', () => {
    const r = explore(config());
    expect(r.verdict).toBe('verified');
    expect(r.states).toBeGreaterThan(100_000);
    // Every event the semi-PD spec knows happens at this bound, except the transfers of disaggregation and
    // the three allocation steps that the lock makes one.
    expect(r.neverEnabled.sort()).toEqual(['alloc_commit', 'alloc_query', 'alloc_take', 'transfer_begin', 'transfer_end']);
  }, 300_000);

  it('verifies clean in the other modes and allocator', () => {
    for (const over of [
      { mode: 'unified', resizes: 0 },
      { mode: 'disaggregated', resizes: 0, requests: 2, blocks: 4 },
      { mode: 'nexus', splits: [{ prefill: 70, decode: 30 }], requests: 2 },
      { allocator: 'decode-owned', requests: 2 },
      { allocSteps: 'three', requests: 2 },
    ] as Partial<ExploreConfig>[]) {
      const r = explore(config(over));
      expect(r.verdict, JSON.stringify(over) + JSON.stringify(r.finding)).toBe('verified');
    }
  }, 300_000);
});

describe('spec variants are refuted at the default bound', () => {
  it.each(SAFETY_VARIANTS)('%s', (name) => {
    const r = explore(config({ variant: name }));
    expect(r.verdict).toBe('violated');
    const f = r.finding!;
    expect(f.rule).toBe(VARIANTS[name].expect);
    // The counterexample, written as a trace, is rejected by the reference spec with the same rule.
    const verdict = checkText(counterexampleLines(r.config, f, `npx pdspec explore --variant ${name}`).join('\n'));
    expect(verdict.verdict).toBe('violation');
    if (verdict.verdict === 'violation') expect(verdict.finding.rule).toBe(f.rule);
    // Breadth-first: no shorter path breaks it (a variant bounded one event shorter verifies nothing new).
    expect(f.trace.length).toBe(r.depth);
  }, 120_000);
});

describe('reductions do not change verdicts', () => {
  const small = { requests: 2, blocks: 4, resizes: 0, aborts: 1, preemptions: 1 };

  it.each([null, ...SAFETY_VARIANTS])('symmetry on and off agree (%s)', (variant) => {
    const on = explore(config({ ...small, variant }));
    const off = explore(config({ ...small, variant, symmetry: false }));
    expect(on.verdict).toBe(off.verdict);
    expect(on.finding?.rule).toBe(off.finding?.rule);
    expect(on.finding?.trace.length).toBe(off.finding?.trace.length);
    if (variant === null) expect(on.states).toBeLessThan(off.states);
  }, 120_000);

  it('the key names workers by id: the order in which a resize started its new workers is forgotten', () => {
    const cfg = config({ requests: 1, resizes: 1, aborts: 0, preemptions: 0 });
    const take = (node: Node, pick: (ev: ReturnType<typeof proposals>[number]) => boolean): Node => {
      const ev = proposals(node, cfg, null).find(pick);
      expect(ev, 'the event is proposed').toBeDefined();
      return successor(node, ev!)!;
    };
    const start = (id: string) => (ev: ReturnType<typeof proposals>[number]) => ev.ev === 'worker_start' && ev.worker === id;
    let resizing = take(initialNode(cfg, null), (ev) => ev.ev === 'arrive');
    resizing = take(resizing, (ev) => ev.ev === 'resize_begin');
    const prefillFirst = take(take(resizing, start('P1')), start('D1'));
    const decodeFirst = take(take(resizing, start('D1')), start('P1'));
    expect(prefillFirst.sys.workerIds).not.toEqual(decodeFirst.sys.workerIds);
    for (const symmetry of [true, false]) expect(stateKey(prefillFirst, symmetry)).toBe(stateKey(decodeFirst, symmetry));
    // Not every pair of states merges: one new worker started is not both.
    expect(stateKey(take(resizing, start('P1')), false)).not.toBe(stateKey(take(resizing, start('D1')), false));
  });

  it('allocation in one step under the lock agrees with the three steps', () => {
    for (const over of [{}, { allocator: 'decode-owned' }] as Partial<ExploreConfig>[]) {
      const one = explore(config({ ...small, resizes: 1, ...over, allocSteps: 'one' }));
      const three = explore(config({ ...small, resizes: 1, ...over, allocSteps: 'three' }));
      expect(one.verdict).toBe('verified');
      expect(three.verdict).toBe('verified');
    }
  }, 120_000);
});

describe('liveness', () => {
  it('finds a deadlock where the KV pool is too small and nothing is preempted', () => {
    const r = explore(config({ requests: 3, blocks: 3, resizes: 0, aborts: 0, preemptions: 0 }));
    expect(r.verdict).toBe('violated');
    expect(r.finding?.kind).toBe('deadlock');
    expect(r.finding?.message).toMatch(/decoding/);
    // One block more and every request finishes.
    expect(explore(config({ requests: 3, blocks: 4, resizes: 0, aborts: 0, preemptions: 0 })).verdict).toBe('verified');
  });

  it('finds starvation in a fair cycle of retractions, and none in the reference spec', () => {
    const bound = { requests: 2, blocks: 3, chunk: 1, resizes: 0, aborts: 0 };
    const r = explore(config({ ...bound, variant: 'preemption-cascade' }));
    expect(r.finding?.kind).toBe('starvation');
    expect(r.finding?.cycle).toBeGreaterThan(0);
    const events = r.finding!.trace.slice(-r.finding!.cycle!).map((e) => e.ev);
    expect(events).toContain('preempt');
    expect(events).not.toContain('token');
    expect(explore(config({ ...bound, preemptions: 3 })).verdict).toBe('verified');
  });
});

// ---------------------------------------------------------------------------------------------
// Trace v2: shared KV. The reference spec verifies at the sharing bound and covers hits, evictions, forks
// and copies; each shared-KV variant runs as the engine, judged by the reference spec, and is refuted with a
// counterexample of at most 12 events that `pdspec conform` rejects with the same rule.

describe('trace v2: the sharing bound', () => {
  it('the reference spec verifies and covers prefix hits, inserts, evictions, forks and copy-on-write', () => {
    const r = explore(SHARING_CONFIG);
    expect(r.verdict, JSON.stringify(r.finding)).toBe('verified');
    expect(headerOf(SHARING_CONFIG)).toMatchObject({ version: 2, prefixCache: 'hash' });
    expect(r.states).toBeGreaterThan(10_000);
    expect(r.sharing).toBeDefined();
    for (const n of Object.values(r.sharing!)) expect(n).toBeGreaterThan(0);
    for (const e of ['cache_hit', 'cache_insert', 'evict', 'fork', 'cow', 'cache_size', 'preempt', 'abort'] as const) expect(r.neverEnabled).not.toContain(e);
    // Coverage counts the v2 transitions of the machines: these are taken.
    for (const t of ['block:owned:hit', 'block:cached:hit', 'block:cached:evict', 'block:owned:fork', 'block:owned:cow_from', 'block:owned:insert', 'request:prefilling:cache_hit', 'request:decoding:fork'])
      expect(r.neverTaken).not.toContain(t);
  }, 120_000);

  it('verifies under a radix cache, and in the modes `pdspec check` searches', () => {
    for (const c of [{ ...SHARING_CONFIG, prefixCache: 'radix' as const }, ...(['unified', 'nexus', 'disaggregated'] as const).map(sharingConfigFor)]) {
      const r = explore(c);
      expect(r.verdict, `${c.mode} ${c.prefixCache}: ${JSON.stringify(r.finding)}`).toBe('verified');
      expect(r.sharing!.hits).toBeGreaterThan(0);
      expect(r.sharing!.forks).toBeGreaterThan(0);
    }
  }, 120_000);

  it('a third request with another prefix never hits the first two', () => {
    const r = explore({ ...SHARING_CONFIG, requests: 3, prefixes: ['a', 'a', 'b'], blocks: 5, aborts: 0, preemptions: 0, forks: 0 });
    expect(r.verdict, JSON.stringify(r.finding)).toBe('verified');
    expect(r.sharing!.hits).toBeGreaterThan(0);
  }, 120_000);

  it('symmetry on and off agree on the reference, and merge states', () => {
    const small = { ...SHARING_CONFIG, preemptions: 0 };
    const on = explore(small);
    const off = explore({ ...small, symmetry: false });
    expect([on.verdict, off.verdict]).toEqual(['verified', 'verified']);
    expect(on.states).toBeLessThan(off.states);
  }, 120_000);

  it('requests with different prompt keys are not interchangeable; with the same keys they are', () => {
    const keyOf = (prefixes: string[], first: string) => {
      const cfg = { ...SHARING_CONFIG, prefixes };
      let node = initialNode(cfg, null);
      for (let i = 0; i < 2; i++) node = successor(node, proposals(node, cfg, null)[0])!;
      const ev = proposals(node, cfg, null).find((e) => e.ev === 'schedule' && e.req === first)!;
      return stateKey(successor(node, ev)!, true);
    };
    expect(keyOf(['a', 'a'], 'r0')).toBe(keyOf(['a', 'a'], 'r1'));
    expect(keyOf(['a', 'b'], 'r0')).not.toBe(keyOf(['a', 'b'], 'r1'));
  });

  it('the v1 default is unchanged: no v2 event is proposed and the header is version 1', () => {
    expect(DEFAULT_CONFIG.sharing).toBe(false);
    expect(headerOf(DEFAULT_CONFIG).version).toBe(1);
    expect(configProblems({ ...DEFAULT_CONFIG, forks: 1 })).toEqual([expect.stringMatching(/--forks needs --sharing/)]);
    expect(configProblems({ ...SHARING_CONFIG, prompt: 2 })).toEqual([expect.stringMatching(/--sharing needs a prompt longer than a block/)]);
  });
});

describe('trace v2: shared-KV variants are refuted, judged by the reference spec', () => {
  it.each(SHARING_VARIANTS)('%s', (name) => {
    const cfg = defaultConfigFor(name);
    expect(cfg.sharing).toBe(true);
    const r = explore(cfg);
    expect(r.verdict).toBe('violated');
    const f = r.finding!;
    expect(f.kind).toBe('guard');
    expect(f.rule).toBe(VARIANTS[name].expect);
    expect(f.trace.length).toBeLessThanOrEqual(12);
    // The counterexample is a v2 trace that conform reads and rejects at its last line, with the same rule.
    const lines = counterexampleLines(cfg, f, `npx pdspec explore --variant ${name}`);
    expect(JSON.parse(lines[0])).toMatchObject({ version: 2, prefixCache: cfg.prefixCache });
    const verdict = checkText(lines.join('\n'));
    expect(verdict.verdict).toBe('violation');
    if (verdict.verdict === 'violation') {
      expect(verdict.finding.rule).toBe(f.rule);
      expect(verdict.finding.line).toBe(lines.length);
    }
    // Every event before the last conforms: the prefix is a correct trace.
    expect(checkText(lines.slice(0, -1).join('\n')).verdict).toBe('conforms');
  }, 60_000);

  it('the --variant replay searches the variant at its own bound', () => {
    for (const name of SHARING_VARIANTS) expect(configFromArgs({ variant: name })).toEqual(defaultConfigFor(name));
    expect(configFromArgs({ variant: 'evict-locked' })).toMatchObject({ prefixCache: 'radix', blocks: 3 });
  });
});

describe('pdspec explore with shared KV', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'pdspec-explore-v2-'));
  const pdspec = (...args: string[]) => spawnSync(process.execPath, [join(root, 'bin', 'pdspec.js'), ...args], { cwd: scratch, encoding: 'utf8', timeout: 120_000 });

  it('without options it searches the v1 bound and the sharing bound, and reports the shared KV covered', () => {
    expect(defaultBounds({})).toBe(true);
    expect(defaultBounds({ json: true, 'max-states': '9', 'no-symmetry': true })).toBe(true);
    expect(defaultBounds({ sharing: true })).toBe(false);
    expect(defaultBounds({ requests: '2' })).toBe(false);
    const r = pdspec('explore', '--json');
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.verdict).toBe('verified');
    expect(out.bounds.map((b: { config: ExploreConfig }) => b.config.sharing)).toEqual([false, true]);
    expect(out.bounds[0].states).toBeGreaterThan(100_000);
    expect(out.bounds[0].sharing).toBeUndefined();
    expect(out.bounds[1].sharing.hits).toBeGreaterThan(0);
    expect(out.bounds[1].replay).toBe('npx pdspec explore --sharing');
  }, 180_000);

  it('--sharing options, and a variant counterexample written as a v2 trace that conform rejects', () => {
    const ok = pdspec('explore', '--sharing', '--prefix-cache', 'radix', '--preemptions', '0');
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/shared KV \(trace v2\): prefixes a,a, radix cache, 1 fork/);
    expect(ok.stdout).toMatch(/shared KV covered: [\d,]+ prefix hit\(s\), [\d,]+ eviction\(s\), [\d,]+ fork\(s\)/);
    const file = join(scratch, 'cex.jsonl');
    const bad = pdspec('explore', '--variant', 'write-shared', '--out', file);
    expect(bad.status).toBe(1);
    expect(bad.stdout).toMatch(/violation of WritesUnshared/);
    expect(bad.stdout).toMatch(/\(trace v2\)/);
    const conform = pdspec('conform', file);
    expect(conform.status).toBe(1);
    expect(conform.stdout + conform.stderr).toMatch(/:12: violation of WritesUnshared/);
    expect(pdspec('explore', '--prefix-cache', 'lru').status).toBe(2);
    expect(pdspec('explore', '--prefixes', 'a,,b').status).toBe(2);
    expect(pdspec('explore', '--forks', '1', '--prompt', '2').stderr).toMatch(/--sharing needs a prompt longer than a block/);
  }, 120_000);

  it('the report of a verified sharing bound names the prefix hits, evictions and forks covered', () => {
    const r = explore(sharingConfigFor('unified'));
    const check = exploreCheckResult(r, r.config, sharingReplay(r.config), scratch, 'unified');
    expect(check.status).toBe('pass');
    expect(check.detail).toMatch(/shared KV \(prefixes a,a, hash cache, 1 fork\).*covered [\d,]+ prefix hit\(s\), [\d,]+ eviction\(s\), [\d,]+ fork\(s\) and [\d,]+ copy-on-write/);
  });

  it("check's sharing replays search the bound check searched", () => {
    for (const mode of ['semi-pd', 'nexus', 'unified', 'disaggregated'] as const) {
      const cfg = sharingConfigFor(mode);
      const [, , , ...flags] = sharingReplay(cfg).split(' ');
      const { values } = parseArgs({ args: flags, options: { sharing: { type: 'boolean' }, mode: { type: 'string' }, blocks: { type: 'string' }, preemptions: { type: 'string' } }, strict: true });
      expect(configFromArgs(values)).toEqual(cfg);
    }
  });
});

describe('trace v2: a step writes the shared block of its own pool', () => {
  // Found by the explorer at the disaggregated sharing bound: after a cross-GPU handoff the table also lists the
  // prefill copy, and the block a decode step writes is the one in its worker's pool, not the one at the same
  // position of the whole table.
  it('a forked child whose parent freed the prefill copy may not write the decode-side block they share', () => {
    const header = { format: 'pdspec-trace', version: 2, mode: 'disaggregated', blocks: 4, blockSize: 2, sms: 132 };
    const events = [
      { ev: 'arrive', req: 'r0', prompt: 3, maxTokens: 2 },
      { ev: 'schedule', req: 'r0', worker: 'P0' },
      { ev: 'alloc', worker: 'P0', req: 'r0', blocks: [0, 1] },
      { ev: 'step_begin', worker: 'P0', step: '1', batch: [{ req: 'r0', tokens: 3 }] },
      { ev: 'step_end', worker: 'P0', step: '1' },
      { ev: 'token', req: 'r0', index: 0 },
      { ev: 'handoff', req: 'r0', from: 'P0', to: 'D0' },
      { ev: 'alloc', worker: 'D0', req: 'r0', blocks: [4, 5] },
      { ev: 'transfer_begin', xfer: 'x0', req: 'r0', from: 'P0', to: 'D0' },
      { ev: 'transfer_end', xfer: 'x0' },
      { ev: 'join', req: 'r0', worker: 'D0' },
      { ev: 'fork', parent: 'r0', child: 'r1' },
      { ev: 'free', req: 'r0', blocks: [0, 1] },
      { ev: 'step_begin', worker: 'D0', step: '2', batch: [{ req: 'r1', tokens: 1 }] },
    ];
    const text = [header, ...events.map((e, i) => ({ t: i / 1000, ...e }))].map((l) => JSON.stringify(l)).join('\n');
    const v = checkText(text);
    expect(v.verdict).toBe('violation');
    if (v.verdict === 'violation') {
      expect(v.finding.rule).toBe('WritesUnshared');
      expect(v.finding.line).toBe(events.length + 1);
      expect(v.finding.message).toMatch(/writes block 5/);
    }
  });
});
