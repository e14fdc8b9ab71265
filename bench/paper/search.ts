// Running a system on a workload at a rate (cached: the SLO is judged afterwards from the records, so one
// run serves every SLO unless the policy itself reads the SLO), and the search for the highest rate at
// which a system still meets its SLOs for a target fraction of requests.
import { simulate, type EngineOptions } from '../../engine/engine.ts';
import { summarize, type RequestRecord, type RunMetrics } from '../../engine/metrics.ts';
import type { Slo } from '../../engine/policy-api.ts';
import type { Profile } from '../../engine/profile.ts';
import type { WorkloadRequest } from '../../engine/workloads/types.ts';
import type { System } from './systems.ts';

/** A workload family: requests at a given offered rate (total, all GPUs) for a seed. */
export interface Scenario {
  key: string;
  build(rate: number, seed: number): WorkloadRequest[];
}

export interface RunnerConfig {
  profile: Profile;
  blocks: number;
  blockSize: number;
  /** Overrides for every run (e.g. an executor for a what-if). */
  extra?: Partial<EngineOptions>;
}

export class Runner {
  private readonly cache = new Map<string, RequestRecord[]>();
  /** Simulations actually run (cache misses). */
  runs = 0;

  /**
   * `base`: a runner whose runs this one shares for the systems its change does not affect (a what-if that
   * reprices only unified steps need not rerun the disaggregated system).
   */
  constructor(
    readonly config: RunnerConfig,
    private readonly base?: { runner: Runner; affects: (system: System) => boolean },
  ) {}

  /** Per-request records of `system` serving `scenario` at `rate` requests/s per GPU. */
  records(system: System, scenario: Scenario, rate: number, seed: number, slo: Slo): RequestRecord[] {
    if (this.base && !this.base.affects(system)) return this.base.runner.records(system, scenario, rate, seed, slo);
    // The options are part of the key: a variant of a system (another batch cap) keeps the system's id.
    const options = system.extra ? JSON.stringify(system.extra) : '';
    const key = `${system.id}${options}|${scenario.key}|${seed}|${rate.toPrecision(12)}${system.readsSlo ? `|${slo.ttft},${slo.tpot}` : ''}`;
    let records = this.cache.get(key);
    if (!records) {
      const c = this.config;
      const result = simulate({
        mode: system.mode,
        workload: scenario.build(rate * system.gpus, seed),
        profile: c.profile,
        blocks: c.blocks,
        blockSize: c.blockSize,
        slo,
        seed,
        policy: system.policy ? system.policy() : null,
        ...system.extra,
        ...c.extra,
      });
      if (result.stalled.length > 0) throw new Error(`${system.id} on ${scenario.key} at ${rate} req/s stalled with ${result.stalled.length} live request(s)`);
      records = result.records;
      this.cache.set(key, records);
      this.runs++;
    }
    return records;
  }

  metrics(system: System, scenario: Scenario, rate: number, seed: number, slo: Slo): RunMetrics {
    return summarize(this.records(system, scenario, rate, seed, slo), slo);
  }

  attainment(system: System, scenario: Scenario, rate: number, seed: number, slo: Slo): number {
    return this.metrics(system, scenario, rate, seed, slo).sloAttainment;
  }
}

export interface SearchOptions {
  /** First rate tried. */
  start: number;
  /** Attainment a rate must reach (default 0.9). */
  target?: number;
  /** Bracketing factor (default 1.25). */
  growth?: number;
  /** Bisection steps inside the bracket, in log space (default 4: within growth^(1/16), 1.4 %). */
  steps?: number;
  /** Below this rate the search gives up and reports 0. */
  min?: number;
  /** Above this rate the search stops and reports it. */
  max?: number;
}

export interface SearchResult {
  /** Highest rate found meeting the target (0 if none down to `min`). */
  capacity: number;
  /** Lowest rate found missing it (Infinity if none up to `max`). */
  failsAt: number;
  points: { rate: number; attainment: number }[];
}

/**
 * Highest rate whose attainment reaches the target: bracket by factors of `growth` from `start`, then bisect
 * in log space. Assumes attainment falls with rate (a rate inside the bracket that breaks that is resolved
 * by the bisection like any other: the answer is a rate that passes with a failing rate just above it).
 */
export function searchCapacity(attainment: (rate: number) => number, o: SearchOptions): SearchResult {
  const target = o.target ?? 0.9;
  const growth = o.growth ?? 1.25;
  const steps = o.steps ?? 4;
  const min = o.min ?? 1e-3;
  const max = o.max ?? 1e4;
  if (!(o.start > 0) || !(growth > 1)) throw new RangeError(`search needs start > 0 and growth > 1, got ${o.start}, ${growth}`);
  const points: SearchResult['points'] = [];
  const passes = (rate: number) => {
    const a = attainment(rate);
    points.push({ rate, attainment: a });
    return a >= target;
  };
  let lo: number;
  let hi: number;
  if (passes(o.start)) {
    lo = o.start;
    for (;;) {
      const next = lo * growth;
      if (next > max) return { capacity: lo, failsAt: Number.POSITIVE_INFINITY, points };
      if (!passes(next)) {
        hi = next;
        break;
      }
      lo = next;
    }
  } else {
    hi = o.start;
    for (;;) {
      const next = hi / growth;
      if (next < min) return { capacity: 0, failsAt: hi, points };
      if (passes(next)) {
        lo = next;
        break;
      }
      hi = next;
    }
  }
  for (let i = 0; i < steps; i++) {
    const mid = Math.sqrt(lo * hi);
    if (passes(mid)) lo = mid;
    else hi = mid;
  }
  return { capacity: lo, failsAt: hi, points };
}
