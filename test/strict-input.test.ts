// Input the trace format calls an error is refused with the line and exit 2, never read some other way:
// duplicate keys (JSON.parse would keep the last), `__proto__` keys, invalid UTF-8, ids beyond 2⁵³ (which
// would merge), headers beyond the documented sizes, over-long lines, nesting deep enough to exhaust a reader.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkText, MAX_LINE_CHARS } from '../spec/checker.ts';
import { strictJsonProblem } from '../spec/strict-json.ts';

const root = join(import.meta.dirname, '..');
const dir = mkdtempSync(join(tmpdir(), 'pdspec-strict-'));
const HEADER = '{"format":"pdspec-trace","version":1,"mode":"semi-pd","blocks":8,"blockSize":4,"sms":132}';
const conform = (file: string) => spawnSync(process.execPath, [join(root, 'bin', 'pdspec.js'), 'conform', file], { cwd: root, encoding: 'utf8' });

function badInput(text: string): { line: number; message: string } {
  const v = checkText(text);
  expect(v.verdict, JSON.stringify(v)).toBe('bad-input');
  return v as { verdict: 'bad-input'; line: number; message: string };
}

describe('strict JSON', () => {
  it('a key twice in one object is bad input naming the key and the line', () => {
    const v = badInput(`${HEADER}\n{"t":0,"ev":"arrive","req":"a","prompt":4,"maxTokens":2,"ev":"finish"}\n`);
    expect(v.line).toBe(2);
    expect(v.message).toMatch(/the key 'ev' appears twice in one object/);
  });

  it("a '__proto__' key is bad input, escaped or not", () => {
    expect(badInput(`${HEADER}\n{"t":0,"ev":"arrive","req":"a","prompt":4,"maxTokens":2,"__proto__":{"x":1}}\n`).message).toMatch(/'__proto__' is not allowed/);
    expect(badInput(`${HEADER}\n{"t":0,"ev":"arrive","req":"a","prompt":4,"maxTokens":2,"\\u005f_proto__":1}\n`).message).toMatch(/'__proto__' is not allowed/);
  });

  it('keys repeated in different objects, and key-like text inside strings, are fine', () => {
    expect(strictJsonProblem('{"batch":[{"req":"a","tokens":1},{"req":"b","tokens":2}],"req":"x"}')).toBeNull();
    expect(strictJsonProblem('{"note":"\\"note\\": twice","x":1}')).toBeNull();
    expect(strictJsonProblem('{"a\\\\":1,"a":2}')).toBeNull();
    expect(strictJsonProblem('{"x":{"a":1,"a":2}}')).toMatch(/'a' appears twice/);
  });

  it('ids beyond 2⁵³ (which would merge) are bad input', () => {
    const v = badInput(`${HEADER}\n{"t":0,"ev":"arrive","req":9007199254740993,"prompt":4,"maxTokens":2}\n`);
    expect(v.line).toBe(2);
  });

  it('nesting deeper than 64 levels is bad input, even on a last line without a newline', () => {
    const file = join(dir, 'deep.jsonl');
    writeFileSync(file, `${HEADER}\n{"t":0,"ev":"arrive","req":"a","prompt":4,"maxTokens":2,"note":${'['.repeat(200000)}`);
    const r = conform(file);
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/deep\.jsonl:2: bad input: nesting deeper than 64 levels/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});

describe('strict text and sizes', () => {
  it('invalid UTF-8 is bad input naming the line', () => {
    const file = join(dir, 'utf8.jsonl');
    writeFileSync(file, Buffer.concat([Buffer.from(`${HEADER}\n{"t":0,"ev":"arrive","req":"a`), Buffer.from([0xff, 0xfe]), Buffer.from('","prompt":4,"maxTokens":2}\n')]));
    const r = conform(file);
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/utf8\.jsonl:2: bad input: invalid UTF-8/);
  });

  it('a header beyond the documented sizes is bad input with the limit', () => {
    expect(badInput('{"format":"pdspec-trace","version":1,"mode":"semi-pd","blocks":1000000000,"blockSize":4,"sms":132}\n').message).toMatch(/'blocks' must be an integer in 1\.\.16777216/);
    expect(badInput('{"format":"pdspec-trace","version":1,"mode":"semi-pd","blocks":8,"blockSize":4,"sms":132,"gpus":100000000}\n').message).toMatch(/'gpus' must be an integer in 1\.\.64/);
    expect(badInput('{"format":"pdspec-trace","version":1,"mode":"disaggregated","blocks":16777216,"blockSize":4,"sms":132,"gpus":64}\n').message).toMatch(/blocks × gpus must be at most 33,554,432/);
  });

  it('a line longer than the limit is bad input naming its line, not "Invalid string length"', () => {
    const file = join(dir, 'long.jsonl');
    writeFileSync(file, `${HEADER}\n{"t":0,"ev":"arrive","req":"a","prompt":4,"maxTokens":2,"note":"${'x'.repeat(MAX_LINE_CHARS + 10)}"}\n`);
    const r = conform(file);
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/long\.jsonl:2: bad input: a line (of [\d,]+ characters, more than|longer than) the 16,777,216/);
  });
});
