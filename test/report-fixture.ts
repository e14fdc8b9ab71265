// A realistic ReportData for the report's tests and pictures: two policies on three workloads, one failing
// check with its counterexample, a passing one, and the bug-zoo self-test. The numbers are generated from
// smooth curves and a seeded generator, so the fixture is the same on every run.
import type { CheckResult, Counterexample, PolicyReport, ReportData, RunDetail, Sweep, SweepPoint, ZooRow } from '../properties/report-data.ts';
import type { TraceEvent, TraceHeader } from '../spec/trace-format.ts';

/** mulberry32: a small seeded generator, so that samples are identical on every run. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A standard normal draw (Box–Muller). */
function normal(rand: () => number): number {
  const u = Math.max(rand(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
}

const round = (x: number, digits = 4): number => Number(x.toFixed(digits));

const WORKLOADS = [
  { workload: 'azure-conv', slo: { ttft: 1.5, tpot: 0.08 }, rates: [1, 2, 3, 4, 5, 6] },
  { workload: 'azure-code', slo: { ttft: 3, tpot: 0.1 }, rates: [0.5, 1, 1.5, 2, 2.5, 3] },
  { workload: 'poisson', slo: { ttft: 1, tpot: 0.05 }, rates: [2, 3, 4, 5, 6, 7] },
] as const;

/** Attainment falls along a logistic curve around the policy's capacity for the workload. */
function sweep(w: (typeof WORKLOADS)[number], capacity: number, width: number, resizesPerRun: number): Sweep {
  const points: SweepPoint[] = w.rates.map((rate) => {
    const load = rate / capacity;
    const attainment = round(0.995 / (1 + Math.exp((rate - capacity) / width)), 4);
    const ttftP50 = w.slo.ttft * (0.18 + 0.5 * load ** 3);
    const tpotP50 = w.slo.tpot * (0.42 + 0.35 * load ** 2);
    const stats = (p50: number) => ({ mean: round(p50 * 1.2), p50: round(p50), p90: round(p50 * 2.1), p99: round(p50 * 3.6) });
    return {
      rate,
      attainment,
      goodput: round(rate * attainment, 3),
      ttft: stats(ttftP50),
      tpot: stats(tpotP50),
      e2e: stats(ttftP50 + 180 * tpotP50),
      resizes: Math.round(resizesPerRun * (0.5 + load)),
    };
  });
  const ok = points.filter((p) => p.attainment >= 0.9);
  return { workload: w.workload, slo: { ...w.slo }, points, rateAt90: ok.length ? ok[ok.length - 1].rate : null };
}

function run(seed: number, ttftScale: number, tpotScale: number, splits: [number, number, number][], resizeSeconds: number): RunDetail {
  const rand = rng(seed);
  const ttftSamples = Array.from({ length: 400 }, () => round(ttftScale * Math.exp(0.55 * normal(rand)), 4));
  const tpotSamples = Array.from({ length: 400 }, () => round(tpotScale * Math.exp(0.3 * normal(rand)), 5));
  const split: RunDetail['split'] = [];
  const resizes: RunDetail['resizes'] = [];
  for (const [t, prefill, decode] of splits) {
    if (t === 0) {
      split.push({ t: 0, prefill, decode });
      continue;
    }
    const end = round(t + resizeSeconds * (0.7 + 0.6 * rand()), 2);
    resizes.push({ begin: t, end, prefill, decode });
    split.push({ t: end, prefill, decode });
  }
  // KV usage: a slow wave driven by the conversation trace's bursts, with noise; never above 0.97.
  const kv = Array.from({ length: 121 }, (_, t) => ({
    t,
    usage: round(Math.min(0.97, Math.max(0.05, 0.52 + 0.22 * Math.sin(t / 13) + 0.1 * Math.sin(t / 3.7) + 0.04 * normal(rand))), 3),
  }));
  return { workload: 'azure-conv', rate: 4, ttftSamples, tpotSamples, split, resizes, kv };
}

/** The header of the counterexample: semi-PD, one pool of 8 blocks of 4 tokens. */
export const FIXTURE_HEADER: TraceHeader = {
  format: 'pdspec-trace',
  version: 1,
  mode: 'semi-pd',
  blocks: 8,
  blockSize: 4,
  sms: 132,
  split: { prefill: 80, decode: 100 },
  shareRule: 'oversubscribe',
  allocator: 'lock',
  gpus: 1,
  workers: [
    { id: 'P0', role: 'prefill', share: 80, gpu: 0 },
    { id: 'D0', role: 'decode', share: 100, gpu: 0 },
  ],
  source: 'pdspec engine (cost model), policy eager-resize',
};

/**
 * The shrunk counterexample: the decode worker preempts r2 under KV pressure right after the policy asks for
 * a resize, and frees r2's blocks while its decode step 2 still writes them (the spec refuses the last line).
 */
export const FIXTURE_EVENTS: TraceEvent[] = [
  { t: 0, ev: 'arrive', req: 'r1', prompt: 6, maxTokens: 8 },
  { t: 0, ev: 'schedule', req: 'r1', worker: 'P0' },
  { t: 0, ev: 'alloc', worker: 'D0', req: 'r1', blocks: [0, 1] },
  { t: 0.001, ev: 'step_begin', worker: 'P0', step: '1', batch: [{ req: 'r1', tokens: 6 }] },
  { t: 0.002, ev: 'arrive', req: 'r2', prompt: 7, maxTokens: 4 },
  { t: 0.004, ev: 'step_end', worker: 'P0', step: '1' },
  { t: 0.004, ev: 'handoff', req: 'r1', from: 'P0', to: 'D0' },
  { t: 0.005, ev: 'token', req: 'r1', index: 0 },
  { t: 0.005, ev: 'join', req: 'r1', worker: 'D0' },
  { t: 0.005, ev: 'schedule', req: 'r2', worker: 'P0' },
  { t: 0.005, ev: 'alloc', worker: 'D0', req: 'r2', blocks: [2, 3] },
  { t: 0.006, ev: 'step_begin', worker: 'P0', step: '2', batch: [{ req: 'r2', tokens: 7 }] },
  { t: 0.009, ev: 'step_end', worker: 'P0', step: '2' },
  { t: 0.009, ev: 'handoff', req: 'r2', from: 'P0', to: 'D0' },
  { t: 0.01, ev: 'token', req: 'r2', index: 0 },
  { t: 0.01, ev: 'join', req: 'r2', worker: 'D0' },
  { t: 0.01, ev: 'alloc', worker: 'D0', req: 'r1', blocks: [4] },
  { t: 0.011, ev: 'step_begin', worker: 'D0', step: '2', batch: [{ req: 'r1', tokens: 1 }, { req: 'r2', tokens: 1 }] },
  { t: 0.012, ev: 'resize_begin', epoch: 1, prefill: 60, decode: 100, note: 'the policy asks for a new split' },
  { t: 0.012, ev: 'preempt', req: 'r2', worker: 'D0', note: 'KV pressure: r2 is the victim' },
  { t: 0.012, ev: 'free', req: 'r2', blocks: [2, 3], note: 'freed at once, while step 2 still writes blocks 2 and 3' },
];

const COUNTEREXAMPLE: Counterexample = {
  traceFile: 'counterexamples/eager-resize-campaign.jsonl',
  replay: 'npx pdspec conform report/counterexamples/eager-resize-campaign.jsonl',
  header: FIXTURE_HEADER,
  events: FIXTURE_EVENTS,
};

const SEMI_PD_CHECKS: CheckResult[] = [
  {
    check: 'explore',
    property: 'NoLeak, SingleOwnership, NothingLost, no deadlock',
    family: 'Safety',
    status: 'pass',
    seconds: 8.4,
    detail: 'Every interleaving of 3 requests on 6 blocks with one resize: 48,211 states and 131,904 transitions, no rule broken.',
  },
  {
    check: 'campaign',
    property: 'NoLeak, SingleOwnership, NothingLost',
    family: 'Safety',
    status: 'pass',
    seconds: 21.7,
    detail: '2,000 random workloads with aborts, preemptions and resizes: 1.94 M events replayed through the spec, none refused.',
  },
  { check: 'M1', property: 'M1 latency model', family: 'Monotonicity', status: 'pass', seconds: 0.9, detail: '5,000 share and work pairs: time never rises with the share, never falls with the work.' },
  { check: 'M2', property: 'M2 policy', family: 'Monotonicity', status: 'pass', seconds: 4.2, detail: '1,000 observation pairs with more prefill (or decode) pressure: the share never went down.' },
  { check: 'M3', property: 'M3 system', family: 'Monotonicity', status: 'pass', seconds: 36.5, detail: '200 workload pairs with looser SLOs or more blocks: attainment never went down.' },
];

const EAGER_CHECKS: CheckResult[] = [
  {
    check: 'explore',
    property: 'NoLeak, SingleOwnership, NothingLost, no deadlock',
    family: 'Safety',
    status: 'pass',
    seconds: 8.9,
    detail: 'Every interleaving of 3 requests on 6 blocks with one resize: 52,730 states and 144,018 transitions, no rule broken.',
  },
  {
    check: 'campaign',
    property: 'NoFreeWhileInFlight',
    family: 'SingleOwnership',
    status: 'fail',
    seconds: 3.8,
    detail: 'Run 117 of 2,000 (seed 42) broke NoFreeWhileInFlight; fast-check shrank it from 412 to 21 events.',
    counterexample: COUNTEREXAMPLE,
  },
  { check: 'M1', property: 'M1 latency model', family: 'Monotonicity', status: 'pass', seconds: 0.8, detail: '5,000 share and work pairs: time never rises with the share, never falls with the work.' },
  { check: 'M2', property: 'M2 policy', family: 'Monotonicity', status: 'pass', seconds: 3.9, detail: '1,000 observation pairs with more prefill (or decode) pressure: the share never went down.' },
  { check: 'M3', property: 'M3 system', family: 'Monotonicity', status: 'skipped', seconds: 0, detail: 'The policy does not claim monotonicity, so M3 is not required of it.' },
];

const SEMI_PD: PolicyReport = {
  name: 'semi-pd-slo',
  source: 'built-in: semi-PD SLO-aware Algorithm 1',
  claimsMonotone: true,
  checks: SEMI_PD_CHECKS,
  sweeps: [sweep(WORKLOADS[0], 4.7, 0.45, 3), sweep(WORKLOADS[1], 2.75, 0.22, 2), sweep(WORKLOADS[2], 6.1, 0.5, 3)],
  run: run(7, 0.42, 0.041, [
    [0, 80, 100],
    [31.2, 70, 100],
    [58.7, 85, 100],
    [92.4, 75, 100],
  ], 1.6),
};

const EAGER: PolicyReport = {
  name: 'eager-resize',
  source: './policies/eager-resize.ts',
  claimsMonotone: false,
  checks: EAGER_CHECKS,
  sweeps: [sweep(WORKLOADS[0], 3.9, 0.5, 9), sweep(WORKLOADS[1], 2.45, 0.25, 7), sweep(WORKLOADS[2], 5.2, 0.55, 9)],
  run: run(11, 0.61, 0.049, [
    [0, 80, 100],
    [9.5, 55, 100],
    [21.3, 90, 80],
    [33.8, 60, 100],
    [47.1, 95, 70],
    [58.9, 65, 100],
    [72.4, 90, 85],
    [86.0, 55, 100],
    [99.6, 85, 90],
    [111.2, 70, 100],
  ], 1.4),
};

const ZOO: ZooRow[] = [
  { id: 'Z1', fault: 'fork double free', caught: true, property: 'FreeListUnique', expected: 'FreeListUnique', events: 5, traceEvents: 13, seconds: 0.41, replay: 'npx pdspec check --self-test --only Z1 --seed 42' },
  { id: 'Z3', fault: 'free while next step in flight', caught: true, property: 'NoFreeWhileInFlight', expected: 'NoFreeWhileInFlight', events: 4, traceEvents: 13, seconds: 0.38, replay: 'npx pdspec check --self-test --only Z3 --seed 42' },
  { id: 'Z5', fault: 'abort during transfer, double free', caught: true, property: 'FreeListUnique', expected: 'FreeListUnique', events: 6, traceEvents: 14, seconds: 0.77, replay: 'npx pdspec check --self-test --only Z5 --seed 42' },
  { id: 'Z6', fault: 'deferred free signal lost', caught: true, property: 'EndedRequestsRelease', expected: 'EndedRequestsRelease', events: 5, traceEvents: 12, seconds: 0.52, replay: 'npx pdspec check --self-test --only Z6 --seed 42' },
  { id: 'Z8', fault: 'overlap scheduling double free', caught: true, property: 'FreeListUnique', expected: 'FreeListUnique', events: 4, traceEvents: 13, seconds: 0.36, replay: 'npx pdspec check --self-test --only Z8 --seed 42' },
  { id: 'Z11', fault: 'late transfer write', caught: true, property: 'NoFreeWhileInFlight', expected: 'NoFreeWhileInFlight', events: 6, traceEvents: 13, seconds: 0.94, replay: 'npx pdspec check --self-test --only Z11 --seed 42' },
  { id: 'Z12', fault: 'duplicate release', caught: true, property: 'SingleOwner', expected: 'FreeListUnique', events: 7, traceEvents: 18, seconds: 1.12, replay: 'npx pdspec check --self-test --only Z12 --seed 42' },
  { id: 'Z13', fault: 'lockless allocation', caught: true, property: 'SingleOwner', expected: 'SingleOwner', events: 5, traceEvents: 16, seconds: 0.63, replay: 'npx pdspec check --self-test --only Z13 --seed 42' },
  { id: 'Z15', fault: 'resize drops a FIFO request', caught: true, property: 'ServedByLiveWorker', expected: 'ServedByLiveWorker', events: 8, traceEvents: 19, seconds: 1.48, replay: 'npx pdspec check --self-test --only Z15 --seed 42' },
];

/** A fresh copy of the fixture (tests may change it). */
export function reportFixture(): ReportData {
  const data: ReportData = {
    version: 1,
    command: 'npx pdspec check --policy semi-pd-slo --policy ./policies/eager-resize.ts --seed 42 --self-test',
    seed: 42,
    verdict: 'violated',
    startedAt: '2025-03-14T09:26:53.000Z',
    seconds: 142.6,
    policies: [SEMI_PD, EAGER],
    selfTest: ZOO,
    sources: {
      profile: 'llama3-8b-h100 (data/profiles/llama3-8b-h100.json): Llama 3 8B, BF16, H100 SXM5 80GB; share dependence from the semi-PD paper fit',
      traces: [
        'data/azure-llm-inference-2023/AzureLLMInferenceTrace_conv.csv — Azure LLM inference trace 2023, CC-BY 4.0 (Patel et al., Splitwise, ISCA 2024), https://github.com/Azure/AzurePublicDataset',
        'data/azure-llm-inference-2023/AzureLLMInferenceTrace_code.csv — same source and licence',
        'poisson: synthetic arrivals, prompt and output lengths drawn from the conversation trace (seed 42)',
      ],
      notes: [
        'Latencies are virtual time from the cost model, not measured on a GPU.',
        'Each sweep point is one run of 600 s of arrivals at the given rate; attainment counts requests meeting both SLOs.',
      ],
    },
  };
  return structuredClone(data);
}
