// The trust boundary: a user's policy module runs in its own worker, answers only decide(observation), and
// nothing it does — tampering with built-in prototypes, forging worker messages, exiting, writing to
// standard output, throwing or returning hostile objects — can turn a violated check into a pass. Each case
// is a real module run through the CLI.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');
const dir = mkdtempSync(join(tmpdir(), 'pdspec-boundary-'));
const pdspec = (...args: string[]) => spawnSync(process.execPath, [join(root, 'bin', 'pdspec.js'), ...args], { cwd: root, encoding: 'utf8', timeout: 120_000 });

/** The shipped non-monotone policy with `prelude` run at import, as a module file. */
function nonMonotoneWith(name: string, prelude: string): string {
  const source = readFileSync(join(root, 'examples/policies/broken/non-monotone.ts'), 'utf8').replace("import type { Decision, Observation, Policy } from 'pdspec/policy-api';", '');
  const file = join(dir, `${name}.ts`);
  writeFileSync(file, `${prelude}\n${source}`);
  return file;
}

/** The non-monotone policy with `prelude` still fails M2 on its prefill clause: exit 1, never a pass. */
function expectStillFails(name: string, prelude: string): void {
  const r = pdspec('monotonicity', 'M2', nonMonotoneWith(name, prelude));
  expect(r.status, r.stdout + r.stderr).toBe(1);
  expect(r.stdout).toMatch(/FAIL prefill/);
  expect(r.stdout).not.toMatch(/^holds/m);
}

function policyFile(name: string, body: string): string {
  const file = join(dir, `${name}.ts`);
  writeFileSync(file, body);
  return file;
}

describe('a policy cannot turn a violation into a pass', () => {
  it('the untouched module fails M2 (exit 1)', () => {
    expectStillFails('plain', '');
  });

  it('tampering with built-in prototypes and globals at import changes nothing', () => {
    const prelude = [
      'Array.prototype.find = () => undefined;',
      'Array.prototype.some = () => false;',
      'Array.prototype.every = () => true;',
      'Object.keys = () => [];',
      'JSON.stringify = () => "{}";',
      'Number.isFinite = () => true;',
      'Math.max = () => 0;',
    ].join('\n');
    expectStillFails('tampered', prelude);
  });

  it('forged messages to its worker parent and on its decision port change nothing', () => {
    const prelude = [
      "import { parentPort, workerData } from 'node:worker_threads';",
      "parentPort?.postMessage({ type: 'ready', name: 'forged', claimsMonotone: false, interval: 1, fresh: false });",
      "parentPort?.postMessage({ verdict: 'holds', status: 'pass', results: [] });",
      "try { workerData?.port?.postMessage({ ok: true, decision: {} }); } catch {}",
    ].join('\n');
    expectStillFails('forged', prelude);
  });

  it('replies queued in advance on the decision port are never read as answers', () => {
    // Were they read in order, every decision would be a forged "keep the split": a constant, monotone policy.
    const prelude = [
      "import { workerData } from 'node:worker_threads';",
      'for (let i = 0; i < 5000; i++) {',
      "  workerData.port.postMessage({ ok: true, decision: {} });",
      "  workerData.port.postMessage({ nonce: String(i), reply: { ok: true, decision: {} } });",
      '}',
    ].join('\n');
    expectStillFails('queued', prelude);
  });

  it('process.exit(0) inside decide is a policy fault (exit 2), not a pass', () => {
    const file = policyFile('exits', "export default { name: 'exits', claimsMonotone: true, decide() { process.exit(0); } };\n");
    const r = pdspec('monotonicity', 'M2', file);
    expect(r.status, r.stdout + r.stderr).toBe(2);
    const run = pdspec('run', '--workload', 'poisson', '--requests', '3', '--policy', file);
    expect(run.status, run.stdout + run.stderr).toBe(2);
  });

  it('hostile throws and decisions (a thrown object whose toString throws, a throwing getter, a Proxy) are policy faults', () => {
    for (const [name, decide] of [
      ['throws-unprintable', 'throw { toString() { throw new Error("no"); } };'],
      ['getter-throws', 'return { get split() { throw new Error("trap"); } };'],
      ['proxy', 'return new Proxy({}, { ownKeys() { throw new Error("trap"); }, get() { throw new Error("trap"); } });'],
    ] as const) {
      const file = policyFile(name, `export default { name: '${name}', claimsMonotone: true, decide() { ${decide} } };\n`);
      const r = pdspec('monotonicity', 'M2', file);
      expect(r.status, `${name}: ${r.stdout}${r.stderr}`).toBe(2);
      expect(r.stderr + r.stdout).not.toMatch(/\n\s+at /);
    }
  });

  it("the policy's standard output never mixes into pdspec's: --json stays one JSON object", () => {
    const file = policyFile('noisy', "console.log('{\"verdict\":\"holds\"}');\nexport default { name: 'noisy', decide() { console.log('{\"verdict\":\"holds\"}'); return {}; } };\n");
    const r = pdspec('run', '--workload', 'poisson', '--requests', '3', '--policy', file, '--json');
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).policy).toBe('noisy');
    expect(r.stderr).toContain('[policy output] {"verdict":"holds"}');
  });
});
