// M2's inputs: observations described by small integers (so that a shrunk one reads at a glance), and
// "more pressure" on one phase as non-negative differences in that phase's components, everything else equal.
//
// Shrinking goes towards a quiet window at the engine's default split: no queue, no batch, no arrivals, no
// latency samples, the SLOs at their centres (TTFT 1 s, TPOT 0.1 s), KV empty; increments towards zero.
import fc from 'fast-check';
import type { LatencyModel, Observation, Percentiles, Split } from '../../engine/policy-api.ts';
import { BEYOND, loadEnvelope, type LoadEnvelope } from './load-envelope.ts';

export type ShareRule = Observation['shareRule'];
export type Phase = 'prefill' | 'decode';

/** A window's latency samples, in milliseconds; null: no samples (the observation's percentiles are NaN). */
export interface LatencySpec {
  count: number;
  p50: number;
  p90: number;
  p99: number;
}

/** An observation in small integers; `observationOf` turns it into the policy API's shape. */
export interface ObservationSpec {
  shareRule: ShareRule;
  split: Split;
  /** Full prompt lengths of the requests waiting for prefill, in queue order. */
  prompts: number[];
  /** Positions of the queue's head already computed (a chunked prefill in progress); below its length. */
  headDone: number;
  batch: number;
  contextTokens: number;
  kvPercent: number;
  /** Arrival rate in tenths of a request per second. */
  arrivalTenths: number;
  ttftMs: LatencySpec | null;
  tpotMs: LatencySpec | null;
  sloTtftMs: number;
  sloTpotMs: number;
}

/** Prefill pressure that o has less of than o′, component by component (each ≥ 0). */
export interface PrefillPressure {
  /** Requests o lacks at the end of the prefill queue (o′'s last ones). */
  fewerPrompts: number;
  /** More of the head's positions already computed in o: fewer tokens still to compute. */
  moreHeadDone: number;
  arrivalTenths: number;
  /** Taken off each observed TTFT percentile in o (ms, never below 1); no effect without samples. */
  ttftMs: number;
  /** Added to the TTFT SLO in o (ms): o′'s is tighter. */
  looserSloTtftMs: number;
}

/** Decode pressure that o has less of than o′, component by component (each ≥ 0). */
export interface DecodePressure {
  fewerBatch: number;
  fewerContextTokens: number;
  tpotMs: number;
  looserSloTpotMs: number;
  /** Only when asked for (`kvUsage` among the components): KV usage is not in the design's list. */
  kvPercent: number;
}

export const PREFILL_COMPONENTS = ['queue', 'tokens', 'arrivalRate', 'ttft', 'sloTtft'] as const;
export const DECODE_COMPONENTS = ['batch', 'context', 'tpot', 'sloTpot', 'kvUsage'] as const;
export type PrefillComponent = (typeof PREFILL_COMPONENTS)[number];
export type DecodeComponent = (typeof DECODE_COMPONENTS)[number];
export type PressureComponent = PrefillComponent | DecodeComponent;
/** The decode components the design names (KV usage is opt-in). */
export const DEFAULT_DECODE_COMPONENTS: readonly DecodeComponent[] = ['batch', 'context', 'tpot', 'sloTpot'];

// ---------------------------------------------------------------------------------------------
// Small named arbitraries

/** An integer in [min, max] that shrinks towards `centre` (a readable default) rather than towards min. */
export function around(centre: number, min: number, max: number): fc.Arbitrary<number> {
  return fc.integer({ min: min - centre, max: max - centre }).map((k) => centre + k);
}

/**
 * `arb`, or its quiet value half of the time. Policies special-case quiet windows (an empty queue, no
 * samples): a base observation where every pressure is quiet must come up often, not once in thousands.
 */
export function oftenQuiet<T>(quiet: T, arb: fc.Arbitrary<T>): fc.Arbitrary<T> {
  return fc.oneof(fc.constant(quiet), arb);
}

/**
 * How far one scale of generation reaches. Observations mix two: `SMALL_SCALE`, a dozen short prompts and
 * small batches (a shrunk counterexample reads at a glance there), and `LOAD_SCALE`, up to BEYOND times what
 * the engine reaches when it serves the shipped workloads past capacity (load-envelope.ts). Each pressured
 * component picks its scale on its own, so a long queue meets an empty batch as well as a full one.
 */
export interface Scale {
  queueRequests: number;
  promptTokens: number;
  batchRequests: number;
  contextPerRequest: number;
  contextTokens: number;
  arrivalTenths: number;
  ttftMs: number;
  tpotMs: number;
  samples: number;
}

export const SMALL_SCALE: Scale = {
  queueRequests: 12,
  promptTokens: 4096,
  batchRequests: 64,
  contextPerRequest: 4096,
  contextTokens: 64 * 4096,
  arrivalTenths: 200,
  ttftMs: 10_000,
  tpotMs: 1_000,
  samples: 100,
};

/** The scale that reaches `beyond` times the envelope's maxima (never below the small scale). */
export function loadScale(envelope: LoadEnvelope, beyond = BEYOND): Scale {
  const m = envelope.maxima;
  const up = (x: number, unit: number, floor: number) => Math.max(floor, Math.ceil((x * beyond) / unit) * unit);
  return {
    queueRequests: up(m.queueRequests, 1, SMALL_SCALE.queueRequests),
    promptTokens: up(m.promptTokens, 64, SMALL_SCALE.promptTokens),
    batchRequests: up(m.batchRequests, 1, SMALL_SCALE.batchRequests),
    contextPerRequest: up(m.contextPerRequest, 64, SMALL_SCALE.contextPerRequest),
    contextTokens: up(m.contextTokens, 64, SMALL_SCALE.contextTokens),
    arrivalTenths: up(m.arrivalRate * 10, 1, SMALL_SCALE.arrivalTenths),
    ttftMs: up(m.ttftP99 * 1000, 1, SMALL_SCALE.ttftMs),
    tpotMs: up(m.tpotP99 * 1000, 1, SMALL_SCALE.tpotMs),
    samples: up(m.samples, 1, SMALL_SCALE.samples),
  };
}

export const LOAD_SCALE: Scale = loadScale(loadEnvelope());

/**
 * `small`, or `load` one time in four: most cases stay at the scale where findings shrink to a few readable
 * numbers, and every run still asks hundreds of questions at real load.
 */
function mostlySmall<T>(small: fc.Arbitrary<T>, load: fc.Arbitrary<T>): fc.Arbitrary<T> {
  return fc.oneof({ arbitrary: small, weight: 3 }, { arbitrary: load, weight: 1 });
}

/** An integer in 0..small, or in 0..load one time in four. */
function upTo(small: number, load: number): fc.Arbitrary<number> {
  return mostlySmall(fc.integer({ min: 0, max: small }), fc.integer({ min: 0, max: load }));
}

/** A prompt length: a multiple of 64 tokens, 64..scale.promptTokens. */
export const promptLength = (scale: Scale = SMALL_SCALE) => fc.integer({ min: 1, max: Math.floor(scale.promptTokens / 64) }).map((k) => 64 * k);
/** The waiting prompts, in queue order: a dozen short ones, or up to four runs of equal prompts filling a queue of thousands. */
export const promptQueue = mostlySmall(
  fc.array(promptLength(SMALL_SCALE), { maxLength: SMALL_SCALE.queueRequests }),
  fc
    .array(fc.record({ length: promptLength(LOAD_SCALE), count: fc.integer({ min: 1, max: Math.ceil(LOAD_SCALE.queueRequests / 4) }) }), { minLength: 1, maxLength: 4 })
    .map((runs) => runs.flatMap(({ length, count }) => Array<number>(count).fill(length))),
);
/** Bounds on the shares of the generated split, in percent (default 1..100). */
export interface ShareRange {
  min: number;
  max: number;
}

const clamp = (x: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, x));

/** A share split valid under the rule, shrinking to the engine's default (Nexus 50/50, semi-PD 80/100). */
export function splitFor(rule: ShareRule, range: ShareRange = { min: 1, max: 100 }): fc.Arbitrary<Split> {
  if (rule === 'exact') {
    // Both shares in range: prefill in [max(min, 100 − max), min(max, 100 − min)].
    const lo = Math.max(range.min, 100 - range.max, 1);
    const hi = Math.min(range.max, 100 - range.min, 99);
    if (lo > hi) throw new Error(`no exact split has both shares in ${range.min}..${range.max}`);
    return around(clamp(50, lo, hi), lo, hi).map((prefill) => ({ prefill, decode: 100 - prefill }));
  }
  const lo = Math.max(1, range.min);
  const hi = Math.min(100, range.max);
  if (lo > hi) throw new Error(`empty share range ${range.min}..${range.max}`);
  return fc.tuple(around(clamp(80, lo, hi), lo, hi), around(clamp(100, lo, hi), lo, hi)).map(([prefill, decode]) => ({ prefill, decode }));
}
/** Latency samples of a window, in ms: null (none) or ordered percentiles. */
export function latencySamples(maxMs: number, maxSamples = SMALL_SCALE.samples): fc.Arbitrary<LatencySpec | null> {
  return fc.option(
    fc
      .record({ count: fc.integer({ min: 1, max: maxSamples }), p90: fc.integer({ min: 1, max: maxMs }), below: fc.integer({ min: 0, max: maxMs }), above: fc.integer({ min: 0, max: maxMs }) })
      .map(({ count, p90, below, above }) => ({ count, p50: Math.max(1, p90 - below), p90, p99: p90 + above })),
    { nil: null },
  );
}

/** An observation under one of `rules`, its split's shares within `range`. */
export function observationSpec(rules: readonly ShareRule[], range?: ShareRange): fc.Arbitrary<ObservationSpec> {
  const rule = rules.length === 1 ? fc.constant(rules[0]) : fc.constantFrom(...rules);
  return rule.chain((shareRule) =>
    fc.record({
      shareRule: fc.constant(shareRule),
      split: splitFor(shareRule, range),
      prompts: oftenQuiet([] as number[], promptQueue),
      headDone: upTo(SMALL_SCALE.promptTokens - 1, LOAD_SCALE.promptTokens - 1),
      batch: oftenQuiet(0, upTo(SMALL_SCALE.batchRequests, LOAD_SCALE.batchRequests)),
      contextPerRequest: upTo(SMALL_SCALE.contextPerRequest / 64 - 1, LOAD_SCALE.contextPerRequest / 64 - 1).map((k) => 64 * (k + 1)),
      kvPercent: fc.integer({ min: 0, max: 100 }),
      arrivalTenths: oftenQuiet(0, upTo(SMALL_SCALE.arrivalTenths, LOAD_SCALE.arrivalTenths)),
      ttftMs: oftenQuiet(null, mostlySmall(latencySamples(SMALL_SCALE.ttftMs), latencySamples(LOAD_SCALE.ttftMs, LOAD_SCALE.samples))),
      tpotMs: oftenQuiet(null, mostlySmall(latencySamples(SMALL_SCALE.tpotMs), latencySamples(LOAD_SCALE.tpotMs, LOAD_SCALE.samples))),
      sloTtftMs: around(1000, 10, 10_000),
      sloTpotMs: around(100, 1, 1_000),
    }).map(({ contextPerRequest, ...o }) => normalised({ ...o, contextTokens: o.batch * contextPerRequest })),
  );
}

/** Keeps a spec consistent: the head's progress below its length, no context without a batch. */
function normalised(o: ObservationSpec): ObservationSpec {
  const headDone = o.prompts.length > 0 ? Math.min(o.headDone, o.prompts[0] - 1) : 0;
  return { ...o, headDone, contextTokens: o.batch > 0 ? o.contextTokens : 0 };
}

const zero = fc.constant(0);
const on = <T>(wanted: boolean, arb: fc.Arbitrary<T>, none: T) => (wanted ? arb : fc.constant(none));

/** Prefill pressure differences over the chosen components (the others stay zero). */
export function prefillPressure(components: readonly PressureComponent[]): fc.Arbitrary<PrefillPressure> {
  const has = (c: PrefillComponent) => components.includes(c);
  return fc.record({
    fewerPrompts: has('queue') ? upTo(SMALL_SCALE.queueRequests, LOAD_SCALE.queueRequests) : zero,
    moreHeadDone: has('tokens') ? upTo(SMALL_SCALE.promptTokens - 1, LOAD_SCALE.promptTokens - 1) : zero,
    arrivalTenths: has('arrivalRate') ? upTo(SMALL_SCALE.arrivalTenths, LOAD_SCALE.arrivalTenths) : zero,
    ttftMs: has('ttft') ? upTo(SMALL_SCALE.ttftMs, LOAD_SCALE.ttftMs) : zero,
    looserSloTtftMs: has('sloTtft') ? fc.integer({ min: 0, max: 10_000 }) : zero,
  });
}

/** Decode pressure differences over the chosen components (the others stay zero). */
export function decodePressure(components: readonly PressureComponent[]): fc.Arbitrary<DecodePressure> {
  const has = (c: DecodeComponent) => components.includes(c);
  return fc.record({
    fewerBatch: has('batch') ? upTo(SMALL_SCALE.batchRequests, LOAD_SCALE.batchRequests) : zero,
    fewerContextTokens: has('context') ? upTo(SMALL_SCALE.contextTokens / 64, LOAD_SCALE.contextTokens / 64).map((k) => 64 * k) : zero,
    tpotMs: has('tpot') ? upTo(SMALL_SCALE.tpotMs, LOAD_SCALE.tpotMs) : zero,
    looserSloTpotMs: has('sloTpot') ? fc.integer({ min: 0, max: 1_000 }) : zero,
    kvPercent: has('kvUsage') ? fc.integer({ min: 0, max: 100 }) : zero,
  });
}

// ---------------------------------------------------------------------------------------------
// Relieving pressure: from the pressured o′, the o it dominates — less in the phase's components (never
// below zero), equal elsewhere. Generating o′ and the difference (rather than o and an increment) lets
// shrinking reach a single step at a threshold (8 → 9 waiting), with o′ as quiet as it can be.

/** Latency samples lowered by `ms` (by less where p50 would fall below 1 ms, so that the order stays). */
const lower = (l: LatencySpec | null, ms: number): LatencySpec | null => {
  if (!l) return null;
  const by = Math.min(ms, l.p50 - 1);
  return { ...l, p50: l.p50 - by, p90: l.p90 - by, p99: l.p99 - by };
};

export function withLessPrefillPressure(o: ObservationSpec, d: PrefillPressure): ObservationSpec {
  const prompts = o.prompts.slice(0, Math.max(0, o.prompts.length - d.fewerPrompts));
  return {
    ...o,
    prompts,
    // The head (when one is left) is the same request, further along.
    headDone: prompts.length > 0 ? Math.min(o.headDone + d.moreHeadDone, prompts[0] - 1) : 0,
    arrivalTenths: Math.max(0, o.arrivalTenths - d.arrivalTenths),
    ttftMs: lower(o.ttftMs, d.ttftMs),
    sloTtftMs: o.sloTtftMs + d.looserSloTtftMs,
  };
}

export function withLessDecodePressure(o: ObservationSpec, d: DecodePressure): ObservationSpec {
  const batch = Math.max(0, o.batch - d.fewerBatch);
  // Each decoding request holds at least one cached token; no batch holds none.
  const context = batch === 0 ? 0 : Math.max(batch, o.contextTokens - d.fewerContextTokens);
  return {
    ...o,
    batch,
    contextTokens: context,
    tpotMs: lower(o.tpotMs, d.tpotMs),
    sloTpotMs: o.sloTpotMs + d.looserSloTpotMs,
    kvPercent: Math.max(0, o.kvPercent - d.kvPercent),
  };
}

// ---------------------------------------------------------------------------------------------
// To the policy API, and back to words

function percentilesOf(l: LatencySpec | null): Percentiles {
  if (!l) return { p50: Number.NaN, p90: Number.NaN, p99: Number.NaN, count: 0 };
  return { p50: l.p50 / 1000, p90: l.p90 / 1000, p99: l.p99 / 1000, count: l.count };
}

export function observationOf(o: ObservationSpec, model: LatencyModel, time: number): Observation {
  const queued = o.prompts.reduce((sum, p) => sum + p, 0);
  return {
    time,
    split: { ...o.split },
    shareRule: o.shareRule,
    prefillQueue: { requests: o.prompts.length, tokens: queued - o.headDone, promptLengths: [...o.prompts] },
    decodeBatch: { requests: o.batch, contextTokens: o.contextTokens },
    kvUsage: o.kvPercent / 100,
    arrivalRate: o.arrivalTenths / 10,
    ttft: percentilesOf(o.ttftMs),
    tpot: percentilesOf(o.tpotMs),
    slo: { ttft: o.sloTtftMs / 1000, tpot: o.sloTpotMs / 1000 },
    model,
  };
}

/** The fields of an observation as short "name value" strings, in a fixed order (model left out). */
export function fieldsOf(obs: Observation): [string, string][] {
  const lat = (p: Percentiles, unit: number) =>
    p.count === 0 ? 'none' : `p50 ${fmt(p.p50 * unit)} p90 ${fmt(p.p90 * unit)} p99 ${fmt(p.p99 * unit)} ms (${p.count} samples)`;
  return [
    ['split', `${obs.split.prefill}/${obs.split.decode} (${obs.shareRule})`],
    ['prefillQueue.requests', String(obs.prefillQueue.requests)],
    ['prefillQueue.tokens', String(obs.prefillQueue.tokens)],
    ['prefillQueue.promptLengths', compactList(obs.prefillQueue.promptLengths)],
    ['decodeBatch.requests', String(obs.decodeBatch.requests)],
    ['decodeBatch.contextTokens', String(obs.decodeBatch.contextTokens)],
    ['kvUsage', `${fmt(obs.kvUsage * 100)} %`],
    ['arrivalRate', `${fmt(obs.arrivalRate)} req/s`],
    ['ttft', lat(obs.ttft, 1000)],
    ['tpot', lat(obs.tpot, 1000)],
    ['slo.ttft', `${fmt(obs.slo.ttft * 1000)} ms`],
    ['slo.tpot', `${fmt(obs.slo.tpot * 1000)} ms`],
  ];
}

function fmt(x: number): string {
  return String(Number(x.toPrecision(6)));
}

/** [64, 64, 64, 128] → "[64×3, 128]". */
export function compactList(values: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < values.length; ) {
    let j = i;
    while (j < values.length && values[j] === values[i]) j++;
    parts.push(j - i > 1 ? `${values[i]}×${j - i}` : String(values[i]));
    i = j;
  }
  return `[${parts.join(', ')}]`;
}

/** "o: …" (the fields both share) and "o → o′: …" (the fields that differ). */
export function diffLines(before: Observation, after: Observation): string[] {
  const a = fieldsOf(before);
  const b = new Map(fieldsOf(after));
  const same = a.filter(([k, v]) => b.get(k) === v).map(([k, v]) => `${k} ${v}`);
  const changed = a.filter(([k, v]) => b.get(k) !== v).map(([k, v]) => `${k}: ${v} → ${b.get(k)}`);
  return [`both: ${same.join(', ')}`, `o → o′: ${changed.length ? changed.join('; ') : '(identical)'}`];
}
