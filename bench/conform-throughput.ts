// Events per second of `pdspec conform` on a generated 1,000,000-event trace, against the floor of reading
// and JSON.parse-ing the same lines (measured in the same run), and the checker's memory as it goes.
import { createReadStream, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkFile } from '../spec/checker.ts';
import { writeSyntheticTrace } from './trace-gen.ts';

const events = Number(process.argv[2] ?? 1_000_000);
const dir = mkdtempSync(join(tmpdir(), 'pdspec-bench-'));
const path = join(dir, 'trace.jsonl');

async function parseOnly(): Promise<number> {
  let lines = 0;
  let carry = '';
  for await (const chunk of createReadStream(path, { encoding: 'utf8', highWaterMark: 1 << 20 }) as AsyncIterable<string>) {
    const parts = (carry + chunk).split('\n');
    carry = parts.pop()!;
    for (const l of parts) {
      JSON.parse(l);
      lines++;
    }
  }
  return lines;
}

async function main() {
  let t0 = performance.now();
  const written = await writeSyntheticTrace(path, { events });
  const genSeconds = (performance.now() - t0) / 1000;
  const mb = statSync(path).size / 2 ** 20;
  console.log(`trace: ${written} events, ${mb.toFixed(0)} MiB, generated in ${genSeconds.toFixed(1)} s`);

  let peakHeap = 0;
  const sampler = setInterval(() => (peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed)), 20);
  const baseHeap = process.memoryUsage().heapUsed;
  const results: { conform: number; parse: number }[] = [];
  for (let round = 0; round < 3; round++) {
    t0 = performance.now();
    const v = await checkFile(path, { quiescent: false });
    const conform = (performance.now() - t0) / 1000;
    if (v.verdict !== 'conforms') throw new Error(`the generated trace does not conform: ${JSON.stringify(v)}`);
    t0 = performance.now();
    await parseOnly();
    const parse = (performance.now() - t0) / 1000;
    results.push({ conform, parse });
  }
  clearInterval(sampler);
  const best = results.reduce((a, b) => (a.conform < b.conform ? a : b));
  const rate = written / best.conform;
  const floor = written / best.parse;
  console.log(`conform:            ${(rate / 1000).toFixed(0)}k events/s  (best of 3: ${best.conform.toFixed(2)} s)`);
  console.log(`read + JSON.parse:  ${(floor / 1000).toFixed(0)}k events/s  (same file, same run: ${best.parse.toFixed(2)} s)`);
  console.log(`ratio conform / parse-only: ${(rate / floor).toFixed(2)}   goal: ≥ 500k events/s ${rate >= 500_000 ? 'met' : 'not met'}`);
  console.log(`heap while checking: +${((peakHeap - baseHeap) / 2 ** 20).toFixed(0)} MiB over the ${(baseHeap / 2 ** 20).toFixed(0)} MiB baseline, for a ${mb.toFixed(0)} MiB trace`);
  rmSync(dir, { recursive: true, force: true });
}

await main();
