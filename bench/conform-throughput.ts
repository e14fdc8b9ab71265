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

  // Memory: what the checker keeps, measured after a full collection (node --expose-gc), at the end of each
  // tenth of the trace; garbage awaiting collection is not memory the checker needs.
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const baseHeap = process.memoryUsage().heapUsed;
  const retained: number[] = [];
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
  if (gc) {
    const { TraceChecker } = await import('../spec/checker.ts');
    const { readFileSync } = await import('node:fs');
    const lines = readFileSync(path, 'utf8').split('\n');
    lines.pop();
    const checker = new TraceChecker();
    const tenth = Math.floor(lines.length / 10);
    lines.forEach((l, i) => {
      checker.feed(l);
      if (i % tenth === tenth - 1) {
        gc();
        retained.push(process.memoryUsage().heapUsed);
      }
    });
    gc();
    const withoutText = process.memoryUsage().heapUsed;
    retained.push(withoutText);
  }
  const best = results.reduce((a, b) => (a.conform < b.conform ? a : b));
  const rate = written / best.conform;
  const floor = written / best.parse;
  console.log(`conform:            ${(rate / 1000).toFixed(0)}k events/s  (best of 3: ${best.conform.toFixed(2)} s)`);
  console.log(`read + JSON.parse:  ${(floor / 1000).toFixed(0)}k events/s  (same file, same run: ${best.parse.toFixed(2)} s)`);
  console.log(`ratio conform / parse-only: ${(rate / floor).toFixed(2)}   goal: ≥ 500k events/s ${rate >= 500_000 ? 'met' : 'not met'}`);
  if (retained.length) {
    // The lines themselves are held by this measurement; report the growth between the first and last tenth.
    const growth = (retained[retained.length - 2] - retained[0]) / 2 ** 20;
    console.log(`memory kept by the checker after each tenth of the trace (after GC): ${retained.slice(0, -1).map((h) => ((h - baseHeap) / 2 ** 20).toFixed(0)).join(', ')} MiB over the baseline (the trace's lines included); growth from the first tenth to the last: ${growth.toFixed(1)} MiB for ${written} events`);
  } else console.log('(run with node --expose-gc for the memory figures)');
  rmSync(dir, { recursive: true, force: true });
}

await main();
