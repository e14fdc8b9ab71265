// The exit-code contract: 0 holds, 1 a property was violated, 2 bad input or usage (one line, no stack
// trace), 70 an internal error (one line naming a crash file that holds the stack) — never 1 for a crash.
// Output paths and resource-hungry flags are refused before any work starts; printed replays reproduce
// exactly; a replay that names no failing case is bad input.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { EXIT, type Command } from '../cli/common.ts';
import { runCommand } from '../cli/main.ts';

const root = join(import.meta.dirname, '..');
const crashDir = mkdtempSync(join(tmpdir(), 'pdspec-crash-test-'));
const pdspec = (...args: string[]) =>
  spawnSync(process.execPath, [join(root, 'bin', 'pdspec.js'), ...args], { cwd: root, encoding: 'utf8', env: { ...process.env, PDSPEC_CRASH_DIR: crashDir } });

/** Bad input: exit 2, one line on stderr that matches `pattern`, no stack trace. */
function expectBadInput(r: ReturnType<typeof pdspec>, pattern: RegExp): void {
  expect(r.status, r.stdout + r.stderr).toBe(EXIT.badInput);
  expect(r.stderr).toMatch(pattern);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

describe('internal errors: exit 70 with a crash file, never 1', () => {
  it('an error escaping a command is one line naming the crash file; the file holds the stack', async () => {
    const boom: Command = { name: 'boom', summary: '', usage: 'boom', run: async () => (null as unknown as { x: number }).x };
    const lines: string[] = [];
    const spy = vi.spyOn(console, 'error').mockImplementation((m: unknown) => void lines.push(String(m)));
    const before = process.env.PDSPEC_CRASH_DIR;
    process.env.PDSPEC_CRASH_DIR = crashDir;
    try {
      expect(await runCommand(boom, ['--x'])).toBe(70);
    } finally {
      spy.mockRestore();
      if (before === undefined) delete process.env.PDSPEC_CRASH_DIR;
      else process.env.PDSPEC_CRASH_DIR = before;
    }
    expect(lines).toHaveLength(1);
    const m = /^pdspec boom: internal error \(not a verdict\): .+; details in (.+)$/.exec(lines[0]);
    expect(m, lines[0]).not.toBeNull();
    const crash = readFileSync(m![1], 'utf8');
    expect(crash).toContain('pdspec boom --x');
    expect(crash).toMatch(/TypeError/);
    expect(crash).toMatch(/\n\s+at /);
  });

  it('an error thrown outside any command (an uncaught exception in a callback) exits 70, not 1', () => {
    const script = `import { installCrashHandlers } from './cli/crash.ts'; installCrashHandlers(() => 'late'); setTimeout(() => { throw new Error('late failure'); }, 1);`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: root, encoding: 'utf8', env: { ...process.env, PDSPEC_CRASH_DIR: crashDir } });
    expect(r.status, r.stderr).toBe(70);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^pdspec late: internal error \(not a verdict\): late failure; details in /);
  });
});

describe('an engine crash in a campaign run is an internal error (70) with its replay, never a violation', () => {
  // An engine bug made to order: pdspec run in a process whose engine throws on every abort.
  const crashingEngine = [
    "import { Engine } from './engine/engine.ts';",
    "import { mainProcess } from './cli/main.ts';",
    "Engine.prototype.abortNow = function () { throw new TypeError('engine bug made by the test'); };",
    'process.exitCode = await mainProcess(process.argv.slice(1));',
  ].join('\n');
  const crashing = (...args: string[]) =>
    spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', crashingEngine, ...args], { cwd: root, encoding: 'utf8', env: { ...process.env, PDSPEC_CRASH_DIR: crashDir } });
  const replayWords = (replay: string) => replay.replace(/^npx pdspec /, '').match(/'[^']*'|\S+/g)!.map((a) => a.replace(/^'(.*)'$/, '$1'));

  /** The one stderr line of an internal error: its message, and the crash file's text. */
  function crashLine(stderr: string, command: string): { message: string; file: string } {
    const lines = stderr.trim().split('\n');
    expect(lines, stderr).toHaveLength(1);
    const m = new RegExp(`^pdspec ${command}: internal error \\(not a verdict\\): (.+); details in (.+)$`).exec(lines[0]);
    expect(m, lines[0]).not.toBeNull();
    return { message: m![1], file: readFileSync(m![2], 'utf8') };
  }

  it("pdspec campaign: exit 70, the replay printed, one line naming the crash file, which holds the engine's stack", () => {
    const out = join(mkdtempSync(join(tmpdir(), 'pdspec-crash-out-')), 'cex.jsonl');
    const r = crashing('campaign', '--runs', '50', '--seed', '1', '--out', out);
    expect(r.status, r.stdout + r.stderr).toBe(EXIT.internal);
    expect(r.stdout).toMatch(/^the engine crashed \(an internal error, not a verdict\) after \d+ run\(s\): TypeError: engine bug made by the test$/m);
    const replay = /^replay: (.*)$/m.exec(r.stdout)?.[1];
    expect(replay).toMatch(/^npx pdspec campaign --seed 1 --path [\d:]+ --replay-path '[^']*'$/);
    const { message, file } = crashLine(r.stderr, 'campaign');
    expect(message).toBe(`the engine crashed in a campaign run: TypeError: engine bug made by the test (replay: ${replay})`);
    expect(file).toMatch(/caused by: TypeError: engine bug made by the test\n\s+at Engine\.abortNow/);
    // No trace is written for a crash: the spec judged nothing, and a header alone would not conform.
    expect(existsSync(out)).toBe(false);
    // The replay crashes the same way, and names itself.
    const again = crashing(...replayWords(replay!), '--json');
    expect(again.status, again.stderr).toBe(EXIT.internal);
    const json = JSON.parse(again.stdout);
    expect([json.ok, json.failure.property, json.replay]).toEqual([false, 'crash', replay]);
    expect(json.failure).not.toHaveProperty('error');
    expect(crashLine(again.stderr, 'campaign').message).toContain(replay);
  });

  it('pdspec check: the campaign is an error with its replay, the report says internal error, exit 70 with a crash file', () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'pdspec-crash-report-')), 'report');
    const r = crashing('check', '--policy', 'static', '--budget', '10', '--report', dir, '--json');
    expect(r.status, r.stdout + r.stderr).toBe(EXIT.internal);
    const data = JSON.parse(r.stdout);
    expect(data.verdict).toBe('internal-error');
    expect(JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')).verdict).toBe('internal-error');
    expect(readFileSync(join(dir, 'index.html'), 'utf8')).toContain('Internal error</span>: the engine crashed');
    const campaign = data.policies[0].checks.find((c: { check: string }) => c.check === 'campaign');
    expect(campaign).toMatchObject({ status: 'error', property: 'engine crash', family: 'internal error' });
    expect(campaign.replay).toMatch(/^npx pdspec campaign --seed 1 --path [\d:]+ --replay-path '[^']*' --modes semi-pd --policy static$/);
    const { message, file } = crashLine(r.stderr, 'check');
    expect(message).toBe(`the engine crashed in the campaign of static: TypeError: engine bug made by the test (replay: ${campaign.replay})`);
    expect(file).toMatch(/caused by: TypeError: engine bug made by the test/);
    // The other checks ran and are reported.
    expect(data.policies[0].checks.find((c: { check: string }) => c.check === 'explore').status).toBe('pass');
  });
});

describe('output paths are checked before any work starts', () => {
  it('an unwritable --trace-out, --out or --report is bad input naming the flag', () => {
    const missing = join(mkdtempSync(join(tmpdir(), 'pdspec-out-')), 'no-such-dir');
    expectBadInput(pdspec('run', '--workload', 'poisson', '--requests', '3', '--trace-out', join(missing, 'x.jsonl')), /--trace-out .*no-such-dir\/x\.jsonl: cannot write the file \(no such directory\)/);
    expectBadInput(pdspec('campaign', '--runs', '5', '--out', join(missing, 'x.jsonl')), /--out .*no-such-dir\/x\.jsonl: cannot write the file/);
    expectBadInput(pdspec('explore', '--requests', '2', '--out', tmpdir()), /--out .*: cannot write the file \(it is a directory\)/);
    expectBadInput(pdspec('check', '--report', '/dev/null/report'), /--report \/dev\/null\/report: cannot write into the directory/);
    expectBadInput(pdspec('sweep', '--report', '/proc/pdspec-report'), /--report \/proc\/pdspec-report: cannot write/);
    expectBadInput(pdspec('run', '--workload', 'poisson', '--requests', '3', '--report', '/proc/pdspec-report'), /--report \/proc\/pdspec-report: cannot write/);
  });
});

describe('resource-hungry flags are refused up front, with the limit', () => {
  it('pools, workloads, swarms and sweep rates beyond the documented limits', () => {
    expectBadInput(pdspec('run', '--workload', 'poisson', '--requests', '3', '--blocks', '10000000000'), /blocks must be at most 16,777,216 per pool/);
    expectBadInput(pdspec('run', '--workload', 'poisson', '--requests', '1000000000'), /at most 2,000,000 requests/);
    expectBadInput(pdspec('run', '--workload', 'poisson', '--duration', '1e12'), /at most 2,000,000 requests/);
    expectBadInput(pdspec('explore', '--workers', '1000', '--requests', '2'), /--workers must be at most 64/);
    expectBadInput(pdspec('sweep', '--rates', '1e308'), /--rates must be at most 10,000/);
    expectBadInput(pdspec('sweep', '--duration', '1e9'), /--duration must be at most 3,600/);
    expectBadInput(pdspec('sweep', '--rates', '10000', '--duration', '3600'), /--rates × --duration must be at most 2,000,000/);
  });
});

describe('explore --merge reads shards, not any JSON', () => {
  it('an object that is not a shard output is bad input', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pdspec-merge-'));
    for (const [name, body, pattern] of [
      ['empty.json', '{}', /verdict must be verified, violated or incomplete/],
      ['list.json', '[]', /not a JSON object/],
      ['noevents.json', JSON.stringify({ verdict: 'verified', config: {}, states: 1 }), /config/],
    ] as const) {
      writeFileSync(join(dir, name), body);
      expectBadInput(pdspec('explore', '--merge', join(dir, name)), new RegExp(`${name}: not the --json output of a shard \\(.*${pattern.source}`));
    }
  });
});

describe('replays', () => {
  it('a campaign replay that names no failing case is bad input, not "every property held"', () => {
    expectBadInput(pdspec('campaign', '--path', '99999999'), /run index 99999999 is beyond/);
    expectBadInput(pdspec('campaign', '--runs', '10', '--replay-path', 'zzzz'), /--replay-path goes with the --path/);
    expectBadInput(pdspec('campaign', '--seed', '3', '--path', '5'), /the replay --seed 3 --path 5 runs no failing case/);
  });

  it('a printed campaign replay reproduces the counterexample byte for byte', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pdspec-replay-'));
    const first = pdspec('campaign', '--fault', 'duplicateRelease', '--runs', '300', '--seed', '1', '--out', join(dir, 'first.jsonl'), '--json');
    expect(first.status, first.stderr).toBe(EXIT.violated);
    const replay = JSON.parse(first.stdout).replay as string;
    const args = replay.replace(/^npx pdspec /, '').match(/'[^']*'|\S+/g)!.map((a) => a.replace(/^'(.*)'$/, '$1'));
    const again = pdspec(...args, '--out', join(dir, 'again.jsonl'));
    expect(again.status, again.stderr).toBe(EXIT.violated);
    expect(readFileSync(join(dir, 'again.jsonl'), 'utf8')).toBe(readFileSync(join(dir, 'first.jsonl'), 'utf8'));
  });

  it('the campaign takes the --policy that check prints in its replays; a policy that faults is bad input', () => {
    expect(pdspec('campaign', '--runs', '20', '--seed', '1', '--modes', 'semi-pd', '--policy', 'static').status).toBe(EXIT.holds);
    expectBadInput(pdspec('campaign', '--seed', '1', '--path', '0', '--modes', 'semi-pd', '--policy', 'static'), /runs no failing case/);
    const throws = join(mkdtempSync(join(tmpdir(), 'pdspec-policy-')), 'always-throws.ts');
    writeFileSync(throws, "export default { name: 'always-throws', interval: 0.001, decide() { throw new Error('boom'); } };\n");
    expectBadInput(pdspec('campaign', '--runs', '50', '--seed', '1', '--modes', 'semi-pd', '--policy', throws), /policy 'always-throws' fault \(threw\) at t=.*: decide threw: boom/);
    expectBadInput(pdspec('campaign', '--runs', '5', '--policy', 'no-such-policy'), /cannot load policy 'no-such-policy'/);
  });

  it('the replay of a swarm keeps --workers and finds the same counterexample', () => {
    const first = pdspec('explore', '--requests', '2', '--variant', 'lockless-allocator', '--workers', '2', '--json');
    expect(first.status, first.stderr).toBe(EXIT.violated);
    const a = JSON.parse(first.stdout);
    expect(a.replay).toContain('--workers 2');
    const again = pdspec(...(a.replay as string).replace(/^npx pdspec /, '').split(' '), '--json');
    expect(again.status).toBe(EXIT.violated);
    expect(JSON.parse(again.stdout).finding).toEqual(a.finding);
  });
});

describe('reports are written atomically, one run per directory', () => {
  const base = mkdtempSync(join(tmpdir(), 'pdspec-report-'));

  it('a second run replaces the first whole: no file of the first is left beside it', () => {
    const dir = join(base, 'replace');
    expect(pdspec('explore', '--requests', '2', '--variant', 'lockless-allocator', '--report', dir).status).toBe(EXIT.violated);
    expect(readdirSync(dir).some((f) => f.startsWith('cex-'))).toBe(true);
    expect(pdspec('explore', '--requests', '2', '--report', dir).status).toBe(EXIT.holds);
    expect(readdirSync(dir).sort()).toEqual(['index.html', 'report.json']);
    expect(JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')).verdict).toBe('holds');
    expect(readdirSync(base).filter((f) => f.startsWith('replace.'))).toEqual([]);
  });

  it('a directory another live run is writing is refused; a lock left by a dead run is taken over', () => {
    const dir = join(base, 'locked');
    writeFileSync(`${dir}.lock`, `${process.pid}\n`);
    expectBadInput(pdspec('explore', '--requests', '2', '--report', dir), new RegExp(`another pdspec run \\(pid ${process.pid}\\) is writing this report`));
    writeFileSync(`${dir}.lock`, '2147483646\n');
    expect(pdspec('explore', '--requests', '2', '--report', dir).status).toBe(EXIT.holds);
    expect(existsSync(`${dir}.lock`)).toBe(false);
  });

  it('a directory holding other files is not overwritten', () => {
    const dir = join(base, 'foreign');
    mkdirSync(dir);
    writeFileSync(join(dir, 'notes.txt'), 'mine');
    expectBadInput(pdspec('explore', '--requests', '2', '--report', dir), /holds files that are not a pdspec report \(notes\.txt\)/);
    expect(readFileSync(join(dir, 'notes.txt'), 'utf8')).toBe('mine');
  });

  it('a run killed before its verdict leaves the earlier report as it was, and no page of its own', async () => {
    const dir = join(base, 'killed');
    expect(pdspec('explore', '--requests', '2', '--report', dir).status).toBe(EXIT.holds);
    const earlier = readFileSync(join(dir, 'report.json'), 'utf8');
    // A search of several seconds, killed part-way.
    const child = spawn(process.execPath, [join(root, 'bin', 'pdspec.js'), 'explore', '--requests', '3', '--report', dir], { cwd: root, stdio: 'ignore' });
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    await new Promise((r) => setTimeout(r, 3000));
    child.kill('SIGKILL');
    expect(await exited).toBeNull();
    expect(readFileSync(join(dir, 'report.json'), 'utf8')).toBe(earlier);
    expect(readdirSync(dir).sort()).toEqual(['index.html', 'report.json']);
  });
});
