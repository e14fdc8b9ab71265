// The explorer: the reference spec verifies clean at the default bound, every variant is refuted with a
// shortest counterexample that `pdspec conform` rejects with the same rule, symmetry reduction and the
// one-step allocation under the lock do not change verdicts, and deadlock and starvation are found where
// they were built in. Trace v2 (shared KV): the same at the sharing bound, with the shared-KV variants; trace v3
// (positions, speculative verifies, sliding windows, preemption while prefilling) at the v3 bound, with its own.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { describe, expect, it } from 'vitest';
import { sharingConfigFor, sharingReplay, v3ConfigFor, v3Replay } from '../cli/commands/check.ts';
import { configFromArgs, defaultBounds } from '../cli/commands/explore.ts';
import { exploreCheckResult } from '../cli/report/results.ts';
import { configProblems, DEFAULT_CONFIG, headerOf, SHARING_CONFIG, V3_CONFIG, type ExploreConfig } from '../properties/explore/config.ts';
import { asTrace, counterexampleLines } from '../properties/explore/counterexample.ts';
import { stateKey } from '../properties/explore/canonical.ts';
import { explore, initialNode, successor, V3_ONLY, v3KindOf } from '../properties/explore/explorer.ts';
import { proposals, type Node } from '../properties/explore/generator.ts';
import { defaultConfigFor, SAFETY_VARIANTS, SHARING_VARIANTS, V3_VARIANTS, VARIANTS } from '../properties/explore/variants.ts';
import { checkText } from '../spec/checker.ts';
import type { Refusal } from '../spec/machine-kit.ts';
import { System } from '../spec/system.ts';
import { readHeader, type TraceEvent } from '../spec/trace-format.ts';

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

  it('without options it searches the v1 bound, the sharing bound, the v3 bound and the core-attention bound, and reports what each covered', () => {
    expect(defaultBounds({})).toBe(true);
    expect(defaultBounds({ json: true, 'max-states': '9', 'no-symmetry': true })).toBe(true);
    expect(defaultBounds({ sharing: true })).toBe(false);
    expect(defaultBounds({ requests: '2' })).toBe(false);
    const r = pdspec('explore', '--json');
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.verdict).toBe('verified');
    expect(out.bounds.map((b: { config: ExploreConfig }) => [b.config.sharing, b.config.positions, b.config.cadServers > 0])).toEqual([
      [false, false, false],
      [true, false, false],
      [false, true, false],
      [false, true, true],
    ]);
    expect(out.bounds[0].states).toBeGreaterThan(100_000);
    expect(out.bounds[0].sharing).toBeUndefined();
    expect(out.bounds[0].v3).toBeUndefined();
    expect(out.bounds[1].sharing.hits).toBeGreaterThan(0);
    expect(out.bounds[1].replay).toBe('npx pdspec explore --sharing');
    expect(out.bounds[2].v3.rejections).toBeGreaterThan(0);
    expect(out.bounds[2].v3.partialFrees).toBeGreaterThan(0);
    expect(out.bounds[2].replay).toBe('npx pdspec explore --positions');
    expect(out.bounds[3].events.server_lost).toBeGreaterThan(0);
    expect(out.bounds[3].replay).toBe('npx pdspec explore --mode cad');
  }, 240_000);

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

// ---------------------------------------------------------------------------------------------
// Trace v3: positions on every batch item, speculative verifies accepted or rejected, a sliding-window group
// whose oldest blocks a live request frees, preemption while prefilling, state slots. The reference spec
// verifies at the v3 bound and covers each; each v3 variant runs as the engine, judged by the reference spec,
// and is refuted with a counterexample of at most 12 events that `pdspec conform` rejects with the same rule.

describe('trace v3: the v3 bound', () => {
  it('the reference spec verifies and covers a verify with a rejection, a partial free and a preemption while prefilling', () => {
    const r = explore(V3_CONFIG);
    expect(r.verdict, JSON.stringify(r.finding)).toBe('verified');
    expect(headerOf(V3_CONFIG)).toMatchObject({ version: 3, groups: [{ id: 'full' }, { id: 'swa', window: 2 }] });
    expect(headerOf(V3_CONFIG).stateSlots).toBeUndefined();
    expect(r.states).toBeGreaterThan(10_000);
    expect(r.v3).toBeDefined();
    const { verifies, rejections, partialFrees, prefillPreemptions } = r.v3!;
    for (const n of [verifies, rejections, partialFrees, prefillPreemptions]) expect(n).toBeGreaterThan(0);
    expect(r.sharing).toBeUndefined();
    // Coverage: v3's transitions are taken; shared KV's, the slots' and the clock's events are not counted as
    // never enabled where the bound cannot have them.
    for (const t of ['request:prefilling:preempt', 'request:prefilling:free', 'request:decoding:free', 'request:handedOff:free', 'request:decoding:step_end'])
      expect(r.neverTaken).not.toContain(t);
    for (const e of ['cache_hit', 'fork', 'slot_alloc', 'tick', 'idle']) expect(r.neverEnabled).not.toContain(e);
    expect(r.neverTaken.filter((t) => t.startsWith('slot:') || t.startsWith('block:cached') || t.includes(':hit'))).toEqual([]);
  }, 120_000);

  it('every event it proposes is a v3 line conform accepts: random walks to the end conform', () => {
    let seed = 7;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const kinds = new Set<string>();
    for (let walk = 0; walk < 150; walk++) {
      let node = initialNode(V3_CONFIG, null);
      const events = [];
      for (;;) {
        const moves = proposals(node, V3_CONFIG, null)
          .map((ev) => ({ ev, next: successor(node, ev) }))
          .filter((m) => m.next !== null);
        if (moves.length === 0) break;
        const { ev, next } = moves[Math.floor(random() * moves.length)];
        const kind = v3KindOf(node.sys, ev);
        if (kind) kinds.add(kind);
        events.push(ev);
        node = next!;
      }
      const text = [JSON.stringify(headerOf(V3_CONFIG)), ...asTrace(events).map((e) => JSON.stringify(e))].join('\n');
      const verdict = checkText(text);
      expect(verdict.verdict, `${text}\n${JSON.stringify(verdict)}`).toBe('conforms');
      for (const e of events) if (e.ev === 'step_begin') for (const item of e.batch) expect(item.from).toBeTypeOf('number');
    }
    // (A preemption needs a pool short of blocks: rare on a random walk; the bound's coverage counts them.)
    for (const k of ['partialFrees', 'rejections', 'verifies']) expect(kinds).toContain(k);
  }, 120_000);

  it('state slots: a bound with one slot per GPU verifies and covers the slot machine', () => {
    const cfg = { ...V3_CONFIG, mode: 'unified' as const, requests: 2, prompt: 2, chunk: 2, output: 2, blocks: 4, drafts: 1, stateSlots: 1 };
    expect(headerOf(cfg).stateSlots).toBe(1);
    // Four blocks do not hold two requests' groups: with the preemption spent and no abort, the bound
    // deadlocks, as a v1 bound whose pool is too small; with an abort every request ends.
    expect(explore({ ...cfg, aborts: 0 }).finding?.kind).toBe('deadlock');
    const ok = explore(cfg);
    expect(ok.verdict, JSON.stringify(ok.finding)).toBe('verified');
    expect(ok.v3!.slots).toBeGreaterThan(0);
    for (const t of ['slot:free:slot_alloc', 'slot:owned:slot_free', 'request:prefilling:slot_alloc', 'request:retracting:slot_free', 'request:finished:slot_free']) expect(ok.neverTaken).not.toContain(t);
  }, 120_000);

  it('symmetry on and off agree on small v3 bounds', () => {
    const small = { ...V3_CONFIG, mode: 'unified' as const, requests: 2, prompt: 2, chunk: 2, output: 2, blocks: 4, drafts: 1 };
    for (const c of [
      { ...small, aborts: 0 }, // a deadlock: the pool holds one request's two groups, and the preemption is spent
      { ...small, aborts: 0, stateSlots: 1 },
      { ...small, requests: 1, prompt: 3, output: 3, blocks: 5, drafts: 2 },
    ]) {
      const on = explore(c);
      const off = explore({ ...c, symmetry: false });
      expect(on.verdict, JSON.stringify(c)).toBe(off.verdict);
      expect(on.finding?.rule).toBe(off.finding?.rule);
      expect(on.finding?.trace.length).toBe(off.finding?.trace.length);
      expect(on.depth).toBe(off.depth);
      expect(on.states).toBeLessThan(off.states);
      for (const k of ['verifies', 'rejections', 'partialFrees', 'prefillPreemptions'] as const) expect(on.v3![k] > 0).toBe(off.v3![k] > 0);
    }
  }, 120_000);

  it('the state key tells apart what v3 adds: accepted drafts owed, a block freed out of the window', () => {
    const cfg = { ...V3_CONFIG, mode: 'unified' as const, requests: 1, prompt: 2, chunk: 2, output: 3, blocks: 6, drafts: 1 };
    const walk = (pick: (ev: ReturnType<typeof proposals>[number]) => boolean, node = initialNode(cfg, null)): Node => {
      const ev = proposals(node, cfg, null).find((e) => pick(e) && successor(node, e) !== null);
      expect(ev, 'the event is proposed').toBeDefined();
      return successor(node, ev!)!;
    };
    let node = initialNode(cfg, null);
    for (const pick of [(e: { ev: string }) => e.ev === 'arrive', (e: { ev: string }) => e.ev === 'schedule'] as const) node = walk(pick, node);
    node = walk((e) => e.ev === 'alloc' && e.group === 'full', node);
    node = walk((e) => e.ev === 'alloc' && e.group === 'swa', node);
    node = walk((e) => e.ev === 'step_begin', node);
    node = walk((e) => e.ev === 'step_end', node);
    node = walk((e) => e.ev === 'token', node);
    node = walk((e) => e.ev === 'join', node);
    for (const group of ['full', 'swa']) node = walk((e) => e.ev === 'alloc' && e.group === group, node);
    node = walk((e) => e.ev === 'step_begin' && e.batch.some((i) => i.draft === 1), node);
    expect(node.verifies).toBe(1);
    const accepted = walk((e) => e.ev === 'step_end' && e.accepted?.r0 === 1, node);
    const rejected = walk((e) => e.ev === 'step_end' && e.accepted?.r0 === 0, node);
    expect(accepted.sys.requests[0].context.extraOwed).toBe(1);
    expect(stateKey(accepted, true)).not.toBe(stateKey(rejected, true));
    // Both owe a token; once the accepted draft is appended, the two differ only in what is computed.
    const appended = walk((e) => e.ev === 'token', accepted);
    expect(appended.sys.requests[0].context).toMatchObject({ extraOwed: 0, tokenOwed: true });
    expect(stateKey(appended, true)).not.toBe(stateKey(walk((e) => e.ev === 'token', rejected), true));
    // Rejected: 3 positions computed, so the swa group's first block (positions 0-1) is out of the window 2.
    const afterToken = walk((e) => e.ev === 'token', rejected);
    const freed = walk((e) => e.ev === 'free' && e.group === 'swa', afterToken);
    expect(freed.sys.dropped.get(0)).toEqual([0, 1]);
    expect(stateKey(freed, true)).not.toBe(stateKey(afterToken, true));
  });

  it('v1 and v2 bounds neither propose v3 events nor count v3 transitions as never taken', () => {
    expect(DEFAULT_CONFIG.positions).toBe(false);
    expect(SHARING_CONFIG.positions).toBe(false);
    const r = explore(config({ requests: 2, blocks: 4, resizes: 0 }));
    expect(r.verdict).toBe('verified');
    expect(r.v3).toBeUndefined();
    for (const t of V3_ONLY) expect(r.neverTaken).not.toContain(t);
    expect(configProblems({ ...V3_CONFIG, sharing: true })).toEqual([expect.stringMatching(/--positions \(trace v3\) and --sharing \(trace v2\) are explored apart/)]);
    expect(configProblems({ ...DEFAULT_CONFIG, drafts: 1 })).toEqual([expect.stringMatching(/--drafts needs --positions/)]);
    expect(configProblems({ ...V3_CONFIG, allocSteps: 'three' })).toEqual([expect.stringMatching(/--window with --alloc-steps three/)]);
  }, 120_000);
});

describe('trace v3: v3 variants are refuted, judged by the reference spec', () => {
  it.each(V3_VARIANTS)('%s', (name) => {
    const cfg = defaultConfigFor(name);
    expect(cfg.positions).toBe(true);
    const r = explore(cfg);
    expect(r.verdict).toBe('violated');
    const f = r.finding!;
    expect(f.kind).toBe('guard');
    expect(f.rule).toBe(VARIANTS[name].expect);
    expect(f.trace.length).toBeLessThanOrEqual(12);
    // The counterexample is a v3 trace that conform reads and rejects at its last line, with the same rule.
    const lines = counterexampleLines(cfg, f, `npx pdspec explore --variant ${name}`);
    expect(JSON.parse(lines[0])).toMatchObject({ version: 3 });
    const verdict = checkText(lines.join('\n'));
    expect(verdict.verdict).toBe('violation');
    if (verdict.verdict === 'violation') {
      expect(verdict.finding.rule).toBe(f.rule);
      expect(verdict.finding.line).toBe(lines.length);
    }
    expect(checkText(lines.slice(0, -1).join('\n')).verdict).toBe('conforms');
  }, 60_000);

  it('the variants break what they say: a rejected verify, a window, the full-attention group', () => {
    const traceOf = (name: string) => explore(defaultConfigFor(name)).finding!.trace;
    const ends = (name: string) => traceOf(name).filter((e) => e.ev === 'step_end' && e.accepted);
    for (const name of ['rollback-ignored', 'appends-rejected']) expect(ends(name).map((e) => e.ev === 'step_end' && e.accepted)).toEqual([{ r0: 0 }]);
    expect(traceOf('window-off-by-one').at(-1)).toMatchObject({ ev: 'free', group: 'swa' });
    expect(traceOf('window-on-full-attention').at(-1)).toMatchObject({ ev: 'free', group: 'full' });
  }, 60_000);

  it('the --variant replay searches the variant at its own bound', () => {
    for (const name of V3_VARIANTS) expect(configFromArgs({ variant: name })).toEqual(defaultConfigFor(name));
    expect(configFromArgs({ positions: true })).toEqual(V3_CONFIG);
    expect(configFromArgs({ window: '3' })).toEqual({ ...V3_CONFIG, window: 3 });
    expect(configFromArgs({ positions: true, prompt: '5' }).chunk).toBe(V3_CONFIG.chunk);
  });
});

describe('trace v3: a successor keeps a partial free attempted on its origin', () => {
  // Found by the explorer at the v3 bound: the explorer attempts an event on a state and commits it into a copy,
  // and the copy lost that the free was a live request's free out of its window, so the request forgot the blocks
  // it had freed and allocated them again (a starvation cycle of allocations and frees).
  it('a live request’s free out of the window, attempted on a state and committed into its copy, counts as dropped', () => {
    const lines = readFileSync(join(root, 'examples', 'traces', 'v3', 'sliding-window.jsonl'), 'utf8').trim().split('\n');
    const sys = new System(readHeader(JSON.parse(lines[0])));
    const events = lines.slice(1).map((l) => JSON.parse(l) as TraceEvent);
    const at = events.findIndex((e) => e.ev === 'free');
    for (const ev of events.slice(0, at)) expect(sys.apply(ev)).toBeNull();
    const pending = sys.attempt(events[at]);
    expect(Array.isArray(pending)).toBe(true);
    const copy = sys.clone();
    copy.commit(events[at], pending as Exclude<typeof pending, Refusal>);
    expect(copy.dropped.get(0)).toEqual([0, 1]);
    expect(sys.dropped.get(0)).toBeUndefined();
  });
});

describe('pdspec explore with trace v3', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'pdspec-explore-v3-'));
  const pdspec = (...args: string[]) => spawnSync(process.execPath, [join(root, 'bin', 'pdspec.js'), ...args], { cwd: scratch, encoding: 'utf8', timeout: 120_000 });

  it('--positions reports the trace v3 covered; a variant counterexample is a v3 trace conform rejects', () => {
    const ok = pdspec('explore', '--positions', '--mode', 'unified', '--prompt', '2', '--output', '2', '--blocks', '4', '--drafts', '1');
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/trace v3: 1 verify of 1\.\.1 draft\(s\), layer groups full and swa \(window 2\), preemption while prefilling/);
    expect(ok.stdout).toMatch(/trace v3 covered: [\d,]+ verifies, [\d,]+ rejection\(s\) of drafts, [\d,]+ partial free\(s\) out of a window, [\d,]+ preemption\(s\) while prefilling/);
    const file = join(scratch, 'cex.jsonl');
    const bad = pdspec('explore', '--variant', 'rollback-ignored', '--out', file);
    expect(bad.status).toBe(1);
    expect(bad.stdout).toMatch(/violation of StepsInOrder/);
    expect(bad.stdout).toMatch(/step_begin worker=U0 step=1 batch=r0:2@1\+1d/);
    expect(bad.stdout).toMatch(/step_end worker=U0 step=1 accepted=r0:0/);
    expect(bad.stdout).toMatch(/\(trace v3\)/);
    const conform = pdspec('conform', file);
    expect(conform.status).toBe(1);
    expect(conform.stdout + conform.stderr).toMatch(/:13: violation of StepsInOrder/);
    expect(pdspec('explore', '--positions', '--sharing').stderr).toMatch(/explored apart/);
    expect(pdspec('explore', '--drafts', '-1').status).toBe(2);
  }, 120_000);

  it('the report of a verified v3 bound names the verifies, rejections, partial frees and prefill preemptions covered', () => {
    const r = explore(v3ConfigFor('unified'));
    const check = exploreCheckResult(r, r.config, v3Replay(r.config), scratch, 'unified');
    expect(check.status).toBe('pass');
    expect(check.detail).toMatch(/1 verify of 1\.\.2 draft\(s\), window 2: [\d,]+ states; covered [\d,]+ verifies, [\d,]+ draft rejection\(s\), [\d,]+ partial free\(s\) and [\d,]+ preemption\(s\) while prefilling/);
  }, 60_000);

  it("check's v3 replays search the bound check searched", () => {
    for (const mode of ['semi-pd', 'nexus', 'unified', 'disaggregated'] as const) {
      const cfg = v3ConfigFor(mode);
      const [, , , ...flags] = v3Replay(cfg).split(' ');
      const { values } = parseArgs({
        args: flags,
        options: { positions: { type: 'boolean' }, mode: { type: 'string' }, blocks: { type: 'string' }, prompt: { type: 'string' }, chunk: { type: 'string' }, output: { type: 'string' }, drafts: { type: 'string' } },
        strict: true,
      });
      expect(configFromArgs(values)).toEqual(cfg);
    }
  });
});
