// The published package: `npm pack` (which builds dist/ with the TypeScript compiler in prepack) of a copy of
// the working tree, installed into an empty project with no TypeScript tooling, where plain Node imports every
// export, runs a conform, a policy check and the matcher through the API, and runs the `pdspec` command.
// Nothing is written into the repository: the copy, the tarball and the project are temporary directories.
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');
const scratch = mkdtempSync(join(tmpdir(), 'pdspec-package-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
const npm = (args: string[], cwd: string) => spawnSync('npm', args, { cwd, encoding: 'utf8', env: { ...process.env, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' } });

let project = '';
let packSeconds = 0;
let installSeconds = 0;

beforeAll(() => {
  // The files a commit would hold (tracked, and new ones not ignored), as they are in the working tree.
  const copy = join(scratch, 'source');
  const files = execFileSync('git', ['ls-files', '-co', '--exclude-standard', '-z'], { cwd: root, encoding: 'utf8' }).split('\0').filter((f) => f !== '' && existsSync(join(root, f)));
  for (const file of files) {
    mkdirSync(dirname(join(copy, file)), { recursive: true });
    cpSync(join(root, file), join(copy, file));
  }
  symlinkSync(join(root, 'node_modules'), join(copy, 'node_modules'), 'dir');
  const out = join(scratch, 'pack');
  mkdirSync(out);
  let t0 = performance.now();
  const packed = npm(['pack', '--pack-destination', out, '--silent'], copy);
  packSeconds = (performance.now() - t0) / 1000;
  if (packed.status !== 0) throw new Error(`npm pack failed: ${packed.stderr}`);
  const tarball = join(out, readdirSync(out).find((f) => f.endsWith('.tgz'))!);

  project = join(scratch, 'project');
  mkdirSync(project);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'uses-pdspec', private: true, type: 'module' }));
  t0 = performance.now();
  // From the local cache where it can (the repository's own install filled it); the registry otherwise.
  let installed = npm(['install', '--offline', '--no-save', '--ignore-scripts', tarball], project);
  if (installed.status !== 0) installed = npm(['install', '--prefer-offline', '--no-save', '--ignore-scripts', tarball], project);
  installSeconds = (performance.now() - t0) / 1000;
  if (installed.status !== 0) throw new Error(`npm install of the tarball failed: ${installed.stderr}`);
  console.log(`package test: npm pack (with the build) ${packSeconds.toFixed(1)} s, install ${installSeconds.toFixed(1)} s`);
}, 600_000);

describe('the packed package, installed in a project without TypeScript', () => {
  it('ships compiled JavaScript and types, not TypeScript sources', () => {
    const pkg = join(project, 'node_modules', 'pdspec');
    expect(existsSync(join(pkg, 'dist', 'api', 'index.js'))).toBe(true);
    expect(existsSync(join(pkg, 'dist', 'api', 'index.d.ts'))).toBe(true);
    expect(existsSync(join(pkg, 'dist', 'engine', 'policy-api.d.ts'))).toBe(true);
    expect(existsSync(join(pkg, 'dist', 'data', 'profiles', 'llama3-8b-h100.json'))).toBe(true);
    const sources = execFileSync('find', [pkg, '-name', '*.ts', '-not', '-name', '*.d.ts'], { encoding: 'utf8' }).trim();
    // The examples are documentation a user copies; nothing the package runs is a .ts file.
    expect(sources.split('\n').filter((f) => f !== '' && !f.includes('/examples/'))).toEqual([]);
    expect(existsSync(join(project, 'node_modules', 'typescript'))).toBe(false);
  });

  it('plain Node imports every export and runs a conform, a policy check and the matcher through the API', () => {
    writeFileSync(
      join(project, 'use.mjs'),
      `import { readFileSync, createReadStream } from 'node:fs';
import * as pdspec from 'pdspec';
import * as policyApi from 'pdspec/policy-api';
import { matchers } from 'pdspec/vitest';
import pkg from 'pdspec/package.json' with { type: 'json' };

const out = { exports: Object.keys(pdspec).length, policyApi: Object.keys(policyApi).length, version: pkg.version };
const examples = new URL('./node_modules/pdspec/examples/traces/', import.meta.url);
const lines = readFileSync(new URL('semi-pd-resize.jsonl', examples), 'utf8').trim().split('\\n');
const checker = pdspec.createChecker(JSON.parse(lines[0]), { quiescent: true });
for (const line of lines.slice(1)) checker.check(JSON.parse(line));
out.streaming = checker.end().verdict;
const bad = await pdspec.conform(createReadStream(new URL('zoo/z03-free-while-next-step-in-flight.jsonl', examples)));
out.conform = [bad.verdict, bad.finding.rule, bad.finding.line];
out.matcher = [matchers.toConform(lines.join('\\n')).pass, matchers.toConform(lines.slice(0, 20).join('\\n'), { quiescent: true }).pass];
const m2 = await pdspec.checkPolicy('semi-pd', { numRuns: 20, seed: 3 });
out.m2 = [m2.property, m2.clauses.find((c) => c.clause === 'deterministic').holds];
const handle = await pdspec.loadPolicy('./node_modules/pdspec/examples/policies/queue-balance.ts', { profile: pdspec.loadProfile() });
out.policy = [handle.name, handle.isolated];
await handle.close();
const exec = await pdspec.loadPolicy('exec:node exec-policy.mjs', { profile: pdspec.loadProfile() });
const p = { p50: 0.1, p90: 0.2, p99: 0.3, count: 5 };
out.exec = [exec.name, exec.decide({ time: 1, split: { prefill: 80, decode: 100 }, shareRule: 'oversubscribe', prefillQueue: { requests: 0, tokens: 0, promptLengths: [] }, decodeBatch: { requests: 0, contextTokens: 0 }, kvUsage: 0, arrivalRate: 0, ttft: p, tpot: p, slo: { ttft: 1, tpot: 0.1 } })];
await exec.close();
const explored = pdspec.explore({ ...pdspec.DEFAULT_CONFIG, requests: 1, blocks: 2, resizes: 0, aborts: 0, preemptions: 0 });
out.explore = explored.verdict;
// Every machine of the composition, exported as its XState definition (NAMEMachine), for Stately's tools.
out.machines = Object.keys(pdspec.MACHINES).map((name) => [name, typeof pdspec[name + 'Machine']?.config, typeof pdspec[name + 'Machine']?.id]);
console.log(JSON.stringify(out));
`,
    );
    // A policy in another language than TypeScript: here a Node script speaking the JSON Lines protocol.
    writeFileSync(
      join(project, 'exec-policy.mjs'),
      `import { createInterface } from 'node:readline';
const out = (m) => process.stdout.write(JSON.stringify(m) + '\\n');
let started = false;
createInterface({ input: process.stdin }).on('line', (line) => {
  const m = JSON.parse(line);
  if (!started) { started = true; return out({ type: 'hello', protocol: 'pdspec-policy', version: 1, name: 'js-exec' }); }
  if (m.type === 'observe') out({ type: 'decision', seq: m.seq, decision: { split: { prefill: 70, decode: 100 } } });
});
`,
    );
    const r = spawnSync(process.execPath, ['use.mjs'], { cwd: project, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(out.exports).toBeGreaterThan(60);
    expect(out.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(out.streaming).toBe('conforms');
    expect(out.conform).toEqual(['violation', 'NoFreeWhileInFlight', 14]);
    expect(out.matcher).toEqual([true, false]);
    expect(out.m2).toEqual(['M2', true]);
    expect(out.policy).toEqual(['queue-balance', true]);
    expect(out.exec).toEqual(['js-exec', { split: { prefill: 70, decode: 100 } }]);
    expect(out.explore).toBe('verified');
    expect(out.machines.length).toBeGreaterThanOrEqual(7);
    for (const [name, config, id] of out.machines) expect([name, config, id]).toEqual([name, 'object', 'string']);
  });

  it('npx pdspec runs the compiled CLI: --version, --help, conform with its exit codes', () => {
    const bin = join(project, 'node_modules', '.bin', 'pdspec');
    const version = spawnSync(bin, ['--version'], { cwd: project, encoding: 'utf8' });
    expect(version.status).toBe(0);
    expect(version.stdout.trim()).toMatch(/^pdspec \d+\.\d+\.\d+/);
    const help = spawnSync(bin, ['conform', '--help'], { cwd: project, encoding: 'utf8' });
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('usage: pdspec conform');
    const examples = join(project, 'node_modules', 'pdspec', 'examples', 'traces');
    expect(spawnSync(bin, ['conform', join(examples, 'semi-pd-resize.jsonl'), '--quiescent'], { cwd: project }).status).toBe(0);
    const bad = spawnSync(bin, ['conform', join(examples, 'zoo', 'z03-free-while-next-step-in-flight.jsonl')], { cwd: project, encoding: 'utf8' });
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain(':14: violation of NoFreeWhileInFlight');
    expect(spawnSync(bin, ['conform', 'no-such.jsonl'], { cwd: project }).status).toBe(2);
  });
});
