// Each invariant holds on a reachable state and fails on a state broken on purpose; each protocol rule is
// the reason of some refusal. A property that has never failed has not been shown to work.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkText, TraceChecker } from '../spec/checker.ts';
import { checkAtRest, checkQuiescent, checkState, RULE_NAMES, RULES, type InvariantName } from '../spec/invariants.ts';
import type { System } from '../spec/system.ts';

const example = (name: string) => readFileSync(join(import.meta.dirname, '..', 'examples', 'traces', name), 'utf8');

/** The system after replaying the first `lines` lines of a trace (all must conform). */
function stateAfter(text: string, lines?: number): System {
  const checker = new TraceChecker();
  for (const l of text.trim().split('\n').slice(0, lines)) checker.feed(l);
  expect(checker.done).toBe(false);
  return checker.sys!;
}

const withOwners = (sys: System, b: number, owners: string[], inFreeList: number, value = owners.length ? 'owned' : 'free') => {
  sys.blocks[b] = { value, context: { ...sys.blocks[b].context, owners, inFreeList } };
};

// semi-pd-resize.jsonl after line 21: r1 decoding on D0 with a step in flight on blocks 0-1, r3 on D0's FIFO,
// r2 in a prefill step on P0, block 5 free; P1 and D1 starting.
const resize = () => stateAfter(example('semi-pd-resize.jsonl'), 21);
// Trace v2, v2/shared-system-prompt.jsonl after line 11: block 0 cached under key sys and held by r1 and r2.
const shared = () => stateAfter(example('v2/shared-system-prompt.jsonl'), 11);

describe('state invariants: hold on a reachable state, fail on a broken one', () => {
  const cases: [InvariantName, (s: System) => void, (() => System)?][] = [
    ['BlocksAccounted', (s) => withOwners(s, 5, [], 0, 'owned')],
    // Block 0 counts r2 as a holder twice over: r2's table holds it once.
    ['RefCountIsHolders', (s) => withOwners(s, 0, ['r1', 'r2', 'r2'], 0), shared],
    [
      'CacheCoherent',
      (s) => {
        s.blocks[0] = { ...s.blocks[0], context: { ...s.blocks[0].context, key: 'other' } };
      },
      shared,
    ],
    ['SingleOwner', (s) => withOwners(s, 0, ['r1', 'r2'], 0)],
    ['FreeListUnique', (s) => withOwners(s, 5, [], 2)],
    ['FreeBlockUnowned', (s) => withOwners(s, 5, ['r2'], 1)],
    ['NoFreeWhileInFlight', (s) => withOwners(s, 0, [], 1)],
    [
      'SingleWriter',
      (s) => {
        const r = s.requestIndex.get('r1')!;
        s.requests[r] = { ...s.requests[r], context: { ...s.requests[r].context, server: 'D1' } };
      },
    ],
    [
      'SingleServer',
      (s) => {
        const w = s.workerIndex.get('P0')!;
        s.workers[w] = { ...s.workers[w], context: { ...s.workers[w].context, fifo: ['r3'] } };
      },
    ],
    [
      'ServedByLiveWorker',
      (s) => {
        const w = s.workerIndex.get('P0')!;
        s.workers[w] = { ...s.workers[w], value: 'stopped' };
      },
    ],
  ];

  it('the reachable states satisfy every state invariant', () => {
    expect(checkState(resize())).toBeNull();
    expect(checkState(shared())).toBeNull();
  });

  it.each(cases)('%s fails where it is broken', (name, breakIt, base = resize) => {
    const sys = base();
    breakIt(sys);
    const v = checkState(sys);
    expect(v?.invariant).toBe(name);
    expect(v?.message).toMatch(/\S/);
  });

  it('covers every state invariant of the catalogue', () => {
    expect(new Set(cases.map(([n]) => n))).toEqual(new Set(RULE_NAMES.filter((n) => RULES[n].kind === 'state')));
  });

  it('SingleWriter also fails when an in-flight step holds a block its request no longer owns', () => {
    const sys = resize();
    withOwners(sys, 1, ['r2'], 0); // the late write of r1's step would land in r2's block
    const v = checkState(sys);
    expect(v?.invariant).toBe('SingleWriter');
    expect(v?.message).toContain('block 1');
  });
});

describe('at-rest invariants', () => {
  const one = example('semi-pd-one-request.jsonl');
  const lines = one.trim().split('\n');

  it('EndedRequestsRelease: holds once the free is done, fails when the trace ends before it', () => {
    expect(checkAtRest(stateAfter(one))).toBeNull();
    expect(checkAtRest(stateAfter(one, lines.length - 1))?.invariant).toBe('EndedRequestsRelease');
  });

  it('QuiescentAllFree: fails when nothing is live but a block is neither free nor owned', () => {
    const sys = stateAfter(one);
    expect(checkQuiescent(sys)).toBeNull();
    withOwners(sys, 3, [], 0, 'owned');
    expect(checkAtRest(sys)?.invariant).toBe('QuiescentAllFree');
  });

  it('EveryRequestEnds: fails when a request is still live at the end', () => {
    expect(checkQuiescent(stateAfter(one, 10))?.invariant).toBe('EveryRequestEnds');
  });
});

describe('protocol rules name the refusals that protect them', () => {
  const header = '{"format":"pdspec-trace","version":1,"mode":"semi-pd","blocks":8,"blockSize":4,"sms":132}';
  const decoding = [
    '{"t":0,"ev":"arrive","req":"r1","prompt":4,"maxTokens":4}',
    '{"t":0,"ev":"schedule","req":"r1","worker":"P0"}',
    '{"t":0,"ev":"alloc","worker":"P0","req":"r1","blocks":[0,1]}',
    '{"t":0,"ev":"step_begin","worker":"P0","step":1,"batch":[{"req":"r1","tokens":4}]}',
    '{"t":0,"ev":"step_end","worker":"P0","step":1}',
    '{"t":0,"ev":"handoff","req":"r1","from":"P0","to":"D0"}',
    '{"t":0,"ev":"token","req":"r1","index":0}',
  ];
  const joined = [...decoding, '{"t":0,"ev":"join","req":"r1","worker":"D0"}'];
  const cases: [InvariantName, string[], string][] = [
    ['EndsOnce', [...joined, '{"t":0,"ev":"finish","req":"r1"}'], '{"t":0,"ev":"abort","req":"r1"}'],
    ['TokensInOrder', joined, '{"t":0,"ev":"token","req":"r1","index":1}'],
    ['KeepsLiveKv', joined, '{"t":0,"ev":"free","req":"r1","blocks":[1]}'],
    ['LifecycleOrder', decoding, '{"t":0,"ev":"step_begin","worker":"D0","step":1,"batch":[{"req":"r1","tokens":1}]}'],
    ['WorkersServeWhenReady', decoding.slice(0, 1), '{"t":0,"ev":"schedule","req":"r1","worker":"D0"}'],
    ['ResizeHandoff', [], '{"t":0,"ev":"resize_begin","epoch":2,"prefill":50,"decode":100}'],
    ['ShareRule', [], '{"t":0,"ev":"resize_begin","epoch":1,"prefill":50,"decode":60}'], // under Nexus's exact rule
    ['KnownIds', [], '{"t":0,"ev":"finish","req":"r9"}'],
    // Trace v2: r1's two full blocks are cached (keys a, b) when r2, 8 positions long, hits both.
    [
      'HitSkipsExactly',
      [
        ...example('v2/prefix-cache-hit.jsonl').trim().split('\n').slice(1, 11),
        '{"t":0.02,"ev":"arrive","req":"r2","prompt":8,"keys":["a","b"]}',
        '{"t":0.02,"ev":"schedule","req":"r2","worker":"U0"}',
      ],
      '{"t":0.02,"ev":"cache_hit","req":"r2","blocks":[0,1],"tokens":8}',
    ],
  ];

  // Trace v2 with a radix cache: r2 holds the matched block 0 under its lock when r3 needs room.
  const radix = example('v2/radix-eviction-under-pressure.jsonl').trim().split('\n');
  const forked = example('v2/fork-copy-on-write.jsonl').trim().split('\n');
  cases.push(
    ['WritesUnshared', forked.slice(1, 9), '{"t":0.01,"ev":"step_begin","worker":"U0","step":"s2","batch":[{"req":"c1","tokens":1}]}'],
    ['NoEvictWhileLocked', radix.slice(1, 19), '{"t":0.02,"ev":"evict","block":0}'],
    ['CacheSizeAccounted', radix.slice(1, 19), '{"t":0.02,"ev":"cache_size","evictable":4,"protected":0}'],
  );

  // Trace v3: r1 has verified one draft of two (accepted 1) and appended both owed tokens; computed is 7.
  const spec = example('v3/speculative-verify.jsonl').trim().split('\n');
  const afterVerify = spec.slice(1, 12);
  const joinedV3 = spec.slice(1, 8);
  cases.push(
    ['StepsInOrder', afterVerify, '{"t":0.02,"ev":"step_begin","worker":"U0","step":"s3","batch":[{"req":"r1","tokens":1,"from":8}]}'],
    ['KvMatchesOutput', afterVerify, '{"t":0.02,"ev":"step_begin","worker":"U0","step":"s3","batch":[{"req":"r1","tokens":1,"from":7,"ids":[40]}]}'],
    ['AcceptIsPrefix', spec.slice(1, 9), '{"t":0.02,"ev":"step_end","worker":"U0","step":"s2","accepted":{"r1":3}}'],
    ['DraftsAtTail', joinedV3, '{"t":0.01,"ev":"step_begin","worker":"U0","step":"s2","batch":[{"req":"r1","tokens":3,"from":5,"draft":1}]}'],
  );
  // Trace v3 with state slots: r1 holds slot 0 and its blocks, before its first step.
  const hybrid = example('v3/hybrid-state-slot.jsonl').trim().split('\n');
  cases.push(
    ['SlotSingleOwner', [...hybrid.slice(1, 5), '{"t":0,"ev":"arrive","req":"r2","prompt":4}'], '{"t":0,"ev":"slot_alloc","worker":"U0","req":"r2","slot":0}'],
    ['StepHasState', hybrid.slice(1, 4), '{"t":0,"ev":"step_begin","worker":"U0","step":"s1","batch":[{"req":"r1","tokens":4,"from":0}]}'],
  );
  const v3Rules = new Set(['StepsInOrder', 'KvMatchesOutput', 'AcceptIsPrefix', 'DraftsAtTail']);
  const slotRules = new Set(['SlotSingleOwner', 'StepHasState']);
  // Trace v3 with layer groups: r1 has computed its 4-token prompt; group swa has a window of 4.
  const windowed = example('v3/sliding-window.jsonl').trim().split('\n');
  cases.push(['PartialFreeOnlyUnneeded', windowed.slice(1, 9), '{"t":0.01,"ev":"free","req":"r1","blocks":[2],"group":"swa"}']);

  // Trace v4 (core-attention disaggregation): r1's and r2's tasks of step s1 made, t1 and t2 on A0, t3 on A1.
  const cad = example('v4/cad-ping-pong.jsonl').trim().split('\n');
  const cadRules = new Set(['TaskReadsOwnKv', 'TaskComputedOnce', 'ResultConsumedOnce', 'BufferNotReused', 'InPlaceKeepsInputs', 'StepWaitsForTasks']);
  cases.push(
    ['TaskReadsOwnKv', cad.slice(1, 10), '{"t":0.001,"ev":"task_create","task":"t3","req":"r2","worker":"U0","step":"s1","from":0,"to":4,"blocks":[1]}'],
    ['TaskComputedOnce', cad.slice(1, 15), '{"t":0.003,"ev":"task_dispatch","task":"t1","server":"A1","buffer":1}'],
    ['ResultConsumedOnce', cad.slice(1, 15), '{"t":0.003,"ev":"task_consume","task":"t1"}'],
    ['BufferNotReused', cad.slice(1, 13), '{"t":0.002,"ev":"task_dispatch","task":"t3","server":"A0","buffer":1}'],
    ['InPlaceKeepsInputs', cad.slice(1, 17), '{"t":0.004,"ev":"task_end","task":"t1"}'],
    ['StepWaitsForTasks', cad.slice(1, 21), '{"t":0.007,"ev":"step_end","worker":"U0","step":"s1"}'],
  );

  it.each(cases)('%s', (rule, prefix, bad) => {
    const h =
      rule === 'ShareRule'
        ? header.replace('"semi-pd"', '"nexus"')
        : rule === 'HitSkipsExactly'
          ? example('v2/prefix-cache-hit.jsonl').split('\n')[0]
          : rule === 'NoEvictWhileLocked' || rule === 'CacheSizeAccounted'
            ? radix[0]
            : rule === 'WritesUnshared'
              ? forked[0]
              : v3Rules.has(rule)
                ? spec[0]
                : slotRules.has(rule)
                  ? hybrid[0]
                  : rule === 'PartialFreeOnlyUnneeded'
                    ? windowed[0]
                    : cadRules.has(rule)
                      ? cad[0]
                      : header;
    const good = checkText([h, ...prefix].join('\n'));
    expect(good.verdict === 'bad-input' || (good.verdict === 'violation' && good.finding.kind !== 'at-rest')).toBe(false);
    const v = checkText([h, ...prefix, bad].join('\n'));
    expect(v.verdict).toBe('violation');
    if (v.verdict === 'violation') {
      expect(v.finding.rule).toBe(rule);
      expect(v.finding.kind).toBe('guard');
      expect(v.finding.line).toBe(prefix.length + 2);
    }
  });

  it('covers every guard-only rule of the catalogue', () => {
    expect(new Set(cases.map(([n]) => n))).toEqual(new Set(RULE_NAMES.filter((n) => RULES[n].kind === 'guard')));
  });
});
