// The library API (api/index.ts, api/vitest.ts): the streaming checker gives the verdict `conform` gives on
// every example trace, at the same line; conform reads streams; the matcher works in vitest's own expect.
import { createReadStream, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkText, conform, createChecker, FormatError } from '../api/index.ts';
import { matchers, type ConformMatchers } from '../api/vitest.ts';

declare module 'vitest' {
  // eslint-disable-next-line @typescript-eslint/no-empty-object-type
  interface Assertion<T> extends ConformMatchers<T> {}
}
expect.extend(matchers);

const root = join(import.meta.dirname, '..');
const traces = join(root, 'examples', 'traces');
const files = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? (e.name === 'bad-input' ? [] : files(join(dir, e.name))) : e.name.endsWith('.jsonl') ? [join(dir, e.name)] : []));

describe('createChecker(header) → check(event) → end()', () => {
  it('gives, event by event, the verdict of the whole-trace checker on every example trace', () => {
    let violations = 0;
    for (const file of files(traces)) {
      const lines = readFileSync(file, 'utf8').trim().split('\n');
      const whole = checkText(lines.join('\n'));
      const checker = createChecker(JSON.parse(lines[0]));
      let stopped: ReturnType<typeof checker.check> | null = null;
      for (const line of lines.slice(1)) {
        const step = checker.check(JSON.parse(line));
        if (step.verdict !== 'conforms') {
          stopped = step;
          break;
        }
      }
      const end = checker.end();
      expect(end.verdict, file).toBe(whole.verdict);
      if (whole.verdict === 'violation' && end.verdict === 'violation') {
        expect(end.finding, file).toEqual(whole.finding);
        // A violation at an event is returned by that event's check (one at the end of the trace by end()).
        if (whole.finding.line <= lines.length) expect(stopped?.verdict, file).toBe('violation');
        violations++;
      }
    }
    expect(violations).toBeGreaterThan(20);
  });

  it('refuses a header that is not one, and reports a bad event as bad input at its line', () => {
    expect(() => createChecker({ format: 'pdspec-trace', version: 9 })).toThrow(FormatError);
    const checker = createChecker({ format: 'pdspec-trace', version: 1, mode: 'unified', blocks: 4, blockSize: 2, sms: 8 });
    expect(checker.check({ t: 0, ev: 'arrive', req: 'r1', prompt: 2 })).toEqual({ verdict: 'conforms', line: 2 });
    expect(checker.check({ t: 0, ev: 'swap_out', req: 'r1' })).toMatchObject({ verdict: 'bad-input', line: 3 });
    expect(checker.end()).toMatchObject({ verdict: 'bad-input', line: 3 });
  });
});

describe('conform(stream) and the matcher', () => {
  it('conform reads a file stream, an async generator of chunks, and text', async () => {
    const file = join(traces, 'zoo', 'z03-free-while-next-step-in-flight.jsonl');
    const fromStream = await conform(createReadStream(file));
    expect(fromStream).toMatchObject({ verdict: 'violation', finding: { line: 14, rule: 'NoFreeWhileInFlight' } });
    const text = readFileSync(file, 'utf8');
    async function* chunks() {
      for (let i = 0; i < text.length; i += 7) yield new TextEncoder().encode(text.slice(i, i + 7));
    }
    expect(await conform(chunks())).toEqual(fromStream);
    expect(await conform(text)).toEqual(fromStream);
  });

  it('expect(trace).toConform() passes on a conforming trace and fails with the checker\'s words on a violation', () => {
    const good = readFileSync(join(traces, 'semi-pd-resize.jsonl'), 'utf8');
    expect(good).toConform({ quiescent: true });
    expect(good.trim().split('\n').map((l) => JSON.parse(l))).toConform();
    const bad = readFileSync(join(traces, 'zoo', 'z03-free-while-next-step-in-flight.jsonl'), 'utf8');
    expect(bad).not.toConform();
    expect(() => expect(bad).toConform()).toThrow(/trace:14: violation of NoFreeWhileInFlight/);
  });
});
