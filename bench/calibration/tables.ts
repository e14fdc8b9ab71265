// The measured kernel tables (data/vidur-profiling/, from microsoft/vidur, MIT) and the steps composed from
// them the way Vidur composes a forward pass: layers × (one layer's operators at the step's token count +
// its attention kernels) + the embedding + the LM head for the tokens that produce logits.
//
// The tables have no LM-head column: it is charged as the measured up-projection GEMM at the same token
// count, scaled by the ratio of the weights (vocab·hidden against the gated MLP's 2·intermediate·hidden), a
// GEMM of the same shape family. Everything here is kernel time: no host overhead, no sampling.
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const TABLE_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../data/vidur-profiling');
export const VIDUR_SOURCE = 'microsoft/vidur commit 7d47513363ec447a741ac5e47241580b47724fbf, data/profiling/ (Agrawal et al., Vidur, MLSys 2024)';
export const VIDUR_LICENSE = 'MIT License, Copyright (c) Microsoft Corporation (data/vidur-profiling/LICENSE)';

/** The per-layer operators of mlp.csv, summed for one decoder layer (the embedding is once per step). */
export const LAYER_OPERATORS = ['input_layernorm', 'attn_pre_proj', 'attn_rope', 'attn_post_proj', 'post_attention_layernorm', 'mlp_up_proj', 'mlp_act', 'mlp_down_proj', 'add'] as const;

/** One table that could not be read: a line naming the file and the row. */
export class TableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TableError';
  }
}

/** Per-token-count medians (seconds) of one model's mlp.csv at TP 1; duplicate token counts averaged. */
export interface OperatorTable {
  file: string;
  tokens: number[];
  /** Seconds of one layer's operators (LAYER_OPERATORS summed), per entry of `tokens`. */
  layer: number[];
  embedding: number[];
  upProjection: number[];
}

export type AttentionKind = 'prefill_full' | 'prefill_chunk' | 'decode';
export interface AttentionRow {
  kind: AttentionKind;
  /** Prompt or chunk tokens (prefill), requests (decode). */
  size: number;
  /** Cached tokens: the chunk's prefix, or each decode request's context. */
  context: number;
  /** Seconds per layer. */
  seconds: number;
}

function parseCsv(path: string): { header: string[]; rows: string[][] } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new TableError(`cannot read ${path}: ${(err as Error).message}`);
  }
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  if (lines.length < 2) throw new TableError(`${path}: no rows`);
  return { header: lines[0].split(',').map((h) => h.trim()), rows: lines.slice(1).map((l) => l.split(',')) };
}

function numberAt(path: string, row: number, header: string[], cells: string[], column: string): number {
  const i = header.indexOf(column);
  if (i < 0) throw new TableError(`${path}: no column '${column}'`);
  const v = Number(cells[i]);
  if (cells[i] === undefined || cells[i].trim() === '' || !Number.isFinite(v) || v < 0) throw new TableError(`${path}: row ${row + 2}, column '${column}' must be a number ≥ 0, got '${cells[i] ?? ''}'`);
  return v;
}

/** Reads an operator table (num_tokens, then `<operator>_median_ms` columns), ms → seconds. */
export function readOperatorTable(path: string): OperatorTable {
  const { header, rows } = parseCsv(path);
  const sums = new Map<number, { n: number; layer: number; embedding: number; up: number }>();
  rows.forEach((cells, r) => {
    const tokens = numberAt(path, r, header, cells, 'num_tokens');
    if (!Number.isInteger(tokens) || tokens < 1) throw new TableError(`${path}: row ${r + 2}: num_tokens must be an integer ≥ 1`);
    let layer = 0;
    for (const op of LAYER_OPERATORS) layer += numberAt(path, r, header, cells, `${op}_median_ms`);
    const acc = sums.get(tokens) ?? { n: 0, layer: 0, embedding: 0, up: 0 };
    acc.n++;
    acc.layer += layer;
    acc.embedding += numberAt(path, r, header, cells, 'emb_median_ms');
    acc.up += numberAt(path, r, header, cells, 'mlp_up_proj_median_ms');
    sums.set(tokens, acc);
  });
  const tokens = [...sums.keys()].sort((a, b) => a - b);
  const pick = (f: (a: { n: number; layer: number; embedding: number; up: number }) => number) => tokens.map((t) => f(sums.get(t)!) / sums.get(t)!.n / 1000);
  return { file: path, tokens, layer: pick((a) => a.layer), embedding: pick((a) => a.embedding), upProjection: pick((a) => a.up) };
}

/** Reads the attention sample (kind, tokens_or_batch, kv_context, median_ms_per_layer), ms → seconds. */
export function readAttentionTable(path: string): AttentionRow[] {
  const { header, rows } = parseCsv(path);
  const kindAt = header.indexOf('kind');
  if (kindAt < 0) throw new TableError(`${path}: no column 'kind'`);
  return rows.map((cells, r) => {
    const kind = cells[kindAt]?.trim();
    if (kind !== 'prefill_full' && kind !== 'prefill_chunk' && kind !== 'decode') throw new TableError(`${path}: row ${r + 2}: kind must be prefill_full, prefill_chunk or decode, got '${kind ?? ''}'`);
    return {
      kind,
      size: numberAt(path, r, header, cells, 'tokens_or_batch'),
      context: numberAt(path, r, header, cells, 'kv_context'),
      seconds: numberAt(path, r, header, cells, 'median_ms_per_layer') / 1000,
    };
  });
}

/** Linear interpolation over the table's token counts (clamped at its ends). */
export function interpolate(xs: readonly number[], ys: readonly number[], x: number): number {
  if (x <= xs[0]) return ys[0];
  if (x >= xs[xs.length - 1]) return ys[ys.length - 1];
  let lo = 0;
  let hi = xs.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (xs[mid] <= x) lo = mid;
    else hi = mid;
  }
  const f = (x - xs[lo]) / (xs[hi] - xs[lo]);
  return ys[lo] + f * (ys[hi] - ys[lo]);
}

/** The model dimensions a composition needs, and the source of each table. */
export interface ModelTables {
  /** Model and GPU, for printing. */
  label: string;
  layers: number;
  hiddenSize: number;
  intermediateSize: number;
  vocabSize: number;
  operators: OperatorTable;
  attention: AttentionRow[];
}

/** A composed step: what it computes and its measured kernel seconds. */
export interface MeasuredStep {
  kind: 'prefill' | 'decode' | 'mixed';
  label: string;
  prefillTokens: number;
  prefix: number;
  decodes: number;
  /** Cached tokens of each decode request. */
  context: number;
  seconds: number;
}

/** Seconds of the LM head for `tokens` logit tokens, from the up-projection scaled by weight size. */
export function lmHeadSeconds(t: ModelTables, tokens: number): number {
  if (tokens <= 0) return 0;
  return interpolate(t.operators.tokens, t.operators.upProjection, tokens) * (t.vocabSize / (2 * t.intermediateSize));
}

/** Measured seconds of a step: per-layer operators and attention, the embedding, the LM head. */
export function composeStep(t: ModelTables, parts: { tokens: number; attentionPerLayer: number; logits: number }): number {
  const ops = t.operators;
  const layer = interpolate(ops.tokens, ops.layer, parts.tokens) + parts.attentionPerLayer;
  return t.layers * layer + interpolate(ops.tokens, ops.embedding, parts.tokens) + lmHeadSeconds(t, parts.logits);
}

/**
 * Every step the tables give: one prefill per prefill row (a whole prompt, or a chunk over a cached prefix,
 * the last chunk of its prompt: one logit token), one decode per decode row, and mixed steps pairing each
 * chunk row with two decode rows chosen by a fixed stride (3i and 3i + half the decode rows, modulo their
 * number), so that the mixed set spans the decode rows without a cross product of thousands.
 */
export function measuredSteps(t: ModelTables): MeasuredStep[] {
  const steps: MeasuredStep[] = [];
  const chunks = t.attention.filter((r) => r.kind !== 'decode');
  const decodes = t.attention.filter((r) => r.kind === 'decode');
  for (const r of chunks) {
    steps.push({
      kind: 'prefill',
      label: `${r.kind} ${r.size} over ${r.context}`,
      prefillTokens: r.size,
      prefix: r.context,
      decodes: 0,
      context: 0,
      seconds: composeStep(t, { tokens: r.size, attentionPerLayer: r.seconds, logits: 1 }),
    });
  }
  for (const r of decodes) {
    steps.push({ kind: 'decode', label: `decode ${r.size} × ${r.context}`, prefillTokens: 0, prefix: 0, decodes: r.size, context: r.context, seconds: composeStep(t, { tokens: r.size, attentionPerLayer: r.seconds, logits: r.size }) });
  }
  const chunkRows = chunks.filter((r) => r.kind === 'prefill_chunk');
  chunkRows.forEach((c, i) => {
    for (const j of [(3 * i) % decodes.length, (3 * i + (decodes.length >> 1)) % decodes.length]) {
      const d = decodes[j];
      steps.push({
        kind: 'mixed',
        label: `chunk ${c.size} over ${c.context} + decode ${d.size} × ${d.context}`,
        prefillTokens: c.size,
        prefix: c.context,
        decodes: d.size,
        context: d.context,
        seconds: composeStep(t, { tokens: c.size + d.size, attentionPerLayer: c.seconds + d.seconds, logits: 1 + d.size }),
      });
    }
  });
  return steps;
}

/** Llama 3 8B on A100 (the fitted tables) and Llama 2 7B on A100 and H100 (dense rows only, held back). */
export function llama3A100Tables(dir = TABLE_DIR): ModelTables {
  return {
    label: 'Meta-Llama-3-8B, A100',
    layers: 32,
    hiddenSize: 4096,
    intermediateSize: 14336,
    vocabSize: 128256,
    operators: readOperatorTable(join(dir, 'a100-llama3-8b-mlp.csv')),
    attention: readAttentionTable(join(dir, 'a100-llama3-8b-attention.csv')),
  };
}

export function llama2Tables(gpu: 'a100' | 'h100', dir = TABLE_DIR): ModelTables {
  return {
    label: `Llama-2-7b-hf, ${gpu.toUpperCase()}`,
    layers: 32,
    hiddenSize: 4096,
    intermediateSize: 11008,
    vocabSize: 32000,
    operators: readOperatorTable(join(dir, `${gpu}-llama2-7b-mlp.csv`)),
    attention: [],
  };
}
