// The numeric oracle: Llama 2's forward pass (llama2.c run.c semantics) in plain TypeScript over a paged
// KV pool. Precision contract (docs/model-executors.md):
//  - every stored tensor (weights, activations, K/V pool, logits) is float32 (Float32Array), so each value
//    is rounded to float32 when it is stored;
//  - every reduction (matmul dot products, RMSNorm sum of squares, attention scores, softmax max/sum,
//    attention's weighted sum of V) accumulates in a JS number (float64), in increasing index order;
//  - scalar math between loads and the store (RMSNorm scale, RoPE angle and rotation, exp, SiLU·gate) is
//    float64 (Math.*), rounded once at the store; attention scores and weights live in a Float64Array.
// Each token's result depends only on its own request's tokens, so the output is batch-invariant.
import type { ModelWeights } from '../model/checkpoint.ts';
import {
  argmaxFirst,
  kvOffset,
  kvPoolFloats,
  planStep,
  validatePool,
  type KvPool,
  type ModelConfig,
  type ModelExecutor,
  type StepInput,
  kvBlockFloats,
  type StepOutput,
  type StepPlan,
} from './model-executor.ts';

/** out[t*d + r] = sum_j w[wOff + r*n + j] * x[t*n + j] for rows t < R; accumulate adds into out instead. */
function matmul(out: Float32Array, x: Float32Array, w: Float32Array, wOff: number, n: number, d: number, R: number, accumulate = false) {
  for (let r = 0; r < d; r++) {
    const wRow = wOff + r * n;
    for (let t = 0; t < R; t++) {
      const xRow = t * n;
      let sum = 0;
      for (let j = 0; j < n; j++) sum += w[wRow + j] * x[xRow + j];
      // Round the product to float32 first, then add: the residual add is a float32 add, as in run.c.
      if (accumulate) out[t * d + r] += Math.fround(sum);
      else out[t * d + r] = sum;
    }
  }
}

function rmsnorm(out: Float32Array, outRow: number, x: Float32Array, xRow: number, weight: Float32Array, wOff: number, dim: number) {
  let ss = 0;
  for (let j = 0; j < dim; j++) ss += x[xRow * dim + j] * x[xRow * dim + j];
  const scale = 1 / Math.sqrt(ss / dim + 1e-5);
  for (let j = 0; j < dim; j++) out[outRow * dim + j] = weight[wOff + j] * (scale * x[xRow * dim + j]);
}

/** Rotates pairs (i, i+1) of one row in place; freq = 10000^(-(i mod headSize)/headSize). */
function rope(vec: Float32Array, base: number, width: number, headSize: number, pos: number) {
  for (let i = 0; i < width; i += 2) {
    const freq = 1 / Math.pow(10000, (i % headSize) / headSize);
    const angle = pos * freq;
    const c = Math.cos(angle);
    const s = Math.sin(angle);
    const v0 = vec[base + i];
    const v1 = vec[base + i + 1];
    vec[base + i] = v0 * c - v1 * s;
    vec[base + i + 1] = v0 * s + v1 * c;
  }
}

/** Per row of a step: its item, its position, and the residual stream. */
interface Rows {
  rowItem: Int32Array;
  rowPos: Int32Array;
  x: Float32Array;
}

/** Scratch buffers of one step. */
interface Scratch {
  xb: Float32Array;
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  att: Float32Array;
  hb: Float32Array;
  hb2: Float32Array;
  scores: Float64Array;
  acc: Float64Array;
}

export class CpuReferenceExecutor implements ModelExecutor {
  readonly name = 'cpu' as const;
  readonly model: ModelConfig;
  readonly pool: KvPool;
  private weights: ModelWeights | null;
  private kv: Float32Array;

  constructor(weights: ModelWeights, pool: KvPool) {
    validatePool(pool);
    this.weights = weights;
    this.model = weights.config;
    this.pool = { numBlocks: pool.numBlocks, blockSize: pool.blockSize };
    this.kv = new Float32Array(kvPoolFloats(this.model, this.pool));
  }

  /** Bytes of the KV pool (all blocks, all layers, K and V). */
  get kvBytes(): number {
    return this.kv.byteLength;
  }

  async step(input: StepInput): Promise<StepOutput> {
    const w = this.weights;
    if (!w) throw new Error('cpu executor used after destroy()');
    const plan = planStep(input, this.model, this.pool);
    const size = kvBlockFloats(this.model, this.pool);
    for (const c of plan.copies) this.kv.copyWithin(c.to * size, c.from * size, (c.from + 1) * size);
    const rows = this.embed(plan, w);
    const s = this.scratch(plan.rows);
    for (let l = 0; l < this.model.nLayers; l++) this.layer(l, plan, rows, s, w);
    return this.classify(plan, rows.x, w);
  }

  /** Per row of the step: its item, its position, and its token's embedding. */
  private embed(plan: StepPlan, w: ModelWeights): Rows {
    const dim = this.model.dim;
    const R = plan.rows;
    const rowItem = new Int32Array(R);
    const rowPos = new Int32Array(R);
    const x = new Float32Array(R * dim);
    for (let i = 0; i < plan.items.length; i++) {
      const item = plan.items[i];
      for (let k = 0; k < item.tokens.length; k++) {
        const row = item.rowBase + k;
        rowItem[row] = i;
        rowPos[row] = item.startPos + k;
        x.set(w.tokenEmbedding.subarray(item.tokens[k] * dim, (item.tokens[k] + 1) * dim), row * dim);
      }
    }
    return { rowItem, rowPos, x };
  }

  private scratch(R: number): Scratch {
    const { dim, kvDim, hiddenDim, headSize, seqLen } = this.model;
    return {
      xb: new Float32Array(R * dim),
      q: new Float32Array(R * dim),
      k: new Float32Array(R * kvDim),
      v: new Float32Array(R * kvDim),
      att: new Float32Array(R * dim),
      hb: new Float32Array(R * hiddenDim),
      hb2: new Float32Array(R * hiddenDim),
      scores: new Float64Array(seqLen),
      acc: new Float64Array(headSize),
    };
  }

  /** One transformer layer over every row: attention (K/V written to the blocks first), then the FFN. */
  private layer(l: number, plan: StepPlan, rows: Rows, s: Scratch, w: ModelWeights): void {
    const { dim, kvDim, hiddenDim } = this.model;
    const R = plan.rows;
    const { x } = rows;
    const { xb, q, k, v, att, hb, hb2 } = s;
    for (let r = 0; r < R; r++) rmsnorm(xb, r, x, r, w.rmsAtt, l * dim, dim);
    matmul(q, xb, w.wq, l * dim * dim, dim, dim, R);
    matmul(k, xb, w.wk, l * kvDim * dim, dim, kvDim, R);
    matmul(v, xb, w.wv, l * kvDim * dim, dim, kvDim, R);
    this.writeKv(l, plan, rows, s);
    for (let r = 0; r < R; r++) this.attend(l, r, plan, rows, s);
    matmul(x, att, w.wo, l * dim * dim, dim, dim, R, true);
    for (let r = 0; r < R; r++) rmsnorm(xb, r, x, r, w.rmsFfn, l * dim, dim);
    matmul(hb, xb, w.w1, l * hiddenDim * dim, dim, hiddenDim, R);
    matmul(hb2, xb, w.w3, l * hiddenDim * dim, dim, hiddenDim, R);
    for (let i = 0; i < R * hiddenDim; i++) {
      const g = hb[i];
      hb[i] = g * (1 / (1 + Math.exp(-g))) * hb2[i];
    }
    matmul(x, hb, w.w2, l * dim * hiddenDim, hiddenDim, dim, R, true);
  }

  /** RoPE, then K/V of every row into its request's block (all rows first: a prefill row attends to the rows before it in the same chunk). */
  private writeKv(l: number, plan: StepPlan, rows: Rows, s: Scratch): void {
    const { dim, kvDim, headSize } = this.model;
    const T = this.pool.blockSize;
    const { q, k, v } = s;
    for (let r = 0; r < plan.rows; r++) {
      const pos = rows.rowPos[r];
      rope(q, r * dim, dim, headSize, pos);
      rope(k, r * kvDim, kvDim, headSize, pos);
      const table = plan.items[rows.rowItem[r]].blockTable;
      const block = table[Math.floor(pos / T)];
      this.kv.set(k.subarray(r * kvDim, (r + 1) * kvDim), kvOffset(this.model, this.pool, block, l, 0, pos % T));
      this.kv.set(v.subarray(r * kvDim, (r + 1) * kvDim), kvOffset(this.model, this.pool, block, l, 1, pos % T));
    }
  }

  /** Row `r`'s attention, every head, over positions 0..pos read from its request's blocks, into `att`. */
  private attend(l: number, r: number, plan: StepPlan, rows: Rows, s: Scratch): void {
    const { dim, headSize, nHeads, kvMul } = this.model;
    const T = this.pool.blockSize;
    const { q, att, scores, acc } = s;
    const kv = this.kv;
    const invSqrtHead = 1 / Math.sqrt(headSize);
    const pos = rows.rowPos[r];
    const table = plan.items[rows.rowItem[r]].blockTable;
    for (let h = 0; h < nHeads; h++) {
      const qBase = r * dim + h * headSize;
      const headOff = Math.floor(h / kvMul) * headSize;
      let max = -Infinity;
      for (let t = 0; t <= pos; t++) {
        const kBase = kvOffset(this.model, this.pool, table[Math.floor(t / T)], l, 0, t % T) + headOff;
        let dot = 0;
        for (let i = 0; i < headSize; i++) dot += q[qBase + i] * kv[kBase + i];
        const score = dot * invSqrtHead;
        scores[t] = score;
        if (score > max) max = score;
      }
      let sum = 0;
      for (let t = 0; t <= pos; t++) {
        scores[t] = Math.exp(scores[t] - max);
        sum += scores[t];
      }
      acc.fill(0);
      for (let t = 0; t <= pos; t++) {
        const a = scores[t] / sum;
        const vBase = kvOffset(this.model, this.pool, table[Math.floor(t / T)], l, 1, t % T) + headOff;
        for (let i = 0; i < headSize; i++) acc[i] += a * kv[vBase + i];
      }
      att.set(acc, qBase);
    }
  }

  /**
   * Final RMSNorm and classifier, for the rows that need logits only (each item's last row; every row of an
   * item with allNext): the next token (greedy) and, when asked, the logits after each item's last row.
   */
  private classify(plan: StepPlan, x: Float32Array, w: ModelWeights): StepOutput {
    const { dim, vocabSize } = this.model;
    const outRows = plan.outRows;
    const nOut = outRows.length;
    const last = new Float32Array(nOut * dim);
    for (let o = 0; o < nOut; o++) rmsnorm(last, o, x, outRows[o], w.rmsFinal, 0, dim);
    const logits = new Float32Array(nOut * vocabSize);
    matmul(logits, last, w.wcls, 0, dim, vocabSize, nOut);
    const argmax = (o: number) => argmaxFirst(logits.subarray(o * vocabSize, (o + 1) * vocabSize));
    const next = new Map<string, number>();
    let nextAll: Map<string, number[]> | undefined;
    const logitsOut = plan.wantLogits ? new Map<string, Float32Array>() : undefined;
    for (const item of plan.items) {
      const lastOut = item.allNext ? item.outBase + item.tokens.length - 1 : item.outBase;
      next.set(item.req, argmax(lastOut));
      if (item.allNext) {
        const all = new Array<number>(item.tokens.length);
        for (let k = 0; k < item.tokens.length; k++) all[k] = argmax(item.outBase + k);
        (nextAll ??= new Map()).set(item.req, all);
      }
      logitsOut?.set(item.req, logits.slice(lastOut * vocabSize, (lastOut + 1) * vocabSize));
    }
    const out: StepOutput = { next };
    if (nextAll) out.nextAll = nextAll;
    if (logitsOut) out.logits = logitsOut;
    return out;
  }

  /** A copy of the whole KV pool, in the layout of kvOffset (for tests and debugging). */
  async readKvPool(): Promise<Float32Array> {
    return this.kv.slice();
  }

  destroy(): void {
    this.weights = null;
    this.kv = new Float32Array(0);
  }
}

export function createCpuReferenceExecutor(weights: ModelWeights, pool: KvPool): CpuReferenceExecutor {
  return new CpuReferenceExecutor(weights, pool);
}
