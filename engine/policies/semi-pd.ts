// `semi-pd`: semi-PD's SLO-aware dynamic partitioning (Algorithm 1 of the semi-PD paper), as read here:
//
//   every window (the policy's interval):
//     1. read the window's TTFT and TPOT at the chosen percentile (p90 by default);
//     2. add (share, latency) points to the history and refit the latency model by least squares
//        (fitted-model.ts: TTFT(x) = a1/(x − λ) + b1, TPOT(y) = a2/y + b2, λ measured, not fitted),
//        pulled lightly towards a prior — by default coefficients read off Observation.model, because the
//        published Llama3-8B fit is in the paper's units, not necessarily the engine's;
//     3. TTFT over its SLO  → raise the prefill share step by step until the model predicts TTFT ≤ SLO;
//        TPOT over its SLO  → raise the decode share step by step until the model predicts TPOT ≤ SLO;
//        both over          → the split minimising the worse predicted SLO ratio (they compete for SMs);
//        both within        → keep the split (stable).
//
// The shares are coupled by a budget: `exact` (Nexus-style) keeps prefill + decode = 100; `oversubscribe`
// (MPS) keeps prefill + decode ≤ shareBudget (default 180, the sum of semi-PD's default split 80/100), so
// raising one share past the budget lowers the other. Without a budget both shares would ratchet up to
// 100/100, which is no partition at all.
//
// Bug-zoo Z14 is fixed here: the upward search (raiseUntil) is bounded by the number of steps to the cap and
// returns the cap — the best valid share, since predicted latency never rises with share — when no share
// meets the SLO (x ≤ λ, or an SLO below the model's floor b). The defective loop ships as `semi-pd-z14`.
import type { Decision, Observation, Percentiles, Policy } from '../policy-api.ts';
import {
  fitLine,
  LLAMA3_8B_FIT,
  modelPrior,
  predictTpot,
  predictTtft,
  prefillLoad,
  type FitSample,
  type FittedCoefficients,
} from './fitted-model.ts';
import { checkKnownOptions, enumOpt, integerOpt, numberOpt, PolicyOptionError, type Options } from './options.ts';

/** Raises a share from `start` by `step` until `meets` holds; never past `limit`. */
export type ShareSearch = (start: number, limit: number, step: number, meets: (share: number) => boolean) => number;

/**
 * The upward search of Algorithm 1 with Z14 fixed: at least one step (the observed latency already failed),
 * at most ceil((limit − start) / step) steps, and `limit` when no share meets the SLO.
 */
export const raiseUntil: ShareSearch = (start, limit, step, meets) => {
  if (start >= limit) return limit;
  const maxSteps = Math.ceil((limit - start) / step);
  let share = start;
  for (let steps = 0; steps < maxSteps; steps++) {
    share = Math.min(limit, share + step);
    if (meets(share)) return share;
  }
  return limit;
};

export type Percentile = 'p50' | 'p90' | 'p99';

export interface SemiPdConfig {
  /** Which window percentile is compared with the SLOs. */
  percentile: Percentile;
  /** Share points per search step. */
  step: number;
  /** `oversubscribe` only: prefill + decode may not exceed this (100..200). */
  shareBudget: number;
  /** Seconds of virtual time per window (the policy's interval). */
  window: number;
  /** A window with fewer latency samples than this neither fails nor feeds the refit. */
  minSamples: number;
  /** Points kept per phase for the refit (a sliding history, so the model follows drift). */
  history: number;
  /** Ridge pull towards the prior coefficients (keeps one-share histories well-posed). */
  ridge: number;
  /**
   * What the refit is pulled towards: 'model' derives coefficients from Observation.model each window
   * (modelPrior), 'published' is semi-PD's Llama3-8B fit, or explicit coefficients.
   */
  prior: 'model' | 'published' | FittedCoefficients;
  /** Prompt length assumed for λ until a prompt has been seen in the prefill queue. */
  promptTokens: number;
}

export const SEMI_PD_OPTIONS = ['percentile', 'step', 'shareBudget', 'window', 'minSamples', 'history', 'ridge', 'prior', 'promptTokens'] as const;

export function semiPdConfig(options: Options, policy: string): SemiPdConfig {
  checkKnownOptions(options, SEMI_PD_OPTIONS, policy);
  const raw = options.prior ?? 'model';
  let prior: SemiPdConfig['prior'];
  if (raw === 'model' || raw === 'published') {
    prior = raw;
  } else {
    const p = (raw ?? {}) as Partial<FittedCoefficients>;
    const coefficient = (v: unknown) => typeof v === 'number' && Number.isFinite(v) && v >= 0;
    if (typeof raw !== 'object' || !coefficient(p.a1) || !coefficient(p.b1) || !coefficient(p.a2) || !coefficient(p.b2)) {
      throw new PolicyOptionError(
        `option 'prior' must be 'model', 'published' or { a1, b1, a2, b2 } with finite numbers ≥ 0, got ${JSON.stringify(raw)}`,
      );
    }
    prior = { a1: p.a1!, b1: p.b1!, a2: p.a2!, b2: p.b2! };
  }
  return {
    percentile: enumOpt<Percentile>(options, 'percentile', 'p90', ['p50', 'p90', 'p99']),
    step: integerOpt(options, 'step', 1, 1, 99),
    shareBudget: integerOpt(options, 'shareBudget', 180, 100, 200),
    window: numberOpt(options, 'window', 5, 1e-6),
    minSamples: integerOpt(options, 'minSamples', 1, 1),
    history: integerOpt(options, 'history', 32, 1),
    ridge: numberOpt(options, 'ridge', 1e-3, 1e-12),
    prior,
    promptTokens: numberOpt(options, 'promptTokens', 1024, 1),
  };
}

/** The semi-PD policy, with its current model exposed for reports and tests. */
export interface SemiPdPolicy extends Policy {
  coefficients(): FittedCoefficients;
  /** λ used by the last decision. */
  lastLoad(): number;
}

function observed(p: Percentiles, percentile: Percentile, minSamples: number): number | undefined {
  const value = p[percentile];
  return p.count >= minSamples && Number.isFinite(value) ? value : undefined;
}

function pushBounded<T>(list: T[], item: T, max: number): void {
  list.push(item);
  if (list.length > max) list.splice(0, list.length - max);
}

export function createSemiPd(options: Options = {}, search: ShareSearch = raiseUntil, name = 'semi-pd'): SemiPdPolicy {
  const config = semiPdConfig(options, name);
  const ttftSamples: FitSample[] = [];
  const tpotSamples: FitSample[] = [];
  let coefficients: FittedCoefficients = typeof config.prior === 'object' ? { ...config.prior } : { ...LLAMA3_8B_FIT };
  let meanPrompt = config.promptTokens;
  let load = 0;

  function refit(prior: FittedCoefficients): void {
    const ttft = fitLine(ttftSamples, { a: prior.a1, b: prior.b1 }, config.ridge);
    const tpot = fitLine(tpotSamples, { a: prior.a2, b: prior.b2 }, config.ridge);
    coefficients = { a1: ttft.a, b1: ttft.b, a2: tpot.a, b2: tpot.b };
  }

  return {
    name,
    // Not claimed: the refit makes a decision depend on the whole history, not only on this observation.
    claimsMonotone: false,
    interval: config.window,
    coefficients: () => ({ ...coefficients }),
    lastLoad: () => load,
    decide(obs: Observation): Decision {
      const lengths = obs.prefillQueue.promptLengths;
      if (lengths.length > 0) meanPrompt = lengths.reduce((sum, l) => sum + l, 0) / lengths.length;
      load = prefillLoad(obs, meanPrompt);

      const exact = obs.shareRule === 'exact';
      const cap = exact ? 100 : config.shareBudget;
      const limit = Math.min(100, cap - 1);
      const prefill = Math.min(limit, Math.max(1, obs.split.prefill));
      const decode = Math.min(limit, Math.max(1, obs.split.decode));
      // The samples are taken at the shares that actually ran in the window.
      const x = obs.split.prefill / 100;
      const y = obs.split.decode / 100;

      const ttft = observed(obs.ttft, config.percentile, config.minSamples);
      const tpot = observed(obs.tpot, config.percentile, config.minSamples);
      // A point observed with x ≤ λ came from an unstable queue: it says nothing about a1, b1.
      if (ttft !== undefined && x > load) pushBounded(ttftSamples, { feature: 1 / (x - load), latency: ttft }, config.history);
      if (tpot !== undefined && y > 0) pushBounded(tpotSamples, { feature: 1 / y, latency: tpot }, config.history);
      const prior =
        config.prior === 'model' ? modelPrior(obs, meanPrompt) : config.prior === 'published' ? LLAMA3_8B_FIT : config.prior;
      refit(prior);

      const ttftFails = ttft !== undefined && ttft > obs.slo.ttft;
      const tpotFails = tpot !== undefined && tpot > obs.slo.tpot;
      if (!ttftFails && !tpotFails) return {};

      const ttftAt = (share: number) => predictTtft(coefficients, share / 100, load);
      const tpotAt = (share: number) => predictTpot(coefficients, share / 100);
      // The other share once one is set: exact takes the rest, oversubscribe keeps what fits the budget.
      const partner = (share: number, current: number) => (exact ? 100 - share : Math.min(current, cap - share));

      let next: { prefill: number; decode: number };
      if (ttftFails && !tpotFails) {
        const p = search(prefill, limit, config.step, (s) => ttftAt(s) <= obs.slo.ttft);
        next = { prefill: p, decode: partner(p, decode) };
      } else if (tpotFails && !ttftFails) {
        const d = search(decode, limit, config.step, (s) => tpotAt(s) <= obs.slo.tpot);
        next = { prefill: partner(d, prefill), decode: d };
      } else {
        // A share at or below λ predicts an infinite TTFT; scoring it by its overload instead keeps the
        // ordering meaningful there (closer to draining is better), so an overloaded prefill still gets the most.
        const ttftScore = (p: number) => (p / 100 > load ? ttftAt(p) / obs.slo.ttft : OVERLOAD_SCORE * (1 + load - p / 100));
        next = balance(prefill, decode, limit, (p) => (exact ? 100 - p : Math.min(100, cap - p)), (p, d) =>
          Math.max(ttftScore(p), tpotAt(d) / obs.slo.tpot),
        );
      }
      if (next.prefill === obs.split.prefill && next.decode === obs.split.decode) return {};
      return { split: next };
    },
  };
}

/** Above any finite latency/SLO ratio: the score of a prefill share that cannot drain its queue. */
const OVERLOAD_SCORE = 1e12;

/**
 * Both SLOs fail: every prefill share 1..limit with its partner decode share, scored by the worse
 * predicted latency/SLO ratio; the lowest score wins, ties to the split nearest the current one.
 */
function balance(
  prefill: number,
  decode: number,
  limit: number,
  decodeFor: (prefill: number) => number,
  score: (prefill: number, decode: number) => number,
): { prefill: number; decode: number } {
  let best = { prefill, decode };
  let bestScore = Number.POSITIVE_INFINITY;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (let p = 1; p <= limit; p++) {
    const d = decodeFor(p);
    if (d < 1) continue;
    const s = score(p, d);
    const distance = Math.abs(p - prefill) + Math.abs(d - decode);
    if (s < bestScore || (s === bestScore && distance < bestDistance)) {
      best = { prefill: p, decode: d };
      bestScore = s;
      bestDistance = distance;
    }
  }
  return best;
}
