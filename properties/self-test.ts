// The bug-zoo self-test: the kit earns its keep by catching the real bugs it was built for. For every engine
// fault switch (engine/faults/: Z1–Z13, Z15–Z22), the property campaign runs with the switch on, in the modes
// and with the options where the fault can show, until it fails; the failure must be shrunk and name the
// property the bug breaks. Z14 lives in a policy: semi-PD's SLO loop without its step counter must be caught
// as a policy that does not terminate.
import { CAD_FAULTS, FAULTS, type FaultInfo } from '../engine/faults/index.ts';
import { loadPolicy, PolicyFault } from '../engine/policies/index.ts';
import { latencyModel, loadProfile } from '../engine/profile.ts';
import type { Observation } from '../engine/policy-api.ts';
import type { ZooRow } from './report-data.ts';
import { replayOf, runCampaign, type CampaignFailure } from './campaign.ts';

export interface SelfTestOptions {
  seed: number;
  /** Campaign runs per switch at most. */
  runs?: number;
  /** Seconds per switch at most. */
  secondsPerFault?: number;
  /** Only these switches (names or zoo ids). */
  only?: string[];
  onRow?: (row: ZooRow) => void;
}

/** Counterexample size: the shrunk input's events — arrivals, and the environment's aborts, resizes and runs. */
export function inputEvents(f: CampaignFailure): number {
  return f.scenario.workload.length + f.commands.length;
}

function faultRow(info: FaultInfo, options: SelfTestOptions): ZooRow {
  const result = runCampaign({
    seed: options.seed,
    runs: options.runs ?? 3000,
    modes: info.modes,
    faults: { [info.name]: true },
    extra: { ...info.options },
    timeLimitMs: (options.secondsPerFault ?? 25) * 1000,
  });
  const f = result.failure;
  const expected = info.check.rules.join(' or ');
  return {
    id: info.zoo,
    fault: info.name,
    caught: f !== undefined && (info.check.rules as readonly string[]).includes(f.property),
    property: f?.property ?? null,
    expected,
    events: f ? inputEvents(f) : 0,
    traceEvents: f?.events.length ?? 0,
    seconds: result.seconds,
    replay: f ? replayOf(f.seed, f.path, f.replayPath, info.modes, info.name) : null,
  };
}

/** Z14: the SLO loop must terminate with a valid split even when the SLO is unreachable. */
async function policyRow(): Promise<ZooRow> {
  const t0 = performance.now();
  const profile = loadProfile();
  const handle = await loadPolicy('semi-pd-z14', { profile, isolate: true, timeBudgetMs: 500 });
  const none = { p50: Number.NaN, p90: Number.NaN, p99: Number.NaN, count: 0 };
  // A TTFT SLO no prefill share can meet: the loop's step counter never moves, so it never ends.
  const unreachable: Observation = {
    time: 1,
    split: { prefill: 80, decode: 100 },
    shareRule: 'oversubscribe',
    prefillQueue: { requests: 64, tokens: 64 * 2048, promptLengths: new Array(64).fill(2048) },
    decodeBatch: { requests: 8, contextTokens: 8 * 1024 },
    kvUsage: 0.5,
    arrivalRate: 40,
    ttft: { p50: 30, p90: 60, p99: 90, count: 100 },
    tpot: none,
    slo: { ttft: 0.001, tpot: 0.1 },
    model: latencyModel(profile),
  };
  let property: string | null = null;
  try {
    handle.decide(unreachable);
  } catch (err) {
    if (err instanceof PolicyFault) property = `PolicyFault (${err.kind})`;
    else throw err;
  } finally {
    await handle.close();
  }
  return {
    id: 'Z14',
    fault: 'semi-pd-z14 (policy)',
    caught: property === 'PolicyFault (timeout)',
    property,
    expected: 'PolicyFault (timeout)',
    events: 1,
    traceEvents: 0,
    seconds: (performance.now() - t0) / 1000,
    replay: "npx pdspec check --policy semi-pd-z14",
  };
}

export async function selfTest(options: SelfTestOptions): Promise<ZooRow[]> {
  const rows: ZooRow[] = [];
  const wanted = (id: string, name: string) => !options.only || options.only.includes(id) || options.only.includes(name);
  for (const info of [...FAULTS].sort((a, b) => Number(a.zoo.slice(1)) - Number(b.zoo.slice(1)))) {
    if (info.zoo === 'Z14' || !wanted(info.zoo, info.name)) continue;
    const row = faultRow(info, options);
    rows.push(row);
    options.onRow?.(row);
  }
  if (wanted('Z14', 'semi-pd-z14')) {
    const row = await policyRow();
    rows.push(row);
    options.onRow?.(row);
  }
  // Core-attention disaggregation's switches (C1, C2, …): no bug-zoo row, the same campaign.
  for (const info of CAD_FAULTS) {
    if (!wanted(info.zoo, info.name)) continue;
    const row = faultRow(info, options);
    rows.push(row);
    options.onRow?.(row);
  }
  const order = (id: string) => (id.startsWith('Z') ? 0 : 1000) + Number(id.slice(1));
  return rows.sort((a, b) => order(a.id) - order(b.id));
}
