// What isolation costs per decision: each policy run in-process and in a worker, same observations, same
// machine, same run. Prints microseconds per decision and the isolated/in-process ratio.
//
//   npx tsx bench/policy-overhead.ts [decisions=20000]
import { resolve } from 'node:path';
import type { Observation } from '../engine/policy-api.ts';
import { loadPolicy } from '../engine/policies/index.ts';
import { latencyModel, loadProfile } from '../engine/profile.ts';

const decisions = Number(process.argv[2] ?? 20_000);
if (!Number.isInteger(decisions) || decisions < 1) {
  console.error(`policy-overhead: decisions must be a positive integer, got '${process.argv[2]}'`);
  process.exit(2);
}

const profile = loadProfile('llama3-8b-h100');
const model = latencyModel(profile);
const promptLengths = Array.from({ length: 64 }, (_, i) => 256 + ((i * 97) % 1792)); // deterministic mix
/** A window with 64 prompts waiting; TTFT alternates around its SLO so that semi-pd does work. */
function observation(i: number, shareRule: Observation['shareRule']): Observation {
  const ttft = i % 2 === 0 ? 0.8 : 1.3;
  return {
    time: i,
    split: shareRule === 'exact' ? { prefill: 50, decode: 50 } : { prefill: 80, decode: 100 },
    shareRule,
    prefillQueue: { requests: promptLengths.length, tokens: promptLengths.reduce((a, b) => a + b, 0), promptLengths },
    decodeBatch: { requests: 32, contextTokens: 40_000 },
    kvUsage: (i % 10) / 10,
    arrivalRate: 2,
    ttft: { p50: ttft / 2, p90: ttft, p99: ttft * 1.5, count: 100 },
    tpot: { p50: 0.03, p90: 0.05, p99: 0.08, count: 100 },
    slo: { ttft: 1, tpot: 0.1 },
    model,
  };
}

const policies: [string, Observation['shareRule']][] = [
  ['static', 'oversubscribe'],
  ['semi-pd', 'oversubscribe'],
  ['nexus', 'exact'],
  [resolve(import.meta.dirname, '../examples/policies/queue-balance.ts'), 'exact'],
];

console.log(`policy decision overhead, ${decisions} decisions each (µs per decision)`);
console.log('policy'.padEnd(16) + 'in-process'.padStart(12) + 'isolated'.padStart(12) + 'ratio'.padStart(9));
for (const [policy, rule] of policies) {
  const perDecision: number[] = [];
  for (const isolate of [false, true]) {
    const handle = await loadPolicy(policy, { isolate, profile });
    for (let i = 0; i < 500; i++) handle.decide(observation(i, rule)); // warm up (JIT, worker)
    const started = performance.now();
    for (let i = 0; i < decisions; i++) handle.decide(observation(i, rule));
    perDecision.push(((performance.now() - started) * 1000) / decisions);
    await handle.close();
  }
  const [inProcess, isolated] = perDecision as [number, number];
  const name = policy.endsWith('.ts') ? 'queue-balance' : policy;
  console.log(name.padEnd(16) + inProcess.toFixed(2).padStart(12) + isolated.toFixed(2).padStart(12) + (isolated / inProcess).toFixed(1).padStart(8) + '×');
}
