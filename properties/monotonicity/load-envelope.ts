// Where real load is: the largest values each field of an observation reaches when the engine serves the
// shipped workloads at the sweep's top rate (beyond every built-in policy's capacity), under each built-in
// policy in its own mode. M2 generates observations up to BEYOND times these, so that a policy that misbehaves
// only under load is asked about load (a queue of thousands of requests, millions of tokens, bursts of
// arrivals, TTFTs of minutes), not only about a dozen short prompts.
//
// The numbers are measured, not assumed: `npx tsx properties/monotonicity/load-envelope.ts --write` runs the
// engine and writes load-envelope.json beside this file; a test measures again and compares, so the file
// cannot drift from the engine.
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Engine, type Mode } from '../../engine/engine.ts';
import { BUILTIN_POLICIES, handleForPolicy } from '../../engine/policies/index.ts';
import type { Observation, Policy } from '../../engine/policy-api.ts';
import { DEFAULT_PROFILE, defaultBlocks, loadProfile } from '../../engine/profile.ts';
import { buildWorkload } from '../../engine/workloads/index.ts';
import { DEFAULT_RATES, DEFAULT_SLO, gpusOf, SWEEP_WORKLOADS, type SweepWorkload } from '../sweep.ts';

/** The largest value of each observed field (latencies in seconds, rates per second). */
export interface LoadMaxima {
  queueRequests: number;
  queueTokens: number;
  promptTokens: number;
  batchRequests: number;
  contextTokens: number;
  contextPerRequest: number;
  kvUsage: number;
  arrivalRate: number;
  ttftP99: number;
  tpotP99: number;
  samples: number;
}

export interface LoadEnvelope {
  /** How the maxima were measured, so that anyone can run it again. */
  source: {
    profile: string;
    seed: number;
    durationSeconds: number;
    runs: { policy: string; mode: Mode; workload: SweepWorkload; ratePerGpu: number }[];
  };
  maxima: LoadMaxima;
}

/** M2 generates up to this many times the measured maxima: at and beyond what the engine reaches. */
export const BEYOND = 2;

const ENVELOPE_FILE = fileURLToPath(new URL('./load-envelope.json', import.meta.url));
const POLICY_MODES: readonly [string, Mode][] = [
  ['static', 'semi-pd'],
  ['semi-pd', 'semi-pd'],
  ['nexus', 'nexus'],
  ['unified', 'unified'],
  ['disaggregated', 'disaggregated'],
];
const SEED = 1;
const DURATION = 60;

const NO_LOAD: LoadMaxima = { queueRequests: 0, queueTokens: 0, promptTokens: 0, batchRequests: 0, contextTokens: 0, contextPerRequest: 0, kvUsage: 0, arrivalRate: 0, ttftP99: 0, tpotP99: 0, samples: 0 };

/** The maxima with one more observation taken in (NaN percentiles, a window without samples, are skipped). */
function widened(m: LoadMaxima, o: Observation): LoadMaxima {
  const top = (a: number, b: number) => (Number.isFinite(b) ? Math.max(a, b) : a);
  const { requests, contextTokens } = o.decodeBatch;
  return {
    queueRequests: top(m.queueRequests, o.prefillQueue.requests),
    queueTokens: top(m.queueTokens, o.prefillQueue.tokens),
    promptTokens: o.prefillQueue.promptLengths.reduce(top, m.promptTokens),
    batchRequests: top(m.batchRequests, requests),
    contextTokens: top(m.contextTokens, contextTokens),
    contextPerRequest: top(m.contextPerRequest, requests > 0 ? Math.ceil(contextTokens / requests) : 0),
    kvUsage: top(m.kvUsage, o.kvUsage),
    arrivalRate: top(m.arrivalRate, o.arrivalRate),
    ttftP99: top(m.ttftP99, o.ttft.p99),
    tpotP99: top(m.tpotP99, o.tpot.p99),
    samples: top(m.samples, Math.max(o.ttft.count, o.tpot.count)),
  };
}

/** Runs the engine on every shipped workload at its top sweep rate under every built-in, watching each observation. */
export function measureLoadEnvelope(): LoadEnvelope {
  const profile = loadProfile(DEFAULT_PROFILE);
  const runs: LoadEnvelope['source']['runs'] = [];
  let maxima = NO_LOAD;
  for (const [name, mode] of POLICY_MODES)
    for (const workload of SWEEP_WORKLOADS) {
      const rates = DEFAULT_RATES[workload];
      const ratePerGpu = rates[rates.length - 1];
      const inner = BUILTIN_POLICIES[name as keyof typeof BUILTIN_POLICIES].create({});
      const watched: Policy = {
        name: inner.name,
        interval: inner.interval,
        decide(o) {
          maxima = widened(maxima, o);
          return inner.decide(o);
        },
      };
      new Engine({
        mode,
        workload: buildWorkload({ workload, rate: ratePerGpu * gpusOf(mode), duration: DURATION, seed: SEED }),
        profile,
        blocks: defaultBlocks(profile, 16),
        blockSize: 16,
        policy: handleForPolicy(watched),
        slo: DEFAULT_SLO,
        seed: SEED,
        trace: null,
      }).runToCompletion();
      runs.push({ policy: name, mode, workload, ratePerGpu });
    }
  // Rounded, so that the file reads at a glance and compares exactly across machines.
  const round = (x: number, digits: number) => Number(x.toFixed(digits));
  const rounded = Object.fromEntries(Object.entries(maxima).map(([k, v]) => [k, round(v, 3)])) as unknown as LoadMaxima;
  return { source: { profile: profile.name, seed: SEED, durationSeconds: DURATION, runs }, maxima: rounded };
}

/** The envelope shipped beside this file (measured by `--write`). */
export function loadEnvelope(): LoadEnvelope {
  return JSON.parse(readFileSync(ENVELOPE_FILE, 'utf8')) as LoadEnvelope;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const envelope = measureLoadEnvelope();
  if (process.argv.includes('--write')) writeFileSync(ENVELOPE_FILE, `${JSON.stringify(envelope, null, 2)}\n`);
  console.log(JSON.stringify(envelope.maxima, null, 2));
}
