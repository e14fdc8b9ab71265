// The engine drives a real model executor (CPU reference or WebGPU, engine/executors/model-executor.ts):
// each engine step becomes one ModelExecutor.step() over the engine's own block tables, so the K/V of every
// position lives in the physical blocks the engine allocated, and a block-ownership bug in the engine shows
// up as wrong tokens. Virtual time still comes from the cost model; the tokens come from the model.
import type { Profile } from '../profile.ts';
import { hash2 } from '../random.ts';
import { CostModelExecutor } from './cost-model.ts';
import type { DecodeWork, ModelExecutor, PrefillWork, StepInput } from './model-executor.ts';
import { ExecutorError, type ResizeMechanism, type StepExecutor, type StepResult, type StepSpec } from './step-executor.ts';

/** llama2.c's BOS id: every synthetic prompt starts with it, as run.c's prompts do. */
export const BOS = 1;
const PROMPT_SALT = 0x70726f6d; // "prom": keeps prompt ids unrelated to the cost model's pseudo-tokens

/** The prompt id at position `pos` of a request with seed `seed`: BOS first, then seeded ids in 0..vocab−1. */
export function promptToken(seed: number, pos: number, vocabSize: number): number {
  if (pos === 0 && vocabSize > BOS) return BOS;
  return hash2(hash2(seed, PROMPT_SALT), pos) % vocabSize;
}

/** The `length` prompt ids of a request with seed `seed`. */
export function promptTokens(seed: number, length: number, vocabSize: number): number[] {
  const out = new Array<number>(length);
  for (let i = 0; i < length; i++) out[i] = promptToken(seed, i, vocabSize);
  return out;
}

/** Why the model adapter refuses the disaggregated mode (one line). */
export const DISAGGREGATED_UNSUPPORTED =
  'the model executors run one KV pool shared by prefill and decode: the disaggregated mode (two pools and KV transfers) is not supported with --executor cpu|webgpu; use semi-pd, nexus or unified';

/**
 * Why a request cannot run on a model of context `seqLen`, in one line, or null. Its positions run up to
 * prompt + output − 1 (asynchronous scheduling computes one position past the last token), so
 * prompt + output must not exceed seq_len.
 */
export function modelFitError(r: { id: string; prompt: number; output: number }, seqLen: number, modelName = 'the model'): string | null {
  if (r.prompt + r.output <= seqLen) return null;
  return `request '${r.id}' needs prompt ${r.prompt} + output ${r.output} = ${r.prompt + r.output} positions, more than ${modelName}'s seq_len ${seqLen}`;
}

export interface ModelAdapterStats {
  /** ModelExecutor.step() calls, one per engine step (so one readback per engine step). */
  steps: number;
  prefillItems: number;
  decodeItems: number;
  /** Positions computed (prompt chunks, recomputes, decode positions and verified drafts). */
  positions: number;
  /** Speculative decoding: verify items (run as chunks whose every position's argmax is read back). */
  verifyItems: number;
}

/**
 * A StepExecutor over a ModelExecutor. Durations (and transfer and worker-start times) are the cost
 * model's, so that the schedule is the simulator's; tokens are the model's greedy argmax.
 *
 * - Prompt ids are `promptTokens(seed, prompt)`, except the positions of a shared prefix, which are its
 *   sequence's (seeded by the prefix's id, so every request with that prefix has the same ids there); a decode item feeds the request's last generated token,
 *   and a recompute after preemption feeds prompt + every generated token (`wantsTokenHistory`).
 * - The step's split is the worker's share: a prefill worker's share/100 is `prefillShare`, a decode
 *   worker's leaves 1 − share/100 to prefill; a unified step splits by its positions (prefill ÷ all).
 * - The engine may start the prefill and the decode worker's steps before awaiting either; model steps
 *   must not overlap, so calls are chained in the order the engine made them. Each call's input is built
 *   when `execute` is called (the engine's tables and histories are live arrays).
 * - One pool: handing a request from prefill to decode moves no KV byte (only the block table travels).
 *   A step on GPU 1 (the disaggregated mode's second pool) is refused.
 */
export class ModelStepExecutor implements StepExecutor {
  readonly name: string;
  readonly wantsTokenHistory = true;
  readonly stats: ModelAdapterStats = { steps: 0, prefillItems: 0, decodeItems: 0, positions: 0, verifyItems: 0 };
  private readonly cost: CostModelExecutor;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    readonly model: ModelExecutor,
    cost: Profile | CostModelExecutor,
  ) {
    this.name = model.name;
    this.cost = cost instanceof CostModelExecutor ? cost : new CostModelExecutor(cost);
  }

  /** The prompt ids the model computes a request with (the n-gram drafter's context). */
  promptIds(r: { readonly seed: number; readonly prompt: number; readonly prefixSeed: number; readonly prefixLength: number }): number[] {
    const vocab = this.model.model.vocabSize;
    const out = new Array<number>(r.prompt);
    for (let p = 0; p < r.prompt; p++) out[p] = promptToken(p < r.prefixLength ? r.prefixSeed : r.seed, p, vocab);
    return out;
  }

  /** Throws a one-line ExecutorError unless the engine's pool fits the model executor's pool. */
  checkPool(blocks: number, blockSize: number): void {
    const pool = this.model.pool;
    if (blockSize !== pool.blockSize) throw new ExecutorError(`the engine's block size ${blockSize} differs from the model executor's ${pool.blockSize}`);
    if (blocks > pool.numBlocks) throw new ExecutorError(`the engine's pool of ${blocks} blocks is larger than the model executor's ${pool.numBlocks}`);
  }

  execute(spec: StepSpec): Promise<StepResult> {
    if (spec.gpu !== 0) throw new ExecutorError(DISAGGREGATED_UNSUPPORTED);
    const input = this.buildInput(spec);
    const duration = this.cost.stepTime(spec);
    const run = this.chain.then(() => this.model.step(input));
    this.chain = run.catch(() => undefined); // a failed step rejects its own promise; the chain goes on
    this.stats.steps++;
    const result = run.then(
      (out): StepResult => {
        const items = spec.items;
        const tokens = new Int32Array(items.length);
        let nextAll: (number[] | null)[] | null = null;
        for (let i = 0; i < items.length; i++) {
          tokens[i] = items[i].producesToken ? out.next.get(items[i].req)! : -1;
          if (items[i].draft > 0) (nextAll ??= new Array<number[] | null>(items.length).fill(null))[i] = out.nextAll!.get(items[i].req)!;
        }
        return nextAll ? { duration, tokens, nextAll } : { duration, tokens };
      },
      (err: Error) => {
        throw new ExecutorError(`${this.name} executor, a step of ${spec.worker}: ${err.message}`);
      },
    );
    // The engine awaits the first failure and stops; a later step's failure is then nobody's to report.
    result.catch(() => undefined);
    return result;
  }

  private buildInput(spec: StepSpec): StepInput {
    const vocab = this.model.model.vocabSize;
    const prefill: PrefillWork[] = [];
    const decode: DecodeWork[] = [];
    let prefillPositions = 0;
    let verifies = 0;
    for (const it of spec.items) {
      const generated = it.generated;
      if (generated === null) throw new ExecutorError(`${this.name} executor: the engine gave no token history for '${it.req}'`);
      // Sequence position p holds prompt id p (p < prompt) or generated token p − prompt.
      const at = (p: number): number => {
        if (p < it.prompt) return promptToken(p < it.prefixLength ? it.prefixSeed : it.seed, p, vocab);
        const g = generated[p - it.prompt];
        if (g === undefined) throw new ExecutorError(`${this.name} executor: '${it.req}' computes position ${p}, but only ${generated.length} token(s) were generated after its ${it.prompt}-token prompt`);
        return g;
      };
      const blockTable = it.blockTable.slice();
      if (it.phase === 'decode' && it.draft > 0) {
        // A verify: the last token and the drafts, like a prefill chunk, with the argmax after every position.
        prefill.push({ req: it.req, tokens: it.ids!.slice(), startPos: it.startPos, blockTable, allNext: true });
        prefillPositions += it.tokens;
        verifies++;
      } else if (it.phase === 'decode') {
        decode.push({ req: it.req, token: it.ids ? it.ids[0] : at(it.startPos), pos: it.startPos, blockTable });
      } else {
        const tokens = new Array<number>(it.tokens);
        for (let k = 0; k < it.tokens; k++) tokens[k] = at(it.startPos + k);
        prefill.push({ req: it.req, tokens, startPos: it.startPos, blockTable });
        prefillPositions += it.tokens;
      }
    }
    this.stats.prefillItems += prefill.length - verifies;
    this.stats.verifyItems += verifies;
    this.stats.decodeItems += decode.length;
    this.stats.positions += prefillPositions + decode.length;
    let prefillShare: number;
    if (spec.role === 'prefill') prefillShare = spec.share / 100;
    else if (spec.role === 'decode') prefillShare = 1 - spec.share / 100;
    else prefillShare = prefillPositions / (prefillPositions + decode.length);
    const copies = spec.copies?.map(([from, to]) => ({ from, to }));
    return { prefill, decode, prefillShare: Math.min(1, Math.max(0, prefillShare)), ...(copies ? { copies } : {}) };
  }

  transferTime(tokens: number): number {
    return this.cost.transferTime(tokens);
  }

  workerInitTime(mechanism: ResizeMechanism): number {
    return this.cost.workerInitTime(mechanism);
  }
}
