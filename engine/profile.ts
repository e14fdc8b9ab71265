// Hardware/model profiles: the plain-JSON data the cost model prices steps with (data/profiles/*.json,
// documented with their sources in docs/profiles.md), and the latency model built from a profile.
//
// Step time of a phase at share s (fraction of the SMs, share / 100), for work W priced at the full GPU:
//
//   time = overhead + slowdown(s) · W            slowdown(1) = 1
//
// The slowdown curves are semi-PD's fitted forms, normalised to the full GPU and flat above a saturation
// share (the memory-bandwidth roof: past it, more SMs do not make the phase faster):
//   prefill: f(s) = a1 / (s − λ) + b1       decode: f(s) = a2 / s + b2
//   slowdown(s) = f(min(s, sat)) / f(min(1, sat))
// With the published Llama3-8B fit (a1 0.6809, b1 0.022, a2 0.6284, b2 0.3818) and the shipped saturation
// shares (prefill 1, decode 0.5) prefill runs close to 1/s, and decode gains nothing past half the GPU and
// follows a2/s + b2 below it: the diminishing returns Nexus reports. Both are non-increasing in s and the
// speed-up 1/slowdown is concave (the minimum of s/(a + b·s) and a constant).
// λ here is a per-step constant (0 in the shipped profiles): in semi-PD's TTFT fit λ is the offered load,
// which the simulator does not need as a parameter because its queues produce the queueing delay.
//
// Work at the full GPU is a roofline: the larger of compute time (dense FLOPs plus attention FLOPs at the
// profile's sustained fraction of peak) and memory time (weights plus the KV read, at the sustained
// fraction of HBM bandwidth).
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bandwidthStretch, kernelSeconds, kernelTimes, ownCausalPairs, SHARE_MODELS, type KernelConstants, type ShareModel, type StepWork } from './kernel-model.ts';
import type { LatencyModel } from './policy-api.ts';

export interface Profile {
  name: string;
  description: string;
  model: {
    name: string;
    /** Parameters (dense). */
    params: number;
    layers: number;
    hiddenSize: number;
    kvHeads: number;
    headDim: number;
    bytesPerParam: number;
    /** Bytes of one K or V element in the cache. */
    kvBytesPerElement: number;
    vocabSize: number;
  };
  gpu: {
    name: string;
    sms: number;
    memoryBytes: number;
    /** Peak HBM bandwidth, bytes per second. */
    hbmBytesPerSecond: number;
    /** Peak dense BF16 FLOP/s (no sparsity). */
    denseFlops: number;
  };
  /** Sustained fraction of peak that serving kernels reach. */
  efficiency: { compute: number; memory: number };
  /** Fixed cost of one iteration (scheduling, launch, sampling), seconds. */
  stepOverhead: { prefill: number; decode: number; unified: number };
  /** semi-PD's fitted forms, shares as fractions, flat above `saturation` (see the header of this file). */
  shareCurve: { prefill: { a: number; b: number; lambda: number; saturation: number }; decode: { a: number; b: number; saturation: number } };
  /** Fractional slowdown of a step while a worker of the other phase runs on the same GPU (memory-bandwidth contention). */
  contention: { prefill: number; decode: number };
  /** Fraction of GPU memory the engine may use for weights and KV cache (vLLM's gpu_memory_utilization). */
  memoryFraction: number;
  /** Prefill→decode KV transfer in the disaggregated mode. */
  transfer: { bytesPerSecond: number; latency: number };
  /** Seconds for a new worker to start and map weights and pool (semi-PD), or to switch to a pre-built context (Nexus). */
  resize: { workerInitTime: number; contextSwitchTime: number };
  sources?: string[];
  /**
   * The kernel-class form (engine/kernel-model.ts) with fitted constants. Absent: the single-roofline form of
   * the first profiles (efficiency, shareCurve and contention below), kept so that those stay readable.
   */
  kernels?: KernelConstants;
  /** How a share of the SMs prices a step under the kernel form (engine/kernel-model.ts); default 'slices'. */
  shareModel?: ShareModel;
  /** Where the fitted constants come from (written by `npm run calibrate`): source, rows, constants, residuals. */
  calibration?: CalibrationProvenance;
}

/** The provenance a fitted profile carries. */
export interface CalibrationProvenance {
  source: string;
  license: string;
  rows: string[];
  fitted: Record<string, number>;
  residuals: Record<string, { rows: number; mape: number; maxError: number }>;
  derivedFrom?: string;
  notes?: string[];
}

/** A profile file that cannot be used: one line naming the file and the field. */
export class ProfileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProfileError';
  }
}

const here = dirname(fileURLToPath(import.meta.url));
/** The directory of the shipped profiles. */
export const PROFILE_DIR = resolve(here, '../data/profiles');
export const DEFAULT_PROFILE = 'llama3-8b-h100';
/** The profile `pdspec check` (npm start) prices with: the kernel-class model fitted to measured A100 kernels. */
export const CHECK_PROFILE = 'llama3-8b-a100-vidur';

const NUMBER_FIELDS: readonly string[] = [
  'model.params',
  'model.layers',
  'model.hiddenSize',
  'model.kvHeads',
  'model.headDim',
  'model.bytesPerParam',
  'model.kvBytesPerElement',
  'model.vocabSize',
  'gpu.sms',
  'gpu.memoryBytes',
  'gpu.hbmBytesPerSecond',
  'gpu.denseFlops',
  'efficiency.compute',
  'efficiency.memory',
  'stepOverhead.prefill',
  'stepOverhead.decode',
  'stepOverhead.unified',
  'shareCurve.prefill.a',
  'shareCurve.prefill.b',
  'shareCurve.prefill.lambda',
  'shareCurve.prefill.saturation',
  'shareCurve.decode.a',
  'shareCurve.decode.b',
  'shareCurve.decode.saturation',
  'contention.prefill',
  'contention.decode',
  'memoryFraction',
  'transfer.bytesPerSecond',
  'transfer.latency',
  'resize.workerInitTime',
  'resize.contextSwitchTime',
];
/** Fields that may be 0; every other number must be > 0. */
const MAY_BE_ZERO = new Set(['stepOverhead.prefill', 'stepOverhead.decode', 'stepOverhead.unified', 'shareCurve.prefill.b', 'shareCurve.prefill.lambda', 'shareCurve.decode.b', 'contention.prefill', 'contention.decode', 'transfer.latency', 'resize.workerInitTime', 'resize.contextSwitchTime']);
const INTEGER_FIELDS = new Set(['model.layers', 'model.hiddenSize', 'model.kvHeads', 'model.headDim', 'model.vocabSize', 'gpu.sms']);

function field(obj: unknown, path: string): unknown {
  let cur = obj;
  for (const key of path.split('.')) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[key];
  }
  return cur;
}

const KERNEL_FIELDS: readonly { path: string; min: 'zero' | 'positive'; max?: number }[] = [
  { path: 'kernels.dense.computeEfficiency', min: 'positive', max: 1 },
  { path: 'kernels.dense.memoryEfficiency', min: 'positive', max: 1 },
  { path: 'kernels.dense.smoothness', min: 'positive' },
  { path: 'kernels.dense.elementwiseBytesPerToken', min: 'zero' },
  { path: 'kernels.dense.launchSeconds', min: 'zero' },
  { path: 'kernels.embedding.effectiveBytesPerToken', min: 'zero' },
  { path: 'kernels.prefillAttention.pairEfficiency', min: 'positive', max: 1 },
  { path: 'kernels.prefillAttention.prefixPairEfficiency', min: 'positive', max: 1 },
  { path: 'kernels.prefillAttention.queryPairs', min: 'zero' },
  { path: 'kernels.prefillAttention.launchSeconds', min: 'zero' },
  { path: 'kernels.decodeAttention.kvEfficiency', min: 'positive', max: 1 },
  { path: 'kernels.decodeAttention.requestTokens', min: 'zero' },
  { path: 'kernels.decodeAttention.launchSeconds', min: 'zero' },
  { path: 'kernels.bandwidthSaturationShare', min: 'positive', max: 1 },
];

/** Checks the optional kernel form and share model; one line naming the first bad field. */
function validateKernels(raw: object, where: string): void {
  const kernels = field(raw, 'kernels');
  const shareModel = field(raw, 'shareModel');
  if (kernels === undefined) {
    if (shareModel !== undefined) throw new ProfileError(`${where}: field 'shareModel' applies only to a profile with 'kernels'`);
    return;
  }
  if (kernels === null || typeof kernels !== 'object' || Array.isArray(kernels)) throw new ProfileError(`${where}: field 'kernels' must be an object`);
  for (const { path, min, max } of KERNEL_FIELDS) {
    const v = field(raw, path);
    const ok = typeof v === 'number' && Number.isFinite(v) && (min === 'zero' ? v >= 0 : v > 0) && (max === undefined || v <= max);
    if (!ok) throw new ProfileError(`${where}: field '${path}' must be a finite number ${min === 'zero' ? '≥ 0' : '> 0'}${max === undefined ? '' : ` and ≤ ${max}`}, got ${JSON.stringify(v)}`);
  }
  if (shareModel !== undefined && !SHARE_MODELS.includes(shareModel as ShareModel)) {
    throw new ProfileError(`${where}: field 'shareModel' must be one of ${SHARE_MODELS.join(', ')}, got ${JSON.stringify(shareModel)}`);
  }
}

/** Checks a parsed profile; `where` names it in messages. */
export function validateProfile(raw: unknown, where: string): Profile {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new ProfileError(`${where}: a profile must be a JSON object`);
  for (const path of ['name', 'model.name', 'gpu.name']) {
    if (typeof field(raw, path) !== 'string') throw new ProfileError(`${where}: field '${path}' must be a string`);
  }
  for (const path of NUMBER_FIELDS) {
    const v = field(raw, path);
    const min = MAY_BE_ZERO.has(path) ? 0 : Number.MIN_VALUE;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min) {
      throw new ProfileError(`${where}: field '${path}' must be a finite number ${MAY_BE_ZERO.has(path) ? '≥ 0' : '> 0'}, got ${JSON.stringify(v)}`);
    }
    if (INTEGER_FIELDS.has(path) && !Number.isInteger(v)) throw new ProfileError(`${where}: field '${path}' must be an integer, got ${v}`);
  }
  const p = raw as Profile;
  if (p.shareCurve.prefill.lambda >= 0.01) throw new ProfileError(`${where}: field 'shareCurve.prefill.lambda' must be below 0.01 (the smallest share, 1 %), got ${p.shareCurve.prefill.lambda}`);
  for (const phase of ['prefill', 'decode'] as const) {
    const sat = p.shareCurve[phase].saturation;
    if (sat > 1 || sat <= p.shareCurve.prefill.lambda) throw new ProfileError(`${where}: field 'shareCurve.${phase}.saturation' must be a fraction in (λ, 1], got ${sat}`);
  }
  if (p.memoryFraction > 1) throw new ProfileError(`${where}: field 'memoryFraction' must be at most 1, got ${p.memoryFraction}`);
  if (p.efficiency.compute > 1 || p.efficiency.memory > 1) throw new ProfileError(`${where}: efficiencies are fractions of peak, at most 1`);
  validateKernels(p, where);
  if (typeof p.description !== 'string') p.description = '';
  return p;
}

/** The names of the shipped profiles. */
export function profileNames(): string[] {
  try {
    return readdirSync(PROFILE_DIR)
      .filter((f) => f.endsWith('.json'))
      .map((f) => f.slice(0, -'.json'.length))
      .sort();
  } catch {
    return [];
  }
}

/**
 * Reads a profile: a shipped name (data/profiles/NAME.json) or a path to a JSON file. Returns plain JSON
 * data, so that it can cross a worker-thread boundary and be turned into a model there (latencyModel).
 */
export function loadProfile(nameOrPath: string = DEFAULT_PROFILE): Profile {
  const isPath = nameOrPath.includes('/') || nameOrPath.includes('\\') || nameOrPath.endsWith('.json');
  const path = isPath ? (isAbsolute(nameOrPath) ? nameOrPath : resolve(nameOrPath)) : join(PROFILE_DIR, `${nameOrPath}.json`);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (!isPath && code === 'ENOENT') {
      const known = profileNames();
      throw new ProfileError(`unknown profile '${nameOrPath}'${known.length ? ` (shipped: ${known.join(', ')})` : ''}`);
    }
    throw new ProfileError(`cannot read profile ${path}: ${code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ProfileError(`${path}: not valid JSON (${(err as Error).message})`);
  }
  return validateProfile(raw, isPath ? path : `profile '${nameOrPath}'`);
}

// ---------------------------------------------------------------------------------------------
// Derived constants and the step-time formulas

/** Constants derived once from a profile; the formulas below take them. */
export interface Calibration {
  /** Seconds per dense token at the full GPU (2·params FLOPs at sustained FLOP/s). */
  secondsPerToken: number;
  /** Seconds per (query token × context token) of attention at the full GPU. */
  secondsPerAttentionPair: number;
  /** Seconds to stream the weights once at sustained bandwidth. */
  weightSeconds: number;
  /** Seconds to read one cached token's K and V (all layers). */
  kvSecondsPerToken: number;
  kvBytesPerToken: number;
  prefillNorm: number;
  decodeNorm: number;
  profile: Profile;
}

export function calibrate(profile: Profile): Calibration {
  const m = profile.model;
  const flops = profile.gpu.denseFlops * profile.efficiency.compute;
  const bandwidth = profile.gpu.hbmBytesPerSecond * profile.efficiency.memory;
  const kvBytesPerToken = 2 * m.layers * m.kvHeads * m.headDim * m.kvBytesPerElement;
  const { prefill, decode } = profile.shareCurve;
  return {
    secondsPerToken: (2 * m.params) / flops,
    // QKᵀ and PV: 2 multiply-adds per head dimension per layer for each (query, key) pair.
    secondsPerAttentionPair: (4 * m.layers * m.hiddenSize) / flops,
    weightSeconds: (m.params * m.bytesPerParam) / bandwidth,
    kvSecondsPerToken: kvBytesPerToken / bandwidth,
    kvBytesPerToken,
    prefillNorm: prefill.a / (Math.min(1, prefill.saturation) - prefill.lambda) + prefill.b,
    decodeNorm: decode.a / Math.min(1, decode.saturation) + decode.b,
    profile,
  };
}

/** Slowdown of prefill at share s (fraction), 1 at the full GPU. */
export function prefillSlowdown(c: Calibration, s: number): number {
  const { a, b, lambda, saturation } = c.profile.shareCurve.prefill;
  return (a / ((s < saturation ? s : saturation) - lambda) + b) / c.prefillNorm;
}

/** Slowdown of decode at share s (fraction), 1 at the full GPU. */
export function decodeSlowdown(c: Calibration, s: number): number {
  const { a, b, saturation } = c.profile.shareCurve.decode;
  return (a / (s < saturation ? s : saturation) + b) / c.decodeNorm;
}

/** Full-GPU seconds of a prefill batch: `tokens` positions, `attentionPairs` (query, key) pairs in all. */
export function prefillWork(c: Calibration, tokens: number, attentionPairs: number): number {
  const compute = tokens * c.secondsPerToken + attentionPairs * c.secondsPerAttentionPair;
  return compute > c.weightSeconds ? compute : c.weightSeconds;
}

/** Full-GPU seconds of a decode batch of `batch` requests reading `contextTokens` cached tokens in all. */
export function decodeWork(c: Calibration, batch: number, contextTokens: number): number {
  const memory = c.weightSeconds + contextTokens * c.kvSecondsPerToken;
  const compute = batch * c.secondsPerToken + contextTokens * c.secondsPerAttentionPair;
  return memory > compute ? memory : compute;
}

/** Full-GPU seconds of a mixed (unified) batch: prefill chunks and decode tokens in one forward pass. */
export function mixedWork(c: Calibration, prefillTokens: number, attentionPairs: number, decodeItems: number, contextTokens: number): number {
  const compute = (prefillTokens + decodeItems) * c.secondsPerToken + (attentionPairs + contextTokens) * c.secondsPerAttentionPair;
  const memory = c.weightSeconds + contextTokens * c.kvSecondsPerToken;
  return compute > memory ? compute : memory;
}

/** Attention (query, key) pairs of a chunk of `tokens` positions starting at position `start` (causal). */
export function attentionPairs(start: number, tokens: number): number {
  return tokens * start + (tokens * (tokens + 1)) / 2;
}

/** Where a step runs: the worker's own share, the share it effectively gets, and whether the other phase runs beside it. */
export interface StepPlacement {
  role: 'prefill' | 'decode' | 'unified';
  /** The worker's share, fraction of the SMs. */
  share: number;
  /** The share after oversubscribed workers are scaled down (the engine's effectiveShare), fraction. */
  effectiveShare: number;
  coRunning: boolean;
}

/**
 * Seconds of a step under the kernel form (profile.kernels): host overhead plus the kernel classes at the
 * share the profile's share model gives (engine/kernel-model.ts). Contention is counted once: the semi-PD
 * fit already holds it; caps and slices add it on memory-bound kernels only.
 */
export function kernelStepSeconds(profile: Profile, c: Calibration, work: StepWork, at: StepPlacement): number {
  const k = profile.kernels!;
  const times = kernelTimes(profile, k, work);
  const host = profile.stepOverhead[at.role];
  const model = profile.shareModel ?? 'slices';
  if (model === 'semi-pd-fit') {
    const slowdown = at.role === 'decode' ? decodeSlowdown(c, at.share) : prefillSlowdown(c, at.share);
    return host + slowdown * kernelSeconds(times, k, 1, 1);
  }
  const s = model === 'caps' ? at.share : at.effectiveShare;
  const contention = at.coRunning && at.role !== 'unified' ? 1 + profile.contention[at.role] : 1;
  return host + kernelSeconds(times, k, s, bandwidthStretch(k, s) * contention);
}

/** The work of an isolated prefill of a `tokens`-token prompt, or of a decode batch. */
export function prefillStepWork(tokens: number): StepWork {
  return { prefillTokens: tokens, ownPairs: ownCausalPairs(tokens), prefixPairs: 0, decodeTokens: 0, contextTokens: 0, logitTokens: 1 };
}
export function decodeStepWork(batch: number, contextTokens: number): StepWork {
  return { prefillTokens: 0, ownPairs: 0, prefixPairs: 0, decodeTokens: batch, contextTokens, logitTokens: batch };
}

/**
 * The profile's latency model (engine/policy-api.ts), for policies that search over splits: isolated step
 * times, without the co-running contention the simulator adds. Pure functions of plain data.
 */
export function latencyModel(profile: Profile): LatencyModel {
  const c = calibrate(profile);
  if (profile.kernels) {
    const alone = (role: 'prefill' | 'decode', share: number): StepPlacement => ({ role, share: share / 100, effectiveShare: share / 100, coRunning: false });
    return {
      prefillTime: (share, tokens) => (tokens > 0 ? kernelStepSeconds(profile, c, prefillStepWork(tokens), alone('prefill', share)) : 0),
      decodeTime: (share, batch, contextTokens) => (batch > 0 ? kernelStepSeconds(profile, c, decodeStepWork(batch, Math.max(0, contextTokens)), alone('decode', share)) : 0),
    };
  }
  return {
    prefillTime(share: number, tokens: number): number {
      if (!(tokens > 0)) return 0;
      return profile.stepOverhead.prefill + prefillSlowdown(c, share / 100) * prefillWork(c, tokens, attentionPairs(0, tokens));
    },
    decodeTime(share: number, batch: number, contextTokens: number): number {
      if (!(batch > 0)) return 0;
      return profile.stepOverhead.decode + decodeSlowdown(c, share / 100) * decodeWork(c, batch, Math.max(0, contextTokens));
    },
  };
}

/**
 * KV blocks of `blockSize` tokens that fit one GPU: the usable memory (memoryFraction of it) less the
 * weights, divided by a block's bytes.
 */
export function defaultBlocks(profile: Profile, blockSize: number): number {
  const c = calibrate(profile);
  const usable = profile.gpu.memoryBytes * profile.memoryFraction - profile.model.params * profile.model.bytesPerParam;
  return Math.max(1, Math.floor(usable / (c.kvBytesPerToken * blockSize)));
}
