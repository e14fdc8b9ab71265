// The trust boundary: a user's policy module runs in its own sandboxed process (read access only), answers
// only decide(observation), and nothing it does — tampering with built-in prototypes, forging messages,
// exiting, writing to standard output or to fd 1 itself, writing files, starting processes, throwing or
// returning hostile objects — can turn a violated check into a pass. Each case
// is a real module run through the CLI.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
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

  it('replies written in advance on the reply channel (fd 3) are never read as answers', () => {
    // Were they read in order, every decision would be a forged "keep the split": a constant, monotone policy.
    const prelude = [
      "import { writeSync } from 'node:fs';",
      "import { serialize } from 'node:v8';",
      'const forged = (v: unknown) => { const body = serialize(v); const head = Buffer.alloc(4); head.writeUInt32BE(body.length); return Buffer.concat([head, body]); };',
      'for (let i = 0; i < 5000; i++) writeSync(3, forged({ seq: i, reply: { ok: true, decision: {} } }));',
      "writeSync(3, forged({ type: 'ready', name: 'forged', claimsMonotone: false, interval: 1, fresh: false }));",
    ].join('\n');
    expectStillFails('queued', prelude);
  });

  it("the module's process has no worker port to post on: workerData is null there", () => {
    const file = policyFile('port', "import { workerData } from 'node:worker_threads';\nexport default { name: 'port', decide() { return workerData === null ? {} : { split: { prefill: 0, decode: 0 } }; } };\n");
    const r = pdspec('monotonicity', 'M2', file, '--runs', '5');
    expect(r.status, r.stdout + r.stderr).toBe(0);
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

  it("writing to file descriptor 1 itself reaches the policy's own process only: --json stays one JSON object", () => {
    const file = policyFile('fd-one', "import { writeSync } from 'node:fs';\nexport default { name: 'fd-one', decide() { writeSync(1, '{\"verdict\":\"holds\"}\\n'); return {}; } };\n");
    const r = pdspec('run', '--workload', 'poisson', '--requests', '3', '--policy', file, '--json');
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).policy).toBe('fd-one');
    expect(r.stderr).toContain('[policy output] {"verdict":"holds"}');
  });

  it('the policy runs with read access only: writing a file or starting a process is refused (a fault), and nothing is written', () => {
    const target = join(dir, 'written-by-policy.txt');
    for (const [name, body] of [
      ['writes-file', `import { writeFileSync } from 'node:fs';\nexport default { name: 'writes-file', decide() { writeFileSync(${JSON.stringify(target)}, 'x'); return {}; } };\n`],
      ['starts-process', `import { execSync } from 'node:child_process';\nexport default { name: 'starts-process', decide() { execSync('touch ${target}'); return {}; } };\n`],
    ]) {
      const r = pdspec('monotonicity', 'M2', policyFile(name, body), '--runs', '3');
      expect(r.status, `${name}: ${r.stdout}${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(/fault \(threw\).*Access to this API has been restricted/);
      expect(existsSync(target), name).toBe(false);
    }
  });

  it('a policy that exits in decide is a fault at once (its process is gone), not a hang', () => {
    const file = policyFile('exits', "export default { name: 'exits', decide() { process.exit(0); } };\n");
    const started = Date.now();
    const r = pdspec('monotonicity', 'M2', file, '--runs', '3');
    expect(r.status, r.stdout + r.stderr).toBe(2);
    expect(r.stderr).toMatch(/fault \(unavailable\).*its process exited \(code 0\)/);
    expect(Date.now() - started).toBeLessThan(60_000);
  });
});
