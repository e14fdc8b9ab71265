// The two errors of the policy layer. Both carry a one-line message that the CLI prints as is (exit 2 for
// a load error; a fault is a finding about the policy, reported with the observation that triggered it).
import type { Observation } from '../policy-api.ts';

/** A policy name or module that cannot be turned into a running policy. */
export class PolicyLoadError extends Error {
  constructor(
    /** What the user passed: a built-in name or a path. */
    readonly policy: string,
    reason: string,
  ) {
    super(`cannot load policy '${policy}': ${reason}`);
    this.name = 'PolicyLoadError';
  }
}

/** What went wrong in one decision. */
export type FaultKind =
  | 'threw' // decide threw an exception
  | 'non-finite' // a share is NaN or ±Infinity
  | 'non-integer' // a share has a fractional part
  | 'out-of-range' // a share outside 1..100
  | 'share-rule' // the split breaks Observation.shareRule (exact: prefill + decode = 100)
  | 'malformed' // the decision is not a Decision (wrong type, unknown field, a Promise, ...)
  | 'timeout' // decide ran past its wall-clock budget (a hang, when isolated)
  | 'unavailable'; // the policy's worker is gone (terminated after an earlier timeout, or closed)

/** The key fields of an observation, for messages: enough to recognise it, short enough for one line. */
export interface ObservationSummary {
  time: number;
  split: { prefill: number; decode: number };
  shareRule: Observation['shareRule'];
  prefillQueue: { requests: number; tokens: number };
  decodeRequests: number;
  kvUsage: number;
  arrivalRate: number;
  ttftP90: number;
  tpotP90: number;
}

export function summarizeObservation(obs: Observation): ObservationSummary {
  return {
    time: obs.time,
    split: { prefill: obs.split?.prefill, decode: obs.split?.decode },
    shareRule: obs.shareRule,
    prefillQueue: { requests: obs.prefillQueue?.requests, tokens: obs.prefillQueue?.tokens },
    decodeRequests: obs.decodeBatch?.requests,
    kvUsage: obs.kvUsage,
    arrivalRate: obs.arrivalRate,
    ttftP90: obs.ttft?.p90,
    tpotP90: obs.tpot?.p90,
  };
}

function fmt(value: number, digits: number): string {
  return typeof value === 'number' && Number.isFinite(value) ? value.toFixed(digits) : String(value);
}

export function describeObservation(s: ObservationSummary): string {
  return (
    `t=${fmt(s.time, 3)} s, split ${s.split.prefill}/${s.split.decode} (${s.shareRule}), ` +
    `prefill queue ${s.prefillQueue.requests} req/${s.prefillQueue.tokens} tok, decode ${s.decodeRequests} req, ` +
    `KV ${fmt(s.kvUsage * 100, 1)}%, ${fmt(s.arrivalRate, 2)} req/s, ` +
    `TTFT p90 ${fmt(s.ttftP90, 3)} s, TPOT p90 ${fmt(s.tpotP90, 4)} s`
  );
}

/** A decision that breaks the policy contract, tied to the observation that produced it. */
export class PolicyFault extends Error {
  readonly observation: ObservationSummary;
  constructor(
    readonly policy: string,
    readonly kind: FaultKind,
    /** What went wrong, without the observation (e.g. "decide threw: boom"). */
    readonly detail: string,
    observation: Observation,
  ) {
    const summary = summarizeObservation(observation);
    super(`policy '${policy}' fault (${kind}) at ${describeObservation(summary)}: ${detail}`);
    this.name = 'PolicyFault';
    this.observation = summary;
  }
}

/**
 * An error's message on one line: its first line (module loaders put code frames on the following ones),
 * joined with the next when the first is only a heading ("Transform failed with 1 error:").
 */
export function firstLine(err: unknown): string {
  let text: string;
  try {
    text = err instanceof Error ? String(err.message) : String(err);
  } catch {
    // A thrown object whose toString throws, a Proxy whose traps throw: there is nothing to print.
    return 'an exception that cannot be printed';
  }
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  if (lines.length === 0) return text.trim();
  return lines[0]!.endsWith(':') && lines.length > 1 ? `${lines[0]} ${lines[1]}` : lines[0]!;
}
