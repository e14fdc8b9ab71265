// WGSL kernels of the WebGPU executor, specialised to one model shape (sizes are compile-time constants).
//
// Batch invariance rule for every kernel here: the value of one output element is computed by one fixed
// sequence of operations that depends only on the model shape and on that element's own request (its
// tokens and positions), never on how many rows the step has, which workgroup runs it, the split, or the
// physical block ids (those change addresses, not arithmetic). Reductions are either sequential in one
// invocation or a fixed-shape tree over a fixed number of lanes.
import type { ModelConfig } from '../../model/checkpoint.ts';

/** Lanes of the per-row kernels (RMSNorm, embedding, argmax): a fixed tree of this width. */
export const ROW_LANES = 64;
/**
 * Positions per online-softmax chunk of the attention kernel (one chunk's scores sit in workgroup memory).
 * The output bits depend on it (where the running maximum is rescaled), so it is a fixed constant; they do
 * not depend on the number of attention lanes.
 */
export const ATTENTION_CHUNK = 64;
/** Invocations per matmul workgroup. */
export const MATMUL_THREADS = 64;

export interface KernelShape {
  model: ModelConfig;
  blockSize: number;
  /** Lanes of the attention workgroup: positions are strided over them for scoring, outputs for the sums. */
  attentionLanes: number;
  /** Tokens handled per matmul invocation (each weight load serves all of them). */
  tokensPerThread: number;
  /** Output rows handled per matmul invocation (each token load serves all of them). */
  rowsPerThread: number;
}

function constants(s: KernelShape): string {
  const m = s.model;
  return `
const DIM: u32 = ${m.dim}u;
const KV_DIM: u32 = ${m.kvDim}u;
const QKV_DIM: u32 = ${m.dim + 2 * m.kvDim}u;
const HIDDEN: u32 = ${m.hiddenDim}u;
const HEAD_SIZE: u32 = ${m.headSize}u;
const HALF_HEAD: u32 = ${m.headSize / 2}u;
const KV_MUL: u32 = ${m.kvMul}u;
const N_LAYERS: u32 = ${m.nLayers}u;
const VOCAB: u32 = ${m.vocabSize}u;
const BLOCK: u32 = ${s.blockSize}u;
const ROW_LANES: u32 = ${ROW_LANES}u;
const ATT_LANES: u32 = ${s.attentionLanes}u;

// Written once per step.
struct Step {
  nRows: u32,
  nItems: u32,
  nPrefillTiles: u32,
  nDecodeTiles: u32,
  prefillWorkgroups: u32, // the split: workgroups [0, prefillWorkgroups) take prefill tiles
  attWorkgroups: u32,
  nOutputs: u32, // rows classified: each item's last row, every row of an item that asks for all
  pad1: u32,
}
// Fixed per bind group (one bind group per layer).
struct Layer {
  index: u32,
  pad0: u32,
  pad1: u32,
  pad2: u32,
}
`;
}

/** x[row] = embedding[token[row]]; one workgroup per row. */
export function embedShader(s: KernelShape): string {
  return `${constants(s)}
@group(0) @binding(0) var<storage, read> emb: array<f32>;
@group(0) @binding(1) var<storage, read> tokens: array<u32>;
@group(0) @binding(2) var<storage, read_write> x: array<f32>;

@compute @workgroup_size(${ROW_LANES})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lane: u32) {
  let row = wid.x;
  let token = tokens[row];
  for (var j = lane; j < DIM; j += ROW_LANES) {
    x[row * DIM + j] = emb[token * DIM + j];
  }
}
`;
}

export type NormKind = 'attention' | 'ffn' | 'final';

/**
 * RMSNorm, one workgroup per output row: lane l sums x[j]^2 for j = l, l+64, ... in order, then a fixed
 * 64-wide tree. 'final' normalises the rows that need logits (each work item's last row, or every row of an
 * item that asks for the argmax after each position), listed in `outRows`.
 */
export function rmsnormShader(s: KernelShape, kind: NormKind): string {
  const L = s.model.nLayers;
  const weightOffset = kind === 'attention' ? 'layer.index * DIM' : kind === 'ffn' ? `${L}u * DIM + layer.index * DIM` : `${2 * L}u * DIM`;
  const inputRow = kind === 'final' ? 'outRows[wid.x]' : 'wid.x';
  return `${constants(s)}
@group(0) @binding(0) var<uniform> layer: Layer;
@group(0) @binding(1) var<storage, read> norms: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read> outRows: array<u32>;

var<workgroup> partial: array<f32, ${ROW_LANES}>;

@compute @workgroup_size(${ROW_LANES})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lane: u32) {
  let inRow = ${inputRow};
  let outRow = wid.x;
  var ss = 0.0;
  for (var j = lane; j < DIM; j += ROW_LANES) {
    let v = x[inRow * DIM + j];
    ss += v * v;
  }
  partial[lane] = ss;
  workgroupBarrier();
  for (var stride = ROW_LANES / 2u; stride > 0u; stride >>= 1u) {
    if (lane < stride) {
      partial[lane] += partial[lane + stride];
    }
    workgroupBarrier();
  }
  let scale = 1.0 / sqrt(partial[0] / f32(DIM) + 1e-5);
  let w = ${weightOffset};
  for (var j = lane; j < DIM; j += ROW_LANES) {
    out[outRow * DIM + j] = norms[w + j] * (scale * x[inRow * DIM + j]);
  }
}
`;
}

export type MatmulKind = 'store' | 'residual' | 'swiglu';

export interface MatmulSpec {
  kind: MatmulKind;
  /** Input width (the dot-product length). */
  n: number;
  /** Output width. For swiglu, the weight has 2*d rows: w1 rows then w3 rows. */
  d: number;
  /** Floats of weight per layer (0 for a single-layer weight such as the classifier). */
  layerStride: number;
  /** Rows of the input: every token of the step, or the rows classified (the final norm's outputs). */
  rows: 'tokens' | 'outputs';
}

/**
 * y[t][r] = sum_j W[r][j] * x[t][j], the sum sequential in j inside one invocation (one accumulator per
 * output, no split of j). An invocation owns ROWS_PER_THREAD consecutive output rows and TB consecutive
 * tokens, with every accumulator a named scalar (llvmpipe keeps them in registers; arrays indexed in a
 * loop would spill), so each weight load serves TB tokens and each token load ROWS_PER_THREAD rows.
 * Rows and tokens past the end are clamped to the last real one (computed, never stored), so every
 * output runs the same instruction sequence whatever its slot in the tile or the batch size.
 */
export function matmulShader(s: KernelShape, m: MatmulSpec): string {
  const rows = m.rows === 'tokens' ? 'step.nRows' : 'step.nOutputs';
  const swiglu = m.kind === 'swiglu';
  const RB = s.rowsPerThread;
  const TB = s.tokensPerThread;
  const decl: string[] = [];
  const body: string[] = [];
  const out: string[] = [];
  for (let k = 0; k < RB; k++) {
    decl.push(`let w${k} = layer.index * LAYER_STRIDE + min(r0 + ${k}u, D - 1u) * N;`);
    if (swiglu) decl.push(`let g${k} = w${k} + D * N;`);
    body.push(`let wj${k} = w[w${k} + j];`);
    if (swiglu) body.push(`let gj${k} = w[g${k} + j];`);
  }
  for (let b = 0; b < TB; b++) {
    decl.push(`let x${b} = min(t0 + ${b}u, nRows - 1u) * N;`);
    body.push(`let xj${b} = x[x${b} + j];`);
  }
  for (let k = 0; k < RB; k++) {
    for (let b = 0; b < TB; b++) {
      const a = `a${k}_${b}`;
      decl.push(`var ${a} = 0.0;`);
      body.push(`${a} += wj${k} * xj${b};`);
      if (swiglu) {
        decl.push(`var c${k}_${b} = 0.0;`);
        body.push(`c${k}_${b} += gj${k} * xj${b};`);
      }
      const at = `(t0 + ${b}u) * D + r0 + ${k}u`;
      const store =
        m.kind === 'store'
          ? `y[${at}] = ${a};`
          : m.kind === 'residual'
            ? `y[${at}] = y[${at}] + ${a};`
            : `y[${at}] = ${a} * (1.0 / (1.0 + exp(-${a}))) * c${k}_${b};`;
      out.push(`if (t0 + ${b}u < nRows && r0 + ${k}u < D) { ${store} }`);
    }
  }
  return `${constants(s)}
const N: u32 = ${m.n}u;
const D: u32 = ${m.d}u;
const LAYER_STRIDE: u32 = ${m.layerStride}u;

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> layer: Layer;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> x: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(${MATMUL_THREADS})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  let nRows = ${rows};
  let r0 = gid.x * ${RB}u;
  let t0 = wid.y * ${TB}u;
  ${decl.join('\n  ')}
  for (var j = 0u; j < N; j++) {
    ${body.join('\n    ')}
  }
  ${out.join('\n  ')}
}
`;
}

/**
 * The fused paged attention dispatch. A tile is (work item, KV head). Tiles are listed prefill first,
 * then decode; workgroups [0, X) loop over the prefill tiles, workgroups [X, G) over the decode tiles
 * (X = step.prefillWorkgroups, the split), each workgroup striding over its phase's tiles without ever
 * waiting on another workgroup. Inside a tile the workgroup:
 *  A. applies RoPE to the tile's rows and writes their K and V into the request's blocks through its
 *     block table (and rotates the query heads of this KV head's group);
 *  B. for each row, attends causally to positions 0..pos read through the block table, for all query
 *     heads of the group at once (see attendGroup).
 * Prefill and decode tiles run the same code (one loop body, one call site), so a position computed by
 * prefill and by decode gives the same bits; nothing depends on the tile's workgroup or the split.
 */
export function attentionShader(s: KernelShape): string {
  const lanes = s.attentionLanes;
  const m = s.model;
  return `${constants(s)}
const ATT_CHUNK: u32 = ${ATTENTION_CHUNK}u;
const GROUP_DIM: u32 = ${m.kvMul * m.headSize}u;
const OUT_PER_LANE: u32 = ${Math.ceil((m.kvMul * m.headSize) / lanes)}u;
const NO_SCORE: f32 = -3.4028234e38;

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> layer: Layer;
@group(0) @binding(2) var<storage, read> qkv: array<f32>;
@group(0) @binding(3) var<storage, read_write> qrot: array<f32>;
@group(0) @binding(4) var<storage, read_write> att: array<f32>;
@group(0) @binding(5) var<storage, read_write> kv: array<f32>;
@group(0) @binding(6) var<storage, read> items: array<u32>;
@group(0) @binding(7) var<storage, read> tiles: array<u32>;
@group(0) @binding(8) var<storage, read> tables: array<u32>;

var<workgroup> scores: array<f32, ${m.kvMul * ATTENTION_CHUNK}>;
var<workgroup> probs: array<f32, ${m.kvMul * ATTENTION_CHUNK}>;

// Pool layout: [block][layer][K=0|V=1][slot][KV_DIM].
fn kvIndex(block: u32, which: u32, slot: u32) -> u32 {
  return (((block * N_LAYERS + layer.index) * 2u + which) * BLOCK + slot) * KV_DIM;
}

// Causal attention of one row for the KV_MUL query heads that share KV head kvHead (each K and V row is
// read once for the whole group), in chunks of ATT_CHUNK positions (online softmax across chunks):
//  1. lanes score the chunk's positions (lane l: positions l, l + ATT_LANES, ...);
//  2. every lane scans the chunk's scores for each head's maximum (a maximum is exact in any order), and
//     turns its own positions' scores into exp(score - running maximum);
//  3. the lane owning output o = (head, dim) sums the chunk's probabilities and probability × V in
//     position order, after rescaling what the earlier chunks gave.
// No tree at all: barriers cost far more than arithmetic on llvmpipe, so there are three per chunk.
fn attendGroup(lane: u32, row: u32, pos: u32, kvHead: u32, tableOffset: u32) {
  let qBase = row * DIM + kvHead * GROUP_DIM;
  let headOffset = kvHead * HEAD_SIZE;
  let nKeys = pos + 1u;
  var runMax: array<f32, KV_MUL>;
  for (var g = 0u; g < KV_MUL; g++) {
    runMax[g] = NO_SCORE;
  }
  // The group's rotated queries in registers: loads from a read_write buffer cannot be hoisted out of
  // the position loop by the compiler (they might alias the K/V pool).
  var q: array<f32, GROUP_DIM>;
  for (var o = 0u; o < GROUP_DIM; o++) {
    q[o] = qrot[qBase + o];
  }
  var acc: array<f32, OUT_PER_LANE>; // outputs lane, lane + ATT_LANES, ... of the group
  var total: array<f32, OUT_PER_LANE>; // softmax denominator of each owned output's head
  for (var c0 = 0u; c0 < nKeys; c0 += ATT_CHUNK) {
    let chunkKeys = min(ATT_CHUNK, nKeys - c0);
    for (var k = lane; k < chunkKeys; k += ATT_LANES) {
      let t = c0 + k;
      let kBase = kvIndex(tables[tableOffset + t / BLOCK], 0u, t % BLOCK) + headOffset;
      for (var g = 0u; g < KV_MUL; g++) {
        var dot = 0.0;
        for (var i = 0u; i < HEAD_SIZE; i++) {
          dot += q[g * HEAD_SIZE + i] * kv[kBase + i];
        }
        scores[g * ATT_CHUNK + k] = dot / sqrt(f32(HEAD_SIZE));
      }
    }
    workgroupBarrier();
    var newMax: array<f32, KV_MUL>;
    for (var g = 0u; g < KV_MUL; g++) {
      var m = runMax[g];
      for (var k = 0u; k < chunkKeys; k++) {
        m = max(m, scores[g * ATT_CHUNK + k]);
      }
      newMax[g] = m;
      for (var k = lane; k < chunkKeys; k += ATT_LANES) {
        probs[g * ATT_CHUNK + k] = exp(scores[g * ATT_CHUNK + k] - m);
      }
    }
    workgroupBarrier();
    for (var j = 0u; j < OUT_PER_LANE; j++) {
      let o = lane + j * ATT_LANES;
      if (o < GROUP_DIM) {
        let g = o / HEAD_SIZE;
        var sumP = 0.0;
        var sumPV = 0.0;
        for (var k = 0u; k < chunkKeys; k++) {
          let t = c0 + k;
          let p = probs[g * ATT_CHUNK + k];
          sumP += p;
          sumPV += p * kv[kvIndex(tables[tableOffset + t / BLOCK], 1u, t % BLOCK) + headOffset + o % HEAD_SIZE];
        }
        let rescale = exp(runMax[g] - newMax[g]);
        total[j] = total[j] * rescale + sumP;
        acc[j] = acc[j] * rescale + sumPV;
      }
    }
    for (var g = 0u; g < KV_MUL; g++) {
      runMax[g] = newMax[g];
    }
    workgroupBarrier(); // scores and probs are rewritten by the next chunk or row
  }
  for (var j = 0u; j < OUT_PER_LANE; j++) {
    let o = lane + j * ATT_LANES;
    if (o < GROUP_DIM) {
      att[qBase + o] = acc[j] / total[j];
    }
  }
}

@compute @workgroup_size(ATT_LANES)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lane: u32) {
  let split = step.prefillWorkgroups;
  var first = 0u;
  var count = step.nPrefillTiles;
  var mine = wid.x;
  var stride = split;
  if (wid.x >= split) {
    first = step.nPrefillTiles;
    count = step.nDecodeTiles;
    mine = wid.x - split;
    stride = step.attWorkgroups - split;
  }
  for (var i = mine; i < count; i += stride) {
    let tile = first + i;
    let item = tiles[2u * tile];
    let kvHead = tiles[2u * tile + 1u];
    let rowBase = items[4u * item];
    let nRows = items[4u * item + 1u];
    let startPos = items[4u * item + 2u];
    let tableOffset = items[4u * item + 3u];
    // A. RoPE and the K/V write through the block table.
    for (var e = lane; e < nRows * HALF_HEAD; e += ATT_LANES) {
      let r = e / HALF_HEAD;
      let pair = e % HALF_HEAD;
      let pos = startPos + r;
      let row = rowBase + r;
      let freq = 1.0 / pow(10000.0, f32(2u * pair) / f32(HEAD_SIZE));
      let angle = f32(pos) * freq;
      let c = cos(angle);
      let sn = sin(angle);
      let block = tables[tableOffset + pos / BLOCK];
      let kd = kvHead * HEAD_SIZE + 2u * pair;
      let kIdx = kvIndex(block, 0u, pos % BLOCK) + kd;
      let vIdx = kvIndex(block, 1u, pos % BLOCK) + kd;
      let k0 = qkv[row * QKV_DIM + DIM + kd];
      let k1 = qkv[row * QKV_DIM + DIM + kd + 1u];
      kv[kIdx] = k0 * c - k1 * sn;
      kv[kIdx + 1u] = k0 * sn + k1 * c;
      kv[vIdx] = qkv[row * QKV_DIM + DIM + KV_DIM + kd];
      kv[vIdx + 1u] = qkv[row * QKV_DIM + DIM + KV_DIM + kd + 1u];
      for (var g = 0u; g < KV_MUL; g++) {
        let qd = (kvHead * KV_MUL + g) * HEAD_SIZE + 2u * pair;
        let q0 = qkv[row * QKV_DIM + qd];
        let q1 = qkv[row * QKV_DIM + qd + 1u];
        qrot[row * DIM + qd] = q0 * c - q1 * sn;
        qrot[row * DIM + qd + 1u] = q0 * sn + q1 * c;
      }
    }
    storageBarrier(); // K/V and rotated q of the tile's rows are visible to the whole workgroup
    // B. Causal attention for every row of the tile, all query heads of this KV head together. The next
    // tile writes other rows' q and K/V, and attendGroup ends with a barrier, so no barrier is needed here.
    for (var r = 0u; r < nRows; r++) {
      attendGroup(lane, rowBase + r, startPos + r, kvHead, tableOffset);
    }
  }
}
`;
}

/** Greedy argmax per classified row: lane-strided scan keeping the first maximum, then a fixed tree (ties → lower id). */
export function argmaxShader(s: KernelShape): string {
  return `${constants(s)}
@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read_write> next: array<u32>;

var<workgroup> bestValue: array<f32, ${ROW_LANES}>;
var<workgroup> bestIndex: array<u32, ${ROW_LANES}>;

@compute @workgroup_size(${ROW_LANES})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lane: u32) {
  let base = wid.x * VOCAB;
  var value = -3.4028234e38;
  var index = 0xffffffffu;
  for (var i = lane; i < VOCAB; i += ROW_LANES) {
    let v = logits[base + i];
    if (index == 0xffffffffu || v > value) {
      value = v;
      index = i;
    }
  }
  bestValue[lane] = value;
  bestIndex[lane] = index;
  workgroupBarrier();
  for (var stride = ROW_LANES / 2u; stride > 0u; stride >>= 1u) {
    if (lane < stride) {
      let v = bestValue[lane + stride];
      let i = bestIndex[lane + stride];
      if (v > bestValue[lane] || (v == bestValue[lane] && i < bestIndex[lane])) {
        bestValue[lane] = v;
        bestIndex[lane] = i;
      }
    }
    workgroupBarrier();
  }
  if (lane == 0u) {
    next[wid.x] = bestIndex[0];
  }
}
`;
}
