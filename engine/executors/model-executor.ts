// The contract between the engine and a model executor (CPU reference or WebGPU), the paged KV layout
// both share, step validation, and run.c's greedy loop written against the contract.
import type { ModelConfig } from '../model/checkpoint.ts';

export type { ModelConfig } from '../model/checkpoint.ts';

/** One KV pool for the whole executor: numBlocks blocks of blockSize token slots, every layer's K and V. */
export interface KvPool {
  numBlocks: number;
  blockSize: number;
}

/**
 * Prefill (or a prefill chunk, or a recompute after preemption): computes positions
 * startPos .. startPos+tokens.length-1 of request `req`, writing their K/V into the blocks of blockTable,
 * and attends to positions 0..p for each of them (earlier positions must already be in the blocks).
 */
export interface PrefillWork {
  req: string;
  tokens: number[];
  startPos: number;
  /** Logical block i of the request (positions i*T .. i*T+T-1) lives in physical block blockTable[i]. */
  blockTable: number[];
  /**
   * Also return the greedy argmax after every position of the item, not only the last (StepOutput.nextAll):
   * a speculative verify, whose positions are the last token and the drafts.
   */
  allNext?: boolean;
}

/** One decode position: writes the K/V of `token` at `pos` and attends to positions 0..pos. */
export interface DecodeWork {
  req: string;
  token: number;
  pos: number;
  blockTable: number[];
}

export interface StepInput {
  prefill: PrefillWork[];
  decode: DecodeWork[];
  /** 0..1: the fraction of the fused attention dispatch's workgroups given to prefill tiles. */
  prefillShare: number;
  /** Also return the logits after the last position of each work item (costs a larger readback). */
  wantLogits?: boolean;
  /**
   * Copy-on-write copies to carry out before the step computes anything: each block's whole contents (every
   * layer's K and V) copied from `from` to `to`, in order (vLLM's blocks_to_copy).
   */
  copies?: { from: number; to: number }[];
}

export interface StepOutput {
  /** Greedy argmax (first maximum) after the last position of each work item, by request id. */
  next: Map<string, number>;
  /** For each prefill item with `allNext`: the argmax after each of its positions, in order (the last is `next`'s). */
  nextAll?: Map<string, number[]>;
  logits?: Map<string, Float32Array>;
}

export interface ModelExecutor {
  readonly name: 'cpu' | 'webgpu';
  readonly model: ModelConfig;
  readonly pool: KvPool;
  /** One engine step. Steps must not overlap: await each before starting the next. */
  step(input: StepInput): Promise<StepOutput>;
  /** Releases the executor's memory (and GPU device); the executor is unusable afterwards. */
  destroy(): void;
}

/**
 * How close the WebGPU executor's logits must be to the CPU reference's: normalised MSE
 * sum((a-b)^2)/sum(b^2) below 1e-6, i.e. a relative RMS error below 0.1 %. Measured on stories260K: about
 * 4e-11 (float32 sums on the GPU against float64 sums on the CPU); a real bug (a wrong RoPE pair, a
 * missed position, a wrong block) moves it to 1e-3 or more. See docs/model-executors.md.
 */
export const LOGITS_NMSE_TOLERANCE = 1e-6;

/** A step the executor cannot run (bad ids, positions, block tables, split): one-line message. */
export class ExecutorInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ExecutorInputError';
  }
}

/** One work item flattened: prefill items first (in input order), then decode items. */
export interface PlannedItem {
  req: string;
  phase: 'prefill' | 'decode';
  tokens: number[];
  startPos: number;
  blockTable: number[];
  /** Index of the item's first token among all tokens of the step (rows). */
  rowBase: number;
  /** Whether the argmax after every position is asked for (else only after the last). */
  allNext: boolean;
  /** Index of the item's first classified row among the step's outputs (outRows). */
  outBase: number;
}

export interface StepPlan {
  items: PlannedItem[];
  prefillItems: number;
  rows: number;
  /**
   * The rows whose logits and argmax the step computes, in order: each item's last row, or every row of an
   * item with allNext. Without allNext items, one per item.
   */
  outRows: number[];
  prefillShare: number;
  wantLogits: boolean;
  copies: { from: number; to: number }[];
}

/** Float index of (block, layer, K=0|V=1, slot) in the pool: [block][layer][K|V][slot][kvDim]. */
export function kvOffset(model: ModelConfig, pool: KvPool, block: number, layer: number, kv: 0 | 1, slot: number): number {
  return (((block * model.nLayers + layer) * 2 + kv) * pool.blockSize + slot) * model.kvDim;
}

/** Floats in the whole pool: a block holds every layer's K and V for its blockSize positions. */
export function kvPoolFloats(model: ModelConfig, pool: KvPool): number {
  return pool.numBlocks * model.nLayers * 2 * pool.blockSize * model.kvDim;
}

export function validatePool(pool: KvPool): void {
  if (!Number.isInteger(pool.numBlocks) || pool.numBlocks < 1) throw new ExecutorInputError(`KV pool numBlocks must be an integer ≥ 1, got ${pool.numBlocks}`);
  if (!Number.isInteger(pool.blockSize) || pool.blockSize < 1) throw new ExecutorInputError(`KV pool blockSize must be an integer ≥ 1, got ${pool.blockSize}`);
}

/**
 * Validates a step and flattens it. Only what would make an executor compute out of bounds is checked;
 * block ownership (a block in two requests' tables, or twice in one) is deliberately not: the executor
 * is the physical layer, so such a bug corrupts K/V and shows up as wrong tokens in both executors, which
 * is what the engine's own checks and property tests are there to catch.
 */
export function planStep(input: StepInput, model: ModelConfig, pool: KvPool): StepPlan {
  const share = input.prefillShare;
  if (typeof share !== 'number' || !(share >= 0 && share <= 1)) throw new ExecutorInputError(`prefillShare must be in [0, 1], got ${share}`);
  const seen = new Set<string>();
  const items: PlannedItem[] = [];
  const outRows: number[] = [];
  let rows = 0;
  const checkItem = (req: string, phase: 'prefill' | 'decode', tokens: number[], startPos: number, blockTable: number[], allNext = false) => {
    const where = `${phase} item '${req}'`;
    if (typeof req !== 'string' || req.length === 0) throw new ExecutorInputError(`${phase} item has no request id`);
    if (seen.has(req)) throw new ExecutorInputError(`request '${req}' appears twice in one step`);
    seen.add(req);
    if (!Array.isArray(tokens) || tokens.length === 0) throw new ExecutorInputError(`${where}: no tokens`);
    for (const t of tokens) {
      if (!Number.isInteger(t) || t < 0 || t >= model.vocabSize) throw new ExecutorInputError(`${where}: token ${t} outside the vocabulary 0..${model.vocabSize - 1}`);
    }
    if (!Number.isInteger(startPos) || startPos < 0) throw new ExecutorInputError(`${where}: position ${startPos} is not an integer ≥ 0`);
    const lastPos = startPos + tokens.length - 1;
    if (lastPos >= model.seqLen) throw new ExecutorInputError(`${where}: position ${lastPos} beyond the model's seq_len ${model.seqLen}`);
    const needed = Math.floor(lastPos / pool.blockSize) + 1;
    if (!Array.isArray(blockTable) || blockTable.length < needed) {
      throw new ExecutorInputError(`${where}: block table has ${blockTable?.length ?? 0} blocks, position ${lastPos} needs ${needed}`);
    }
    for (let i = 0; i < needed; i++) {
      const b = blockTable[i];
      if (!Number.isInteger(b) || b < 0 || b >= pool.numBlocks) throw new ExecutorInputError(`${where}: block ${b} outside the pool 0..${pool.numBlocks - 1}`);
    }
    items.push({ req, phase, tokens, startPos, blockTable: blockTable.slice(0, needed), rowBase: rows, allNext, outBase: outRows.length });
    if (allNext) for (let k = 0; k < tokens.length; k++) outRows.push(rows + k);
    else outRows.push(rows + tokens.length - 1);
    rows += tokens.length;
  };
  for (const p of input.prefill) {
    if (p.allNext !== undefined && typeof p.allNext !== 'boolean') throw new ExecutorInputError(`prefill item '${p.req}': allNext must be true or false, got ${JSON.stringify(p.allNext)}`);
    checkItem(p.req, 'prefill', p.tokens, p.startPos, p.blockTable, p.allNext === true);
  }
  const prefillItems = items.length;
  for (const d of input.decode) checkItem(d.req, 'decode', [d.token], d.pos, d.blockTable);
  const copies = input.copies ?? [];
  for (const c of copies) {
    for (const b of [c.from, c.to]) if (!Number.isInteger(b) || b < 0 || b >= pool.numBlocks) throw new ExecutorInputError(`copy ${c.from} → ${c.to}: block ${b} outside the pool 0..${pool.numBlocks - 1}`);
    if (c.from === c.to) throw new ExecutorInputError(`copy ${c.from} → ${c.to}: a block copied onto itself`);
  }
  return { items, prefillItems, rows, outRows, prefillShare: share, wantLogits: input.wantLogits === true, copies };
}

/** Floats of one block in the pool (every layer's K and V for its blockSize positions): a copy's length. */
export function kvBlockFloats(model: ModelConfig, pool: KvPool): number {
  return model.nLayers * 2 * pool.blockSize * model.kvDim;
}

/** Index of the first maximum (ties go to the lower id, as llama2.c's argmax). */
export function argmaxFirst(values: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

export interface GreedyOptions {
  prefillShare?: number;
  /** Physical blocks to use (default 0, 1, 2, ...). */
  blockTable?: number[];
  /** Called with the logits after each position whose argmax is emitted. */
  onLogits?: (pos: number, logits: Float32Array) => void;
}

/**
 * llama2.c run.c's greedy loop: `steps` counts positions (prompt included; 0 or more than seq_len means
 * seq_len). Positions 0..steps-1 are run; the argmax after each position from the last prompt token on is
 * emitted, and generation stops before emitting token 1 (BOS), as run.c does. So a prompt of P tokens
 * yields at most steps-P+1 ids, and [1] with steps 64 yields the 64 ids of golden-bos-64.txt.
 * The prompt runs as one prefill step, then one decode step per position.
 */
export async function generateGreedy(executor: ModelExecutor, prompt: number[], steps: number, options: GreedyOptions = {}): Promise<number[]> {
  const model = executor.model;
  if (prompt.length === 0) throw new ExecutorInputError('the prompt needs at least one token');
  const total = steps <= 0 || steps > model.seqLen ? model.seqLen : steps;
  if (prompt.length > total) return []; // run.c only feeds prompt tokens within its steps
  const blocksNeeded = Math.ceil(total / executor.pool.blockSize);
  const blockTable = options.blockTable ?? Array.from({ length: blocksNeeded }, (_, i) => i);
  const prefillShare = options.prefillShare ?? 0.5;
  const wantLogits = options.onLogits !== undefined;
  const req = 'generate';
  let out = await executor.step({ prefill: [{ req, tokens: prompt, startPos: 0, blockTable }], decode: [], prefillShare, wantLogits });
  const emitted: number[] = [];
  for (let pos = prompt.length - 1; ; pos++) {
    if (wantLogits) options.onLogits!(pos, out.logits!.get(req)!);
    const next = out.next.get(req)!;
    if (next === 1) break;
    emitted.push(next);
    if (pos + 1 >= total) break;
    out = await executor.step({ prefill: [], decode: [{ req, token: next, pos: pos + 1, blockTable }], prefillShare, wantLogits });
  }
  return emitted;
}
