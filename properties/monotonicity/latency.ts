// M1, the latency model: time never rises with a phase's own share, never falls with more work, and the
// speed-up (1 / time) is concave in the share — the gain from each extra share point does not grow.
//
// Each clause is one statement over LatencyModel (engine/policy-api.ts) at integer shares 1..100 (the domain
// policies call it on) and integer work. A case is two independent points, or a spaced triple of shares,
// so that a regime change is found wherever it sits; fast-check shrinks them towards the smallest share and
// work, and the explanation narrows the failing pair to an adjacent one — one share point, one token, one
// request apart (the lowest failing share step; a bisection over work). Over the integers that pair exists:
// a rise from lo to hi is a rise at some step.
import fc from 'fast-check';
import type { LatencyModel } from '../../engine/policy-api.ts';
import { latencyModel, loadProfile, profileNames } from '../../engine/profile.ts';
import { assemble, literal, num, OK, runClauses, replayCommand, type CheckResult, type Clause, type Verdict } from './result.ts';

export const M1_CLAUSES = ['prefill-share', 'decode-share', 'prefill-work', 'decode-work', 'prefill-concave', 'decode-concave'] as const;
export type M1Clause = (typeof M1_CLAUSES)[number];

export const DEFAULT_SEED = 20250607;

export interface LatencyCheckOptions {
  seed?: number;
  /** Cases per clause (default 300). */
  numRuns?: number;
  clauses?: readonly M1Clause[];
  /** Replays one failing case of the first clause in `clauses`. */
  path?: string;
  /**
   * Relative slack on every comparison (default 1e-12): float noise in a model that is flat in exact
   * arithmetic (decode past its saturation share) is not a violation.
   */
  tolerance?: number;
  /** How the subject is named in reports (default 'latency model'). */
  name?: string;
}

// ---------------------------------------------------------------------------------------------
// Arbitraries: small named pieces, shrinking towards the smallest share and work

/**
 * A non-negative integer drawn at one of several scales (each up to its maximum): a regime change at small
 * work (past 4096 tokens) must come up as often as one at large work. Shrinks towards 0.
 */
export function atScales(...maxima: number[]): fc.Arbitrary<number> {
  return fc.oneof(...maxima.map((max) => fc.integer({ min: 0, max })));
}

/** A share in percent, as policies pass it. */
export const share = fc.integer({ min: 1, max: 100 });
/** Prompt positions of one prefill step (0: an empty step). */
export const prefillTokens = atScales(64, 4096, 131_072);
/** Requests in a decode batch (0: an empty step). */
export const decodeBatch = atScales(8, 64, 1024);
/** Cached context tokens over a decode batch. */
export const contextTokens = atScales(4096, 131_072, 2_000_000);
/** Two shares in either order (the clause sorts them). */
export const sharePair = fc.tuple(share, share);
/** Three shares s < s + h < s + 2h, for the concavity clauses. */
export const shareTriple = fc
  .tuple(fc.integer({ min: 1, max: 49 }), fc.integer({ min: 1, max: 98 }))
  .map(([h, s]) => ({ s: Math.min(s, 100 - 2 * h), h }));

// ---------------------------------------------------------------------------------------------
// Judging

function bad(t: number): boolean {
  return !(Number.isFinite(t) && t >= 0);
}

/** a ≤ b up to a relative slack. */
function atMost(a: number, b: number, tolerance: number): boolean {
  return a <= b + tolerance * Math.max(Math.abs(a), Math.abs(b));
}

const secs = (t: number) => `${num(t)} s`;

function invalid(call: string, t: number): Verdict {
  return { ok: false, summary: `${call} = ${t}: a step time must be a finite number ≥ 0`, lines: [`${call} = ${t}`], data: { calls: [call], times: [t] } };
}

/** The first call whose result is not a step time, as a failure of its own. */
function invalidAmong(calls: readonly [string, number][]): Verdict | undefined {
  const found = calls.find(([, t]) => bad(t));
  return found ? invalid(found[0], found[1]) : undefined;
}

/**
 * Narrows a failing pair (lo < hi, bad(lo, hi)) to an adjacent one by bisection. For a relation that chains
 * (no bad adjacent step means no bad pair) one half always fails; with the comparison's float slack it may
 * not, and then the narrowest failing pair found is returned.
 */
export function bisect(lo: number, hi: number, bad: (a: number, b: number) => boolean): [number, number] {
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (bad(lo, mid)) hi = mid;
    else if (bad(mid, hi)) lo = mid;
    else break;
  }
  return [lo, hi];
}

/** One coordinate of a call varying: its time and how the call is written. */
interface Axis {
  time(x: number): number;
  call(x: number): string;
}

/** The failure at the adjacent pair (x, y), mentioning the generated pair it was narrowed from. */
function explain(what: string, axis: Axis, x: number, y: number, generated: string): Verdict {
  const [tx, ty] = [axis.time(x), axis.time(y)];
  const invalidCall = invalidAmong([[axis.call(x), tx], [axis.call(y), ty]]);
  if (invalidCall) return invalidCall;
  const change = tx > 0 ? ` (${ty > tx ? '+' : ''}${num(((ty - tx) / tx) * 100, 3)} %)` : '';
  const pair = `${axis.call(x)} → ${axis.call(y)}`;
  return {
    ok: false,
    summary: `${what}: ${axis.call(x)} = ${secs(tx)}, ${axis.call(y)} = ${secs(ty)}${change}`,
    lines: [`${axis.call(x)} = ${secs(tx)}`, `${axis.call(y)} = ${secs(ty)}${change}`, ...(generated === pair ? [] : [`narrowed from the generated pair ${generated}`])],
    data: { calls: [axis.call(x), axis.call(y)], times: [tx, ty], generated },
  };
}

/**
 * Along one axis, from a to b (sorted), time must not `rise` (share clauses) or must not `fall` (work
 * clauses). Undefined when it holds.
 */
function monotone(direction: 'rise' | 'fall', what: string, axis: Axis, a: number, b: number, tolerance: number): Verdict | undefined {
  const [lo, hi] = a <= b ? [a, b] : [b, a];
  const invalidCall = invalidAmong([[axis.call(lo), axis.time(lo)], [axis.call(hi), axis.time(hi)]]);
  if (invalidCall) return invalidCall;
  const breaks = (x: number, y: number) => {
    const [tx, ty] = [axis.time(x), axis.time(y)];
    if (bad(tx) || bad(ty)) return true;
    return direction === 'rise' ? !atMost(ty, tx, tolerance) : !atMost(tx, ty, tolerance);
  };
  if (!breaks(lo, hi)) return undefined;
  // Shares span at most 100 points: scan for the lowest failing step. Work spans millions: bisect.
  let pair = hi - lo <= 100 ? undefined : bisect(lo, hi, breaks);
  for (let x = lo; pair === undefined && x < hi; x++) if (breaks(x, x + 1)) pair = [x, x + 1];
  const [x, y] = pair ?? [lo, hi];
  return explain(what, axis, x, y, `${axis.call(lo)} → ${axis.call(hi)}`);
}

/** The speed-up gains over s, s+h, s+2h must not grow; narrowed to the first adjacent triple that breaks. */
function concave(label: string, axis: Axis, s: number, h: number, tolerance: number): Verdict {
  const shares = [s, s + h, s + 2 * h];
  const invalidCall = invalidAmong(shares.map((x) => [axis.call(x), axis.time(x)] as [string, number]));
  if (invalidCall) return invalidCall;
  const convexAt = (x: number, step: number) => {
    const t = [axis.time(x), axis.time(x + step), axis.time(x + 2 * step)];
    if (t.some((v) => bad(v) || v === 0)) return undefined; // empty work: no speed to compare
    const speed = t.map((v) => 1 / v);
    const gains = [speed[1] - speed[0], speed[2] - speed[1]];
    return gains[1] > gains[0] + tolerance * speed[2] ? { at: x, step, t, speed, gains } : undefined;
  };
  if (!convexAt(s, h)) return OK;
  // A concave function on the integers has no convex adjacent triple; look for the first one in the span.
  let found = convexAt(s, h)!;
  for (let x = s; x + 2 <= s + 2 * h; x++) {
    const adjacent = convexAt(x, 1);
    if (adjacent) {
      found = adjacent;
      break;
    }
  }
  const at = [found.at, found.at + found.step, found.at + 2 * found.step];
  const generated = `shares ${shares.join(', ')}`;
  return {
    ok: false,
    summary: `${label} speed-up is not concave at share ${at[0]}: the gain ${at[1]}→${at[2]} (${num(found.gains[1])}/s) exceeds the gain ${at[0]}→${at[1]} (${num(found.gains[0])}/s)`,
    lines: [
      ...at.map((x, i) => `${axis.call(x)} = ${secs(found.t[i])}, speed ${num(found.speed[i])}/s`),
      ...(at.join() === shares.join() ? [] : [`narrowed from the generated ${generated}`]),
    ],
    data: { shares: at, times: found.t, gains: found.gains, generated },
  };
}

/** The clauses of M1 over one model. */
export function latencyClauses(model: LatencyModel, tolerance: number): Clause<unknown>[] {
  const prefillAt = (n: number): Axis => ({ time: (s) => model.prefillTime(s, n), call: (s) => `prefillTime(${s}, ${n})` });
  const decodeAt = (b: number, c: number): Axis => ({ time: (s) => model.decodeTime(s, b, c), call: (s) => `decodeTime(${s}, ${b}, ${c})` });

  const prefillShare: Clause<{ s: [number, number]; n: number }> = {
    name: 'prefill-share',
    statement: 'prefill time never rises when the prefill share rises',
    arbitrary: fc.record({ s: sharePair, n: prefillTokens }),
    verdict: ({ s, n }) => monotone('rise', 'prefill time rose with the prefill share', prefillAt(n), s[0], s[1], tolerance) ?? OK,
  };
  const decodeShare: Clause<{ s: [number, number]; b: number; c: number }> = {
    name: 'decode-share',
    statement: 'decode time never rises when the decode share rises',
    arbitrary: fc.record({ s: sharePair, b: decodeBatch, c: contextTokens }),
    verdict: ({ s, b, c }) => monotone('rise', 'decode time rose with the decode share', decodeAt(b, c), s[0], s[1], tolerance) ?? OK,
  };
  const prefillWork: Clause<{ s: number; n: [number, number] }> = {
    name: 'prefill-work',
    statement: 'prefill time never falls when the step computes more tokens',
    arbitrary: fc.record({ s: share, n: fc.tuple(prefillTokens, prefillTokens) }),
    verdict: ({ s, n }) => {
      const axis: Axis = { time: (x) => model.prefillTime(s, x), call: (x) => `prefillTime(${s}, ${x})` };
      return monotone('fall', 'prefill time fell with more tokens', axis, n[0], n[1], tolerance) ?? OK;
    },
  };
  const decodeWork: Clause<{ s: number; b: [number, number]; c: [number, number] }> = {
    name: 'decode-work',
    statement: 'decode time never falls when the batch or its context grows',
    arbitrary: fc.record({ s: share, b: fc.tuple(decodeBatch, decodeBatch), c: fc.tuple(contextTokens, contextTokens) }),
    verdict: ({ s, b, c }) => {
      const [b0, b1] = b[0] <= b[1] ? b : [b[1], b[0]];
      const [c0, c1] = c[0] <= c[1] ? c : [c[1], c[0]];
      const call = (x: number, y: number) => `decodeTime(${s}, ${x}, ${y})`;
      const start = model.decodeTime(s, b0, c0);
      const end = model.decodeTime(s, b1, c1);
      const invalidCall = invalidAmong([[call(b0, c0), start], [call(b1, c1), end]]);
      if (invalidCall) return invalidCall;
      if (atMost(start, end, tolerance)) return OK;
      // From (b0, c0) to (b1, c1) through (b1, c0): the fall is in the batch step or in the context step.
      const byBatch: Axis = { time: (x) => model.decodeTime(s, x, c0), call: (x) => call(x, c0) };
      const byContext: Axis = { time: (y) => model.decodeTime(s, b1, y), call: (y) => call(b1, y) };
      return (
        monotone('fall', 'decode time fell with a bigger batch', byBatch, b0, b1, tolerance) ??
        monotone('fall', 'decode time fell with more context', byContext, c0, c1, tolerance) ?? {
          // Neither step alone falls past the slack, both together do: report the pair as generated.
          ok: false,
          summary: `decode time fell with more work: ${call(b0, c0)} = ${secs(start)}, ${call(b1, c1)} = ${secs(end)}`,
          lines: [`${call(b0, c0)} = ${secs(start)}`, `${call(b1, c1)} = ${secs(end)}`],
          data: { calls: [call(b0, c0), call(b1, c1)], times: [start, end], generated: `${call(b0, c0)} → ${call(b1, c1)}` },
        }
      );
    },
  };
  const prefillConcave: Clause<{ t: { s: number; h: number }; n: number }> = {
    name: 'prefill-concave',
    statement: 'the prefill speed-up is concave in the share (each extra point gains no more than the one before)',
    arbitrary: fc.record({ t: shareTriple, n: prefillTokens.map((n) => Math.max(1, n)) }),
    verdict: ({ t, n }) => concave('prefill', prefillAt(n), t.s, t.h, tolerance),
  };
  const decodeConcave: Clause<{ t: { s: number; h: number }; b: number; c: number }> = {
    name: 'decode-concave',
    statement: 'the decode speed-up is concave in the share (each extra point gains no more than the one before)',
    arbitrary: fc.record({ t: shareTriple, b: decodeBatch.map((b) => Math.max(1, b)), c: contextTokens }),
    verdict: ({ t, b, c }) => concave('decode', decodeAt(b, c), t.s, t.h, tolerance),
  };
  return [prefillShare, decodeShare, prefillWork, decodeWork, prefillConcave, decodeConcave] as Clause<unknown>[];
}

// ---------------------------------------------------------------------------------------------
// Entry points

function runM1(model: LatencyModel, options: LatencyCheckOptions, subject: string, replayCall: (o: object) => string): CheckResult {
  const seed = options.seed ?? DEFAULT_SEED;
  const numRuns = options.numRuns ?? 300;
  const selected = options.clauses ?? M1_CLAUSES;
  const tolerance = options.tolerance ?? 1e-12;
  const run = { seed, numRuns, ...(options.path !== undefined ? { path: options.path } : {}) };
  const clauses = runClauses(latencyClauses(model, tolerance), selected, run);
  const extra = options.tolerance !== undefined ? { tolerance } : {};
  return assemble('M1', subject, clauses, run, extra, replayCall, [
    `shares are integers 1..100 (the policy API's domain); comparisons allow a relative slack of ${tolerance}`,
  ]);
}

/** M1 over any LatencyModel (a policy's cost model, a fitted model, a test double). */
export function checkLatencyModel(model: LatencyModel, options: LatencyCheckOptions = {}): CheckResult {
  const name = options.name ?? 'latency model';
  // A model built in code cannot be named in a shell command: the replay is the call to make with it.
  return runM1(model, options, name, (o) => `checkLatencyModel(<the model>, ${literal(o)})`);
}

/** M1 over a profile's latency model (engine/profile.ts): a shipped name or a path to a profile JSON. */
export function checkProfile(nameOrPath: string, options: Omit<LatencyCheckOptions, 'name'> = {}): CheckResult {
  const model = latencyModel(loadProfile(nameOrPath));
  return runM1(model, options, `profile '${nameOrPath}'`, (o) => replayCommand('M1', nameOrPath, o));
}

/** M1 for every shipped profile (data/profiles/). */
export function checkShippedProfiles(options: Omit<LatencyCheckOptions, 'name' | 'path'> = {}): CheckResult[] {
  return profileNames().map((name) => checkProfile(name, options));
}
