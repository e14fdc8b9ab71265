// `nexus`: Nexus's proactive intra-GPU partitioning, as a greedy search over the latency model with
// hysteresis. Shares always sum to exactly 100 (green contexts split the SMs; the `exact` share rule).
//
//   KV usage low (< 70 %):  minimise prefill time subject to decode time ≤ 1.1 × its time at 100 %;
//   KV usage high:          minimise decode time subject to prefill time ≤ 1.3 × its time at 100 %
//                           (its minimum: prefill time never rises with share, property M1).
//
// Work priced: the prefill queue's tokens still to compute (capped at one batch, prefillBatchTokens) and
// the decode batch (requests, cached context tokens), from Observation.model.
//
// Greedy: from the current split, step (default 5 points) in the direction that lowers the objective while
// the constraint holds and the objective strictly falls; from a split that breaks the constraint, step the
// other way until it holds (or the bound: the most the constrained phase can get).
// Hysteresis, so that it does not flap: (1) the mode enters decode-first at KV ≥ 70 % but returns to
// prefill-first only below 65 %; (2) a split that meets its constraint is kept unless the new one lowers
// the objective by at least minGain (5 %).
// Prefill order: shortest prompt first, as in Nexus.
import type { Decision, Observation, Policy } from '../policy-api.ts';
import { checkKnownOptions, integerOpt, numberOpt, type Options } from './options.ts';

export type NexusMode = 'prefill-first' | 'decode-first';

export interface NexusConfig {
  kvThreshold: number;
  kvHysteresis: number;
  decodeSlack: number;
  prefillSlack: number;
  step: number;
  minGain: number;
  prefillBatchTokens: number;
  interval: number;
}

export const NEXUS_OPTIONS = ['kvThreshold', 'kvHysteresis', 'decodeSlack', 'prefillSlack', 'step', 'minGain', 'prefillBatchTokens', 'interval'] as const;

export function nexusConfig(options: Options): NexusConfig {
  checkKnownOptions(options, NEXUS_OPTIONS, 'nexus');
  return {
    kvThreshold: numberOpt(options, 'kvThreshold', 0.7, 0, 1),
    kvHysteresis: numberOpt(options, 'kvHysteresis', 0.05, 0, 1),
    decodeSlack: numberOpt(options, 'decodeSlack', 1.1, 1),
    prefillSlack: numberOpt(options, 'prefillSlack', 1.3, 1),
    step: integerOpt(options, 'step', 5, 1, 98),
    minGain: numberOpt(options, 'minGain', 0.05, 0, 1),
    prefillBatchTokens: integerOpt(options, 'prefillBatchTokens', 8192, 1),
    interval: numberOpt(options, 'interval', 1, 1e-6),
  };
}

export interface NexusPolicy extends Policy {
  /** The mode the last decision ran in. */
  mode(): NexusMode | undefined;
}

const MIN_PREFILL = 1;
const MAX_PREFILL = 99;
/** Relative slack on constraint comparisons, so that float noise at the boundary does not flip them. */
const EPS = 1e-9;

export function createNexus(options: Options = {}): NexusPolicy {
  const config = nexusConfig(options);
  let mode: NexusMode | undefined;

  function nextMode(kv: number): NexusMode {
    if (mode === undefined) return kv < config.kvThreshold ? 'prefill-first' : 'decode-first';
    if (mode === 'prefill-first' && kv >= config.kvThreshold) return 'decode-first';
    if (mode === 'decode-first' && kv < config.kvThreshold - config.kvHysteresis) return 'prefill-first';
    return mode;
  }

  return {
    name: 'nexus',
    // Not claimed: the mode (hence the split) depends on KV usage history through the hysteresis band.
    claimsMonotone: false,
    interval: config.interval,
    mode: () => mode,
    decide(obs: Observation): Decision {
      mode = nextMode(obs.kvUsage);
      const tokens = Math.min(obs.prefillQueue.tokens, config.prefillBatchTokens);
      // An empty decode batch still needs room for the next handoff: price it as one request, or the decode
      // constraint holds at every split and the search hands decode 1 % of the SMs (the next batch then
      // starts 39× slower, and a step's share is fixed for its whole run).
      const batch = Math.max(1, obs.decodeBatch.requests);
      const contextTokens = Math.max(obs.decodeBatch.contextTokens, 1);
      const prefillTime = (x: number) => obs.model.prefillTime(x, tokens);
      const decodeTime = (x: number) => obs.model.decodeTime(100 - x, batch, contextTokens);

      // Both modes as "minimise objective(x) subject to feasible(x)" over the prefill share x.
      let objective: (x: number) => number;
      let feasible: (x: number) => boolean;
      let improving: 1 | -1; // the direction of x that lowers the objective
      if (mode === 'prefill-first') {
        const bound = config.decodeSlack * obs.model.decodeTime(100, batch, contextTokens);
        objective = prefillTime;
        feasible = (x) => decodeTime(x) <= bound * (1 + EPS);
        improving = 1;
      } else {
        const bound = config.prefillSlack * obs.model.prefillTime(100, tokens);
        objective = decodeTime;
        feasible = (x) => prefillTime(x) <= bound * (1 + EPS);
        improving = -1;
      }

      const current = Math.min(MAX_PREFILL, Math.max(MIN_PREFILL, Math.round(obs.split.prefill)));
      const clamp = (x: number) => Math.min(MAX_PREFILL, Math.max(MIN_PREFILL, x));
      let x = current;
      if (!feasible(x)) {
        // Give the constrained phase more until its constraint holds (bounded: x moves monotonically).
        while (!feasible(x) && clamp(x - improving * config.step) !== x) x = clamp(x - improving * config.step);
      } else {
        for (;;) {
          const next = clamp(x + improving * config.step);
          if (next === x || !feasible(next) || !(objective(next) < objective(x))) break;
          x = next;
        }
        const before = objective(current);
        if (x !== current && !(objective(x) <= (1 - config.minGain) * before)) x = current;
      }

      const decision: Decision = { prefillOrder: 'shortest-prompt-first' };
      if (x !== obs.split.prefill || 100 - x !== obs.split.decode) decision.split = { prefill: x, decode: 100 - x };
      return decision;
    },
  };
}
