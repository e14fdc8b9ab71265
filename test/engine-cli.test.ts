// `pdspec run`: a human summary or JSON, a trace that `pdspec conform --quiescent` accepts, and bad input
// as one line with exit 2 and no stack trace.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');
const pdspec = (...args: string[]) =>
  spawnSync(process.execPath, [join(root, 'bin', 'pdspec.js'), ...args], { cwd: root, encoding: 'utf8', env: { ...process.env, CI: 'true' } });
const dir = mkdtempSync(join(tmpdir(), 'pdspec-run-'));

describe('pdspec run', () => {
  it('--json reports the metrics, and --trace-out writes a trace that conforms with quiescence', () => {
    const trace = join(dir, 'run.jsonl');
    const r = pdspec('run', '--workload', 'azure-conv', '--requests', '200', '--rate', '8', '--policy', 'semi-pd', '--slo', '1,0.05', '--seed', '3', '--trace-out', trace, '--json');
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out).toMatchObject({ mode: 'semi-pd', policy: 'semi-pd', profile: 'llama3-8b-h100', executor: 'cost-model', seed: 3, trace });
    expect(out.metrics.requests).toEqual({ total: 200, finished: 200, aborted: 0, rejected: 0, live: 0 });
    expect(out.metrics.slo).toEqual({ ttft: 1, tpot: 0.05 });
    expect(out.metrics.sloAttainment).toBeGreaterThan(0);
    expect(out.metrics.sloAttainment).toBeLessThanOrEqual(1);
    expect(out.header.allocator).toBe('decode-owned');
    const c = pdspec('conform', trace, '--quiescent');
    expect(c.status, c.stderr).toBe(0);
    expect(c.stdout).toMatch(/conforms — \d+ events, 200 request\(s\), 200 ended, quiescent/);
  });

  it('--trace-out - pipes the trace into conform -, the summary on stderr; a reader that leaves early ends nothing badly', () => {
    const run = `"${process.execPath}" bin/pdspec.js run --workload azure-conv --requests 300 --rate 8 --policy semi-pd --seed 3 --trace-out -`;
    const piped = spawnSync('bash', ['-c', `${run} 2>"${join(dir, 'run.err')}" | "${process.execPath}" bin/pdspec.js conform - --quiescent; echo "status \${PIPESTATUS[0]} \${PIPESTATUS[1]}"`], { cwd: root, encoding: 'utf8', env: { ...process.env, CI: 'true' } });
    expect(piped.stdout).toMatch(/^\(stdin\): conforms — \d+ events, 300 request\(s\), 300 ended, quiescent\nstatus 0 0\n$/);
    // `head -1` closes the pipe after the header: the run still finishes, exit 0, no stack trace.
    const early = spawnSync('bash', ['-c', `${run} | head -1; echo "status \${PIPESTATUS[0]}"`], { cwd: root, encoding: 'utf8', env: { ...process.env, CI: 'true' } });
    expect(early.stdout).toMatch(/^\{"format":"pdspec-trace".*\nstatus 0\n$/);
    expect(early.stderr).toMatch(/trace: standard output/);
    expect(early.stderr).not.toMatch(/\n\s+at /);
  });

  it('prints a human summary by default, here for a user CSV in the unified mode without chunking', () => {
    const csv = join(dir, 'mine.csv');
    writeFileSync(csv, 'arrival,prompt,output\n0,100,10\n0.1,200,5\n0.2,50,20\n');
    const r = pdspec('run', '--workload', csv, '--mode', 'unified', '--no-chunking', '--blocks', '64', '--block-size', '8');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('pdspec run: unified, policy static');
    expect(r.stdout).toContain('requests: 3 finished, 0 aborted, 0 rejected');
    expect(r.stdout).toMatch(/TTFT\s+\d+\.\d{3}/);
    expect(r.stdout).toMatch(/SLO \(TTFT ≤ 2 s and TPOT ≤ 0\.1 s\): 100\.00 % attained/);
  });

  it('--fault turns on a bug-zoo switch, and conform rejects the trace', () => {
    const trace = join(dir, 'faulty.jsonl');
    const r = pdspec('run', '--workload', 'poisson', '--requests', '20', '--prompt-len', 'uniform:1:100', '--output-len', 'fixed:8', '--fault', 'duplicateRelease', '--trace-out', trace, '--json');
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).faults).toEqual(['duplicateRelease']);
    const c = pdspec('conform', trace, '--quiescent');
    expect(c.status).toBe(1);
    expect(c.stderr).toMatch(/violation of FreeListUnique/);
  });

  it('bad input: exit 2, one line naming what is wrong, no stack trace', () => {
    const bad = join(dir, 'bad.csv');
    writeFileSync(bad, 'arrival,prompt,output\n0,100,10\n1,-5,10\n');
    for (const [args, pattern] of [
      [['--workload', bad], /bad\.csv:3: field 'prompt' must be an integer ≥ 1, got '-5'/],
      [['--workload', 'azure-conv', '--mode', 'sideways'], /--mode must be one of semi-pd, nexus, disaggregated, unified/],
      [['--workload', 'azure-conv', '--slo', 'fast'], /--slo must be TTFT,TPOT/],
      [['--workload', 'azure-conv', '--policy', 'no-such-policy'], /cannot load policy 'no-such-policy'/],
      [['--workload', 'azure-conv', '--mode', 'nexus', '--split', '80:100'], /breaks the exact share rule/],
      [['--workload', 'azure-conv', '--executor', 'tpu'], /--executor must be one of cost-model, cpu, webgpu/],
      [['--requests', '5'], /--workload is required/],
      [['--workload', 'azure-conv', '--fault', 'gremlins'], /unknown --fault 'gremlins' \(known: duplicateRelease/],
      [['--workload', 'azure-conv', '--mode', 'unified', '--split', '50:50'], /the unified mode has no split to choose/],
    ] as const) {
      const r = pdspec('run', ...args);
      expect(r.status, `${args.join(' ')}\n${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(pattern);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
  });
});
