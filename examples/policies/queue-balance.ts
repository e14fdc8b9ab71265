// A user policy to copy: split the GPU in proportion to each phase's pressure.
//
//   pdspec check --policy ./examples/policies/queue-balance.ts
//   pdspec run   --policy ./examples/policies/queue-balance.ts
//
// A policy module `export default`s a Policy ({ name, decide }) or a factory (options) => Policy; pdspec
// calls decide(observation) once per `interval` seconds of virtual time and expects a Decision back:
// `{}` keeps the current split, `{ split: { prefill, decode } }` asks for a new one (a resize).
//
// The rules a decision must follow (pdspec rejects anything else as a policy fault):
//   - shares are integers in 1..100;
//   - under shareRule 'exact' (Nexus) prefill + decode = 100; under 'oversubscribe' (semi-PD, MPS) each
//     share is independent;
//   - decide is synchronous, deterministic and fast (the default budget is 1 s of wall clock).
//
// Copying this file elsewhere: the import below resolves wherever pdspec is installed (a dependency of your
// project, or this repository); only types are imported, so nothing is loaded at run time.
import type { Decision, Observation, Policy } from 'pdspec/policy-api';

export interface QueueBalanceOptions {
  /** Smallest share either phase gets, so neither starves (percent). */
  minShare?: number;
  /** Ignore changes smaller than this many points: a resize is not free, so do not chase noise. */
  deadBand?: number;
  /** Prompt length assumed for requests that will arrive during the next interval (tokens). */
  expectedPromptTokens?: number;
  /** Seconds between decisions. */
  interval?: number;
}

/** Latency over SLO, capped so that a zero SLO cannot produce Infinity/Infinity = NaN below. */
function ratio(latency: number, slo: number): number {
  if (!Number.isFinite(latency) || latency <= 0) return 0; // NaN: nothing observed in the window
  if (!(slo > 0)) return 1e6;
  return Math.min(latency / slo, 1e6);
}

export default function queueBalance(options: QueueBalanceOptions = {}): Policy {
  const minShare = options.minShare ?? 10;
  const deadBand = options.deadBand ?? 5;
  const expectedPromptTokens = options.expectedPromptTokens ?? 1024;
  const interval = options.interval ?? 1;

  return {
    name: 'queue-balance',
    // The claim is checked (property M2): more prefill pressure — a longer queue, a higher arrival rate, a
    // higher observed TTFT, a tighter TTFT SLO — never lowers the prefill share, and likewise for decode.
    // Every step below is non-decreasing in the pressures, which is what makes the claim hold.
    claimsMonotone: true,
    interval,

    decide(obs: Observation): Decision {
      // Prefill pressure: the worse of what was observed (TTFT at p90) and what is coming — the queued
      // prompt tokens plus the prompts expected to arrive this interval, priced at 100 % of the GPU by the
      // engine's latency model, as a fraction of the TTFT SLO.
      const comingTokens = obs.prefillQueue.tokens + obs.arrivalRate * interval * expectedPromptTokens;
      const prefillPressure = Math.max(
        ratio(obs.ttft.p90, obs.slo.ttft),
        ratio(obs.model.prefillTime(100, comingTokens), obs.slo.ttft),
      );
      // Decode pressure: observed TPOT, or one step of the running batch at 100 %, against the TPOT SLO.
      const { requests, contextTokens } = obs.decodeBatch;
      const decodePressure = Math.max(
        ratio(obs.tpot.p90, obs.slo.tpot),
        ratio(obs.model.decodeTime(100, requests, contextTokens), obs.slo.tpot),
      );
      if (prefillPressure + decodePressure === 0) {
        // An idle window says nothing: keep the split — if it is one this policy could have chosen.
        // Otherwise (a split set before it ran) go to the middle, so that the answer to a window with a
        // little pressure is never below the answer to an idle one.
        const choosable = obs.split.prefill + obs.split.decode === 100 && obs.split.prefill >= minShare && obs.split.prefill <= 100 - minShare;
        return choosable ? {} : { split: { prefill: 50, decode: 50 } };
      }

      // Shares in proportion to pressure, kept within [minShare, 100 − minShare] and summing to 100, which
      // is valid under both share rules.
      const target = Math.round((100 * prefillPressure) / (prefillPressure + decodePressure));
      const prefill = Math.min(100 - minShare, Math.max(minShare, target));

      // Dead band around the current split (also monotone: inside it the answer is the current share,
      // outside it the target, which lies beyond the band on the same side).
      if (Math.abs(prefill - obs.split.prefill) < deadBand && obs.split.prefill + obs.split.decode === 100) return {};
      return { split: { prefill, decode: 100 - prefill } };
    },
  };
}
