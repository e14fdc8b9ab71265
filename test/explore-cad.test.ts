// The explorer at the core-attention bound (trace v4): the reference spec verifies every interleaving of two
// requests' query-shard tasks over two attention servers with ping-pong buffers, a server loss and an abort;
// each CAD variant (a ping-pong buffer flipped before its result is read, an in-place output over inputs
// another shard reads, a step that ends without its tasks) is refuted with a counterexample of at most 12
// events that `pdspec conform` rejects at its last line with the same rule; and the symmetry-reduced search
// agrees with the plain one.
import { describe, expect, it } from 'vitest';
import { CAD_CONFIG, configProblems } from '../properties/explore/config.ts';
import { counterexampleLines } from '../properties/explore/counterexample.ts';
import { explore } from '../properties/explore/explorer.ts';
import { CAD_VARIANTS, defaultConfigFor, VARIANTS } from '../properties/explore/variants.ts';
import { checkText } from '../spec/checker.ts';

describe('the core-attention bound (trace v4)', () => {
  it('verifies: two requests, two shards each, two servers of two buffers, a server loss, an abort; every task event and machine transition is reached', () => {
    const r = explore(CAD_CONFIG);
    expect(r.verdict).toBe('verified');
    expect(r.states).toBeGreaterThan(50_000);
    for (const ev of ['task_create', 'task_dispatch', 'task_start', 'task_end', 'task_consume', 'server_lost', 'abort']) expect(r.neverEnabled).not.toContain(ev);
    // A task in `created` is never on a server, so a loss cannot move it: the one CAD transition left.
    expect(r.neverTaken.filter((t) => t.startsWith('task:') || t.startsWith('buffer:'))).toEqual(['task:created:server_lost']);
  }, 120_000);

  it('with symmetry off the verdict is the same, over at least as many states', () => {
    const small = { ...CAD_CONFIG, aborts: 0, output: 1, cadBuffers: 1 };
    const reduced = explore(small);
    const plain = explore({ ...small, symmetry: false });
    expect(reduced.verdict).toBe('verified');
    expect(plain.verdict).toBe('verified');
    expect(plain.states).toBeGreaterThanOrEqual(reduced.states);
  }, 120_000);

  it('bounds that do not combine are refused', () => {
    expect(configProblems({ ...CAD_CONFIG, positions: false })).toEqual([expect.stringMatching(/--cad-servers needs --positions/)]);
    expect(configProblems({ ...CAD_CONFIG, window: 2 })).toEqual([expect.stringMatching(/without windows, drafts or state slots/)]);
    expect(configProblems({ ...CAD_CONFIG, serverLosses: 3 })).toEqual([expect.stringMatching(/--server-losses cannot exceed --cad-servers/)]);
    expect(configProblems({ ...CAD_CONFIG, cadShards: 5 })).toEqual([expect.stringMatching(/--cad-shards must be an integer in 1\.\.4/)]);
  });
});

describe('trace v4: the core-attention variants are refuted, judged by the reference spec', () => {
  it.each(CAD_VARIANTS)('%s', (name) => {
    const cfg = defaultConfigFor(name);
    expect(cfg.cadServers).toBeGreaterThan(0);
    const r = explore(cfg);
    expect(r.verdict).toBe('violated');
    const f = r.finding!;
    expect(f.kind).toBe('guard');
    expect(f.rule).toBe(VARIANTS[name].expect);
    expect(f.trace.length).toBeLessThanOrEqual(12);
    const lines = counterexampleLines(cfg, f, `npx pdspec explore --variant ${name}`);
    expect(JSON.parse(lines[0])).toMatchObject({ version: 4, attentionServers: expect.any(Array) });
    const verdict = checkText(lines.join('\n'));
    expect(verdict.verdict).toBe('violation');
    if (verdict.verdict === 'violation') {
      expect(verdict.finding.rule).toBe(f.rule);
      expect(verdict.finding.line).toBe(lines.length);
    }
    expect(checkText(lines.slice(0, -1).join('\n')).verdict).toBe('conforms');
  }, 60_000);
});
