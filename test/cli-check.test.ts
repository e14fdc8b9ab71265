// `pdspec check`, `sweep`, `explore --report` and `run --report` as a user runs them: exit codes, the
// report they write, and the check report as headless Chromium draws it.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromiumUnavailable, launchChromium } from '../cli/report/chromium.ts';
import type { ReportData } from '../properties/report-data.ts';

const root = join(import.meta.dirname, '..');
const bin = join(root, 'bin', 'pdspec.js');
const env = { ...process.env, CI: 'true' };
const why = await chromiumUnavailable();
if (why) console.warn(`cli-check: the browser test is skipped — ${why}`);
const tmp = mkdtempSync(join(tmpdir(), 'pdspec-cli-check-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Ran {
  status: number | null;
  stdout: string;
  stderr: string;
}

function pdspec(...args: string[]): Ran {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd: root, encoding: 'utf8', env });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The same, without blocking: the three `check` runs below go side by side. */
function pdspecAsync(...args: string[]): Promise<Ran> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [bin, ...args], { cwd: root, env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (status) => done({ status, stdout, stderr }));
  });
}

function reportOf(dir: string): ReportData {
  return JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')) as ReportData;
}

describe('pdspec check --policy FILE', () => {
  const dirs = { good: join(tmp, 'good'), broken: join(tmp, 'broken'), throws: join(tmp, 'throws') };
  const runs: Partial<Record<keyof typeof dirs, Ran>> = {};

  beforeAll(async () => {
    const [good, broken, throws] = await Promise.all([
      pdspecAsync('check', '--policy', './examples/policies/queue-balance.ts', '--budget', '10', '--report', dirs.good),
      pdspecAsync('check', '--policy', './examples/policies/broken/non-monotone.ts', '--budget', '10', '--report', dirs.broken),
      pdspecAsync('check', '--policy', './examples/policies/broken/throws.ts', '--budget', '10', '--report', dirs.throws),
    ]);
    Object.assign(runs, { good, broken, throws });
  }, 300_000);

  it('a good policy: exit 0, every check passes or is a warning, and the report says it holds', () => {
    expect(runs.good!.status, runs.good!.stdout + runs.good!.stderr).toBe(0);
    const data = reportOf(dirs.good);
    expect(data.verdict).toBe('holds');
    const checks = data.policies[0].checks;
    expect(checks.map((c) => c.check)).toEqual(['explore', 'campaign', 'M1', 'M2', 'M3', 'sweeps']);
    expect(checks.every((c) => c.status === 'pass' || c.status === 'warn')).toBe(true);
    expect(data.policies[0].sweeps.map((s) => s.workload)).toEqual(['azure-conv', 'azure-code', 'poisson']);
    expect(runs.good!.stdout).toMatch(/holds — report: .*index\.html/);
  });

  it('a broken policy: exit 1, and the report holds the counterexample with the command that replays it', () => {
    expect(runs.broken!.status, runs.broken!.stdout + runs.broken!.stderr).toBe(1);
    const data = reportOf(dirs.broken);
    expect(data.verdict).toBe('violated');
    const m2 = data.policies[0].checks.find((c) => c.check === 'M2')!;
    expect(m2.status).toBe('fail');
    expect(m2.pair?.outcome).toMatch(/prefill/);
    expect(m2.replay).toMatch(/non-monotone/);
    // The summary on stdout lists the failure with the command that replays it.
    expect(runs.broken!.stdout).toMatch(/Failures:\n.*M2: M2 prefill[^\n]*\n\s+replay: .*non-monotone/);
    const html = readFileSync(join(dirs.broken, 'index.html'), 'utf8');
    expect(html).toContain('Violated');
    expect(html).toContain(m2.pair!.outcome.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;'));
  });

  it('a policy that throws: exit 2 (bad input), the fault and its observation in the report', () => {
    expect(runs.throws!.status, runs.throws!.stdout + runs.throws!.stderr).toBe(2);
    const data = reportOf(dirs.throws);
    expect(data.verdict).toBe('bad-input');
    const fault = data.policies[0].checks.find((c) => c.check === 'policy')!;
    expect(fault.status).toBe('error');
    expect(fault.detail).toMatch(/fault \(threw\) at t=[\d.]+ s, split \d+\/\d+/);
    expect(runs.throws!.stderr).not.toMatch(/\n\s+at /);
  });

  it.skipIf(why !== null)(`the report of a real check opens in headless Chromium: every chart drew, no console error${why ? ` (skipped: ${why})` : ''}`, async () => {
    const browser = await launchChromium();
    try {
      const page = await browser.newPage({ viewport: { width: 1240, height: 900 } });
      const problems: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()}`);
      });
      page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
      await page.goto(pathToFileURL(join(dirs.good, 'index.html')).href, { waitUntil: 'load' });
      expect(problems).toEqual([]);
      const charts = await page.$$eval('figure.chart svg', (svgs) =>
        svgs.map((svg) => ({ id: svg.getAttribute('data-chart'), width: svg.getBoundingClientRect().width, marks: svg.querySelectorAll('.role-mark path, .role-mark line, .role-mark rect').length })),
      );
      // attainment, goodput, TTFT, TPOT, split, KV: one policy's figures.
      expect(charts.length).toBeGreaterThanOrEqual(6);
      for (const c of charts) {
        expect(c.width, `${c.id} width`).toBeGreaterThan(250);
        expect(c.marks, `${c.id} marks`).toBeGreaterThan(0);
      }
    } finally {
      await browser.close();
    }
  });
});

describe('pdspec sweep', () => {
  it('writes the curves alone into the same report, one row per rate on stdout', () => {
    const dir = join(tmp, 'sweep');
    const r = pdspec('sweep', '--policy', 'semi-pd', '--workload', 'poisson', '--rates', '30,4', '--duration', '10', '--report', dir);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/semi-pd · poisson · SLO TTFT ≤ 2 s/);
    const data = reportOf(dir);
    const sweep = data.policies[0].sweeps[0];
    expect(sweep.points.map((p) => p.rate)).toEqual([4, 30]);
    // Overload lowers attainment: the sweep sees load.
    expect(sweep.points[0].attainment).toBeGreaterThan(sweep.points[1].attainment);
    expect(data.policies[0].run?.ttftSamples.length).toBeGreaterThan(0);
    expect(readFileSync(join(dir, 'index.html'), 'utf8')).toContain('pdspec sweep · report');
  });

  it('rates are per GPU: disaggregated 1P1D (two GPUs) is offered twice the requests at the same rate', () => {
    const served = (policy: string) => {
      const r = pdspec('sweep', '--policy', policy, '--workload', 'poisson', '--rates', '3', '--duration', '20', '--json', '--report', join(tmp, `sweep-${policy}`));
      expect(r.status, r.stderr).toBe(0);
      const data = JSON.parse(r.stdout) as ReportData;
      return data.policies[0].run!.ttftSamples.length;
    };
    const one = served('semi-pd');
    const two = served('disaggregated');
    expect(two / one).toBeGreaterThan(1.6);
    expect(two / one).toBeLessThan(2.4);
  });

  it('bad input: exit 2 with one line, before any sweep runs', () => {
    for (const args of [['--rates', '0,a'], ['--workload', 'sharegpt'], ['--policy', 'no-such-policy.ts'], ['--slo', '2'], ['--duration', '0']]) {
      const r = pdspec('sweep', ...args, '--report', join(tmp, 'sweep-bad'));
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stdout).toBe('');
    }
  });

  it('a policy that hangs: exit 2, the timeout named in the report', () => {
    const dir = join(tmp, 'sweep-hang');
    const r = pdspec('sweep', '--policy', './examples/policies/broken/hangs.ts', '--workload', 'poisson', '--rates', '40', '--duration', '5', '--report', dir);
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/fault \(timeout\)/);
    expect(reportOf(dir).policies[0].checks[0].status).toBe('error');
  });
});

describe('explore --report and run --report', () => {
  it('explore: the counterexample in the report is a trace that conform rejects at the same rule', () => {
    const dir = join(tmp, 'explore');
    const r = pdspec('explore', '--requests', '2', '--blocks', '4', '--variant', 'duplicate-release', '--report', dir);
    expect(r.status, r.stderr).toBe(1);
    const check = reportOf(dir).policies[0].checks[0];
    expect(check.status).toBe('fail');
    expect(check.counterexample?.replay).not.toContain('--report');
    const trace = join(dir, check.counterexample!.traceFile);
    expect(existsSync(trace)).toBe(true);
    const c = pdspec('conform', trace);
    expect(c.status).toBe(1);
    expect(c.stdout + c.stderr).toContain(check.property);
    expect(readFileSync(join(dir, 'index.html'), 'utf8')).toContain('data-kind="counterexample-timeline"');
  });

  it('explore: a verified bound is a passing check', () => {
    const dir = join(tmp, 'explore-ok');
    const r = pdspec('explore', '--requests', '2', '--blocks', '3', '--report', dir);
    expect(r.status, r.stderr).toBe(0);
    const data = reportOf(dir);
    expect(data.verdict).toBe('holds');
    expect(data.policies[0].checks[0].detail).toMatch(/^verified at 2 requests, 3 blocks/);
  });

  it('run: the run in detail — latency samples for every finished request, the SLO, the split and KV over time', () => {
    const dir = join(tmp, 'run');
    const r = pdspec('run', '--workload', 'poisson', '--rate', '12', '--duration', '20', '--policy', 'semi-pd', '--slo', '1,0.05', '--report', dir, '--json');
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    const run = reportOf(dir).policies[0].run!;
    expect(run.ttftSamples).toHaveLength(out.metrics.requests.finished);
    expect(run.slo).toEqual({ ttft: 1, tpot: 0.05 });
    expect(run.rate).toBe(12);
    expect(run.kv.length).toBeGreaterThan(0);
    expect(run.split[0]).toMatchObject({ t: 0 });
  });

  it('run: a policy fault is exit 2, named with its observation, and still reported', () => {
    const dir = join(tmp, 'run-fault');
    const r = pdspec('run', '--workload', 'poisson', '--rate', '30', '--duration', '20', '--policy', './examples/policies/broken/out-of-range.ts', '--report', dir);
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/fault \(out-of-range\) at t=/);
    expect(reportOf(dir).verdict).toBe('bad-input');
  });
});
