// The published workloads of the semi-PD and Nexus papers, rebuilt from their summary statistics (neither
// paper ships its request lists), and slices of the Azure traces. docs/reproduction.md gives every number's
// source. Lengths depend only on (seed, request index) and arrivals only on (seed, rate), so that the
// workloads of one seed at two rates are the same requests with time-scaled arrivals: the attainment
// search then compares like with like.
import { Random } from '../../engine/random.ts';
import { loadAzure } from '../../engine/workloads/azure.ts';
import { scaleToRate, synthetic } from '../../engine/workloads/synthetic.ts';
import type { WorkloadRequest } from '../../engine/workloads/types.ts';

/** Standard normal CDF (Abramowitz & Stegun 7.1.26 for erf, |error| < 1.5e-7). */
export function normalCdf(z: number): number {
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * x);
  const poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  const erf = 1 - poly * Math.exp(-x * x);
  return z >= 0 ? 0.5 * (1 + erf) : 0.5 * (1 - erf);
}

/** E[min(X, max)] for X = exp(N(mu, sigma²)). */
export function clampedLognormalMean(mu: number, sigma: number, max: number): number {
  const lm = Math.log(max);
  return Math.exp(mu + (sigma * sigma) / 2) * normalCdf((lm - mu - sigma * sigma) / sigma) + max * (1 - normalCdf((lm - mu) / sigma));
}

/**
 * A lognormal length clamped to [1, max]. `mean` is the published statistic: the mean of the lengths served
 * (after the clamp), or with `truncates` the mean before it (a source whose lengths a serving context cuts).
 */
export interface LengthSpec {
  mean: number;
  sigma: number;
  max: number;
  truncates?: boolean;
}

/** mu of the lognormal whose mean after clamping at `max` is `mean` (bisection; the clamped mean rises with mu). */
export function solveMu(spec: LengthSpec): number {
  if (spec.truncates) return Math.log(spec.mean) - (spec.sigma * spec.sigma) / 2;
  if (!(spec.mean >= 1 && spec.mean < spec.max)) throw new RangeError(`a length mean must be in [1, max), got ${spec.mean} (max ${spec.max})`);
  let lo = -10;
  let hi = Math.log(spec.max) + 10;
  for (let i = 0; i < 200; i++) {
    const mid = (lo + hi) / 2;
    if (clampedLognormalMean(mid, spec.sigma, spec.max) < spec.mean) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

function drawLength(rng: Random, mu: number, sigma: number, max: number): number {
  const v = Math.round(Math.exp(mu + sigma * rng.normal()));
  return v < 1 ? 1 : v > max ? max : v;
}

/** One component of a length mixture: a task with its share of the requests and its prompt and output. */
export interface TaskSpec {
  name: string;
  weight: number;
  prompt: LengthSpec;
  /** Output tokens: a fixed generation length (the benchmark's max_gen, generated in full), or a distribution. */
  output: number | LengthSpec;
}

export interface PaperWorkload {
  name: string;
  /** Where the statistics come from (one line, for the printed table). */
  source: string;
  tasks: TaskSpec[];
}

/**
 * ShareGPT-like. Means from the vLLM paper (Kwon et al., SOSP 2023, Fig. 11: ShareGPT mean input 161.31,
 * mean output 337.99 tokens); clamps from the serving benchmarks semi-PD runs (sglang.bench_serving drops
 * ShareGPT prompts over 1,024 tokens and prompt + output over 2,048); sigma 1 is an assumption (a long tail).
 */
export const SHAREGPT: PaperWorkload = {
  name: 'ShareGPT-like',
  source: 'vLLM paper (SOSP 2023) Fig. 11 means 161.31 / 337.99; lognormal σ = 1 (assumed), clamped at 1,024 each',
  tasks: [{ name: 'sharegpt', weight: 1, prompt: { mean: 161.31, sigma: 1, max: 1024 }, output: { mean: 337.99, sigma: 1, max: 1024 } }],
};

/** LongBench's average length in words (English and code tasks), its sample count, and its max generation length. */
const LONGBENCH_TASKS: readonly [string, number, number, number][] = [
  // name, avg words (LongBench task.md), samples, max_gen (LongBench config/dataset2maxlen.json)
  ['hotpotqa', 9151, 200, 32],
  ['2wikimqa', 4887, 200, 32],
  ['musique', 11214, 200, 32],
  ['multifieldqa_en', 4559, 150, 64],
  ['narrativeqa', 18409, 200, 128],
  ['qasper', 3619, 200, 128],
  ['gov_report', 8734, 200, 512],
  ['qmsum', 10614, 200, 512],
  ['multi_news', 2113, 200, 512],
  ['triviaqa', 8209, 200, 32],
  ['samsum', 6258, 200, 128],
  ['trec', 5177, 200, 64],
  ['passage_retrieval_en', 9289, 200, 32],
  ['passage_count', 11141, 200, 32],
  ['lcc', 1235, 500, 64],
  ['repobench-p', 4206, 500, 64],
];
/** Llama 3 tokens per English word (assumption; LongBench counts words to stay tokenizer-neutral). */
export const TOKENS_PER_WORD = 1.3;
/** semi-PD serves Llama3-8B with --context-length 10240 (its evaluation/benchmark_LLama_8B_semi_pd.sh). */
export const SEMI_PD_CONTEXT = 10240;

/**
 * LongBench-like: the 16 English and code tasks of LongBench v1, each drawn with its share of the 4,750
 * samples, prompt = its average length in words × 1.3 tokens (lognormal σ 0.4 around it, assumed), truncated
 * to semi-PD's serving context less the output (LongBench truncates over-long prompts), output = the task's
 * max generation length.
 */
export const LONGBENCH: PaperWorkload = {
  name: 'LongBench-like',
  source: 'LongBench task.md avg words × 1.3 tok/word, max_gen per task; lognormal σ = 0.4 (assumed); ≤ 10,240-token context',
  tasks: LONGBENCH_TASKS.map(([name, words, samples, maxGen]) => ({
    name,
    weight: samples,
    // The task average is of the untruncated texts; the clamp then cuts the tail, as truncation does.
    prompt: { mean: words * TOKENS_PER_WORD, sigma: 0.4, max: SEMI_PD_CONTEXT - maxGen, truncates: true },
    output: maxGen,
  })),
};

/** Nexus's long-prompt workloads, from their published means (σ and the context clamp are assumptions). */
export const NEXUS_LONG: PaperWorkload = {
  name: 'Nexus long (5,905 / 180)',
  source: 'Nexus paper: mean input ≈ 5,905, output ≈ 180 tokens; lognormal σ 0.5 (assumed), ≤ 16,384 / 1,024',
  tasks: [{ name: 'nexus-long', weight: 1, prompt: { mean: 5905, sigma: 0.5, max: 16384 }, output: { mean: 180, sigma: 0.5, max: 1024 } }],
};

export const NEXUS_MID: PaperWorkload = {
  name: 'Nexus mid (3,832 / 200)',
  source: 'Nexus paper: mean input ≈ 3,832, output ≈ 200 tokens; lognormal σ 0.5 (assumed), ≤ 16,384 / 1,024',
  tasks: [{ name: 'nexus-mid', weight: 1, prompt: { mean: 3832, sigma: 0.5, max: 16384 }, output: { mean: 200, sigma: 0.5, max: 1024 } }],
};

interface Prepared {
  cumulative: number[];
  tasks: { prompt: { mu: number; sigma: number; max: number }; output: number | { mu: number; sigma: number; max: number } }[];
}

const prepared = new Map<PaperWorkload, Prepared>();

function prepare(w: PaperWorkload): Prepared {
  let p = prepared.get(w);
  if (p) return p;
  const total = w.tasks.reduce((s, t) => s + t.weight, 0);
  let acc = 0;
  const cumulative = w.tasks.map((t) => (acc += t.weight / total));
  const solve = (l: LengthSpec) => ({ mu: solveMu(l), sigma: l.sigma, max: l.max });
  p = { cumulative, tasks: w.tasks.map((t) => ({ prompt: solve(t.prompt), output: typeof t.output === 'number' ? t.output : solve(t.output) })) };
  prepared.set(w, p);
  return p;
}

/** The (prompt, output) lengths of `count` requests of workload `w` for `seed`: independent of the rate. */
export function paperLengths(w: PaperWorkload, count: number, seed: number): { prompt: number; output: number }[] {
  const p = prepare(w);
  const rng = new Random(seed).fork(`lengths:${w.name}`);
  const out: { prompt: number; output: number }[] = [];
  for (let i = 0; i < count; i++) {
    const u = rng.float();
    let k = 0;
    while (k < p.cumulative.length - 1 && u >= p.cumulative[k]) k++;
    const t = p.tasks[k];
    const prompt = drawLength(rng, t.prompt.mu, t.prompt.sigma, t.prompt.max);
    const output = typeof t.output === 'number' ? t.output : drawLength(rng, t.output.mu, t.output.sigma, t.output.max);
    out.push({ prompt, output });
  }
  return out;
}

/** `count` requests of `w` with Poisson arrivals at `rate` requests per second (seeded). */
export function paperWorkload(w: PaperWorkload, rate: number, count: number, seed: number): WorkloadRequest[] {
  const lengths = paperLengths(w, count, seed);
  // Arrivals from the engine's own generator; lengths there are placeholders, replaced below.
  const arrivals = synthetic({ arrivals: { kind: 'poisson' }, rate, requests: count, prompt: { kind: 'fixed', value: 1 }, output: { kind: 'fixed', value: 1 }, seed });
  return arrivals.map((r, i) => ({ ...r, prompt: lengths[i].prompt, output: lengths[i].output }));
}

/** Mean prompt and output of `count` requests of `w` (what a run actually serves). */
export function lengthStats(w: PaperWorkload, count: number, seed: number): { prompt: number; output: number } {
  const l = paperLengths(w, count, seed);
  return { prompt: l.reduce((s, r) => s + r.prompt, 0) / l.length, output: l.reduce((s, r) => s + r.output, 0) / l.length };
}

/**
 * A window of an Azure trace: `count` consecutive requests starting at `offset` (each seed takes another
 * window), arrivals from 0 and rescaled so that the window's mean rate is `rate`: the trace's own
 * burstiness and lengths, at a chosen load.
 */
export function azureWindow(which: 'conv' | 'code', rate: number, count: number, offset: number): WorkloadRequest[] {
  const trace = loadAzure(which);
  if (offset + count > trace.length) throw new RangeError(`the Azure ${which} trace has ${trace.length} requests; a window of ${count} at ${offset} does not fit`);
  const t0 = trace[offset].arrival;
  const window = trace.slice(offset, offset + count).map((r) => ({ ...r, arrival: r.arrival - t0 }));
  return scaleToRate(window, rate);
}
