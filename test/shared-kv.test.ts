// Trace v2 against an independent model of vLLM v1's block pool: random workloads of requests that share
// prompt prefixes, served one at a time by a unified worker through a block pool written here from vLLM's
// description (a free queue in LRU order, a hash map, reference counts, lazy eviction at reallocation), not
// from the spec. Every trace it writes must conform with --quiescent; each one-line bug put into it must be
// refused at that line, under the rule it breaks.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkText, TraceChecker } from '../spec/checker.ts';

const BLOCK = 4;
const BLOCKS = 10;

interface Job {
  /** Which shared prefix (system prompt) it starts with, and how many full blocks of it. */
  prefix: number;
  prefixBlocks: number;
  /** Positions after the prefix. */
  tail: number;
  /** Requests in flight at once (1..2): two overlap so that a block has two holders. */
  overlap: boolean;
}

const job = fc
  .record({ prefix: fc.nat(2), prefixBlocks: fc.integer({ min: 0, max: 3 }), tail: fc.integer({ min: 0, max: 6 }), overlap: fc.boolean() })
  .map((j) => (j.prefixBlocks === 0 && j.tail === 0 ? { ...j, tail: 1 } : j));

/** A bug to put into the pool's trace, at the first place it applies. */
type Bug = 'none' | 'alloc-without-evict' | 'hit-wrong-key' | 'hit-whole-sequence' | 'free-cached-again' | 'cache-size-drift';

/** vLLM v1's block pool, reduced: blocks 0..BLOCKS−1, a free queue (head = least recently freed), a key map. */
class Pool {
  readonly refs = new Array<number>(BLOCKS).fill(0);
  readonly keyOf = new Array<string | null>(BLOCKS).fill(null);
  readonly map = new Map<string, number>();
  queue: number[] = [...Array(BLOCKS).keys()];
  readonly lines: string[] = [];
  t = 0;
  bugDone = false;

  constructor(readonly bug: Bug) {}

  emit(ev: Record<string, unknown>): number {
    this.lines.push(JSON.stringify({ t: this.t, ...ev }));
    return this.lines.length + 1; // its line in the file (the header is line 1)
  }

  /** Takes `n` blocks from the queue head, evicting a cached one first (BlockPool.get_new_blocks). */
  take(n: number): number[] | null {
    if (this.queue.length < n) return null;
    const out = this.queue.splice(0, n);
    for (const b of out) {
      const key = this.keyOf[b];
      if (key !== null) {
        this.map.delete(key);
        this.keyOf[b] = null;
        if (this.bug === 'alloc-without-evict' && !this.bugDone) this.bugDone = true;
        else this.emit({ ev: 'evict', block: b, key });
      }
      this.refs[b] = 1;
    }
    return out;
  }

  /** The longest cached run of `keys`, never the whole sequence (get_computed_blocks), unless `capped` is off. */
  lookup(keys: string[], length: number, capped = true): number[] {
    const hits: number[] = [];
    for (const k of keys) {
      if (capped && (hits.length + 1) * BLOCK > length - 1) break;
      const b = this.map.get(k);
      if (b === undefined) break;
      hits.push(b);
    }
    return hits;
  }

  touch(blocks: number[]): void {
    for (const b of blocks) {
      if (this.refs[b] === 0) this.queue = this.queue.filter((x) => x !== b);
      this.refs[b]++;
    }
  }

  /** The cache's size in tokens, as the engine counts it: cached blocks at reference 0, and in use. */
  size(): { evictable: number; protected: number } {
    let evictable = 0;
    let held = 0;
    for (let b = 0; b < BLOCKS; b++) {
      if (this.keyOf[b] === null) continue;
      if (this.refs[b] === 0) evictable += BLOCK;
      else held += BLOCK;
    }
    return { evictable, protected: held };
  }

  /** Drops one reference on each, last blocks first; a block at zero goes to the queue tail, keeping its key. */
  release(blocks: number[]): void {
    for (const b of [...blocks].reverse()) {
      this.refs[b]--;
      if (this.refs[b] === 0) this.queue.push(b);
    }
  }
}

interface Live {
  id: string;
  keys: string[];
  length: number;
  blocks: number[];
}

/** Serves the jobs; returns the trace text and, for a bug, the line where it shows (or null if it never applied). */
function serve(jobs: Job[], bug: Bug): { text: string; bugLine: number | null } {
  const pool = new Pool(bug);
  let bugLine: number | null = null;
  const header = { format: 'pdspec-trace', version: 2, mode: 'unified', blocks: BLOCKS, blockSize: BLOCK, sms: 132, source: 'test/shared-kv.test.ts' };
  const live: Live[] = [];
  let step = 0;
  const finish = (r: Live) => {
    pool.emit({ ev: 'token', req: r.id, index: 0 });
    pool.emit({ ev: 'finish', req: r.id });
    pool.release(r.blocks);
    pool.emit({ ev: 'free', req: r.id, blocks: [...r.blocks].reverse() });
    if (bug === 'free-cached-again' && bugLine === null) {
      const cached = r.blocks.find((b) => pool.refs[b] === 0 && pool.keyOf[b] !== null);
      if (cached !== undefined) bugLine = pool.emit({ ev: 'free', req: r.id, blocks: [cached] });
    }
  };
  jobs.forEach((j, n) => {
    const id = `r${n}`;
    const keys = [...Array(j.prefixBlocks).keys()].map((i) => `p${j.prefix}.${i}`);
    const length = j.prefixBlocks * BLOCK + j.tail;
    pool.t += 0.01;
    pool.emit({ ev: 'arrive', req: id, prompt: length, maxTokens: 1, keys });
    pool.emit({ ev: 'schedule', req: id, worker: 'U0' });
    // The bug: a lookup that forgot to leave the last position to compute.
    const capped = !(bug === 'hit-whole-sequence' && bugLine === null);
    let hits = pool.lookup(keys, length, capped);
    const need = Math.ceil(length / BLOCK) - hits.length;
    // No room even after the others end: the request waits, as a scheduler would; here it is aborted.
    if (pool.queue.length - hits.filter((b) => pool.refs[b] === 0).length < need) {
      while (live.length) finish(live.shift()!);
      hits = pool.lookup(keys, length, capped);
    }
    if (pool.queue.length - hits.filter((b) => pool.refs[b] === 0).length < need) {
      pool.emit({ ev: 'abort', req: id });
      return;
    }
    if (hits.length > 0) {
      pool.touch(hits);
      const line = pool.emit({ ev: 'cache_hit', req: id, blocks: hits, tokens: hits.length * BLOCK });
      if (!capped && hits.length * BLOCK === length) {
        bugLine = line;
        return; // the checker stops here; nothing is left to compute
      }
      if (bug === 'hit-wrong-key' && bugLine === null) {
        // The same hit, for a request whose first key differs: its arrive line is rewritten.
        pool.lines[pool.lines.length - 3] = JSON.stringify({ t: pool.t, ev: 'arrive', req: id, prompt: length, maxTokens: 1, keys: ['other', ...keys.slice(1)] });
        bugLine = line;
      }
    }
    const skipped = pool.bugDone;
    const fresh = pool.take(need)!;
    const allocLine = fresh.length > 0 ? pool.emit({ ev: 'alloc', worker: 'U0', req: id, blocks: fresh }) : null;
    // The evict that take() left out shows at this alloc: the block is handed out still cached.
    if (bug === 'alloc-without-evict' && !skipped && pool.bugDone) bugLine = allocLine;
    const blocks = [...hits, ...fresh];
    const computed = hits.length * BLOCK;
    step++;
    pool.emit({ ev: 'step_begin', worker: 'U0', step: `s${step}`, batch: [{ req: id, tokens: length - computed }] });
    // Blocks filled by this step that hold a full block of the prefix enter the cache (cache_full_blocks).
    for (let i = hits.length; i < keys.length; i++) {
      if (pool.map.has(keys[i])) continue; // vLLM keeps duplicates; this pool caches one block per key
      pool.keyOf[blocks[i]] = keys[i];
      pool.map.set(keys[i], blocks[i]);
      pool.emit({ ev: 'cache_insert', req: id, block: blocks[i], key: keys[i] });
    }
    pool.t += 0.001;
    pool.emit({ ev: 'step_end', worker: 'U0', step: `s${step}` });
    const r = { id, keys, length, blocks };
    if (j.overlap) live.push(r);
    else finish(r);
    while (live.length > 1) finish(live.shift()!);
    // The engine's counters, once per request served; the bug counts a held cached block twice.
    const size = pool.size();
    const drift = bug === 'cache-size-drift' && bugLine === null && size.protected > 0;
    const sizeLine = pool.emit({ ev: 'cache_size', evictable: size.evictable, protected: size.protected + (drift ? BLOCK : 0) });
    if (drift) bugLine = sizeLine;
  });
  while (live.length) finish(live.shift()!);
  return { text: [JSON.stringify(header), ...pool.lines].join('\n'), bugLine };
}

const jobs = fc.array(job, { minLength: 1, maxLength: 8 });
const RUNS = Number(process.env.PDSPEC_RUNS ?? 300);

describe('trace v2 against an independent block pool', () => {
  it(`${RUNS} random workloads with shared prefixes conform, quiescent`, () => {
    fc.assert(
      fc.property(jobs, (js) => {
        const { text } = serve(js, 'none');
        const v = checkText(text, { quiescent: true });
        expect(v.verdict, `${v.verdict === 'violation' ? `${v.finding.line}: ${v.finding.rule} ${v.finding.message}` : ''}\n${text}`).toBe('conforms');
      }),
      { numRuns: RUNS, seed: 14 },
    );
  });

  it("the checker's cache counters, kept as blocks move, equal a count over every block after every event", () => {
    for (const js of fc.sample(jobs, { numRuns: 100, seed: 15 })) {
      const checker = new TraceChecker();
      for (const line of serve(js, 'none').text.split('\n')) {
        checker.feed(line);
        const sys = checker.sys!;
        let evictable = 0;
        let held = 0;
        for (const b of sys.blocks) if (b.context.key !== null) b.value === 'cached' ? evictable++ : held++;
        expect(sys.cacheSize()).toEqual({ evictable, protected: held });
      }
    }
  });

  it('the workloads share: hits, two holders at once, evictions and reuse all come up', () => {
    const seen = { hit: 0, evict: 0, insert: 0, twoHolders: 0 };
    for (const js of fc.sample(jobs, { numRuns: RUNS, seed: 14 })) {
      const { text } = serve(js, 'none');
      seen.hit += (text.match(/"cache_hit"/g) ?? []).length;
      seen.evict += (text.match(/"evict"/g) ?? []).length;
      seen.insert += (text.match(/"cache_insert"/g) ?? []).length;
      if (js.some((j, i) => j.overlap && js[i + 1] && js[i + 1].prefix === j.prefix && j.prefixBlocks > 0 && js[i + 1].prefixBlocks > 0)) seen.twoHolders++;
    }
    for (const [what, n] of Object.entries(seen)) expect(n, what).toBeGreaterThan(10);
  });

  const bugs: [Bug, string][] = [
    ['alloc-without-evict', 'CacheCoherent'],
    ['hit-wrong-key', 'CacheCoherent'],
    ['hit-whole-sequence', 'HitSkipsExactly'],
    ['free-cached-again', 'FreeListUnique'],
    ['cache-size-drift', 'CacheSizeAccounted'],
  ];
  it.each(bugs)('%s is refused at its line as %s', (bug, rule) => {
    let applied = 0;
    fc.assert(
      fc.property(jobs, (js) => {
        const { text, bugLine } = serve(js, bug);
        if (bugLine === null) return;
        applied++;
        const v = checkText(text, { quiescent: true });
        expect(v.verdict, text).toBe('violation');
        if (v.verdict === 'violation') {
          expect(v.finding.rule, `${v.finding.line}: ${v.finding.message}\n${text}`).toBe(rule);
          expect(v.finding.line).toBe(bugLine);
        }
      }),
      { numRuns: RUNS, seed: 14 },
    );
    expect(applied, 'the bug applied in some workloads').toBeGreaterThan(10);
  });
});

describe('one eviction, two caches', () => {
  const z16 = readFileSync(join(import.meta.dirname, '..', 'examples', 'traces', 'zoo', 'z16-evict-locked-radix-node.jsonl'), 'utf8');

  it('a radix cache may not evict a block a request holds (its pages would be freed under the reader)', () => {
    const v = checkText(z16);
    expect(v.verdict === 'violation' && v.finding.rule).toBe('NoEvictWhileLocked');
  });

  it("a hash cache may: vLLM's evict_blocks only drops the key of a block in use, and its holder keeps it", () => {
    const hash = z16.replace('"prefixCache":"radix"', '"prefixCache":"hash"');
    expect(checkText(hash).verdict).toBe('conforms');
    // ... and the block, now uncached, cannot be hit again under its old key.
    const rehit = `${hash.trimEnd()}\n{"t":0.03,"ev":"cache_hit","req":"r3","blocks":[0],"tokens":4}\n`.replace('"req":"r3","prompt":12,"maxTokens":1', '"req":"r3","prompt":12,"maxTokens":1,"keys":["s0"]');
    const v = checkText(rehit);
    expect(v.verdict === 'violation' && v.finding.rule).toBe('CacheCoherent');
  });
});
