// Rules of the judge stated directly, each where a mutant of spec/ once survived the suite or was killed only by
// accident (issue 20): every block invariant on every block index, the last included (checkState once looped to
// blocks.length - 1 unnoticed); the explorer's variants at one block; the verdict's quiescent flag with a step or
// transfer still in flight; a token past maxTokens refused by `underLimit`; a free under the pool lock refused.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { counterexampleLines } from '../properties/explore/counterexample.ts';
import { explore } from '../properties/explore/explorer.ts';
import { defaultConfigFor, VARIANTS } from '../properties/explore/variants.ts';
import { checkFile, checkText, formatVerdict, TraceChecker, type Verdict } from '../spec/checker.ts';
import { checkState, RULES, type InvariantName } from '../spec/invariants.ts';
import type { System } from '../spec/system.ts';

const root = join(import.meta.dirname, '..');
const pdspec = (args: string[], input?: string) =>
  spawnSync(process.execPath, [join(root, 'bin', 'pdspec.js'), ...args], { cwd: root, encoding: 'utf8', timeout: 60_000, ...(input !== undefined ? { input } : {}) });

/** The system after replaying a trace's lines (all must conform). */
function replay(lines: string[]): System {
  const checker = new TraceChecker();
  for (const l of lines) checker.feed(l);
  expect(checker.done, 'the base trace conforms').toBe(false);
  return checker.sys!;
}

// ---------------------------------------------------------------------------------------------
// checkState: every block invariant, broken on one block at a time, on every index of the pool.

const BLOCKS = 4;
const v1Header = (mode = 'semi-pd') => JSON.stringify({ format: 'pdspec-trace', version: 1, mode, blocks: BLOCKS, blockSize: 2, sms: 132 });
const v2Header = JSON.stringify({ format: 'pdspec-trace', version: 2, mode: 'unified', blocks: BLOCKS, blockSize: 2, sms: 132 });

/** Every block free. */
const allFreeV1 = () => replay([v1Header()]);
/** Trace v1, disaggregated: two pools of BLOCKS, every block free (the last index is the second pool's last). */
const allFreeTwoPools = () => replay([v1Header('disaggregated')]);
const allFreeV2 = () => replay([v2Header]);
/** Trace v2: r1 holds every block of the pool, block b as its b-th, cached-to-be under key k<b>. */
const allHeldV2 = () =>
  replay([
    v2Header,
    JSON.stringify({ t: 0, ev: 'arrive', req: 'r1', prompt: 2 * BLOCKS, maxTokens: 1, keys: Array.from({ length: BLOCKS }, (_, b) => `k${b}`) }),
    '{"t":0,"ev":"schedule","req":"r1","worker":"U0"}',
    JSON.stringify({ t: 0, ev: 'alloc', worker: 'U0', req: 'r1', blocks: Array.from({ length: BLOCKS }, (_, b) => b) }),
  ]);

const setBlock = (sys: System, b: number, change: Partial<System['blocks'][number]['context']>, value?: string) => {
  sys.blocks[b] = { value: value ?? sys.blocks[b].value, context: { ...sys.blocks[b].context, ...change } };
};

type Break = [InvariantName, string, () => System, (sys: System, b: number) => void];

const BREAKS: Break[] = [
  // Trace v1: one owner per block.
  ['BlocksAccounted', 'v1', allFreeV1, (s, b) => setBlock(s, b, { owners: [], inFreeList: 0 }, 'owned')],
  ['SingleOwner', 'v1', allFreeV1, (s, b) => setBlock(s, b, { owners: ['r1', 'r2'], inFreeList: 0 }, 'owned')],
  ['FreeListUnique', 'v1', allFreeV1, (s, b) => setBlock(s, b, { inFreeList: 2 })],
  ['FreeBlockUnowned', 'v1', allFreeV1, (s, b) => setBlock(s, b, { owners: ['r1'] })],
  [
    'NoFreeWhileInFlight',
    'v1',
    allFreeV1,
    (s, b) => {
      s.holds[b] = 1;
    },
  ],
  // Trace v1 on two GPUs: the same, over both pools.
  ['BlocksAccounted', 'v1, two pools', allFreeTwoPools, (s, b) => setBlock(s, b, { owners: [], inFreeList: 0 }, 'owned')],
  ['SingleOwner', 'v1, two pools', allFreeTwoPools, (s, b) => setBlock(s, b, { owners: ['r1', 'r2'], inFreeList: 0 }, 'owned')],
  ['FreeListUnique', 'v1, two pools', allFreeTwoPools, (s, b) => setBlock(s, b, { inFreeList: 2 })],
  ['FreeBlockUnowned', 'v1, two pools', allFreeTwoPools, (s, b) => setBlock(s, b, { owners: ['r1'] })],
  // Trace v2: reference-counted blocks and cache keys.
  ['BlocksAccounted', 'v2', allHeldV2, (s, b) => setBlock(s, b, { owners: [], inFreeList: 0 })],
  ['RefCountIsHolders', 'v2', allHeldV2, (s, b) => setBlock(s, b, { owners: ['r1', 'r1'] })],
  ['RefCountIsHolders', 'v2', allFreeV2, (s, b) => setBlock(s, b, { owners: ['ghost'], inFreeList: 0 }, 'owned')],
  ['CacheCoherent', 'v2', allHeldV2, (s, b) => setBlock(s, b, { key: 'other' })],
  ['FreeListUnique', 'v2', allFreeV2, (s, b) => setBlock(s, b, { inFreeList: 2 })],
  ['FreeBlockUnowned', 'v2', allHeldV2, (s, b) => setBlock(s, b, { inFreeList: 1 })],
  [
    'NoFreeWhileInFlight',
    'v2',
    allFreeV2,
    (s, b) => {
      s.holds[b] = 1;
    },
  ],
];

describe('checkState checks every block invariant on every block, the last included', () => {
  it('the unbroken bases satisfy every state invariant', () => {
    for (const base of [allFreeV1, allFreeTwoPools, allFreeV2, allHeldV2]) expect(checkState(base())).toBeNull();
    expect(allFreeTwoPools().blocks.length).toBe(2 * BLOCKS);
  });

  const cases = BREAKS.flatMap(([rule, trace, base, breakIt]) => {
    const n = base().blocks.length;
    return Array.from({ length: n }, (_, b) => [rule, trace, b, n, base, breakIt] as const);
  });

  it.each(cases)('%s (%s) broken on block %i of %i', (rule, _trace, b, _n, base, breakIt) => {
    const sys = base();
    breakIt(sys, b);
    const v = checkState(sys);
    expect(v?.invariant).toBe(rule);
    expect(v?.message).toMatch(new RegExp(`^block ${b} `));
  });

  it('covers every invariant that checkBlock checks', () => {
    const blockRules: InvariantName[] = ['BlocksAccounted', 'SingleOwner', 'RefCountIsHolders', 'CacheCoherent', 'FreeListUnique', 'FreeBlockUnowned', 'NoFreeWhileInFlight'];
    expect(new Set(BREAKS.map(([r]) => r))).toEqual(new Set(blockRules));
    for (const r of blockRules) expect(RULES[r].kind).toBe('state');
  });
});

// ---------------------------------------------------------------------------------------------
// The explorer at one block: with one block, the only block is the last, so a counterexample lives or dies by
// the last index. Each variant is refuted by its documented rule, not by a deadlock or another rule that follows.

describe('spec variants at --blocks 1', () => {
  const bounds: [string, number][] = [
    ['lockless-allocator', 2],
    ['duplicate-release', 2],
    ['free-on-output', 2],
    ['lockless-allocator', 3],
    ['duplicate-release', 3],
  ];

  it.each(bounds)('%s at --blocks 1 --requests %i: refuted by its documented rule', (name, requests) => {
    const r = explore({ ...defaultConfigFor(name), blocks: 1, requests });
    expect(r.verdict).toBe('violated');
    const f = r.finding!;
    expect(f.kind).not.toBe('deadlock');
    expect(f.rule).toBe(VARIANTS[name].expect);
    expect(f.message).toMatch(/block 0/);
    // The counterexample as a trace: the reference spec rejects it with the same rule.
    const verdict = checkText(counterexampleLines(r.config, f, `npx pdspec explore --variant ${name} --blocks 1`).join('\n'));
    expect(verdict.verdict).toBe('violation');
    if (verdict.verdict === 'violation') expect(verdict.finding.rule).toBe(f.rule);
  }, 120_000);
});

// ---------------------------------------------------------------------------------------------
// The verdict's quiescent flag: false while a step or transfer is in flight, whatever the requests.

describe('the quiescent flag agrees with --quiescent', () => {
  const cutOff = 'examples/traces/cut-off-step-in-flight.jsonl';
  const text = readFileSync(join(root, cutOff), 'utf8');
  const lines = text.trim().split('\n');
  // Trace v1, disaggregated: r1 aborted while its KV transfer x1 is still in flight.
  const transfer = [...readFileSync(join(root, 'examples/traces/disaggregated-transfer.jsonl'), 'utf8').trim().split('\n').slice(0, 10), '{"t":0.006,"ev":"abort","req":"r1"}'].join('\n');

  const expectNotQuiescent = (v: Verdict) => {
    expect(v.verdict).toBe('conforms');
    if (v.verdict !== 'conforms') return;
    expect(v.ended).toBe(v.requests);
    expect(v.quiescent).toBe(false);
    expect(formatVerdict('t', v)).toMatch(/, not quiescent$/);
  };
  const expectQuiescentFails = (v: Verdict, inFlight: RegExp, lineCount: number) => {
    expect(v.verdict).toBe('violation');
    if (v.verdict !== 'violation') return;
    expect(v.finding).toMatchObject({ rule: 'QuiescentAllFree', kind: 'at-rest', line: lineCount + 1 });
    expect(v.finding.message).toMatch(inFlight);
  };

  it('every request ended but a step in flight: not quiescent, and --quiescent fails with QuiescentAllFree', async () => {
    const last = JSON.parse(lines[lines.length - 1]);
    expect(last.ev).toBe('finish');
    expectNotQuiescent(checkText(text));
    expectNotQuiescent(await checkFile(join(root, cutOff)));
    expectQuiescentFails(checkText(text, { quiescent: true }), /step 3 of U0 is still in flight/, lines.length);
  });

  it('every request ended but a transfer in flight: the same', () => {
    expectNotQuiescent(checkText(transfer));
    expectQuiescentFails(checkText(transfer, { quiescent: true }), /transfer x1 is still in flight/, 11);
  });

  it('once the step ends and the blocks are freed, the same run is quiescent', () => {
    const done = [...lines, '{"t":0.008,"ev":"step_end","worker":"U0","step":3}', '{"t":0.008,"ev":"free","req":"r1","blocks":[0,1]}'].join('\n');
    const v = checkText(done);
    expect(v.verdict === 'conforms' && v.quiescent).toBe(true);
    expect(checkText(done, { quiescent: true }).verdict).toBe('conforms');
    // The step ended but the free has not come yet: still in flight no more, yet not at rest either.
    const unfreed = [...lines, '{"t":0.008,"ev":"step_end","worker":"U0","step":3}'].join('\n');
    expect(checkText(unfreed).verdict).toBe('violation');
  });

  it('pdspec conform --json says "quiescent": false, and --quiescent exits 1 with QuiescentAllFree', () => {
    const json = pdspec(['conform', cutOff, '--json']);
    expect(json.status, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ verdict: 'conforms', requests: 1, ended: 1, quiescent: false });
    const piped = pdspec(['conform', '-', '--json'], transfer);
    expect(piped.status, piped.stderr).toBe(0);
    expect(JSON.parse(piped.stdout)).toMatchObject({ verdict: 'conforms', ended: 1, quiescent: false });
    const strict = pdspec(['conform', cutOff, '--quiescent', '--json']);
    expect(strict.status).toBe(1);
    expect(JSON.parse(strict.stdout)).toMatchObject({ verdict: 'violation', finding: { rule: 'QuiescentAllFree', kind: 'at-rest' } });
    const words = pdspec(['conform', cutOff]);
    expect(words.stdout).toMatch(/conforms — 12 events, 1 request\(s\), 1 ended, not quiescent/);
  });
});

// ---------------------------------------------------------------------------------------------
// Guards stated directly.

describe('a token past maxTokens is refused by the underLimit guard', () => {
  const header = '{"format":"pdspec-trace","version":1,"mode":"semi-pd","blocks":8,"blockSize":4,"sms":132}';
  // r1 (maxTokens 1) has its one token; a decode step scheduled before that token was seen computes one position
  // more, which yields no token (noTokenOwed allows the join and the end): a token for it is one past the limit.
  const upTo = (maxTokens: number) => [
    header,
    `{"t":0,"ev":"arrive","req":"r1","prompt":4,"maxTokens":${maxTokens}}`,
    '{"t":0,"ev":"schedule","req":"r1","worker":"P0"}',
    '{"t":0,"ev":"alloc","worker":"P0","req":"r1","blocks":[0,1]}',
    '{"t":0,"ev":"step_begin","worker":"P0","step":1,"batch":[{"req":"r1","tokens":4}]}',
    '{"t":0,"ev":"step_end","worker":"P0","step":1}',
    '{"t":0,"ev":"handoff","req":"r1","from":"P0","to":"D0"}',
    '{"t":0,"ev":"token","req":"r1","index":0}',
    '{"t":0,"ev":"join","req":"r1","worker":"D0"}',
    '{"t":0,"ev":"step_begin","worker":"D0","step":1,"batch":[{"req":"r1","tokens":1}]}',
    '{"t":0,"ev":"step_end","worker":"D0","step":1}',
  ];
  const pastLimit = '{"t":0,"ev":"token","req":"r1","index":1}';

  it('the token one past the limit is refused at its line, naming underLimit', () => {
    expect(checkText(upTo(1).join('\n')).verdict).not.toBe('bad-input');
    expect(checkText([...upTo(1), '{"t":0,"ev":"finish","req":"r1"}', '{"t":0,"ev":"free","req":"r1","blocks":[0,1]}'].join('\n'), { quiescent: true }).verdict).toBe('conforms');
    const v = checkText([...upTo(1), pastLimit].join('\n'));
    expect(v.verdict).toBe('violation');
    if (v.verdict !== 'violation') return;
    expect(v.finding).toMatchObject({ line: 12, kind: 'guard', machine: 'request', guard: 'underLimit', rule: 'LifecycleOrder' });
    expect(v.finding.message).toMatch(/already generated its limit of 1 token/);
    expect(formatVerdict('t', v)).toContain("how:     refused by request guard 'underLimit'");
  });

  it('under a higher limit, or none, the same token is appended', () => {
    expect(checkText([...upTo(2), pastLimit].join('\n')).verdict).toBe('conforms');
    const unlimited = upTo(1).map((l) => l.replace(',"maxTokens":1', ''));
    expect(checkText([...unlimited, pastLimit].join('\n')).verdict).toBe('conforms');
  });
});

describe('a free while the pool lock is held is refused', () => {
  // The three-step allocation under the lock: P0 holds pool 0's lock between alloc_query and alloc_commit.
  const prefix = [
    '{"format":"pdspec-trace","version":1,"mode":"semi-pd","blocks":8,"blockSize":4,"sms":132,"allocator":"lock"}',
    '{"t":0,"ev":"arrive","req":"r1","prompt":4,"maxTokens":1}',
    '{"t":0,"ev":"schedule","req":"r1","worker":"P0"}',
    '{"t":0,"ev":"alloc_query","worker":"P0"}',
    '{"t":0,"ev":"alloc_take","worker":"P0","req":"r1","blocks":[0]}',
    '{"t":0,"ev":"alloc_commit","worker":"P0"}',
    '{"t":0.001,"ev":"abort","req":"r1"}',
    '{"t":0.001,"ev":"arrive","req":"r2","prompt":4,"maxTokens":1}',
    '{"t":0.001,"ev":"schedule","req":"r2","worker":"P0"}',
    '{"t":0.002,"ev":"alloc_query","worker":"P0"}',
  ];
  const free = '{"t":0.002,"ev":"free","req":"r1","blocks":[0]}';

  it('between alloc_query and alloc_commit, the free is refused by the pool: BlocksAccounted', () => {
    replay(prefix); // every line up to the free is allowed (the trace would end with r1's block unfreed)
    const v = checkText([...prefix, free].join('\n'));
    expect(v.verdict).toBe('violation');
    if (v.verdict !== 'violation') return;
    expect(v.finding).toMatchObject({ line: 11, kind: 'guard', machine: 'pool', state: 'locked', rule: 'BlocksAccounted' });
    expect(v.finding.guard).toBeUndefined();
    expect(v.finding.message).toMatch(/lock is held by P0 between alloc_query and alloc_commit; a free must wait/);
    expect(formatVerdict('t', v)).toContain("how:     refused by pool (no 'free' in state 'locked')");
  });

  it('before the query or after the commit, the same free is allowed', () => {
    const before = [...prefix.slice(0, -1), free, prefix[prefix.length - 1], '{"t":0.002,"ev":"alloc_take","worker":"P0","req":"r2","blocks":[0]}', '{"t":0.002,"ev":"alloc_commit","worker":"P0"}'];
    expect(checkText(before.join('\n')).verdict).toBe('conforms');
    const after = [...prefix, '{"t":0.002,"ev":"alloc_take","worker":"P0","req":"r2","blocks":[1]}', '{"t":0.002,"ev":"alloc_commit","worker":"P0"}', free];
    expect(checkText(after.join('\n')).verdict).toBe('conforms');
  });
});
