// The command line: documented verdicts and exit codes, JSON output, and bad input without stack traces.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');
const pdspec = (...args: string[]) => spawnSync(process.execPath, [join(root, 'bin', 'pdspec.js'), ...args], { cwd: root, encoding: 'utf8' });

describe('pdspec conform', () => {
  it('exit 0 and a one-line summary for a conforming trace', () => {
    const r = pdspec('conform', 'examples/traces/semi-pd-resize.jsonl', '--quiescent');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/conforms — 44 events, 3 request\(s\), 3 ended, quiescent/);
  });

  it('exit 1 naming the line, the rule and the conforming prefix', () => {
    const r = pdspec('conform', 'examples/traces/zoo/z03-free-while-next-step-in-flight.jsonl');
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('z03-free-while-next-step-in-flight.jsonl:14: violation of NoFreeWhileInFlight');
    expect(r.stderr).toContain('step 3 of U0');
    expect(r.stderr).toContain('conforming prefix: lines 1–13');
  });

  it('--json prints the verdict as one JSON object', () => {
    const r = pdspec('conform', 'examples/traces/zoo/z13-lockless-allocation.jsonl', '--json');
    expect(r.status).toBe(1);
    const v = JSON.parse(r.stdout);
    expect(v).toMatchObject({ verdict: 'violation', conformingPrefix: 14, finding: { line: 15, rule: 'SingleOwner', kind: 'guard', machine: 'pool' } });
  });

  it('exit 2 with the line and no stack trace for unreadable input', () => {
    for (const [file, pattern] of [
      ['examples/traces/bad-input/truncated.jsonl', /:3: bad input: truncated/],
      ['examples/traces/bad-input/unknown-event.jsonl', /:2: bad input: unknown event 'swap_out'/],
      ['no/such/file.jsonl', /bad input: no such file/],
      ['examples', /bad input: examples is a directory/],
    ] as const) {
      const r = pdspec('conform', file);
      expect(r.status, file).toBe(2);
      expect(r.stderr, file).toMatch(pattern);
      expect(r.stderr, file).not.toMatch(/\n\s+at /);
    }
  });

  it('an empty file is bad input', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pdspec-'));
    writeFileSync(join(dir, 'empty.jsonl'), '');
    const r = pdspec('conform', join(dir, 'empty.jsonl'));
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/empty trace/);
  });

  it('- reads the trace from standard input, and gives a violation without waiting for the end', async () => {
    const { readFileSync } = await import('node:fs');
    const { spawn } = await import('node:child_process');
    const piped = (text: string) => spawnSync(process.execPath, [join(root, 'bin', 'pdspec.js'), 'conform', '-', '--quiescent'], { cwd: root, encoding: 'utf8', input: text });
    const resize = readFileSync(join(root, 'examples/traces/semi-pd-resize.jsonl'), 'utf8');
    const ok = piped(resize);
    expect(ok.status).toBe(0);
    expect(ok.stdout).toMatch(/^\(stdin\): conforms — 44 events/);
    const bad = piped(`${resize.split('\n')[0]}\n{nope\n`);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/^\(stdin\):2: bad input: not valid JSON/);
    // A writer that keeps its end open: the verdict comes at the offending line.
    const child = spawn(process.execPath, [join(root, 'bin', 'pdspec.js'), 'conform', '-'], { cwd: root });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((done) => child.on('close', done));
    child.stdin.write(readFileSync(join(root, 'examples/traces/zoo/z03-free-while-next-step-in-flight.jsonl')));
    const status = await exited;
    child.stdin.destroy();
    expect(status).toBe(1);
    expect(stderr).toContain('(stdin):14: violation of NoFreeWhileInFlight');
  });

  it('usage errors exit 2', () => {
    expect(pdspec('conform').status).toBe(2);
    expect(pdspec('conform', 'a.jsonl', '--frobnicate').status).toBe(2);
    expect(pdspec('no-such-command').status).toBe(2);
  });
});

describe('pdspec explore', () => {
  it('a --max-states beyond what this process can hold is refused before the search: exit 2, one line', () => {
    const r = pdspec('explore', '--max-states', '999999999');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--max-states 999999999 would need about \d+ MiB; this process holds at most \d+ states/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.stdout).toBe('');
  });
});

describe('pdspec diagram', () => {
  it('prints the machines as Mermaid state diagrams', () => {
    const out = execFileSync(process.execPath, [join(root, 'bin', 'pdspec.js'), 'diagram'], { cwd: root, encoding: 'utf8' });
    for (const m of ['request', 'block', 'pool', 'allocator', 'worker', 'partition', 'slot', 'task', 'buffer']) expect(out).toContain(`%% ${m}:`);
    expect(out.match(/stateDiagram-v2/g)?.length).toBe(9);
    expect(out).toContain('decoding --> retracting: preempt [servedBy, noTokenOwed]');
  });

  it('an unknown machine is a usage error', () => {
    expect(pdspec('diagram', '--machine', 'scheduler').status).toBe(2);
  });
});
