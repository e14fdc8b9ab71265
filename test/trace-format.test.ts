// The trace format: one definition behind the validator, the JSON Schema and the docs.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { describe, expect, it } from 'vitest';
import { allGeneratedSections } from '../cli/commands/docs.ts';
import { syncDocs } from '../spec/docs.ts';
import { EVENT_NAMES, EVENTS, FormatError, readEvent, readHeader, traceSchema } from '../spec/trace-format.ts';

const root = join(import.meta.dirname, '..');
const traces = join(root, 'examples', 'traces');

function jsonlFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? jsonlFiles(join(dir, e.name)) : e.name.endsWith('.jsonl') ? [join(dir, e.name)] : []));
}

describe('trace format v1', () => {
  const ajv = new Ajv2020({ allErrors: true, strict: false });
  const validate = ajv.compile(traceSchema());

  it('the generated docs and JSON Schema are up to date', () => {
    expect(syncDocs(root, false, allGeneratedSections())).toEqual([]);
    expect(JSON.parse(readFileSync(join(root, 'docs', 'trace-schema.json'), 'utf8'))).toEqual(traceSchema());
  });

  it('the schema and the docs cover every event the checker accepts', () => {
    const schemaEvents = ((traceSchema().$defs as { event: { oneOf: { properties: { ev: { const: string } } }[] } }).event.oneOf).map((e) => e.properties.ev.const);
    expect(schemaEvents).toEqual(EVENT_NAMES);
    const doc = readFileSync(join(root, 'docs', 'trace-format.md'), 'utf8');
    for (const name of EVENT_NAMES) expect(doc).toContain(`| \`${name}\` |`);
  });

  it('every line of every readable example is valid against the schema and the validator', () => {
    const files = jsonlFiles(traces).filter((f) => !f.includes('bad-input'));
    let lines = 0;
    for (const file of files) {
      const all = readFileSync(file, 'utf8').trim().split('\n');
      let version: 1 | 2 | 3 | 4 = 1;
      all.forEach((line, i) => {
        const value = JSON.parse(line);
        expect(validate(value), `${file}:${i + 1} ${ajv.errorsText(validate.errors)}`).toBe(true);
        if (i === 0) version = readHeader(value).version;
        else readEvent(value, version);
        lines++;
      });
    }
    expect(lines).toBeGreaterThan(300);
  });

  it('schema and validator reject the same malformed events', () => {
    const bad = [
      { t: 0, ev: 'swap_out', req: 'r1' },
      { t: 0, ev: 'alloc', worker: 'D0', req: 'r1' },
      { t: 0, ev: 'alloc', worker: 'D0', req: 'r1', blocks: [] },
      { t: -1, ev: 'finish', req: 'r1' },
      { t: 0, ev: 'finish', req: '' },
      { t: 0, ev: 'finish', req: 'r1', extra: 1 },
      { t: 0, ev: 'resize_begin', epoch: 1, prefill: 0, decode: 100 },
      { t: 0, ev: 'step_begin', worker: 'P0', step: 1, batch: [{ req: 'r1', tokens: 0 }] },
      { t: 0, ev: 'transfer_end', xfer: 'x', outcome: 'lost' },
      { ev: 'finish', req: 'r1' },
    ];
    for (const ev of bad) {
      expect(validate(ev), JSON.stringify(ev)).toBe(false);
      expect(() => readEvent(ev), JSON.stringify(ev)).toThrow(FormatError);
    }
  });

  it('errors name the field or event', () => {
    expect(() => readEvent({ t: 0, ev: 'alloc', worker: 'D0', req: 'r1' })).toThrow(/missing field 'blocks'/);
    expect(() => readEvent({ t: 0, ev: 'swap_out' })).toThrow(/unknown event 'swap_out'/);
    expect(() => readEvent({ t: 0, ev: 'evict', block: 1 })).toThrow(/event 'evict' needs trace version 2; the header says version 1/);
    expect(() => readEvent({ t: 0, ev: 'arrive', req: 'r1', prompt: 4, keys: ['a'] })).toThrow(/field 'keys' of 'arrive' needs trace version 2/);
    expect(readEvent({ t: 0, ev: 'evict', block: 1 }, 2)).toEqual({ t: 0, ev: 'evict', block: 1 });
    expect(() => readEvent({ t: 0, ev: 'cache_insert', req: 'r1', block: 0, key: '' }, 2)).toThrow(/field 'key' must be a cache key/);
    expect(() => readEvent({ t: 0, ev: 'finish', req: 'r1', reason: 'eos' })).toThrow(/unknown field 'reason'/);
    expect(() => readHeader({ format: 'pdspec-trace', version: 5 })).toThrow(/unsupported trace version 5: this pdspec reads versions 1, 2, 3 and 4/);
    expect(() => readHeader({ format: 'pdspec-trace', version: 1, mode: 'semi-pd', blocks: 8, blockSize: 4 })).toThrow(/missing field 'sms'/);
    expect(() => readHeader({ t: 0, ev: 'arrive' })).toThrow(/first line must be the header/);
  });

  it('ids are strings or integers, read as strings', () => {
    expect(readEvent({ t: 0, ev: 'step_end', worker: 7, step: 3 })).toEqual({ t: 0, ev: 'step_end', worker: '7', step: '3' });
  });

  it('every event says when an engine writes it', () => {
    for (const name of EVENT_NAMES) expect(EVENTS[name].emit.length, name).toBeGreaterThan(10);
  });

  it('the header fills in the defaults of its mode', () => {
    const h = readHeader({ format: 'pdspec-trace', version: 1, mode: 'disaggregated', blocks: 4, blockSize: 4, sms: 132 });
    expect(h.gpus).toBe(2);
    expect(h.workers.map((w) => [w.id, w.gpu])).toEqual([
      ['P0', 0],
      ['D0', 1],
    ]);
    expect(readHeader({ format: 'pdspec-trace', version: 1, mode: 'nexus', blocks: 4, blockSize: 4, sms: 132 }).shareRule).toBe('exact');
  });
});
