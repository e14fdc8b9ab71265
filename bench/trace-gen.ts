// A synthetic semi-PD trace of any length that conforms: requests with Azure-conversation-like lengths, a
// prefill worker that prefills up to 4 requests per step, a decode worker with batches of up to 32, one block
// more every blockSize tokens, finish and free. Deterministic from the seed. It exists to measure the
// checker on long traces; the engine writes the realistic ones.
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';

function mulberry32(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Req {
  id: string;
  prompt: number;
  output: number;
  generated: number;
  computed: number;
  blocks: number[];
}

export interface GenOptions {
  events: number;
  seed?: number;
  blocks?: number;
  blockSize?: number;
}

/** Writes the trace to `path`; returns the number of events written (at least `events`). */
export async function writeSyntheticTrace(path: string, opts: GenOptions): Promise<number> {
  const rand = mulberry32(opts.seed ?? 1);
  const B = opts.blocks ?? 4096;
  const T = opts.blockSize ?? 16;
  const out = createWriteStream(path);
  let buf: string[] = [];
  let written = 0;
  let t = 0;
  const emit = async (o: Record<string, unknown>) => {
    buf.push(JSON.stringify(o));
    written++;
    if (buf.length >= 4096) {
      if (!out.write(`${buf.join('\n')}\n`)) await once(out, 'drain');
      buf = [];
    }
  };
  out.write(`${JSON.stringify({ format: 'pdspec-trace', version: 1, mode: 'semi-pd', blocks: B, blockSize: T, sms: 108, source: 'bench/trace-gen.ts' })}\n`);
  const free: number[] = [];
  for (let b = B - 1; b >= 0; b--) free.push(b);
  const waiting: Req[] = [];
  let decoding: Req[] = [];
  let nextId = 0;
  let pStep = 0;
  let dStep = 0;
  const at = () => Number((t += 0.001).toFixed(3));
  while (written < opts.events) {
    for (let k = Math.floor(rand() * 3); k > 0; k--) {
      const r: Req = {
        id: `r${nextId++}`,
        prompt: 64 + Math.floor(rand() * rand() * 2000),
        output: 2 + Math.floor(rand() * rand() * 400),
        generated: 0,
        computed: 0,
        blocks: [],
      };
      waiting.push(r);
      await emit({ t: at(), ev: 'arrive', req: r.id, prompt: r.prompt, maxTokens: r.output });
    }
    // Prefill: admit while blocks last, keeping room for the decode batch to grow.
    const batch: Req[] = [];
    while (batch.length < 4 && waiting.length > 0 && free.length > Math.ceil((waiting[0].prompt + 1) / T) + 64) {
      const r = waiting.shift()!;
      await emit({ t: at(), ev: 'schedule', req: r.id, worker: 'P0' });
      r.blocks = free.splice(free.length - Math.ceil(r.prompt / T));
      await emit({ t: at(), ev: 'alloc', worker: 'P0', req: r.id, blocks: r.blocks });
      batch.push(r);
    }
    if (batch.length > 0) {
      pStep++;
      await emit({ t: at(), ev: 'step_begin', worker: 'P0', step: pStep, batch: batch.map((r) => ({ req: r.id, tokens: r.prompt })) });
      await emit({ t: at(), ev: 'step_end', worker: 'P0', step: pStep });
      for (const r of batch) {
        r.computed = r.prompt;
        await emit({ t: at(), ev: 'handoff', req: r.id, from: 'P0', to: 'D0' });
        await emit({ t: at(), ev: 'token', req: r.id, index: 0, token: Math.floor(rand() * 32000) });
        r.generated = 1;
        await emit({ t: at(), ev: 'join', req: r.id, worker: 'D0' });
        decoding.push(r);
      }
    }
    // Decode: one position for up to 32 requests, a new block where the position needs one.
    const step = decoding.slice(0, 32);
    if (step.length > 0) {
      for (const r of step) {
        if (r.computed + 1 > r.blocks.length * T) {
          const b = free.pop()!;
          r.blocks.push(b);
          await emit({ t: at(), ev: 'alloc', worker: 'D0', req: r.id, blocks: [b] });
        }
      }
      dStep++;
      await emit({ t: at(), ev: 'step_begin', worker: 'D0', step: dStep, batch: step.map((r) => ({ req: r.id, tokens: 1 })) });
      await emit({ t: at(), ev: 'step_end', worker: 'D0', step: dStep });
      for (const r of step) {
        r.computed++;
        await emit({ t: at(), ev: 'token', req: r.id, index: r.generated, token: Math.floor(rand() * 32000) });
        r.generated++;
        if (r.generated === r.output) {
          await emit({ t: at(), ev: 'finish', req: r.id });
          await emit({ t: at(), ev: 'free', req: r.id, blocks: r.blocks });
          free.push(...r.blocks);
        }
      }
      // Rotate so that every decoding request gets its turn.
      decoding = decoding.slice(step.length).concat(step.filter((r) => r.generated < r.output));
    }
  }
  if (buf.length) out.write(`${buf.join('\n')}\n`);
  out.end();
  await once(out, 'finish');
  return written;
}
