// Every row of examples/traces/README.md: the checker gives the documented verdict, line, rule and guard.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EXAMPLES_DIR, exampleRows, exitOf, matches, rowOptions } from '../cli/commands/examples.ts';
import { checkFile, formatVerdict } from '../spec/checker.ts';

const dir = join(import.meta.dirname, '..', 'examples', 'traces');

/**
 * The `guard` column of each row, in the order of exampleRows: for a violation, the guard named in its `how:`
 * line (the finding's `guard`), or — where the finding names none; empty for the other rows.
 */
function documentedGuards(): string[] {
  return readFileSync(join(dir, 'README.md'), 'utf8')
    .split('\n')
    .filter((l) => /^\| `[^`]+\.jsonl` \|/.test(l))
    .map((l) => l.split('|').map((c) => c.trim())[7] ?? '');
}

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

  const guards = documentedGuards();

  it('every violation row documents the guard its message names (or —), and no other row documents one', () => {
    expect(guards.length).toBe(table.length);
    for (const [i, row] of table.entries()) {
      if (row.exit === 1) expect(guards[i], `${row.file}: guard column`).toMatch(/^(—|[A-Za-z]+)$/);
      else expect(guards[i], `${row.file}: guard column`).toBe('');
    }
  });

  it.each(table.map((r, i) => [`${r.file}${r.quiescent ? ' --quiescent' : ''}${r.releaseWithin !== undefined ? ` --release-within ${r.releaseWithin}` : ''}`, r, guards[i]] as const))('%s', async (_, row, guard) => {
    const verdict = await checkFile(join(dir, row.file), rowOptions(row));
    expect(exitOf(verdict)).toBe(row.exit);
    if (verdict.verdict === 'violation') {
      expect(verdict.finding.line).toBe(row.line);
      expect(verdict.finding.rule).toBe(row.rule);
      expect(verdict.conformingPrefix).toBe(row.line! - 1);
      // The guard, not only the rule: a dropped guard whose invariant still catches the event at the same line
      // (notHeld's NoFreeWhileInFlight) changes the guard the message names.
      expect(verdict.finding.guard ?? '—', 'the guard named in the message').toBe(guard);
      const how = formatVerdict(row.file, verdict).split('\n').find((l) => l.trimStart().startsWith('how:'));
      if (guard === '—') expect(how).not.toMatch(/ guard '/);
      else expect(how).toContain(`guard '${guard}'`);
    }
    // The verdict's quiescent flag says what --quiescent would: one definition, never a verdict that contradicts itself.
    if (verdict.verdict === 'conforms') {
      const strict = await checkFile(join(dir, row.file), { ...rowOptions(row), quiescent: true });
      expect(verdict.quiescent, 'quiescent flag vs --quiescent').toBe(strict.verdict === 'conforms');
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

describe('pdspec examples judges each row by its guard too', () => {
  it('a violation row whose documented guard is not the one the message names does not match', async () => {
    const row = exampleRows().find((r) => r.file === 'zoo/z03-free-while-next-step-in-flight.jsonl')!;
    expect(row.guard).toBe('notHeld');
    const verdict = await checkFile(join(EXAMPLES_DIR, row.file), rowOptions(row));
    expect(matches(row, verdict)).toBe(true);
    expect(matches({ ...row, guard: 'notDeferred' }, verdict)).toBe(false);
    expect(matches({ ...row, guard: '—' }, verdict)).toBe(false);
  });
});
