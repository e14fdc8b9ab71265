// The kernel-class cost model: a step's time as a sum over the kernel classes of one forward pass, each with
// its own roofline, plus a fixed host overhead, and a separate, named term for what the SM share does to it.
// docs/profiles.md gives every term with its source; bench/calibration/fit.ts fits the constants to measured
// kernel latencies (Vidur's A100 tables), so that each number below is either a hardware peak, a model
// dimension or a fitted constant.
//
//   step = host overhead
//        + layers · ( dense(n) + prefillAttention(chunks) + decodeAttention(requests) )
//        + embedding(n) + lmHead(logit tokens)
//
//   dense(n)       = smax(n · 2·Pl / F_dense, Pl·bytes / B_dense) + n · elementwise bytes / B_dense + launch
//                    (Pl = parameters of one layer; smax a smooth maximum, the roofline of the layer's GEMMs)
//   prefill attn   = (own causal pairs + n · query pairs) · 4·hidden / F_attn
//                    + prefix pairs (a chunk over cached tokens) · 4·hidden / F_prefix + launch
//   decode attn    = (cached tokens + requests · request tokens) · KV bytes per token per layer / B_kv + launch
//   embedding(n)   = n · effective bytes per token / B_dense
//   lmHead(t)      = smax(t · 2·vocab·hidden / F_dense, vocab·hidden·bytes / B_dense), t = tokens that produce logits
//
// where F_x = peak FLOP/s · efficiency_x and B_x = peak bandwidth · efficiency_x. Only the peaks are properties
// of the GPU; the efficiencies and per-token constants are fitted, so moving to another GPU changes the peaks
// and keeps the rest (the held-back H100 check of bench/calibration.ts measures how well that transfers).
//
// The share model (how a worker at share s of the SMs runs) is one of three, named in the profile:
//   semi-pd-fit — the whole-GPU time times semi-PD's published slowdown curve at the worker's own share. The
//                 curve was measured with both phases running, so no contention term is added on top.
//   caps        — MPS percentages are caps: a worker keeps its own share even when the shares sum past 100;
//                 compute terms scale as 1/s, memory terms as 1/min(1, s / bandwidth saturation share);
//                 co-running adds the bandwidth contention on memory terms only.
//   slices      — as caps, but the share is the engine's effective share (share·100/sum when oversubscribed):
//                 SM contention is counted by the slicing, bandwidth contention by the contention term, each once.
import type { Profile } from './profile.ts';

export type ShareModel = 'semi-pd-fit' | 'caps' | 'slices';
export const SHARE_MODELS: readonly ShareModel[] = ['semi-pd-fit', 'caps', 'slices'];

/** Fitted constants of the kernel classes (profile.kernels). Efficiencies are fractions of the GPU's peaks. */
export interface KernelConstants {
  dense: {
    computeEfficiency: number;
    memoryEfficiency: number;
    /** Exponent k of the smooth maximum (aᵏ + bᵏ)^(1/k): large k is the sharp roofline, small k a gradual knee. */
    smoothness: number;
    /** Bytes the element-wise kernels (norms, rotary, activation, residual add) move per token per layer. */
    elementwiseBytesPerToken: number;
    /** Seconds of launch floor per layer (the kernels' time at one token above the roofline). */
    launchSeconds: number;
  };
  embedding: { effectiveBytesPerToken: number };
  prefillAttention: {
    pairEfficiency: number;
    /** Efficiency of the (query, cached key) pairs of a chunk attending to a prefix already in the cache. */
    prefixPairEfficiency: number;
    /** Pair-equivalents of work per query token (tile padding, Q/O traffic): why short prompts are slower per pair. */
    queryPairs: number;
    launchSeconds: number;
  };
  decodeAttention: {
    kvEfficiency: number;
    /** Cached-token-equivalents of work per request (its own query, split and reduction). */
    requestTokens: number;
    launchSeconds: number;
  };
  /** Share of the SMs above which memory-bound kernels reach full bandwidth (caps and slices only). */
  bandwidthSaturationShare: number;
}

/** What one step computes, in the quantities the kernel classes are priced by. */
export interface StepWork {
  /** Positions computed by prefill chunks. */
  prefillTokens: number;
  /** Causal (query, key) pairs within the chunks themselves. */
  ownPairs: number;
  /** (query, cached key) pairs of chunks over a cached prefix: tokens · start, summed over chunks. */
  prefixPairs: number;
  /** Decode positions (one per decode request, plus a verify's drafts). */
  decodeTokens: number;
  /** Cached tokens the decode positions read, in all. */
  contextTokens: number;
  /** Tokens that produce logits: the last chunk of each prompt and every decode position. */
  logitTokens: number;
}

/** Whole-GPU seconds of each kernel class, split into its compute and memory parts where it has both. */
export interface KernelTimes {
  denseCompute: number;
  denseWeights: number;
  elementwise: number;
  lmHeadCompute: number;
  lmHeadWeights: number;
  embedding: number;
  prefillAttention: number;
  decodeAttention: number;
  /** Launch floors, independent of the share. */
  launch: number;
}

/** The smooth maximum (aᵏ + bᵏ)^(1/k); ≥ max(a, b), and equal to it as k grows. */
export function smoothMax(a: number, b: number, k: number): number {
  const m = a > b ? a : b;
  if (m === 0) return 0;
  return m * ((a / m) ** k + (b / m) ** k) ** (1 / k);
}

/** Parameters of one decoder layer: all parameters less the embedding and an untied LM head. */
export function layerParams(profile: Profile): number {
  const m = profile.model;
  return (m.params - 2 * m.vocabSize * m.hiddenSize) / m.layers;
}

/** KV bytes of one cached token in one layer. */
export function kvBytesPerTokenLayer(profile: Profile): number {
  const m = profile.model;
  return 2 * m.kvHeads * m.headDim * m.kvBytesPerElement;
}

/** Whole-GPU seconds of each kernel class of a step (no host overhead, no share). */
export function kernelTimes(profile: Profile, k: KernelConstants, w: StepWork): KernelTimes {
  const m = profile.model;
  const denseFlops = profile.gpu.denseFlops * k.dense.computeEfficiency;
  const denseBandwidth = profile.gpu.hbmBytesPerSecond * k.dense.memoryEfficiency;
  const pl = layerParams(profile);
  const tokens = w.prefillTokens + w.decodeTokens;
  const L = m.layers;
  const pairFlops = 4 * m.hiddenSize; // QKᵀ and PV, per (query, key) pair per layer
  const pa = k.prefillAttention;
  const da = k.decodeAttention;
  const prefillAttention =
    w.prefillTokens > 0
      ? ((w.ownPairs + w.prefillTokens * pa.queryPairs) * pairFlops) / (profile.gpu.denseFlops * pa.pairEfficiency) +
        (w.prefixPairs * pairFlops) / (profile.gpu.denseFlops * pa.prefixPairEfficiency)
      : 0;
  const decodeAttention = w.decodeTokens > 0 ? ((w.contextTokens + w.decodeTokens * da.requestTokens) * kvBytesPerTokenLayer(profile)) / (profile.gpu.hbmBytesPerSecond * da.kvEfficiency) : 0;
  const lmHeadParams = m.vocabSize * m.hiddenSize;
  return {
    denseCompute: tokens > 0 ? (L * tokens * 2 * pl) / denseFlops : 0,
    denseWeights: tokens > 0 ? (L * pl * m.bytesPerParam) / denseBandwidth : 0,
    elementwise: (L * tokens * k.dense.elementwiseBytesPerToken) / denseBandwidth,
    lmHeadCompute: (w.logitTokens * 2 * lmHeadParams) / denseFlops,
    lmHeadWeights: w.logitTokens > 0 ? (lmHeadParams * m.bytesPerParam) / denseBandwidth : 0,
    embedding: (tokens * k.embedding.effectiveBytesPerToken) / denseBandwidth,
    prefillAttention: L * prefillAttention,
    decodeAttention: L * decodeAttention,
    launch: L * ((tokens > 0 ? k.dense.launchSeconds : 0) + (w.prefillTokens > 0 ? pa.launchSeconds : 0) + (w.decodeTokens > 0 ? da.launchSeconds : 0)),
  };
}

/**
 * Kernel seconds of a step at `computeShare` (fraction of the SMs) with memory terms stretched by
 * `memoryStretch` (≥ 1: bandwidth below saturation or shared with a co-running worker). At (1, 1) this is
 * the whole-GPU kernel time the tables measure.
 */
export function kernelSeconds(t: KernelTimes, k: KernelConstants, computeShare: number, memoryStretch: number): number {
  const c = 1 / computeShare;
  const mem = memoryStretch;
  const sm = k.dense.smoothness;
  return (
    smoothMax(t.denseCompute * c, t.denseWeights * mem, sm) +
    t.elementwise * mem +
    smoothMax(t.lmHeadCompute * c, t.lmHeadWeights * mem, sm) +
    t.embedding * mem +
    t.prefillAttention * c +
    t.decodeAttention * mem +
    t.launch
  );
}

/** How much longer memory-bound kernels take at share s: bandwidth is full from the saturation share up. */
export function bandwidthStretch(k: KernelConstants, s: number): number {
  return s >= k.bandwidthSaturationShare ? 1 : k.bandwidthSaturationShare / s;
}

/** Causal pairs of one chunk of `tokens` positions, excluding its cached prefix. */
export function ownCausalPairs(tokens: number): number {
  return (tokens * (tokens + 1)) / 2;
}
