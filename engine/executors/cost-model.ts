// The cost-model executor: step times in virtual seconds from a profile's latency model (engine/profile.ts),
// and deterministic pseudo-tokens that depend only on the request's seed and the token's position, so that
// the output of every request is the same whatever the schedule, batch, split, preemption or resize.
import { hash2 } from '../random.ts';
import { bandwidthStretch, kernelSeconds, kernelTimes, kvBytesPerTokenLayer, type StepWork } from '../kernel-model.ts';
import { calibrate, decodeSlowdown, decodeWork, kernelStepSeconds, mixedWork, prefillSlowdown, prefillWork, type Calibration, type Profile } from '../profile.ts';
import type { AttentionServerWork, ResizeMechanism, StepExecutor, StepResult, StepSpec } from './step-executor.ts';

/** The pseudo-token at sequence position `pos` (the position the token will occupy) of a request. */
export function pseudoToken(seed: number, pos: number, vocabSize: number): number {
  return hash2(seed, pos) % vocabSize;
}

/** What a step computes, in the kernel form's quantities: prefix pairs and logit tokens come from the items. */
export function stepWork(step: StepSpec): StepWork {
  let prefixPairs = 0;
  let prefillLogits = 0;
  for (const it of step.items) {
    if (it.phase !== 'prefill') continue;
    prefixPairs += it.tokens * it.startPos;
    if (it.producesToken) prefillLogits++;
  }
  // A step described by its totals alone (no items): one prompt, finishing in this step.
  if (step.items.length === 0 && step.prefillTokens > 0) prefillLogits = 1;
  return {
    prefillTokens: step.prefillTokens,
    ownPairs: Math.max(0, step.attentionPairs - prefixPairs),
    prefixPairs,
    decodeTokens: step.decodeItems,
    contextTokens: step.contextTokens,
    logitTokens: prefillLogits + step.decodeItems,
  };
}

export class CostModelExecutor implements StepExecutor {
  readonly name = 'cost-model';
  private readonly c: Calibration;
  private readonly vocab: number;

  constructor(readonly profile: Profile) {
    this.c = calibrate(profile);
    this.vocab = profile.model.vocabSize;
  }

  /**
   * Seconds of a step as the simulator prices it (the same formulas latencyModel uses, plus contention), at
   * the step's effective share unless another is given (a what-if pricing, bench/paper/whatif.ts).
   */
  stepTime(step: StepSpec, shareOverride?: number): number {
    const c = this.c;
    const p = this.profile;
    const share = shareOverride ?? step.effectiveShare;
    const s = share / 100;
    // Core-attention disaggregation: the worker's dense part, then the slowest attention server.
    if (step.attention) return this.denseTime(step, shareOverride) + this.attentionTime(step);
    if (p.kernels) {
      // A given share replaces both the worker's own share and its effective one (a what-if pricing).
      const own = (shareOverride ?? step.share) / 100;
      return kernelStepSeconds(p, c, stepWork(step), { role: step.role, share: own, effectiveShare: s, coRunning: step.coRunning });
    }
    let time: number;
    if (step.role === 'unified') {
      time = p.stepOverhead.unified + mixedWork(c, step.prefillTokens, step.attentionPairs, step.decodeItems, step.contextTokens);
    } else if (step.role === 'prefill') {
      time = p.stepOverhead.prefill + prefillSlowdown(c, s) * prefillWork(c, step.prefillTokens, step.attentionPairs);
      if (step.coRunning) time *= 1 + p.contention.prefill;
    } else {
      time = p.stepOverhead.decode + decodeSlowdown(c, s) * decodeWork(c, step.decodeItems, step.contextTokens);
      if (step.coRunning) time *= 1 + p.contention.decode;
    }
    return time;
  }

  /**
   * Core-attention disaggregation: seconds of the step without its core attention (the worker's part: the
   * dense layers, and everything but softmax(QKᵀ)V), priced as stepTime prices a step. With
   * `attention.decodeLocal` the decode items' attention stays in it.
   */
  denseTime(step: StepSpec, shareOverride?: number): number {
    const c = this.c;
    const p = this.profile;
    const s = (shareOverride ?? step.effectiveShare) / 100;
    const k = p.kernels;
    const decodeLocal = step.attention?.decodeLocal === true;
    if (k) {
      const work = stepWork(step);
      const t = kernelTimes(p, k, { ...work, ownPairs: 0, prefixPairs: 0, contextTokens: decodeLocal ? work.contextTokens : 0 });
      // No attention kernels on the worker (but decode's, if local): their time and launch floors go to the servers.
      const tokens = work.prefillTokens + work.decodeTokens;
      const launch = (tokens > 0 ? k.dense.launchSeconds : 0) + (decodeLocal && work.decodeTokens > 0 ? k.decodeAttention.launchSeconds : 0);
      const dense = { ...t, prefillAttention: 0, decodeAttention: decodeLocal ? t.decodeAttention : 0, launch: p.model.layers * launch };
      const host = p.stepOverhead[step.role];
      const model = p.shareModel ?? 'slices';
      if (model === 'semi-pd-fit') {
        const own = (shareOverride ?? step.share) / 100;
        return host + (step.role === 'decode' ? decodeSlowdown(c, own) : prefillSlowdown(c, own)) * kernelSeconds(dense, k, 1, 1);
      }
      const at = model === 'caps' ? (shareOverride ?? step.share) / 100 : s;
      const contention = step.coRunning && step.role !== 'unified' ? 1 + p.contention[step.role] : 1;
      return host + kernelSeconds(dense, k, at, bandwidthStretch(k, at) * contention);
    }
    const context = decodeLocal ? step.contextTokens : 0;
    if (step.role === 'unified') return p.stepOverhead.unified + mixedWork(c, step.prefillTokens, 0, step.decodeItems, context);
    if (step.role === 'prefill') return (p.stepOverhead.prefill + prefillSlowdown(c, s) * prefillWork(c, step.prefillTokens, 0)) * (step.coRunning ? 1 + p.contention.prefill : 1);
    return (p.stepOverhead.decode + decodeSlowdown(c, s) * decodeWork(c, step.decodeItems, context)) * (step.coRunning ? 1 + p.contention.decode : 1);
  }

  /** Seconds of one (query, key) pair of core attention, all layers, on an attention server (a whole GPU). */
  pairSeconds(): number {
    const p = this.profile;
    const k = p.kernels;
    if (!k) return this.c.secondsPerAttentionPair;
    return (p.model.layers * 4 * p.model.hiddenSize) / (p.gpu.denseFlops * k.prefillAttention.pairEfficiency);
  }

  /** Seconds to read one key position's K and V, all layers, on an attention server. */
  keySeconds(): number {
    const p = this.profile;
    const k = p.kernels;
    if (!k) return this.c.kvSecondsPerToken;
    return (p.model.layers * kvBytesPerTokenLayer(p)) / (p.gpu.hbmBytesPerSecond * k.decodeAttention.kvEfficiency);
  }

  /** Bytes an attention server's tasks move over its link: Q in and O out per query, K and V in per key read. */
  attentionBytes(w: AttentionServerWork): number {
    const m = this.profile.model;
    return w.queries * 2 * m.layers * m.hiddenSize * m.bytesPerParam + w.keys * this.c.kvBytesPerToken;
  }

  /**
   * Seconds of one attention server's tasks: the link's latency, their Q/K/V/O transfer over it, and their
   * compute (a roofline: pairs, or K/V reads). With one buffer each task's transfer and compute follow one
   * another (x + c); with two or more (ping-pong) the transfer of one task hides under the compute of
   * another, a two-stage pipeline over the server's n tasks: max(x, c) + min(x, c) / n.
   */
  serverTime(w: AttentionServerWork, buffers = 2): number {
    if (w.tasks === 0) return 0;
    const link = this.profile.transfer;
    const x = this.attentionBytes(w) / link.bytesPerSecond;
    const c = Math.max(w.pairs * this.pairSeconds(), w.keys * this.keySeconds());
    return link.latency + (buffers < 2 ? x + c : Math.max(x, c) + Math.min(x, c) / w.tasks);
  }

  /** Seconds of a step's core attention on its servers: the slowest server, plus what a lost server had computing. */
  attentionTime(step: StepSpec): number {
    const a = step.attention!;
    let slowest = 0;
    for (const w of a.servers) slowest = Math.max(slowest, this.serverTime(w, a.buffers));
    return slowest + a.wastedPairs * this.pairSeconds();
  }

  execute(step: StepSpec): StepResult {
    const items = step.items;
    const tokens = new Int32Array(items.length);
    let nextAll: (Int32Array | null)[] | null = null;
    for (let i = 0; i < items.length; i++) {
      const it = items[i];
      tokens[i] = it.producesToken ? pseudoToken(it.seed, it.startPos + it.tokens - it.draft, this.vocab) : -1;
      if (it.draft > 0) {
        // A verify: the token after each of its positions is the pseudo-token of the next position, whatever
        // the drafts (the cost model's "model" looks at positions only).
        nextAll ??= new Array<Int32Array | null>(items.length).fill(null);
        const all = new Int32Array(it.tokens);
        for (let j = 0; j < it.tokens; j++) all[j] = pseudoToken(it.seed, it.startPos + j + 1, this.vocab);
        nextAll[i] = all;
      }
    }
    return nextAll ? { duration: this.stepTime(step), tokens, nextAll } : { duration: this.stepTime(step), tokens };
  }

  transferTime(tokens: number): number {
    return this.profile.transfer.latency + (tokens * this.c.kvBytesPerToken) / this.profile.transfer.bytesPerSecond;
  }

  workerInitTime(mechanism: ResizeMechanism): number {
    return mechanism === 'context-switch' ? this.profile.resize.contextSwitchTime : this.profile.resize.workerInitTime;
  }
}
