// The engine's behaviour record: what the engine does, reduced to numbers and hashes that change when
// anything observable changes. test/behaviour-record.test.ts recomputes it and compares it with
// test/fixtures/behaviour-record.json, so that a restructure of the engine that claims to preserve
// behaviour is held to it bit for bit. Where a change of behaviour is intended, regenerate the fixture and
// say why in the commit:
//
//   npx tsx test/behaviour/record.ts --write            every part
//   npx tsx test/behaviour/record.ts --write azure      one part (azure, campaign, faults, explore)
//
// The parts:
//   azure     the Azure conversation hour under each configuration of bench/engine-azure.ts: the run's
//             result and metrics, a hash of its trace, and a hash of every observation its policy was given
//   campaign  lockstep runs of sampled scenarios and environment schedules (every mode, every engine option
//             the scenarios draw), without faults and with each fault switch: outcome and trace hash per run
//   faults    the self-test's row per fault switch: the property that caught it, the shrunk counterexample's
//             size, replay command and trace hash
//   explore   the spec's state counts at the default bound in every mode
import { createHash, type Hash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { Engine, type EngineOptions, type Mode, type PolicyHandle } from '../../engine/engine.ts';
import { FAULTS } from '../../engine/faults/index.ts';
import { loadPolicy } from '../../engine/policies/index.ts';
import type { Observation } from '../../engine/policy-api.ts';
import { defaultBlocks, loadProfile } from '../../engine/profile.ts';
import type { TraceSink } from '../../engine/trace-sink.ts';
import { loadAzure } from '../../engine/workloads/azure.ts';
import { runCampaign } from '../../properties/campaign.ts';
import { DEFAULT_CONFIG } from '../../properties/explore/config.ts';
import { explore } from '../../properties/explore/explorer.ts';
import { asFastCheckCommand, finish, LockstepFailure, start } from '../../properties/lockstep.ts';
import { commands as commandArb, modes as allModes, scenario, type Command, type Scenario } from '../../properties/scenario.ts';
import type { TraceEvent, TraceHeader } from '../../spec/trace-format.ts';

const here = dirname(fileURLToPath(import.meta.url));
export const FIXTURE = join(here, '..', 'fixtures', 'behaviour-record.json');

/** Hashes JSON lines in batches (one digest update per megabyte, not per line). */
class LineHash {
  private readonly hash: Hash = createHash('sha256');
  private batch: string[] = [];
  private size = 0;
  lines = 0;

  add(value: unknown): void {
    const line = JSON.stringify(value);
    this.batch.push(line);
    this.size += line.length;
    this.lines++;
    if (this.size > 1 << 20) this.flush();
  }

  private flush(): void {
    this.hash.update(this.batch.join('\n') + '\n');
    this.batch = [];
    this.size = 0;
  }

  digest(length = 16): string {
    this.flush();
    return this.hash.digest('hex').slice(0, length);
  }
}

function hashOf(value: unknown): string {
  const h = new LineHash();
  h.add(value);
  return h.digest();
}

class HashingSink implements TraceSink {
  readonly lines = new LineHash();
  header(h: TraceHeader): void {
    this.lines.add(h);
  }
  event(ev: TraceEvent): void {
    this.lines.add(ev);
  }
  close(): void {}
}

// ---------------------------------------------------------------------------------------------
// The Azure conversation hour

export interface AzureConfig {
  label: string;
  mode: Mode;
  policy: string | null;
  extra?: Partial<EngineOptions>;
}

/** bench/engine-azure.ts's configurations. */
export const AZURE_CONFIGS: AzureConfig[] = [
  { label: 'semi-pd, static 80/100', mode: 'semi-pd', policy: null },
  { label: 'semi-pd, policy semi-pd', mode: 'semi-pd', policy: 'semi-pd' },
  { label: 'nexus, static 50/50', mode: 'nexus', policy: null },
  { label: 'nexus, policy nexus', mode: 'nexus', policy: 'nexus' },
  { label: 'disaggregated 1P1D', mode: 'disaggregated', policy: 'disaggregated' },
  { label: 'unified, SplitFuse 1024', mode: 'unified', policy: 'unified' },
  { label: 'unified, no chunking (vLLM-D)', mode: 'unified', policy: 'unified', extra: { unifiedChunk: 0 } },
];

export interface AzureRecord {
  label: string;
  events: number;
  endTime: number;
  resizes: number;
  stalled: number;
  ignoredSplitDecisions: number;
  prefixHits: number;
  traceLines: number;
  trace: string;
  observations: number;
  observationHash: string;
  /** A few figures to read, and a hash of the whole RunMetrics (the split timeline and occupancy samples included). */
  summary: { finished: number; sloAttainment: number; ttftP90: number; tpotP90: number; preemptions: number; outputTokens: number };
  metrics: string;
}

/** Numbers as JSON keeps them, so that the fixture compares exactly (NaN and infinities as strings). */
function plain(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v)));
}

export async function azureRecord(c: AzureConfig): Promise<AzureRecord> {
  const profile = loadProfile('llama3-8b-h100');
  const blockSize = 16;
  const loaded = c.policy ? await loadPolicy(c.policy, { profile }) : null;
  const seen = new LineHash();
  const policy: PolicyHandle | null = loaded
    ? {
        name: loaded.name,
        interval: loaded.interval,
        decide: (o: Observation) => {
          const { model: _model, ...rest } = o;
          seen.add(plain(rest));
          return loaded.decide(o);
        },
      }
    : null;
  const sink = new HashingSink();
  const engine = new Engine({
    mode: c.mode,
    workload: loadAzure('conv'),
    profile,
    blocks: defaultBlocks(profile, blockSize),
    blockSize,
    slo: { ttft: 1, tpot: 0.05 },
    seed: 1,
    policy,
    trace: sink,
    ...c.extra,
  });
  const result = engine.runToCompletion();
  await loaded?.close();
  const m = result.metrics;
  return {
    label: c.label,
    events: result.events,
    endTime: result.endTime,
    resizes: result.resizes,
    stalled: result.stalled.length,
    ignoredSplitDecisions: result.ignoredSplitDecisions,
    prefixHits: result.prefixHits,
    traceLines: sink.lines.lines,
    trace: sink.lines.digest(),
    observations: seen.lines,
    observationHash: seen.digest(),
    summary: {
      finished: m.requests.finished,
      sloAttainment: m.sloAttainment,
      ttftP90: m.ttft.p90,
      tpotP90: m.tpot.p90,
      preemptions: m.preemptions,
      outputTokens: m.outputTokens,
    },
    metrics: hashOf(plain(m)),
  };
}

// ---------------------------------------------------------------------------------------------
// Lockstep campaign runs

export interface CampaignGroup {
  label: string;
  modes: readonly Mode[];
  faults: Record<string, true>;
  extra?: Record<string, unknown>;
  seed: number;
  runs: number;
  policy?: string;
}

export function campaignGroups(): CampaignGroup[] {
  const groups: CampaignGroup[] = [
    { label: 'no fault', modes: allModes, faults: {}, seed: 1, runs: 1000 },
    { label: 'no fault, seed 2', modes: allModes, faults: {}, seed: 2, runs: 1000 },
    { label: 'semi-pd policy', modes: ['semi-pd'], faults: {}, seed: 3, runs: 150, policy: 'semi-pd' },
    { label: 'nexus policy', modes: ['nexus'], faults: {}, seed: 4, runs: 150, policy: 'nexus' },
  ];
  for (const f of FAULTS) groups.push({ label: `${f.zoo} ${f.name}`, modes: f.modes, faults: { [f.name]: true }, extra: { ...f.options }, seed: 5, runs: 150 });
  return groups;
}

export interface CampaignGroupRecord {
  label: string;
  /** Per run: the property it broke ('ok' when none) and a hash of its trace and request records. */
  runs: string[];
}

function runOne(sc: Scenario, cmds: Command[], policy: PolicyHandle | null): string {
  const both = start(sc, policy);
  let outcome = 'ok';
  try {
    for (const c of cmds) asFastCheckCommand(c).run(both, both);
    finish(both.judge, both.run);
  } catch (err) {
    if (!(err instanceof LockstepFailure)) throw err;
    outcome = err.property;
  }
  const h = new LineHash();
  h.add(both.run.engine.header);
  for (const ev of both.run.sink.events) h.add(ev);
  h.add(plain(both.run.engine.records()));
  return `${outcome} ${h.digest(12)}`;
}

export async function campaignRecord(g: CampaignGroup): Promise<CampaignGroupRecord> {
  const samples = fc.sample(fc.tuple(scenario(g.modes, g.faults, 6, g.extra), commandArb), { seed: g.seed, numRuns: g.runs });
  const loaded = g.policy ? await loadPolicy(g.policy, { profile: loadProfile() }) : null;
  try {
    return { label: g.label, runs: samples.map(([sc, cmds]) => runOne(sc, cmds, loaded)) };
  } finally {
    await loaded?.close();
  }
}

// ---------------------------------------------------------------------------------------------
// The self-test's rows

export interface FaultRecord {
  zoo: string;
  fault: string;
  property: string | null;
  runs: number;
  inputEvents: number;
  traceEvents: number;
  seed: number | null;
  path: string | null;
  replayPath: string | null;
  trace: string | null;
}

/** The self-test's campaign for each fault switch (properties/self-test.ts), without its time limit. */
export function faultRecord(zoo: string): FaultRecord {
  const info = FAULTS.find((f) => f.zoo === zoo)!;
  const result = runCampaign({ seed: 1, runs: 3000, modes: info.modes, faults: { [info.name]: true }, extra: { ...info.options } });
  const f = result.failure;
  let trace: string | null = null;
  if (f) {
    const h = new LineHash();
    h.add(f.header);
    for (const ev of f.events) h.add(ev);
    trace = h.digest(12);
  }
  return {
    zoo,
    fault: info.name,
    property: f?.property ?? null,
    runs: result.runs,
    inputEvents: f ? f.scenario.workload.length + f.commands.length : 0,
    traceEvents: f?.events.length ?? 0,
    seed: f?.seed ?? null,
    path: f?.path ?? null,
    replayPath: f?.replayPath ?? null,
    trace,
  };
}

// ---------------------------------------------------------------------------------------------
// The explorer at the default bound

export interface ExploreRecord {
  mode: Mode;
  verdict: string;
  states: number;
  transitions: number;
  depth: number;
  events: Record<string, number>;
}

export function exploreRecord(mode: Mode): ExploreRecord {
  const d = DEFAULT_CONFIG;
  const config = {
    ...d,
    mode,
    resizes: mode === 'unified' || mode === 'disaggregated' ? 0 : d.resizes,
    splits: mode === 'nexus' ? [{ prefill: 70, decode: 30 }] : d.splits,
  };
  const r = explore(config);
  return { mode, verdict: r.verdict, states: r.states, transitions: r.transitions, depth: r.depth, events: { ...r.events } };
}

// ---------------------------------------------------------------------------------------------

export interface BehaviourRecord {
  azure: AzureRecord[];
  campaign: CampaignGroupRecord[];
  faults: FaultRecord[];
  explore: ExploreRecord[];
}

export const PARTS = ['azure', 'campaign', 'faults', 'explore'] as const;
type Part = (typeof PARTS)[number];

export function readFixture(): BehaviourRecord {
  return JSON.parse(readFileSync(FIXTURE, 'utf8')) as BehaviourRecord;
}

async function computePart(part: Part): Promise<unknown[]> {
  switch (part) {
    case 'azure': {
      const out = [];
      for (const c of AZURE_CONFIGS) out.push(await azureRecord(c));
      return out;
    }
    case 'campaign': {
      const out = [];
      for (const g of campaignGroups()) out.push(await campaignRecord(g));
      return out;
    }
    case 'faults':
      return FAULTS.map((f) => faultRecord(f.zoo));
    case 'explore':
      return allModes.map((m) => exploreRecord(m));
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const args = process.argv.slice(2);
  const write = args.includes('--write');
  const parts = args.filter((a) => a !== '--write') as Part[];
  for (const p of parts) if (!PARTS.includes(p)) throw new Error(`unknown part '${p}' (${PARTS.join(', ')})`);
  let record: Partial<BehaviourRecord> = {};
  try {
    record = readFixture();
  } catch {
    record = {};
  }
  for (const part of parts.length > 0 ? parts : PARTS) {
    const t0 = performance.now();
    (record as Record<string, unknown>)[part] = await computePart(part);
    console.error(`${part}: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  const text = JSON.stringify(record, null, 1) + '\n';
  if (write) writeFileSync(FIXTURE, text);
  else process.stdout.write(text);
}
