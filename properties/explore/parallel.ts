// A swarm search run on worker threads (`--workers N`), and the merge of members run as separate jobs
// (`--shard i/n`, merged with `--merge`): a violation from any member is the swarm's; a member that
// exhausted the bound verifies it; otherwise the swarm found nothing, which is not a proof.
import { Worker } from 'node:worker_threads';
import type { ExploreConfig } from './config.ts';
import { sharingCoverage, type ExploreResult, type V3Coverage } from './explorer.ts';
import type { EventName } from '../../spec/trace-format.ts';

const ENTRY = new URL('./worker-entry.mjs', import.meta.url);

export function exploreOnWorkers(config: ExploreConfig, workers: number, seed: number): Promise<ExploreResult> {
  const t0 = performance.now();
  const runs = Array.from(
    { length: workers },
    (_, index) =>
      new Promise<ExploreResult>((resolve, reject) => {
        const w = new Worker(ENTRY, { workerData: { config, member: { index, count: workers, seed } } });
        w.once('message', (r: ExploreResult) => {
          resolve(r);
          void w.terminate();
        });
        w.once('error', reject);
      }),
  );
  return Promise.all(runs).then((results) => ({ ...mergeResults(results), seconds: (performance.now() - t0) / 1000 }));
}

/**
 * The verdict of a swarm: a violation if any member found one (the shortest), verified if a member
 * exhausted the bound, else incomplete (nothing found). A member that exhausted the bound gives the counts; otherwise
 * they add up over members (and overlap).
 */
export function mergeResults(results: ExploreResult[]): ExploreResult {
  if (results.length === 0) throw new Error('nothing to merge');
  const violated = results.filter((r) => r.verdict === 'violated').sort((a, b) => a.finding!.trace.length - b.finding!.trace.length);
  const events: Partial<Record<EventName, number>> = {};
  for (const r of results) for (const [e, n] of Object.entries(r.events)) events[e as EventName] = (events[e as EventName] ?? 0) + (n ?? 0);
  const seconds = Math.max(...results.map((r) => r.seconds));
  // A member that exhausted the bound alone counted every distinct state; otherwise the members' counts are
  // summed (states two members both visited count twice).
  const complete = results.find((r) => r.verdict === 'verified');
  const states = complete ? complete.states : results.reduce((a, r) => a + r.states, 0);
  const neverTaken = results.map((r) => new Set(r.neverTaken)).reduce((a, b) => new Set([...a].filter((x) => b.has(x))));
  return {
    verdict: violated.length ? 'violated' : results.some((r) => r.verdict === 'verified') ? 'verified' : 'incomplete',
    config: results[0].config,
    states,
    transitions: complete ? complete.transitions : results.reduce((a, r) => a + r.transitions, 0),
    depth: Math.max(...results.map((r) => r.depth)),
    seconds,
    statesPerSecond: states / Math.max(seconds, 1e-9),
    peakMemoryMiB: Math.max(...results.map((r) => r.peakMemoryMiB)),
    events,
    neverEnabled: results[0].neverEnabled.filter((e) => !events[e]),
    neverTaken: [...neverTaken],
    ...(results[0].config.sharing ? { sharing: sharingCoverage(events) } : {}),
    ...(results[0].config.positions ? { v3: complete?.v3 ?? sumV3(results) } : {}),
    ...(violated.length ? { finding: violated[0].finding } : {}),
  };
}

/** The members' trace-v3 coverage added up (transitions two members both took count twice). */
function sumV3(results: ExploreResult[]): V3Coverage {
  const sum: V3Coverage = { verifies: 0, rejections: 0, partialFrees: 0, prefillPreemptions: 0, slots: 0 };
  for (const r of results) if (r.v3) for (const k of Object.keys(sum) as (keyof V3Coverage)[]) sum[k] += r.v3[k] ?? 0;
  return sum;
}
