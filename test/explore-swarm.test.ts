// Swarm search (`pdspec explore --shard I/N`, `--workers N`, `--merge`): members are seeded randomized
// depth-first searches; a violation any of them finds is a real counterexample that conform rejects and its
// replay command finds again; a member that exhausts the bound verifies safety with exact counts; members
// that run out of budget prove nothing, and say so.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG, type ExploreConfig } from '../properties/explore/config.ts';
import { counterexampleLines } from '../properties/explore/counterexample.ts';
import { explore } from '../properties/explore/explorer.ts';
import { mergeResults } from '../properties/explore/parallel.ts';
import { swarmSearch } from '../properties/explore/swarm.ts';
import { SAFETY_VARIANTS } from '../properties/explore/variants.ts';
import { checkText } from '../spec/checker.ts';

const root = join(import.meta.dirname, '..');
const bin = join(root, 'bin', 'pdspec.js');
const tmp = mkdtempSync(join(tmpdir(), 'pdspec-swarm-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function pdspec(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd: root, encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const config = (over: Partial<ExploreConfig> = {}): ExploreConfig => ({ ...DEFAULT_CONFIG, ...over });
const small = { requests: 2, blocks: 3 };

describe('a swarm member', () => {
  it.each(SAFETY_VARIANTS)('refutes %s with a counterexample that conform rejects at the same rule', (variant) => {
    const r = swarmSearch(config({ variant }), { index: 1, count: 4, seed: 11 });
    expect(r.verdict).toBe('violated');
    const f = r.finding!;
    const verdict = checkText(counterexampleLines(config({ variant }), f, `npx pdspec explore --variant ${variant} --shard 1/4 --seed 11`).join('\n'));
    expect(verdict.verdict).toBe('violation');
    expect(verdict.verdict === 'violation' && verdict.finding.rule).toBe(f.rule);
    // The same member (index, count, seed) takes the same path.
    expect(swarmSearch(config({ variant }), { index: 1, count: 4, seed: 11 }).finding!.trace).toEqual(f.trace);
  });

  it('that exhausts the bound verifies its safety with the exhaustive search’s exact count', () => {
    const exhaustive = explore(config(small));
    const member = swarmSearch(config(small), { index: 0, count: 2, seed: 5 });
    expect(member.verdict).toBe('verified');
    expect(member.states).toBe(exhaustive.states);
    // Merged with a member that ran out of budget, the swarm keeps the complete member's counts.
    const starved = swarmSearch(config(small), { index: 1, count: 2, seed: 5 }, 100);
    expect(starved.verdict).toBe('incomplete');
    const merged = mergeResults([starved, member]);
    expect([merged.verdict, merged.states, merged.transitions]).toEqual(['verified', exhaustive.states, exhaustive.transitions]);
  });
});

describe('pdspec explore as a swarm', () => {
  it('--shard members, merged with --merge, give the swarm verdict; a violation replays from its command', () => {
    const files = [0, 1].map((i) => {
      const file = join(tmp, `shard-${i}.json`);
      const r = pdspec('explore', '--variant', 'duplicate-release', '--shard', `${i}/2`, '--seed', '3', '--json');
      expect(r.status).toBe(1);
      expect(JSON.parse(r.stdout).verdict).toBe('violated');
      writeFileSync(file, r.stdout);
      return file;
    });
    const merged = pdspec('explore', '--merge', ...files);
    expect(merged.status).toBe(1);
    expect(merged.stdout).toMatch(/violation of FreeListUnique/);
    expect(merged.stdout).toMatch(/not necessarily the shortest/);
    const replay = /reproduce: npx pdspec explore (.*)/.exec(merged.stdout)![1].split(' ');
    expect(replay).toEqual(expect.arrayContaining(['--shard', '--seed', '3']));
    const again = pdspec('explore', ...replay);
    expect(again.status).toBe(1);
    const trace = (out: string) => out.split('\n').filter((l) => /^\s+\d+ {2}/.test(l));
    expect(trace(again.stdout).length).toBeGreaterThan(0);
    expect(trace(again.stdout)).toEqual(trace(merged.stdout));
  });

  it('--workers runs the members on threads; a member that exhausts the bound makes it a pass for safety', () => {
    const r = pdspec('explore', '--requests', '2', '--blocks', '3', '--workers', '2');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/every state of the bound visited by one member of the swarm: .*19,430 distinct states/);
  });

  it('members that run out of budget find nothing and say it is not a proof (exit 0)', () => {
    const r = pdspec('explore', '--shard', '0/2', '--max-states', '2000');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/no violation found by the swarm \(randomized searches, not a proof/);
  });
});
