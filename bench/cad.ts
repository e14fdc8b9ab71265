// Core-attention disaggregation against co-location, in the shape of DistCA's claim (docs/cad.md, "The bench").
//
// 1. Training: documents from a long-context length distribution are packed into data-parallel ranks of
//    equal token counts. Co-located, each rank's core attention is its own documents' (quadratic); the step
//    waits for the slowest rank. With CAD, the same GPUs also serve as attention servers (DistCA time-shares
//    them): every document is sharded on the query axis and the shards are balanced over the ranks by the
//    engine's scheduler (engine/sched/attention.ts), paying the Q/K/V/O transfer of the shards that leave
//    their rank, hidden under compute by ping-pong where it can be. Printed: per-rank attention imbalance
//    (max / mean) and step time, both ways, and their ratio measured in the same run.
// 2. Serving: a stream of long prompts on the unified engine, attention on the worker against attention
//    servers (2, 4), TTFT p50 and p99, on the profile's own link and on an NVLink-class one.
//
// Kernel times come from the calibrated profile (data/profiles/llama3-8b-a100-vidur.json); the length
// distribution and the packing are this bench's choices, stated below, not DistCA's datasets.
import { Engine } from '../engine/engine.ts';
import { kernelSeconds, kernelTimes, ownCausalPairs } from '../engine/kernel-model.ts';
import { balance, causalPairs } from '../engine/sched/attention.ts';
import { defaultBlocks, loadProfile, type Profile } from '../engine/profile.ts';
import { Random } from '../engine/random.ts';
import { synthetic } from '../engine/workloads/synthetic.ts';

const profile = loadProfile('llama3-8b-a100-vidur');
const kernels = profile.kernels!;
const NVLINK = 450e9;

/** Document lengths, log-uniform between 1k and `max` tokens (each octave equally likely): the bench's choice. */
function documents(seed: number, count: number, max: number): number[] {
  const rng = new Random(seed);
  return Array.from({ length: count }, () => Math.round(1024 * (max / 1024) ** rng.float()));
}

/** Packs documents in order into `ranks` ranks of `capacity` tokens (first fit; a document longer than a rank is cut). */
function pack(docs: number[], ranks: number, capacity: number): number[][] {
  const out: number[][] = Array.from({ length: ranks }, () => []);
  const used = new Array<number>(ranks).fill(0);
  for (const d of docs) {
    const len = Math.min(d, capacity);
    const r = used.findIndex((u) => u + len <= capacity);
    if (r < 0) break;
    out[r].push(len);
    used[r] += len;
  }
  return out;
}

/** Seconds of one forward step's dense part and core attention, for `tokens` positions and `pairs` causal pairs. */
function dense(p: Profile, tokens: number): number {
  return kernelSeconds(kernelTimes(p, kernels, { prefillTokens: tokens, ownPairs: 0, prefixPairs: 0, decodeTokens: 0, contextTokens: 0, logitTokens: 0 }), { ...kernels, prefillAttention: { ...kernels.prefillAttention, launchSeconds: 0 } }, 1, 1);
}
function attention(p: Profile, pairs: number, queries: number): number {
  const t = kernelTimes(p, kernels, { prefillTokens: queries, ownPairs: pairs, prefixPairs: 0, decodeTokens: 0, contextTokens: 0, logitTokens: 0 });
  return t.prefillAttention;
}

/** Bytes a shard [a, b) of a document moves to another rank and back: Q in and O out per query, K/V of positions 0..b−1. */
function shardBytes(p: Profile, a: number, b: number): number {
  const m = p.model;
  const act = m.hiddenSize * m.bytesPerParam;
  const kv = 2 * m.kvHeads * m.headDim * m.kvBytesPerElement;
  return m.layers * ((b - a) * 2 * act + b * kv);
}

function training(ranks: number, capacity: number, link: number) {
  const docs = documents(7 + ranks, 4000, 512 * 1024);
  const packed = pack(docs, ranks, capacity);
  const tokens = packed.map((r) => r.reduce((a, b) => a + b, 0));
  const pairs = packed.map((r) => r.reduce((a, l) => a + ownCausalPairs(l), 0));
  const colocated = packed.map((_, i) => dense(profile, tokens[i]) + attention(profile, pairs[i], tokens[i]));
  // CAD: every document in query shards of 4k positions, balanced over the ranks as servers (ε 0.05).
  const shards: { item: number; from: number; to: number; home: number }[] = [];
  packed.forEach((r, rank) =>
    r.forEach((len) => {
      const item = shards.length;
      for (let a = 0; a < len; a += 4096) shards.push({ item, from: a, to: Math.min(len, a + 4096), home: rank });
    }),
  );
  const live = Array.from({ length: ranks }, (_, i) => i);
  const placed = balance(
    shards.map(({ item, from, to }) => ({ item, from, to })),
    live,
    ranks,
    0.05,
  );
  const served = new Array<number>(ranks).fill(0);
  const queries = new Array<number>(ranks).fill(0);
  const moved = new Array<number>(ranks).fill(0);
  for (const s of placed.shards) {
    served[s.server] += causalPairs(s.from, s.to);
    queries[s.server] += s.to - s.from;
    const home = shards.find((x) => x.item === s.item)!.home;
    if (home !== s.server) moved[s.server] += shardBytes(profile, s.from, s.to);
  }
  const cad = packed.map((_, i) => {
    const compute = attention(profile, served[i], queries[i]);
    const transfer = moved[i] / link;
    // Ping-pong: the transfer of one nano-batch hides under the compute of the other, where it fits.
    return dense(profile, tokens[i]) + Math.max(compute, transfer) + Math.min(compute, transfer) / 8;
  });
  const attnCo = packed.map((_, i) => attention(profile, pairs[i], tokens[i]));
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  return {
    ranks,
    docs: packed.reduce((a, r) => a + r.length, 0),
    imbalanceCo: Math.max(...attnCo) / mean(attnCo),
    imbalanceCad: Math.max(...served) / mean(served),
    stepCo: Math.max(...colocated),
    stepCad: Math.max(...cad),
    idleCo: 1 - mean(colocated) / Math.max(...colocated),
    idleCad: 1 - mean(cad) / Math.max(...cad),
  };
}

function serving(servers: number, link: number) {
  const p: Profile = { ...profile, transfer: { ...profile.transfer, bytesPerSecond: link } };
  const workload = synthetic({ arrivals: { kind: 'poisson' }, rate: 0.5, requests: 40, prompt: { kind: 'uniform', min: 8192, max: 32768 }, output: { kind: 'fixed', value: 8 }, seed: 3 } as never);
  const engine = new Engine({ mode: 'unified', workload, profile: p, blocks: defaultBlocks(p, 16), blockSize: 16, unifiedChunk: 8192, ...(servers > 0 ? { attentionServers: { servers, offload: 'prefill' as const } } : {}) });
  const r = engine.runToCompletion();
  return r.metrics.ttft;
}

const f = (x: number, d = 2) => x.toFixed(d);
console.log(`profile ${profile.name}; documents log-uniform in 1k..512k tokens (the bench's choice), packed first-fit into ranks of 128k tokens`);
console.log('\n1. Training step, data-parallel ranks (co-located core attention vs CAD over the same GPUs)');
for (const link of [profile.transfer.bytesPerSecond, NVLINK]) {
  console.log(`  link ${f(link / 1e9, 0)} GB/s`);
  console.log('  ranks  docs  attention max/mean (co → CAD)  idle share (co → CAD)  step s (co → CAD)  speed-up');
  for (const ranks of [2, 4, 8, 16]) {
    const t = training(ranks, 128 * 1024, link);
    console.log(
      `  ${String(t.ranks).padStart(5)}  ${String(t.docs).padStart(4)}  ${f(t.imbalanceCo).padStart(6)} → ${f(t.imbalanceCad).padEnd(19)}  ${(f(t.idleCo * 100, 0) + ' %').padStart(5)} → ${(f(t.idleCad * 100, 0) + ' %').padEnd(12)}  ${f(t.stepCo, 3)} → ${f(t.stepCad, 3)}      ${f(t.stepCo / t.stepCad)}×`,
    );
  }
}
console.log('  DistCA reports up to 1.35× end-to-end training throughput (512 H200s, up to 512k context), and idle time from DP stragglers of ~2 % at DP2 growing to 55 % at DP8 without it.');
console.log('\n2. Serving: 40 prompts of 8k..32k tokens at 0.5 req/s on the unified worker (prefill attention offloaded)');
for (const link of [profile.transfer.bytesPerSecond, NVLINK]) {
  const base = serving(0, link);
  const line = [`  link ${f(link / 1e9, 0)} GB/s: on the worker TTFT p50 ${f(base.p50, 3)} s, p99 ${f(base.p99, 3)} s`];
  for (const servers of [2, 4]) {
    const t = serving(servers, link);
    line.push(`${servers} servers p50 ${f(t.p50, 3)} s (${f(base.p50 / t.p50)}×), p99 ${f(t.p99, 3)} s (${f(base.p99 / t.p99)}×)`);
  }
  console.log(line.join('; '));
}
