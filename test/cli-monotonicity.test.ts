// `pdspec monotonicity`: one property on one profile or policy, as the replay commands of reports run it.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');
const bin = join(root, 'bin', 'pdspec.js');

function pdspec(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, 'monotonicity', ...args], { cwd: root, encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The words of a replay command as the shell would split them (plain words and single-quoted ones). */
function words(command: string): string[] {
  return [...command.matchAll(/'((?:[^']|'\\'')*)'|(\S+)/g)].map((m) => (m[1] !== undefined ? m[1].replaceAll(`'\\''`, "'") : m[2]));
}

describe('pdspec monotonicity', () => {
  it('a property that holds: exit 0, and its replay command names the same run', () => {
    const r = pdspec('M2', 'static', '--runs', '20');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^M2 policy 'static': holds \(60 cases/);
    expect(r.stdout).toContain(`replay: npx pdspec monotonicity M2 static '{"seed":20250607,"numRuns":20,"clauses":["deterministic","prefill","decode"]}'`);
  });

  it('a counterexample: exit 1, and the printed replay command reproduces exactly that case', () => {
    const first = pdspec('M2', 'examples/policies/broken/non-monotone.ts');
    expect(first.status).toBe(1);
    const replay = /replay: (.*)/.exec(first.stdout)![1];
    const [npx, name, ...args] = words(replay);
    expect([npx, name, args[0]]).toEqual(['npx', 'pdspec', 'monotonicity']);
    const again = pdspec(...args.slice(1));
    expect(again.status).toBe(1);
    const counterexample = (out: string) => out.split('\n').filter((l) => /^\s+(counterexample|decide)/.test(l));
    expect(counterexample(again.stdout)).toEqual(counterexample(first.stdout));
    expect(counterexample(first.stdout).length).toBeGreaterThan(1);
    expect(again.stdout).toMatch(/FAILS \(1 cases/);
  });

  it('a policy that throws is bad input: exit 2 with the observation on one line', () => {
    const r = pdspec('M2', 'examples/policies/broken/throws.ts', '--runs', '50');
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/fault \(threw\) at t=.*prefill queue/);
  });

  it.each(['M2', 'M3'])('%s: a policy that hangs is stopped at its time budget and reported with the observation (exit 2)', (property) => {
    const started = performance.now();
    const r = pdspec(property, 'examples/policies/broken/hangs.ts', '--runs', '30');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/fault \(timeout\) at t=[\d.]+ s, split \d+\/\d+ .*prefill queue .*: decide did not return within 1000 ms \(a hang\?\); it was stopped/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(performance.now() - started).toBeLessThan(60_000);
  });

  it.each([
    [['M4', 'static'], /the property must be M1, M2 or M3/],
    [['M2'], /M2 needs a policy/],
    [['M2', 'no-such-policy'], /cannot load policy 'no-such-policy'/],
    [['M1', 'no-such-profile'], /unknown profile 'no-such-profile'/],
    [['M2', 'static', '{seed'], /OPTIONS is not valid JSON/],
    [['M3', 'static', '{"clauses":["prefill"]}'], /unknown clause "prefill" of M3 \(known: slo, slo-judging, blocks, sms\)/],
    [['M2', 'static', '{"path":"a:b"}'], /OPTIONS.path must be a fast-check path/],
  ])('bad input %j: exit 2, one line, no stack trace', (args, message) => {
    const r = pdspec(...args);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});
