// Speculative decoding (EngineOptions.speculative; vLLM v1's spec decode with greedy acceptance): a decoding
// request's step computes its last token's position and up to k draft positions after it (a verify); at the
// step's end the executor gives the argmax after every position, the drafts are accepted while each equals
// the argmax after the position before it, and the request gets the accepted drafts and then the argmax
// after the last accepted position (the correction, or the bonus when all were accepted). Its computed
// positions end after the accepted ones; the rolled-back positions are rewritten by its next step, and the
// blocks allocated for them stay with it (vLLM frees nothing on a rejection). The drafts come from a
// drafter: vLLM's n-gram proposer on the request's own tokens, or, for the cost model, an oracle that knows
// the cost model's tokens and is right with a given probability.
import type { SpeculativeConfig } from '../config.ts';
import { pseudoToken } from '../executors/cost-model.ts';
import type { StepExecutor } from '../executors/step-executor.ts';
import { hash2 } from '../random.ts';
import type { Rooms } from '../rooms.ts';
import { NO_DRAFTS, type Req } from '../state.ts';

/** What speculative decoding did in a run. */
export interface SpeculativeCounts {
  /** Engine steps with at least one verify item. */
  verifySteps: number;
  /** Verify items (a request's verify of its drafts in one step). */
  verifies: number;
  /** Draft tokens verified, and how many of them were accepted. */
  drafted: number;
  accepted: number;
  /** Decode items without drafts (the drafter had none to propose, or the output limit left no room). */
  plainDecodes: number;
}

/**
 * vLLM's NgramProposer on `tokens` (the request's tokens, drafts excluded): the longest suffix n-gram with
 * `min` ≤ n ≤ `max` that also occurs earlier, at its earliest occurrence, proposes the (at most `k`) tokens
 * that followed it, up to the end of `tokens`; none when no such n-gram occurs. vLLM's docstring example:
 * [1, 2, 3, 4, 2, 3] with min 2, max 3, k 4 proposes [4, 2, 3].
 */
export function ngramProposal(tokens: ArrayLike<number>, min: number, max: number, k: number): number[] {
  const L = tokens.length;
  if (k <= 0) return [];
  for (let n = Math.min(max, L - 1); n >= min; n--) {
    // Earliest start i < L − n whose n tokens are the suffix's.
    for (let i = 0; i + n < L; i++) {
      let j = 0;
      while (j < n && tokens[i + j] === tokens[L - n + j]) j++;
      if (j < n) continue;
      const out: number[] = [];
      for (let p = i + n; p < L && out.length < k; p++) out.push(tokens[p]);
      return out;
    }
  }
  return [];
}

/** How many of `drafts` greedy decoding accepts, given the argmax after each position of the verify (`next[i]` after the position before draft i). */
export function acceptedPrefix(drafts: readonly number[], next: ArrayLike<number>): number {
  let a = 0;
  while (a < drafts.length && drafts[a] === next[a]) a++;
  return a;
}

interface Drafter {
  /** At most `k` (≥ 1) drafts for `r`'s next positions; [] for none. */
  propose(r: Req, k: number): readonly number[];
}

/** The n-gram drafter on the request's prompt ids (as its executor computes them) and its output so far. */
class NgramDrafter implements Drafter {
  private readonly prompts = new Map<number, number[]>();
  private readonly context: number[] = [];

  constructor(
    private readonly min: number,
    private readonly max: number,
    private readonly executor: StepExecutor,
  ) {}

  private promptOf(r: Req): number[] {
    let ids = this.prompts.get(r.idx);
    if (ids === undefined) {
      ids = this.executor.promptIds ? this.executor.promptIds(r) : [];
      this.prompts.set(r.idx, ids);
    }
    return ids;
  }

  propose(r: Req, k: number): readonly number[] {
    const outputs = r.outputs;
    if (outputs === null) return NO_DRAFTS;
    const context = this.context;
    const prompt = this.promptOf(r);
    context.length = 0;
    for (let i = 0; i < prompt.length; i++) context.push(prompt[i]);
    for (let i = 0; i < outputs.length; i++) context.push(outputs[i]);
    const out = ngramProposal(context, this.min, this.max, k);
    return out.length === 0 ? NO_DRAFTS : out;
  }

  forget(r: Req): void {
    this.prompts.delete(r.idx);
  }
}

const ORACLE_SALT = 0x6f726163; // "orac": the oracle's draws are unrelated to the pseudo-tokens

/**
 * The oracle drafter of the cost model: the token a request holds at position q is the cost model's
 * pseudo-token of q; each draft is that token with probability `acceptance`, else another id. The draw is a
 * seeded function of the run's seed, the request and the position, so runs reproduce.
 */
class OracleDrafter implements Drafter {
  private readonly salt: number;

  constructor(
    private readonly acceptance: number,
    seed: number,
    private readonly vocab: number,
  ) {
    this.salt = hash2(seed, ORACLE_SALT);
  }

  propose(r: Req, k: number): readonly number[] {
    const from = r.computed; // the last token's position: draft i sits at from + i
    const out = new Array<number>(k);
    for (let i = 1; i <= k; i++) {
      const q = from + i;
      const truth = pseudoToken(r.seed, q, this.vocab);
      const draw = hash2(hash2(this.salt, r.seed), q);
      out[i - 1] = draw / 4294967296 < this.acceptance || this.vocab < 2 ? truth : (truth + 1 + (hash2(draw, 1) % (this.vocab - 1))) % this.vocab;
    }
    return out;
  }

  forget(): void {}
}

/** The engine's speculative decoding: the drafter, the accepted counts, and what the run did. */
export class Speculation {
  readonly counts: SpeculativeCounts = { verifySteps: 0, verifies: 0, drafted: 0, accepted: 0, plainDecodes: 0 };
  private readonly drafter: NgramDrafter | OracleDrafter;

  constructor(
    readonly config: SpeculativeConfig,
    private readonly rooms: Rooms,
  ) {
    const c = rooms.config;
    this.drafter = config.drafter === 'ngram' ? new NgramDrafter(config.min, config.max, c.executor) : new OracleDrafter(config.acceptance, c.seed, c.profile.model.vocabSize);
  }

  /**
   * Proposes `r`'s drafts for its next decode step (r.drafts): at most k, and at most `room` (the positions
   * its output limit and the step's token budget leave after the last token's). Returns how many.
   */
  propose(r: Req, room: number): number {
    const k = Math.min(this.config.k, room);
    r.drafts = k > 0 ? this.drafter.propose(r, k) : NO_DRAFTS;
    return r.drafts.length;
  }

  /** A step began: count its decode items, plain and verifying. */
  began(drafts: readonly (readonly number[])[], decode: readonly number[]): void {
    let verifies = 0;
    for (let i = 0; i < drafts.length; i++) {
      if (decode[i] !== 1) continue;
      const k = drafts[i].length;
      if (k === 0) this.counts.plainDecodes++;
      else {
        verifies++;
        this.counts.drafted += k;
      }
    }
    if (verifies > 0) this.counts.verifySteps++;
    this.counts.verifies += verifies;
  }

  /** `r`'s verify of `drafts` ended with `accepted` of them accepted. */
  verified(r: Req, drafts: readonly number[], accepted: number): void {
    this.counts.accepted += accepted;
    this.rooms.seams.afterVerify(r, drafts, accepted);
  }

  /** `r` ended: its drafter state goes. */
  forget(r: Req): void {
    this.drafter.forget(r);
    r.drafts = NO_DRAFTS;
  }
}
