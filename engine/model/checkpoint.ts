// llama2.c "legacy" checkpoints: a header of 7 little-endian int32, then float32 tensors.
// Parsing is strict (exact size, sane shape) because a truncated or foreign file must be a clear
// one-line error, not a model that silently computes garbage.
import { readFileSync, statSync } from 'node:fs';

/** Shape of a Llama 2 model as the llama2.c header gives it, plus the derived sizes. */
export interface ModelConfig {
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  vocabSize: number;
  seqLen: number;
  /** Header vocab_size was positive: the classifier is the token embedding (no wcls tensor). */
  sharedClassifier: boolean;
  headSize: number;
  kvDim: number;
  /** Query heads per key/value head (grouped-query attention). */
  kvMul: number;
}

/** Every tensor row-major [out][in], all layers concatenated along the first axis. */
export interface ModelWeights {
  config: ModelConfig;
  tokenEmbedding: Float32Array; // [vocab][dim]
  rmsAtt: Float32Array; // [layer][dim]
  wq: Float32Array; // [layer][dim][dim]
  wk: Float32Array; // [layer][kvDim][dim]
  wv: Float32Array; // [layer][kvDim][dim]
  wo: Float32Array; // [layer][dim][dim]
  rmsFfn: Float32Array; // [layer][dim]
  w1: Float32Array; // [layer][hidden][dim]
  w2: Float32Array; // [layer][dim][hidden]
  w3: Float32Array; // [layer][hidden][dim]
  rmsFinal: Float32Array; // [dim]
  /** The classifier [vocab][dim]: the same array as tokenEmbedding when sharedClassifier. */
  wcls: Float32Array;
}

/** A checkpoint that cannot be read or is not a well-formed legacy llama2.c file. */
export class CheckpointError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CheckpointError';
  }
}

export const HEADER_BYTES = 28;
/** llama2.c's versioned export format starts with this magic ("ak42"); only the legacy format is read. */
const VERSIONED_MAGIC = 0x616b3432;
/** Guard against absurd headers before computing sizes (a real model this large would not load anyway). */
const MAX_DIMENSION = 1 << 20;

/** The raw header fields, in file order. */
export interface CheckpointHeader {
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  /** Signed as in the file: negative means a separate classifier follows the RoPE tables. */
  vocabSize: number;
  seqLen: number;
}

/** Validates a header and derives the config; throws CheckpointError naming the first bad field. */
export function configFromHeader(h: CheckpointHeader, source = 'checkpoint'): ModelConfig {
  const fields: [string, number][] = [
    ['dim', h.dim],
    ['hidden_dim', h.hiddenDim],
    ['n_layers', h.nLayers],
    ['n_heads', h.nHeads],
    ['n_kv_heads', h.nKvHeads],
    ['|vocab_size|', Math.abs(h.vocabSize)],
    ['seq_len', h.seqLen],
  ];
  for (const [name, value] of fields) {
    if (!Number.isInteger(value) || value < 1 || value > MAX_DIMENSION) {
      throw new CheckpointError(`${source}: malformed header, ${name} = ${value} (expected 1..${MAX_DIMENSION})`);
    }
  }
  if (h.dim % h.nHeads !== 0) throw new CheckpointError(`${source}: malformed header, dim ${h.dim} is not a multiple of n_heads ${h.nHeads}`);
  if (h.nHeads % h.nKvHeads !== 0) {
    throw new CheckpointError(`${source}: malformed header, n_heads ${h.nHeads} is not a multiple of n_kv_heads ${h.nKvHeads}`);
  }
  const headSize = h.dim / h.nHeads;
  if (headSize % 2 !== 0) throw new CheckpointError(`${source}: malformed header, head size ${headSize} is odd (RoPE rotates pairs)`);
  return {
    dim: h.dim,
    hiddenDim: h.hiddenDim,
    nLayers: h.nLayers,
    nHeads: h.nHeads,
    nKvHeads: h.nKvHeads,
    vocabSize: Math.abs(h.vocabSize),
    seqLen: h.seqLen,
    sharedClassifier: h.vocabSize > 0,
    headSize,
    kvDim: (h.dim * h.nKvHeads) / h.nHeads,
    kvMul: h.nHeads / h.nKvHeads,
  };
}

/** Float32 counts of each tensor in file order; `ropeTables` is the unused legacy freq_cis data. */
export function tensorSizes(c: ModelConfig) {
  const L = c.nLayers;
  return {
    tokenEmbedding: c.vocabSize * c.dim,
    rmsAtt: L * c.dim,
    wq: L * c.dim * c.dim,
    wk: L * c.kvDim * c.dim,
    wv: L * c.kvDim * c.dim,
    wo: L * c.dim * c.dim,
    rmsFfn: L * c.dim,
    w1: L * c.hiddenDim * c.dim,
    w2: L * c.dim * c.hiddenDim,
    w3: L * c.hiddenDim * c.dim,
    rmsFinal: c.dim,
    ropeTables: c.seqLen * c.headSize,
    wcls: c.sharedClassifier ? 0 : c.vocabSize * c.dim,
  };
}

/** Exact byte size of a legacy checkpoint of this config. */
export function checkpointByteLength(c: ModelConfig): number {
  const floats = Object.values(tensorSizes(c)).reduce((a, b) => a + b, 0);
  return HEADER_BYTES + 4 * floats;
}

/** Number of float32 parameters the forward pass reads (RoPE tables excluded). */
export function parameterCount(c: ModelConfig): number {
  const s = tensorSizes(c);
  return (checkpointByteLength(c) - HEADER_BYTES) / 4 - s.ropeTables;
}

/** Parses a legacy llama2.c checkpoint from bytes. The returned arrays are copies (aligned, little-endian). */
export function parseCheckpoint(bytes: Uint8Array, source = 'checkpoint'): ModelWeights {
  if (bytes.byteLength < HEADER_BYTES) {
    throw new CheckpointError(`${source}: truncated, ${bytes.byteLength} bytes is shorter than the ${HEADER_BYTES}-byte header`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const int = (i: number) => view.getInt32(4 * i, true);
  if (view.getUint32(0, true) === VERSIONED_MAGIC) {
    throw new CheckpointError(`${source}: versioned llama2.c export (magic "ak42"); only the legacy format is supported (export with --version 0)`);
  }
  const config = configFromHeader(
    { dim: int(0), hiddenDim: int(1), nLayers: int(2), nHeads: int(3), nKvHeads: int(4), vocabSize: int(5), seqLen: int(6) },
    source,
  );
  const expected = checkpointByteLength(config);
  if (bytes.byteLength !== expected) {
    const what = bytes.byteLength < expected ? 'truncated' : 'malformed (trailing bytes)';
    throw new CheckpointError(`${source}: ${what}, ${bytes.byteLength} bytes but the header implies ${expected}`);
  }
  const sizes = tensorSizes(config);
  let offset = HEADER_BYTES;
  const take = (count: number): Float32Array => {
    const out = new Float32Array(count);
    for (let i = 0; i < count; i++) out[i] = view.getFloat32(offset + 4 * i, true);
    offset += 4 * count;
    return out;
  };
  const tokenEmbedding = take(sizes.tokenEmbedding);
  const rmsAtt = take(sizes.rmsAtt);
  const wq = take(sizes.wq);
  const wk = take(sizes.wk);
  const wv = take(sizes.wv);
  const wo = take(sizes.wo);
  const rmsFfn = take(sizes.rmsFfn);
  const w1 = take(sizes.w1);
  const w2 = take(sizes.w2);
  const w3 = take(sizes.w3);
  const rmsFinal = take(sizes.rmsFinal);
  offset += 4 * sizes.ropeTables; // legacy freq_cis tables: RoPE is computed from the position instead
  const wcls = config.sharedClassifier ? tokenEmbedding : take(sizes.wcls);
  const weights: ModelWeights = { config, tokenEmbedding, rmsAtt, wq, wk, wv, wo, rmsFfn, w1, w2, w3, rmsFinal, wcls };
  for (const [name, tensor] of Object.entries(weights)) {
    if (tensor instanceof Float32Array) {
      for (let i = 0; i < tensor.length; i++) {
        if (!Number.isFinite(tensor[i])) throw new CheckpointError(`${source}: malformed, ${name}[${i}] is not a finite number`);
      }
    }
  }
  return weights;
}

/** Reads and parses a checkpoint file; every failure is a one-line CheckpointError. */
export function loadCheckpoint(path: string): ModelWeights {
  let bytes: Uint8Array;
  try {
    if (!statSync(path).isFile()) throw new CheckpointError(`${path}: not a regular file`);
    bytes = readFileSync(path);
  } catch (err) {
    if (err instanceof CheckpointError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new CheckpointError(code === 'ENOENT' ? `${path}: no such checkpoint file` : `${path}: cannot read (${code ?? (err as Error).message})`);
  }
  return parseCheckpoint(bytes, path);
}

/** Writes weights back in the legacy format (RoPE tables zero-filled: the forward pass never reads them). */
export function serializeCheckpoint(w: ModelWeights): Uint8Array {
  const c = w.config;
  const sizes = tensorSizes(c);
  const bytes = new Uint8Array(checkpointByteLength(c));
  const view = new DataView(bytes.buffer);
  const header = [c.dim, c.hiddenDim, c.nLayers, c.nHeads, c.nKvHeads, c.sharedClassifier ? c.vocabSize : -c.vocabSize, c.seqLen];
  header.forEach((v, i) => view.setInt32(4 * i, v, true));
  let offset = HEADER_BYTES;
  const put = (tensor: Float32Array, count: number, name: string) => {
    if (tensor.length !== count) throw new Error(`serializeCheckpoint: ${name} has ${tensor.length} floats, expected ${count}`);
    for (let i = 0; i < count; i++) view.setFloat32(offset + 4 * i, tensor[i], true);
    offset += 4 * count;
  };
  put(w.tokenEmbedding, sizes.tokenEmbedding, 'tokenEmbedding');
  put(w.rmsAtt, sizes.rmsAtt, 'rmsAtt');
  put(w.wq, sizes.wq, 'wq');
  put(w.wk, sizes.wk, 'wk');
  put(w.wv, sizes.wv, 'wv');
  put(w.wo, sizes.wo, 'wo');
  put(w.rmsFfn, sizes.rmsFfn, 'rmsFfn');
  put(w.w1, sizes.w1, 'w1');
  put(w.w2, sizes.w2, 'w2');
  put(w.w3, sizes.w3, 'w3');
  put(w.rmsFinal, sizes.rmsFinal, 'rmsFinal');
  offset += 4 * sizes.ropeTables;
  if (!c.sharedClassifier) put(w.wcls, sizes.wcls, 'wcls');
  return bytes;
}
