// Synthetic workloads with shared prefixes: system prompts shared by many requests (skewed, Zipf-like
// popularity) and multi-turn conversations whose every turn extends the previous one. The Azure traces have
// no prompt text, so prefix sharing has to be synthesised. docs/workload-format.md ("Shared prefixes") says
// which published statistics the defaults follow and which are this generator's own choices. Seeded: the
// same options give the same list. All lengths are in tokens, independent of the KV block size.
//
// What a declared prefix means. A request with `prefix: {id, length: L}` asserts that its first L prompt
// tokens are the first L tokens of the token sequence named `id` (the engine keys cached blocks by id and
// block index; model executors derive those tokens from the id). So any two requests with the same id agree
// on the positions both declare. Here:
//
// - `sys-<k>`: every request of system prompt k declares exactly the system prompt's length L_k; the rest
//   of its prompt (the user part) is its own.
// - `conv-<c>`: the sequence is conversation c's transcript as its later turns read it (user message 1,
//   answer 1, user message 2, ...). Turn k's prompt is the transcript's first P_k tokens and declares all of
//   them, {conv-<c>, P_k}; turn k + 1's prompt is P_{k+1} = P_k + O_k + U_{k+1} tokens and declares
//   {conv-<c>, P_{k+1}}, so it starts with turn k's whole prompt, whose blocks turn k left in the cache. The
//   answer's O_k positions in the transcript stand in for what the model generated for turn k (the workload
//   is fixed before the run, as when a benchmark replays recorded conversations): nothing claims that turn
//   k's generated tokens are those positions, and an engine that caches only declared prompt blocks reuses
//   turn k's prompt, not its answer. (Declaring only P_k on turn k + 1 would be consistent too, but each
//   turn would then cache only the previous turn's prompt, and the reuse would lag a turn behind a real
//   engine's.)
import { Random } from '../random.ts';
import { MAX_SYNTHETIC_REQUESTS, sampleLength, type LengthDistribution } from './synthetic.ts';
import { MAX_SAMPLES, WorkloadError, type WorkloadRequest } from './types.ts';

export interface SharedPrefixOptions {
  /** Mean arrival rate of requests (every conversation turn counts), requests per second. */
  rate: number;
  /** Keep the first N requests in arrival order, and/or those arriving before this many seconds (one is needed). */
  requests?: number;
  duration?: number;
  seed: number;
  /** Fraction of requests (0..1) that are conversation turns; the rest use a shared system prompt. */
  mix?: number;
  /** How many distinct system prompts (`sys-0` ... `sys-<K-1>`, most popular first). */
  systemPrompts?: number;
  /** Zipf exponent s of system-prompt popularity: P(sys-k) ∝ 1 / (k + 1)^s (0 is uniform). */
  zipf?: number;
  /** Length of each system prompt (drawn once per prompt). */
  systemLen?: LengthDistribution;
  /** Length of a user message: the user part after a system prompt, and every conversation turn's new message. */
  userLen?: LengthDistribution;
  /** Output length of every request. */
  output?: LengthDistribution;
  /** Mean number of turns of a conversation (geometric: P(T = t) = q (1 − q)^(t − 1), q = 1 / meanTurns). */
  meanTurns?: number;
  /** Longest conversation, in turns (the geometric draw is capped here). */
  maxTurns?: number;
  /** Mean think time, seconds (exponential) between a turn's expected completion and the next turn's arrival. */
  thinkTime?: number;
  /** Expected completion of a turn, for the next turn's arrival: prompt / prefillRate + output × tpot seconds. */
  prefillRate?: number;
  tpot?: number;
  /** Context window: no prompt is longer; a conversation ends when its next prompt would be. */
  maxContext?: number;
  /** Fraction of requests (0..1) with parallel samples, n drawn uniformly from 2..maxSamples. */
  parallelFraction?: number;
  maxSamples?: number;
}

/** The defaults; docs/workload-format.md gives the source of each, or says it is a choice. */
export const SHARED_PREFIX_DEFAULTS = {
  mix: 0.5,
  systemPrompts: 6,
  zipf: 1,
  systemLen: { kind: 'lognormal', median: 1024, sigma: 0.6, min: 1, max: 8192 },
  userLen: { kind: 'lognormal', median: 128, sigma: 0.8, min: 1, max: 4096 },
  output: { kind: 'lognormal', median: 256, sigma: 0.8, min: 1, max: 4096 },
  meanTurns: 3.51,
  maxTurns: 32,
  thinkTime: 10,
  prefillRate: 8000,
  tpot: 0.03,
  maxContext: 16384,
  parallelFraction: 0,
  maxSamples: 4,
} as const satisfies Required<Omit<SharedPrefixOptions, 'rate' | 'requests' | 'duration' | 'seed'>>;

type Resolved = Required<Omit<SharedPrefixOptions, 'requests' | 'duration'>> & { requests: number; duration: number };

/** Expected turns of a conversation: E[min(T, maxTurns)] for T geometric with mean `meanTurns`. */
export function expectedTurns(meanTurns: number, maxTurns: number): number {
  const q = 1 / meanTurns;
  return q === 1 ? 1 : (1 - Math.pow(1 - q, maxTurns)) / q;
}

function fail(message: string): never {
  throw new WorkloadError(`shared-prefix workload: ${message}`);
}

function checkFraction(value: number, name: string): void {
  if (!(value >= 0 && value <= 1)) fail(`${name} must be a number in 0..1, got ${value}`);
}

function checkInt(value: number, name: string, min: number, max = Number.MAX_SAFE_INTEGER): void {
  if (!Number.isInteger(value) || value < min || value > max) fail(`${name} must be an integer ${max === Number.MAX_SAFE_INTEGER ? `≥ ${min}` : `in ${min}..${max}`}, got ${value}`);
}

function checkNumber(value: number, name: string, min: number, strict: boolean): void {
  const ok = Number.isFinite(value) && (strict ? value > min : value >= min);
  if (!ok) fail(`${name} must be a finite number ${strict ? '>' : '≥'} ${min}, got ${value}`);
}

function checkLength(d: LengthDistribution, name: string): void {
  const bad = (why: string): never => fail(`${name}: ${why}`);
  if (d === null || typeof d !== 'object') bad('must be a length distribution');
  const intAtLeast1 = (v: number) => Number.isInteger(v) && v >= 1;
  switch (d.kind) {
    case 'fixed':
      if (!intAtLeast1(d.value)) bad(`fixed length must be an integer ≥ 1, got ${d.value}`);
      return;
    case 'uniform':
      if (!intAtLeast1(d.min) || !intAtLeast1(d.max) || d.max < d.min) bad(`uniform needs integers 1 ≤ min ≤ max, got ${d.min}..${d.max}`);
      return;
    case 'lognormal':
      if (!(d.median >= 1) || !Number.isFinite(d.median) || !(d.sigma >= 0) || !Number.isFinite(d.sigma) || !intAtLeast1(d.min) || !intAtLeast1(d.max) || d.max < d.min) {
        bad(`lognormal needs median ≥ 1, sigma ≥ 0 and integers 1 ≤ min ≤ max, got ${JSON.stringify(d)}`);
      }
      return;
    case 'empirical':
      if (!Array.isArray(d.values) || d.values.length === 0 || !d.values.every(intAtLeast1)) bad('empirical needs a non-empty list of integers ≥ 1');
      return;
    default:
      bad(`unknown kind '${(d as { kind: unknown }).kind}'`);
  }
}

/** The options with defaults filled in, or a WorkloadError naming the first bad one. */
export function resolveSharedPrefixOptions(o: SharedPrefixOptions): Resolved {
  if (o === null || typeof o !== 'object') fail('options must be an object');
  const d = SHARED_PREFIX_DEFAULTS;
  const r: Resolved = {
    rate: o.rate,
    requests: o.requests ?? Number.POSITIVE_INFINITY,
    duration: o.duration ?? Number.POSITIVE_INFINITY,
    seed: o.seed,
    mix: o.mix ?? d.mix,
    systemPrompts: o.systemPrompts ?? d.systemPrompts,
    zipf: o.zipf ?? d.zipf,
    systemLen: o.systemLen ?? d.systemLen,
    userLen: o.userLen ?? d.userLen,
    output: o.output ?? d.output,
    meanTurns: o.meanTurns ?? d.meanTurns,
    maxTurns: o.maxTurns ?? d.maxTurns,
    thinkTime: o.thinkTime ?? d.thinkTime,
    prefillRate: o.prefillRate ?? d.prefillRate,
    tpot: o.tpot ?? d.tpot,
    maxContext: o.maxContext ?? d.maxContext,
    parallelFraction: o.parallelFraction ?? d.parallelFraction,
    maxSamples: o.maxSamples ?? d.maxSamples,
  };
  if (!(r.rate > 0) || !Number.isFinite(r.rate)) fail(`rate must be a positive number of requests per second, got ${r.rate}`);
  if (!Number.isFinite(r.seed)) fail(`seed must be a finite number, got ${r.seed}`);
  if (o.requests === undefined && o.duration === undefined) fail('needs a number of requests or a duration');
  if (o.requests !== undefined) checkInt(o.requests, 'requests', 1);
  if (o.duration !== undefined) checkNumber(o.duration, 'duration', 0, true);
  const expected = Math.min(r.requests, r.duration * r.rate);
  if (!(expected <= MAX_SYNTHETIC_REQUESTS)) fail(`holds at most ${MAX_SYNTHETIC_REQUESTS.toLocaleString('en')} requests; this one asks for about ${expected.toExponential(2)} (requests, or rate × duration)`);
  checkFraction(r.mix, 'mix');
  checkInt(r.systemPrompts, 'systemPrompts', 1);
  checkNumber(r.zipf, 'zipf (exponent)', 0, false);
  checkLength(r.systemLen, 'systemLen');
  checkLength(r.userLen, 'userLen');
  checkLength(r.output, 'output');
  checkNumber(r.meanTurns, 'meanTurns', 1, false);
  checkInt(r.maxTurns, 'maxTurns', 1);
  checkNumber(r.thinkTime, 'thinkTime (seconds)', 0, false);
  checkNumber(r.prefillRate, 'prefillRate (tokens per second)', 0, true);
  checkNumber(r.tpot, 'tpot (seconds per output token)', 0, false);
  checkInt(r.maxContext, 'maxContext', 2);
  checkFraction(r.parallelFraction, 'parallelFraction');
  checkInt(r.maxSamples, 'maxSamples', 2, MAX_SAMPLES);
  return r;
}

/** Zipf(s) over ranks 0..k-1 by inverse CDF. */
function zipfSampler(k: number, s: number): (rng: Random) => number {
  const cdf: number[] = [];
  let total = 0;
  for (let i = 0; i < k; i++) cdf.push((total += 1 / Math.pow(i + 1, s)));
  for (let i = 0; i < k; i++) cdf[i] /= total;
  return (rng) => {
    const u = rng.float();
    let lo = 0;
    let hi = k - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cdf[mid] > u) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  };
}

/**
 * A workload of shared system prompts and multi-turn conversations. Sessions (one system-prompt request, or
 * one whole conversation) start as a Poisson process; a session is a conversation with the probability that
 * makes `mix` the expected fraction of requests that are conversation turns, and the session rate makes
 * `rate` the expected request rate. Requests come back sorted by arrival, ids `sys-<k>-<j>` and
 * `conv-<c>-t<turn>`.
 */
export function sharedPrefix(options: SharedPrefixOptions): WorkloadRequest[] {
  const o = resolveSharedPrefixOptions(options);
  const turnsMean = expectedTurns(o.meanTurns, o.maxTurns);
  // P(conversation) so that conversation turns are a fraction `mix` of the requests, in expectation.
  const pConv = o.mix === 0 ? 0 : o.mix === 1 ? 1 : o.mix / (o.mix + turnsMean * (1 - o.mix));
  const sessionRate = o.rate / (1 - pConv + pConv * turnsMean);
  const q = 1 / o.meanTurns;

  // Independent streams, forked in a fixed order: e.g. a different output distribution does not move the
  // session starts or change which system prompt a request uses.
  const root = new Random(o.seed);
  const sessionRng = root.fork('sessions');
  const kindRng = root.fork('kinds');
  const systemRng = root.fork('system-prompts');
  const popularityRng = root.fork('popularity');
  const userRng = root.fork('user');
  const outputRng = root.fork('output');
  const turnsRng = root.fork('turns');
  const thinkRng = root.fork('think');
  const samplesRng = root.fork('samples');

  const systemLens: number[] = [];
  for (let k = 0; k < o.systemPrompts; k++) systemLens.push(Math.min(sampleLength(o.systemLen, systemRng), o.maxContext - 1));
  const popular = zipfSampler(o.systemPrompts, o.zipf);

  const out: WorkloadRequest[] = [];
  const push = (r: WorkloadRequest) => {
    if (o.parallelFraction > 0 && samplesRng.float() < o.parallelFraction) r.n = samplesRng.int(2, o.maxSamples);
    out.push(r);
  };
  let systemCount = 0;
  let conversations = 0;

  const systemRequest = (t: number) => {
    const k = popular(popularityRng);
    const length = systemLens[k];
    const user = Math.min(sampleLength(o.userLen, userRng), o.maxContext - length);
    push({ id: `sys-${k}-${systemCount++}`, arrival: t, prompt: length + user, output: sampleLength(o.output, outputRng), prefix: { id: `sys-${k}`, length } });
  };

  const conversation = (t: number) => {
    const c = conversations++;
    let turns = 1;
    while (turns < o.maxTurns && turnsRng.float() >= q) turns++;
    let arrival = t;
    let prompt = Math.min(sampleLength(o.userLen, userRng), o.maxContext);
    for (let k = 1; ; k++) {
      const output = sampleLength(o.output, outputRng);
      push({ id: `conv-${c}-t${k}`, arrival, prompt, output, prefix: { id: `conv-${c}`, length: prompt } });
      if (k === turns) return;
      const next = prompt + output + sampleLength(o.userLen, userRng);
      if (next > o.maxContext) return; // the context window is full: the user starts afresh elsewhere
      const think = o.thinkTime > 0 ? thinkRng.exponential(1 / o.thinkTime) : 0;
      arrival += prompt / o.prefillRate + output * o.tpot + think;
      prompt = next;
    }
  };

  // Sessions start until the horizon; with a request limit N, until a session starts after the N-th earliest
  // arrival generated so far (no later session can add a request before it: its requests arrive after it starts).
  let cutoff = Number.POSITIVE_INFINITY;
  let t = 0;
  for (;;) {
    t += sessionRng.exponential(sessionRate);
    if (t >= o.duration || t >= cutoff) break;
    if (kindRng.float() < pConv) conversation(t);
    else systemRequest(t);
    if (cutoff === Number.POSITIVE_INFINITY && out.length >= o.requests) {
      cutoff = out.map((r) => r.arrival).sort((a, b) => a - b)[o.requests - 1];
    }
  }
  // Sorted by arrival; ties (none in practice) keep generation order.
  const sorted = out
    .map((r, i) => ({ r, i }))
    .sort((a, b) => a.r.arrival - b.r.arrival || a.i - b.i)
    .map((x) => x.r)
    .filter((r) => r.arrival < o.duration);
  return Number.isFinite(o.requests) ? sorted.slice(0, o.requests) : sorted;
}
