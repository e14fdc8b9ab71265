// Every kind of replay command pdspec prints reproduces its counterexample byte for byte: the campaign's
// (without a policy, with a built-in or a stateful user policy, with a fault switch, with a subset of
// modes), the explorer's (one search, a swarm on worker threads, shards merged), the monotonicity checks'
// (M1, M2, M3), and those `pdspec check` lists for its failures. Each original runs as a user runs it; its
// printed replay is split into words as a shell splits them and run again from the repository root, where
// replays are meant to run; the two counterexamples — trace files, or the counterexample as JSON — must be
// identical.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { describe, expect, it } from 'vitest';
import { exploreConfigFor, exploreReplay } from '../cli/commands/check.ts';
import { configFromArgs } from '../cli/commands/explore.ts';
import { handleForPolicy } from '../engine/policies/index.ts';
import { runCampaign, type CampaignOptions } from '../properties/campaign.ts';
import type { CheckResult, ReportData } from '../properties/report-data.ts';
import countingPolicy from './fixtures/counting-policy.ts';

const root = join(import.meta.dirname, '..');
const scratch = mkdtempSync(join(tmpdir(), 'pdspec-replays-'));
const COUNTING = './test/fixtures/counting-policy.ts';

function pdspec(args: string[]) {
  return spawnSync(process.execPath, [join(root, 'bin', 'pdspec.js'), ...args], { cwd: root, encoding: 'utf8', timeout: 120_000 });
}

/** The words of a printed command as a shell splits them: plain words, and single-quoted ones ('\'' inside). */
function words(command: string): string[] {
  return [...command.matchAll(/'((?:[^']|'\\'')*)'|(\S+)/g)].map((m) => (m[1] !== undefined ? m[1].replaceAll(`'\\''`, "'") : m[2]));
}

/** The arguments of a printed `npx pdspec …` replay, to run as `node bin/pdspec.js …`. */
function replayArgs(replay: string): string[] {
  const [npx, name, ...args] = words(replay);
  expect([npx, name], replay).toEqual(['npx', 'pdspec']);
  return args;
}

/** The one command a run printed after `label` (`replay:`, `reproduce:`). */
function printed(stdout: string, label: string): string {
  const lines = stdout.split('\n').filter((l) => l.startsWith(`${label} `));
  expect(lines, stdout).toHaveLength(1);
  return lines[0].slice(label.length + 1);
}

let outs = 0;
function outFile(): string {
  outs += 1;
  return join(scratch, `cex-${outs}.jsonl`);
}

/**
 * Runs `args` (which find a violation) with --out, then the replay it printed after `label` with its own
 * --out; both exit 1 and write the same trace, byte for byte. Returns the replay.
 */
function expectTraceReplays(args: string[], label: 'replay:' | 'reproduce:'): string {
  const first = outFile();
  const original = pdspec([...args, '--out', first]);
  expect(original.status, original.stdout + original.stderr).toBe(1);
  const replay = printed(original.stdout, label);
  const again = outFile();
  const replayed = pdspec([...replayArgs(replay), '--out', again]);
  expect(replayed.status, `${replay}\n${replayed.stdout}${replayed.stderr}`).toBe(1);
  const text = readFileSync(first, 'utf8');
  expect(text.split('\n').length).toBeGreaterThan(2); // a header and events, not an empty file
  expect(readFileSync(again, 'utf8')).toBe(text);
  // The replay names itself again: a replay of the replay is the same command.
  expect(printed(replayed.stdout, label)).toBe(replay);
  return replay;
}

describe('campaign replays', () => {
  it('without a policy, all modes, a fault switch on', () => {
    const replay = expectTraceReplays(['campaign', '--fault', 'duplicateRelease', '--runs', '300', '--seed', '1'], 'replay:');
    expect(replay).toContain('--fault duplicateRelease');
  });

  it('a subset of modes', () => {
    const replay = expectTraceReplays(['campaign', '--fault', 'leakPartialBlockOnRetract', '--modes', 'semi-pd,nexus', '--runs', '300', '--seed', '2'], 'replay:');
    expect(replay).toContain('--modes semi-pd,nexus');
  });

  it.each(['semi-pd', 'nexus'])('the built-in %s policy (it keeps a history)', (policy) => {
    const replay = expectTraceReplays(['campaign', '--fault', 'dropFifoOnResize', '--modes', policy, '--policy', policy, '--runs', '300', '--seed', '1'], 'replay:');
    expect(replay).toContain(`--policy ${policy}`);
  });

  it('a user policy whose decisions depend on how often it was asked (a factory: a fresh instance per run)', () => {
    const replay = expectTraceReplays(['campaign', '--fault', 'leakPartialBlockOnRetract', '--modes', 'semi-pd', '--policy', COUNTING, '--runs', '300', '--seed', '2'], 'replay:');
    expect(replay).toContain(`--policy ${COUNTING}`);
  });

  it('a policy that is one object, not a factory, is shared by every run: the campaign says its replays may not be exact', () => {
    const single = join(scratch, 'single-object.ts');
    writeFileSync(single, "export default { name: 'keeps-the-split', decide: () => ({}) };\n");
    const r = pdspec(['campaign', '--modes', 'semi-pd', '--policy', single, '--runs', '5', '--seed', '1', '--json']);
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).note).toMatch(/exports one Policy object, not a factory, so every run used that one object; .*its replay may not be exact/);
    const factory = pdspec(['campaign', '--modes', 'semi-pd', '--policy', COUNTING, '--runs', '5', '--seed', '1']);
    expect(factory.status, factory.stderr).toBe(0);
    expect(factory.stdout).toMatch(/every property held/);
    expect(factory.stdout).not.toMatch(/note:/);
  });
});

describe('why the campaign makes a fresh policy instance per run', () => {
  const options: CampaignOptions = { seed: 2, runs: 300, modes: ['semi-pd'], faults: { leakPartialBlockOnRetract: true } };
  const replayFresh = (f: NonNullable<ReturnType<typeof runCampaign>['failure']>) =>
    runCampaign({ ...options, runs: 1, path: f.path, replayPath: f.replayPath, policy: () => handleForPolicy(countingPolicy()) }).failure;

  it('one instance shared by every run carries its count into the failing run: the fresh start of a replay differs', () => {
    const shared = runCampaign({ ...options, policy: handleForPolicy(countingPolicy()) }).failure!;
    expect(shared.events.length).toBeGreaterThan(0);
    expect(replayFresh(shared)?.events).not.toEqual(shared.events);
  });

  it('a fresh instance per run, shrinking included: the replay gets the same trace', () => {
    const fresh = runCampaign({ ...options, policy: () => handleForPolicy(countingPolicy()) }).failure!;
    expect(fresh.events.length).toBeGreaterThan(0);
    expect(replayFresh(fresh)?.events).toEqual(fresh.events);
  });
});

describe('explore replays', () => {
  it('one exhaustive search', () => {
    expectTraceReplays(['explore', '--requests', '2', '--variant', 'lockless-allocator'], 'reproduce:');
  });

  it('a swarm on worker threads keeps --workers', () => {
    const replay = expectTraceReplays(['explore', '--requests', '2', '--variant', 'lockless-allocator', '--workers', '2'], 'reproduce:');
    expect(replay).toContain('--workers 2');
  });

  it('shards run as separate jobs and merged: the replay is the member that found the counterexample', () => {
    const shards = ['0/2', '1/2'].map((shard, i) => {
      const r = pdspec(['explore', '--requests', '2', '--variant', 'lockless-allocator', '--shard', shard, '--seed', '5', '--json']);
      expect([0, 1], r.stderr).toContain(r.status);
      const file = join(scratch, `shard-${i}.json`);
      writeFileSync(file, r.stdout);
      return file;
    });
    const replay = expectTraceReplays(['explore', '--merge', ...shards], 'reproduce:');
    expect(replay).toMatch(/--shard [01]\/2 --seed 5/);
  });
});

/** A monotonicity check's counterexample, and its replay's: the same object, byte for byte as JSON. */
function expectMonotonicityReplays(args: string[]): void {
  const original = pdspec(['monotonicity', ...args, '--json']);
  expect(original.status, original.stdout + original.stderr).toBe(1);
  const first = JSON.parse(original.stdout) as { replay: string; counterexample: unknown };
  expect(first.counterexample).toBeDefined();
  const replayed = pdspec([...replayArgs(first.replay), '--json']);
  expect(replayed.status, `${first.replay}\n${replayed.stderr}`).toBe(1);
  const again = JSON.parse(replayed.stdout) as { replay: string; counterexample: unknown };
  expect(JSON.stringify(again.counterexample)).toBe(JSON.stringify(first.counterexample));
  expect(again.replay).toBe(first.replay);
}

describe('monotonicity replays', () => {
  it('M1: a profile whose parameter count overflows the step time', () => {
    const profile = JSON.parse(readFileSync(join(root, 'data', 'profiles', 'llama3-8b-h100.json'), 'utf8'));
    const file = join(scratch, 'overflowing-profile.json');
    writeFileSync(file, JSON.stringify({ ...profile, name: 'overflowing', model: { ...profile.model, params: 1e308 } }));
    expectMonotonicityReplays(['M1', file, '--runs', '20']);
  });

  it('M2: the shipped non-monotone policy', () => {
    expectMonotonicityReplays(['M2', 'examples/policies/broken/non-monotone.ts']);
  });

  it('M3: a scheduling anomaly of the static split (one more KV block, lower attainment)', () => {
    expectMonotonicityReplays(['M3', 'static', '--seed', '1', '--runs', '60']);
  });
});

describe('the replays pdspec check lists for its failures', () => {
  it('each replay line of the summary reproduces the counterexample of the report', () => {
    // broken/non-monotone.ts's panic at more than 8 waiting requests, keeping the split below it: the
    // explorer's few requests then never resize, and its search stays small.
    const policy = join(scratch, 'panics-above-8.ts');
    writeFileSync(policy, "export default { name: 'panics-above-8', claimsMonotone: true, decide: (o) => (o.prefillQueue.requests > 8 ? { split: { prefill: 30, decode: 70 } } : {}) };\n");
    const dir = join(scratch, 'check-report');
    const r = pdspec(['check', '--policy', policy, '--budget', '10', '--report', dir]);
    expect(r.status, r.stdout + r.stderr).toBe(1);
    const report = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')) as ReportData;
    const failures = report.policies.flatMap((p) => p.checks).filter((c) => c.status === 'fail');
    const replays = r.stdout.split('\n').filter((l) => /^\s+replay: /.test(l)).map((l) => l.replace(/^\s+replay: /, ''));
    expect(replays.length).toBeGreaterThan(0);
    expect(replays).toEqual(failures.map((c) => c.counterexample?.replay ?? c.replay));
    for (const [i, replay] of replays.entries()) expectReplayOfCheck(failures[i], replay, dir);
  }, 120_000);
});

describe("the explore replay check prints names the bound check searched", () => {
  // No policy makes the correct spec fail, so this is checked on the bound: the replay's flags give the explorer
  // the configuration check explored, mode by mode (disaggregated is searched at a smaller bound).
  it.each(['semi-pd', 'nexus', 'unified', 'disaggregated'] as const)('%s', (mode) => {
    const config = exploreConfigFor(mode);
    const [command, ...flags] = replayArgs(exploreReplay(mode, config));
    expect(command).toBe('explore');
    const { values } = parseArgs({ args: flags, options: { policy: { type: 'string' }, mode: { type: 'string' }, requests: { type: 'string' }, blocks: { type: 'string' } }, strict: true });
    expect(values.policy).toBe(mode);
    expect(configFromArgs(values)).toEqual(config);
  });
});

/** One failure of a check report against its replay: the trace file beside the report, or the M1–M3 pair. */
function expectReplayOfCheck(c: CheckResult, replay: string, dir: string): void {
  const args = replayArgs(replay);
  if (c.counterexample) {
    const again = outFile();
    const replayed = pdspec([...args, '--out', again]);
    expect(replayed.status, `${replay}\n${replayed.stderr}`).toBe(1);
    expect(readFileSync(again, 'utf8')).toBe(readFileSync(join(dir, c.counterexample.traceFile), 'utf8'));
    return;
  }
  expect(args[0]).toBe('monotonicity');
  const replayed = pdspec([...args, '--json']);
  expect(replayed.status, `${replay}\n${replayed.stderr}`).toBe(1);
  const ce = (JSON.parse(replayed.stdout) as { counterexample: { summary: string; lines: string[] } }).counterexample;
  // The report shows the counterexample as the pair that differs and what came of it.
  expect(c.pair).toEqual({ left: ce.lines[2] ?? '', right: ce.lines.slice(3).join('; '), outcome: ce.summary });
}
