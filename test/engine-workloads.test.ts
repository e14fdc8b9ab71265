// Workloads: the Azure traces from the project's copy, users' CSV/JSONL files (a bad row is an error
// naming its line), synthetic arrivals and lengths (seeded), rate scaling and aborts.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AZURE_DIR, loadAzure, parseAzureTimestamp } from '../engine/workloads/azure.ts';
import { loadWorkloadFile } from '../engine/workloads/file.ts';
import { buildWorkload, withAborts } from '../engine/workloads/index.ts';
import { parseLength, sampleLength, scaleToRate, synthetic } from '../engine/workloads/synthetic.ts';
import { WorkloadError } from '../engine/workloads/types.ts';
import { Random } from '../engine/random.ts';

const dir = mkdtempSync(join(tmpdir(), 'pdspec-workload-'));
function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

describe('Azure LLM inference traces (project copy in data/azure-llm-inference-2023)', () => {
  it('reads every request of both traces, arrivals from 0 in time order', () => {
    // These files ship with the project; a missing file is a failure with the path, never a skip.
    const conv = loadAzure('conv');
    const code = loadAzure('code');
    expect(conv.length, `requests in ${AZURE_DIR}`).toBe(19366);
    expect(code.length).toBe(8819);
    expect(conv[0]).toEqual({ id: 'conv-0', arrival: 0, prompt: 374, output: 44 });
    for (let i = 1; i < conv.length; i++) expect(conv[i].arrival).toBeGreaterThanOrEqual(conv[i - 1].arrival);
    expect(conv[conv.length - 1].arrival).toBeGreaterThan(3500);
    expect(conv[conv.length - 1].arrival).toBeLessThan(3700);
    const prompts = conv.map((r) => r.prompt).sort((a, b) => a - b);
    expect(prompts[prompts.length - 1]).toBe(14050);
  });

  it('parses the timestamps to the microsecond', () => {
    expect(parseAzureTimestamp('2023-11-16 18:15:50.9951690') - parseAzureTimestamp('2023-11-16 18:15:46.6805900')).toBeCloseTo(4.314579, 6);
    expect(parseAzureTimestamp('yesterday')).toBeNaN();
  });
});

describe('user workload files', () => {
  it('reads CSV with a header and optional columns, in any column order', () => {
    const path = file('ok.csv', '# my trace\nprompt,arrival,output,id,abort\n100,0.5,20,a,\n\n50,0.25,5,b,1.0\n');
    expect(loadWorkloadFile(path)).toEqual([
      { id: 'a', arrival: 0.5, prompt: 100, output: 20 },
      { id: 'b', arrival: 0.25, prompt: 50, output: 5, abortAt: 1 },
    ]);
  });

  it('reads JSON Lines', () => {
    const path = file('ok.jsonl', '{"arrival":0,"prompt":3,"output":2}\n{"arrival":1,"prompt":4,"output":1,"id":"x","seed":7}\n');
    expect(loadWorkloadFile(path)).toEqual([
      { id: 'r0', arrival: 0, prompt: 3, output: 2 },
      { id: 'x', arrival: 1, prompt: 4, output: 1, seed: 7 },
    ]);
  });

  it('reads the Azure schema as a user file too', () => {
    const path = file('azure.csv', 'TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,374,44\n2023-11-16 18:15:47.6805900,10,1\n');
    expect(loadWorkloadFile(path).map((r) => [r.arrival, r.prompt, r.output])).toEqual([[0, 374, 44], [1, 10, 1]]);
  });

  it.each([
    ['bad-prompt.csv', 'arrival,prompt,output\n0,10,5\n1,ten,5\n', /bad-prompt\.csv:3: field 'prompt' must be an integer ≥ 1, got 'ten'/],
    ['zero-output.csv', 'arrival,prompt,output\n0,10,0\n', /zero-output\.csv:2: field 'output' must be an integer ≥ 1, got '0'/],
    ['negative.csv', 'arrival,prompt,output\n-1,10,5\n', /negative\.csv:2: field 'arrival' must be a number of seconds ≥ 0/],
    ['short-row.csv', 'arrival,prompt,output\n0,10\n', /short-row\.csv:2: expected 3 fields/],
    ['unknown-col.csv', 'arrival,prompt,output,colour\n0,1,1,red\n', /unknown-col\.csv:1: unknown column 'colour'/],
    ['missing-col.csv', 'arrival,prompt\n0,1\n', /missing-col\.csv:1: the header has no 'output' column/],
    ['abort-early.csv', 'arrival,prompt,output,abort\n2,1,1,1\n', /abort-early\.csv:2: field 'abort' \(1\) is before the arrival \(2\)/],
    ['dup.csv', 'arrival,prompt,output,id\n0,1,1,a\n1,1,1,a\n', /request id 'a' appears twice \(requests 1 and 2\)/],
    ['bad.jsonl', '{"arrival":0,"prompt":1,"output":1}\n{"arrival":0,"prompt":1.5,"output":1}\n', /bad\.jsonl:2: field 'prompt' must be an integer ≥ 1, got 1\.5/],
    ['extra.jsonl', '{"arrival":0,"prompt":1,"output":1,"colour":"red"}\n', /extra\.jsonl:1: unknown field 'colour'/],
    ['notjson.jsonl', '{"arrival":0,"prompt":1,"output":1}\n{oops\n', /notjson\.jsonl:2: not valid JSON/],
    ['bad-azure.csv', 'TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,374,44\nnot a time,3,4\n', /bad-azure\.csv:3: field 'TIMESTAMP'/],
  ])('%s: a bad row is an error naming its line', (name, text, message) => {
    const path = file(name, text);
    expect(() => loadWorkloadFile(path)).toThrow(WorkloadError);
    expect(() => loadWorkloadFile(path)).toThrow(message);
  });

  it('a missing file is a one-line error', () => {
    expect(() => loadWorkloadFile(join(dir, 'nope.csv'))).toThrow(/no such workload file/);
  });
});

describe('synthetic workloads', () => {
  const base = { arrivals: { kind: 'poisson' as const }, rate: 10, requests: 4000, prompt: parseLength('fixed:100', 'prompt'), output: parseLength('uniform:5:9', 'output'), seed: 3 };

  it('are seeded: the same options give the same requests, another seed others', () => {
    expect(synthetic(base)).toEqual(synthetic(base));
    expect(synthetic({ ...base, seed: 4 })).not.toEqual(synthetic(base));
  });

  it('Poisson arrivals have the requested mean rate and coefficient of variation ≈ 1; bursty ones a larger CV', () => {
    const gaps = (reqs: { arrival: number }[]) => reqs.slice(1).map((r, i) => r.arrival - reqs[i].arrival);
    const stats = (g: number[]) => {
      const mean = g.reduce((a, b) => a + b, 0) / g.length;
      const sd = Math.sqrt(g.reduce((a, b) => a + (b - mean) ** 2, 0) / g.length);
      return { mean, cv: sd / mean };
    };
    const poisson = stats(gaps(synthetic(base)));
    expect(poisson.mean).toBeGreaterThan(0.09);
    expect(poisson.mean).toBeLessThan(0.11);
    expect(poisson.cv).toBeGreaterThan(0.9);
    expect(poisson.cv).toBeLessThan(1.1);
    const bursty = stats(gaps(synthetic({ ...base, arrivals: { kind: 'bursty', cv: 3 } })));
    expect(bursty.mean).toBeGreaterThan(0.08);
    expect(bursty.mean).toBeLessThan(0.12);
    expect(bursty.cv).toBeGreaterThan(2.3);
  });

  it('length distributions stay in their bounds', () => {
    const rng = new Random(1);
    const uni = parseLength('uniform:5:9', 'output');
    const logn = parseLength('lognormal:1000:1:4000', 'prompt');
    const emp = parseLength('empirical:3,5,8', 'prompt');
    const seen = new Set<number>();
    for (let i = 0; i < 3000; i++) {
      const u = sampleLength(uni, rng);
      expect(u).toBeGreaterThanOrEqual(5);
      expect(u).toBeLessThanOrEqual(9);
      seen.add(u);
      const l = sampleLength(logn, rng);
      expect(l).toBeGreaterThanOrEqual(1);
      expect(l).toBeLessThanOrEqual(4000);
      expect([3, 5, 8]).toContain(sampleLength(emp, rng));
    }
    expect([...seen].sort()).toEqual([5, 6, 7, 8, 9]);
    expect(parseLength('512', 'prompt')).toEqual({ kind: 'fixed', value: 512 });
    expect(() => parseLength('gaussian:3', 'prompt')).toThrow(/--prompt-len must be fixed:N/);
    expect(() => parseLength('uniform:9:5', 'output')).toThrow(/maximum 5 is below the minimum 9/);
    const azure = parseLength('empirical:azure-code', 'output');
    expect(azure.kind === 'empirical' && azure.values.length).toBe(8819);
  });

  it('a trace rescales to a target rate; aborts are added to the requested fraction', () => {
    const conv = loadAzure('conv').slice(0, 1001);
    const scaled = scaleToRate(conv, 20);
    expect(scaled[1000].arrival).toBeCloseTo(50, 9);
    const aborted = withAborts(scaled, 0.3, 1, 5);
    const n = aborted.filter((r) => r.abortAt !== undefined).length;
    expect(n).toBeGreaterThan(240);
    expect(n).toBeLessThan(360);
    for (const r of aborted) if (r.abortAt !== undefined) expect(r.abortAt).toBeGreaterThanOrEqual(r.arrival);
  });

  it('buildWorkload applies --requests and --duration, and refuses lengths on a trace', () => {
    expect(buildWorkload({ workload: 'azure-conv', requests: 10, seed: 0 })).toHaveLength(10);
    const cut = buildWorkload({ workload: 'azure-code', duration: 60, seed: 0 });
    expect(cut.every((r) => r.arrival < 60)).toBe(true);
    expect(cut.length).toBeGreaterThan(10);
    expect(buildWorkload({ workload: 'poisson', rate: 4, duration: 100, seed: 1, promptLen: 'fixed:8', outputLen: 'fixed:2' }).every((r) => r.arrival < 100)).toBe(true);
    expect(() => buildWorkload({ workload: 'azure-conv', promptLen: 'fixed:3', seed: 0 })).toThrow(/apply to synthetic workloads/);
  });
});
