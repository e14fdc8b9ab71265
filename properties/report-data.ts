// What `pdspec check` found, as data: the content of report/report.json, and what report/index.html draws.
// Every number in the report comes from here. The properties (sweeps, self-test) produce it and cli/ renders it,
// so it lives here: properties/ never imports cli/ (test/architecture.test.ts).
import type { TraceEvent, TraceHeader } from '../spec/trace-format.ts';

/**
 * `fail`: a property the policy must have does not hold (exit 1). `warn`: a finding that does not fail the
 * check — a monotonicity property the policy does not claim, or a scheduling anomaly of the system (M3).
 */
export type Status = 'pass' | 'fail' | 'warn' | 'error' | 'skipped';

/** A counterexample: the trace that shows a property failing, and how to get it again. */
export interface Counterexample {
  /** Path of the trace v1 file written next to the report (relative to the report directory). */
  traceFile: string;
  /** One command that reproduces it exactly. */
  replay: string;
  header: TraceHeader;
  events: TraceEvent[];
  /** For starvation: how many events at the end repeat forever. */
  cycle?: number;
}

/** One property checked for one policy. */
export interface CheckResult {
  /** e.g. `explore`, `campaign`, `M1`, `M2`, `M3`. */
  check: string;
  /** The property or rule that failed, or the properties it covers when it passed. */
  property: string;
  family: string;
  status: Status;
  seconds: number;
  /** One sentence: what was checked and what came out (counts, bound, runs). */
  detail: string;
  counterexample?: Counterexample;
  /** For M2/M3: the smallest pair that shows a failure, in words. */
  pair?: { left: string; right: string; outcome: string };
  /** One command that reproduces a failure that has no trace (M1–M3). */
  replay?: string;
}

/** Latency statistics in seconds. */
export interface LatencyStats {
  mean: number;
  p50: number;
  p90: number;
  p99: number;
}

/** One point of an SLO sweep: a run of the workload at one request rate. */
export interface SweepPoint {
  /** Requests per second per GPU (a two-GPU system is offered twice this). */
  rate: number;
  /** Fraction of requests meeting both TTFT and TPOT SLOs. */
  attainment: number;
  /** Requests per second per GPU meeting the SLOs. */
  goodput: number;
  ttft: LatencyStats;
  tpot: LatencyStats;
  e2e: LatencyStats;
  resizes: number;
}

export interface Sweep {
  /** `azure-conv`, `azure-code` or `poisson`. */
  workload: string;
  slo: { ttft: number; tpot: number };
  points: SweepPoint[];
  /** The highest rate with attainment ≥ 90 % (null if none). */
  rateAt90: number | null;
}

/** One run shown in detail: distributions and what happened over time. */
export interface RunDetail {
  workload: string;
  rate: number;
  /** The SLO the run was measured against (marked on the latency distributions). */
  slo?: { ttft: number; tpot: number };
  ttftSamples: number[];
  tpotSamples: number[];
  /** The split after each change, from time 0. */
  split: { t: number; prefill: number; decode: number }[];
  /** Each resize: when it began and ended, and the split it went to. */
  resizes: { begin: number; end: number; prefill: number; decode: number }[];
  /** KV occupancy samples, 0..1. */
  kv: { t: number; usage: number }[];
}

export interface PolicyReport {
  name: string;
  source: string;
  claimsMonotone: boolean;
  checks: CheckResult[];
  sweeps: Sweep[];
  run?: RunDetail;
}

/** A bug-zoo row of the self-test. */
export interface ZooRow {
  id: string;
  fault: string;
  caught: boolean;
  property: string | null;
  expected: string;
  /** Counterexample size: requests + environment commands of the shrunk input. */
  events: number;
  /** Trace events up to the violation. */
  traceEvents: number;
  seconds: number;
  replay: string | null;
}

export interface ReportData {
  version: 1;
  command: string;
  seed: number;
  /**
   * `holds` (exit 0), `violated` (exit 1: a property failed), `bad-input` (exit 2: a policy faulted, and no
   * property failed), `internal-error` (exit 70: pdspec itself failed — the engine crashed in a campaign run —
   * so the run is no verdict, whatever else it found).
   */
  verdict: 'holds' | 'violated' | 'bad-input' | 'internal-error';
  startedAt: string;
  seconds: number;
  policies: PolicyReport[];
  selfTest?: ZooRow[];
  /** Where the numbers come from: the profile, the traces and their licences. */
  sources: { profile: string; traces: string[]; notes: string[] };
}
