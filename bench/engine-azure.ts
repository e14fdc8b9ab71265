// The simulator's speed: the whole Azure conversation hour (19,366 requests) under each mode and policy,
// on the same machine in the same run. Prints wall time, requests per second of wall time, and simulated
// time over wall time (the goal: ≤ 2 s of wall time per run, ≥ 1,800× real time), with each run's SLO
// attainment for context. No tracing: this is the simulator's own speed.
//
//   npx tsx bench/engine-azure.ts [--profile NAME] [--repeat N] [--trace]
import { parseArgs } from 'node:util';
import { Engine, type EngineOptions, type Mode, type RunResult } from '../engine/engine.ts';
import { loadPolicy } from '../engine/policies/index.ts';
import { defaultBlocks, loadProfile } from '../engine/profile.ts';
import type { TraceSink } from '../engine/trace-sink.ts';
import { loadAzure } from '../engine/workloads/azure.ts';
import type { TraceEvent, TraceHeader } from '../spec/trace-format.ts';

const { values } = parseArgs({ options: { profile: { type: 'string' }, repeat: { type: 'string' }, trace: { type: 'boolean' } } });
const profile = loadProfile(values.profile ?? 'llama3-8b-h100');
const repeat = Number(values.repeat ?? 3);
if (!Number.isInteger(repeat) || repeat < 1) {
  console.error(`engine-azure: --repeat must be a positive integer, got '${values.repeat}'`);
  process.exit(2);
}

const workload = loadAzure('conv');
const blockSize = 16;
const blocks = defaultBlocks(profile, blockSize);
const slo = { ttft: 1, tpot: 0.05 };

interface Config {
  label: string;
  mode: Mode;
  policy: string | null;
  extra?: Partial<EngineOptions>;
}

const configs: Config[] = [
  { label: 'semi-pd, static 80/100', mode: 'semi-pd', policy: null },
  { label: 'semi-pd, policy semi-pd', mode: 'semi-pd', policy: 'semi-pd' },
  { label: 'nexus, static 50/50', mode: 'nexus', policy: null },
  { label: 'nexus, policy nexus', mode: 'nexus', policy: 'nexus' },
  { label: 'disaggregated 1P1D', mode: 'disaggregated', policy: 'disaggregated' },
  { label: 'unified, SplitFuse 1024', mode: 'unified', policy: 'unified' },
  { label: 'unified, no chunking (vLLM-D)', mode: 'unified', policy: 'unified', extra: { unifiedChunk: 0 } },
];

/** Counts events without keeping them: the cost of building each event, not of storing the trace. */
class CountingSink implements TraceSink {
  events = 0;
  header(_: TraceHeader): void {}
  event(_: TraceEvent): void {
    this.events++;
  }
  close(): void {}
}

async function runOnce(c: Config, traced: boolean): Promise<{ wall: number; result: RunResult; traceEvents: number }> {
  const policy = c.policy ? await loadPolicy(c.policy, { profile }) : null;
  const sink = traced ? new CountingSink() : null;
  const engine = new Engine({ mode: c.mode, workload, profile, blocks, blockSize, slo, seed: 1, policy, trace: sink, ...c.extra });
  const start = performance.now();
  const result = engine.runToCompletion();
  const wall = (performance.now() - start) / 1000;
  await policy?.close();
  return { wall, result, traceEvents: sink?.events ?? 0 };
}

console.log(`engine-azure: Azure conversation trace, ${workload.length} requests over ${workload[workload.length - 1].arrival.toFixed(0)} s`);
console.log(`profile ${profile.name}, ${blocks} blocks × ${blockSize} tokens, SLO TTFT ≤ ${slo.ttft} s, TPOT ≤ ${slo.tpot} s; best of ${repeat} run(s); node ${process.version}`);
console.log('');
console.log(`${'mode / policy'.padEnd(32)} ${'wall s'.padStart(7)} ${'req/s wall'.padStart(11)} ${'sim/wall'.padStart(9)} ${'events'.padStart(8)} ${'resizes'.padStart(7)} ${'SLO %'.padStart(6)} ${'TTFT p90'.padStart(9)} ${'TPOT p90'.padStart(9)}`);
let worst = 0;
for (const c of configs) {
  let best: Awaited<ReturnType<typeof runOnce>> | null = null;
  for (let i = 0; i < repeat; i++) {
    const r = await runOnce(c, false);
    if (!best || r.wall < best.wall) best = r;
  }
  const { wall, result } = best!;
  worst = Math.max(worst, wall);
  const m = result.metrics;
  console.log(
    `${c.label.padEnd(32)} ${wall.toFixed(3).padStart(7)} ${(workload.length / wall).toFixed(0).padStart(11)} ${(result.endTime / wall).toFixed(0).padStart(8)}× ${String(result.events).padStart(8)} ${String(result.resizes).padStart(7)} ${(m.sloAttainment * 100).toFixed(1).padStart(6)} ${m.ttft.p90.toFixed(3).padStart(9)} ${m.tpot.p90.toFixed(4).padStart(9)}`,
  );
}
console.log('');
console.log(`slowest run: ${worst.toFixed(3)} s of wall time (goal ≤ 2 s per run): ${worst <= 2 ? 'met' : 'NOT met'}`);

if (values.trace) {
  // The price of tracing: the same run building every event (not writing it) against no tracing.
  const c = configs[0];
  const plain = await runOnce(c, false);
  const traced = await runOnce(c, true);
  console.log(`tracing (${c.label}): ${traced.traceEvents} events, ${traced.wall.toFixed(3)} s with events built vs ${plain.wall.toFixed(3)} s without (${(traced.wall / plain.wall).toFixed(2)}×)`);
}
