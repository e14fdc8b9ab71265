// SLO sweeps: a policy's attainment, goodput and latencies against request rate, on the Azure traces and on
// Poisson load, in the cost-model simulator; and one run in detail (latency distributions, the split over
// time with its resizes, KV occupancy).
import { Engine, MODE_INFO, type Mode, type PolicyHandle, type RunResult } from '../engine/engine.ts';
import type { Distribution } from '../engine/metrics.ts';
import { ttftOf, tpotOf } from '../engine/metrics.ts';
import { defaultBlocks, type Profile } from '../engine/profile.ts';
import type { TraceSink } from '../engine/trace-sink.ts';
import { buildWorkload } from '../engine/workloads/index.ts';
import type { RunDetail, Sweep, SweepPoint } from './report-data.ts';
import type { TraceEvent, TraceHeader } from '../spec/trace-format.ts';

/** The serving mode a built-in policy runs in; user policies run in semi-PD. */
export function modeForPolicy(name: string): Mode {
  return name === 'nexus' ? 'nexus' : name === 'unified' ? 'unified' : name === 'disaggregated' ? 'disaggregated' : 'semi-pd';
}

export interface SweepOptions {
  /** A fresh policy for each run (policies keep state across decisions). */
  policy: () => Promise<(PolicyHandle & { close?: () => Promise<void> }) | null>;
  mode: Mode;
  profile: Profile;
  workload: 'azure-conv' | 'azure-code' | 'poisson';
  rates: number[];
  /** Seconds of arrivals per run. */
  duration: number;
  slo: { ttft: number; tpot: number };
  seed: number;
  blockSize?: number;
}

const stats = (d: Distribution) => ({ mean: d.mean, p50: d.p50, p90: d.p90, p99: d.p99 });

/**
 * Records the resize events of a run (the full trace of a long run is not needed here), and passes every
 * event on to `next` where a run also writes its trace.
 */
export class ResizeSink implements TraceSink {
  readonly events: TraceEvent[] = [];
  constructor(private readonly next: TraceSink | null = null) {}
  header(h: TraceHeader): void {
    this.next?.header(h);
  }
  event(ev: TraceEvent): void {
    if (ev.ev === 'resize_begin' || ev.ev === 'resize_end') this.events.push(ev);
    this.next?.event(ev);
  }
  close(): void {
    this.next?.close();
  }
}

/**
 * GPUs a mode serves on. Rates and goodput of a sweep are per GPU, so that a 1P1D pair (two GPUs) is
 * compared with one GPU fairly: it is offered twice the rate.
 */
export function gpusOf(mode: Mode): number {
  return MODE_INFO[mode].gpus;
}

async function runOnce(o: SweepOptions, rate: number, detail: boolean) {
  const blockSize = o.blockSize ?? 16;
  const workload = buildWorkload({ workload: o.workload, rate: rate * gpusOf(o.mode), duration: o.duration, seed: o.seed });
  const policy = await o.policy();
  const sink = detail ? new ResizeSink() : null;
  try {
    const engine = new Engine({
      mode: o.mode,
      workload,
      profile: o.profile,
      blocks: defaultBlocks(o.profile, blockSize),
      blockSize,
      policy,
      slo: o.slo,
      seed: o.seed,
      trace: sink,
    });
    const result = engine.runToCompletion();
    return { result, resizes: sink?.events ?? [] };
  } finally {
    await policy?.close?.();
  }
}

export async function sloSweep(o: SweepOptions): Promise<Sweep> {
  const points: SweepPoint[] = [];
  for (const rate of o.rates) {
    const { result } = await runOnce(o, rate, false);
    const m = result.metrics;
    points.push({ rate, attainment: m.sloAttainment, goodput: m.goodput / gpusOf(o.mode), ttft: stats(m.ttft), tpot: stats(m.tpot), e2e: stats(m.e2e), resizes: result.resizes });
  }
  let rateAt90: number | null = null;
  for (const p of points) if (p.attainment >= 0.9) rateAt90 = Math.max(rateAt90 ?? 0, p.rate);
  return { workload: o.workload, slo: o.slo, points, rateAt90 };
}

export async function runDetail(o: SweepOptions, rate: number): Promise<RunDetail> {
  const { result, resizes } = await runOnce(o, rate, true);
  return detailOf(result, resizes, o.workload, rate, o.slo);
}

/** What a run did over time, for the report: latency samples, the split and its resizes, KV occupancy. */
export function detailOf(result: RunResult, resizes: TraceEvent[], workload: string, rate: number, slo?: { ttft: number; tpot: number }): RunDetail {
  const records = result.records.filter((r) => r.firstTokenAt !== undefined && Number.isFinite(r.firstTokenAt));
  const pairs: RunDetail['resizes'] = [];
  for (const ev of resizes) {
    if (ev.ev === 'resize_begin') pairs.push({ begin: ev.t, end: Number.NaN, prefill: ev.prefill, decode: ev.decode });
    else if (ev.ev === 'resize_end' && pairs.length) pairs[pairs.length - 1].end = ev.t;
  }
  return {
    workload,
    rate,
    ...(slo ? { slo } : {}),
    ttftSamples: records.map(ttftOf).filter(Number.isFinite),
    tpotSamples: records.filter((r) => r.generated > 1).map(tpotOf).filter(Number.isFinite),
    split: result.metrics.splitTimeline.map((s) => ({ t: s.t, prefill: s.prefill, decode: s.decode })),
    resizes: pairs.filter((p) => Number.isFinite(p.end)),
    kv: result.metrics.kvOccupancy.samples.map((s) => ({ t: s.t, usage: s.used })),
  };
}

export type SweepWorkload = SweepOptions['workload'];
export const SWEEP_WORKLOADS: readonly SweepWorkload[] = ['azure-conv', 'azure-code', 'poisson'];

/** The rates `check` and `sweep` run each workload at: past the knee of every built-in policy. */
export const DEFAULT_RATES: Record<SweepWorkload, number[]> = {
  'azure-conv': [2, 4, 7, 10, 14, 19, 26, 35],
  'azure-code': [1, 2, 3, 5, 7, 10, 14, 19],
  poisson: [2, 4, 7, 10, 14, 19, 26, 35],
};

export const DEFAULT_SLO = { ttft: 2, tpot: 0.1 };

export interface PolicySweepOptions {
  policy: SweepOptions['policy'];
  mode: Mode;
  profile: Profile;
  seed: number;
  workloads?: readonly SweepWorkload[];
  /** Rates for every workload; by default DEFAULT_RATES of each. */
  rates?: number[];
  duration?: number;
  slo?: { ttft: number; tpot: number };
  onPlan?: (done: number, total: number) => void;
}

/**
 * A policy's SLO curves on each workload, and one run in detail on the first workload at its knee (the
 * highest rate still at ≥ 90 % attainment).
 */
export async function policySweeps(o: PolicySweepOptions): Promise<{ sweeps: Sweep[]; run: RunDetail }> {
  const slo = o.slo ?? DEFAULT_SLO;
  const workloads = o.workloads ?? SWEEP_WORKLOADS;
  const duration = o.duration ?? 60;
  const sweeps: Sweep[] = [];
  for (const [i, workload] of workloads.entries()) {
    o.onPlan?.(i, workloads.length);
    sweeps.push(await sloSweep({ policy: o.policy, mode: o.mode, profile: o.profile, workload, rates: o.rates ?? DEFAULT_RATES[workload], duration, slo, seed: o.seed }));
  }
  const first = sweeps[0];
  const knee = first.rateAt90 ?? first.points[0].rate;
  const run = await runDetail({ policy: o.policy, mode: o.mode, profile: o.profile, workload: first.workload as SweepWorkload, rates: [], duration: duration * 2, slo, seed: o.seed }, knee);
  return { sweeps, run };
}
