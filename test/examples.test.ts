// Every row of examples/traces/README.md: the checker gives the documented verdict, line and rule.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { exampleRows, exitOf, rowOptions } from '../cli/commands/examples.ts';
import { checkFile } from '../spec/checker.ts';

const dir = join(import.meta.dirname, '..', 'examples', 'traces');

function allTraceFiles(sub = ''): string[] {
  return readdirSync(join(dir, sub), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? allTraceFiles(join(sub, e.name)) : e.name.endsWith('.jsonl') ? [join(sub, e.name)] : [],
  );
}

describe('examples/traces', () => {
  const table = exampleRows(dir);

  it('the README documents every example file', () => {
    const documented = new Set(table.map((r) => r.file));
    expect(allTraceFiles().filter((f) => !documented.has(f))).toEqual([]);
    expect(table.length).toBeGreaterThanOrEqual(8);
  });

  it.each(table.map((r) => [`${r.file}${r.quiescent ? ' --quiescent' : ''}${r.releaseWithin !== undefined ? ` --release-within ${r.releaseWithin}` : ''}`, r] as const))('%s', async (_, row) => {
    const verdict = await checkFile(join(dir, row.file), rowOptions(row));
    expect(exitOf(verdict)).toBe(row.exit);
    if (verdict.verdict === 'violation') {
      expect(verdict.finding.line).toBe(row.line);
      expect(verdict.finding.rule).toBe(row.rule);
      expect(verdict.conformingPrefix).toBe(row.line! - 1);
    }
    if (verdict.verdict === 'bad-input') expect(verdict.line).toBe(row.line);
  });

  it('each bug-zoo trace sits next to an accepted trace of the same shape', () => {
    const zoo = table.filter((r) => r.file.startsWith('zoo/'));
    for (const bad of zoo.filter((r) => r.exit === 1)) {
      const id = bad.file.slice(4, 7);
      expect(zoo.some((r) => r.file.startsWith(`zoo/${id}`) && r.file.endsWith('-fixed.jsonl') && r.exit === 0), `${bad.file} has a fixed twin`).toBe(true);
    }
    const ids = new Set(zoo.map((r) => r.file.slice(4, 7)));
    for (const id of ['z01', 'z02', 'z03', 'z05', 'z06', 'z07', 'z08', 'z10', 'z11', 'z12', 'z13', 'z15', 'z16', 'z17', 'z18', 'z19', 'z20', 'z21', 'z22']) expect(ids.has(id), id).toBe(true);
  });
});
