// The Python trace writer (python/pdspec_trace.py): every example trace, rewritten event by event through it,
// comes out the same trace — valid against docs/trace-schema.json and given the same verdict by the checker —
// its table of events agrees with the schema, a live scripted run piped into `pdspec conform -` is judged as
// it is written, buffering holds events until a flush, and a hook in the wrong place is refused where it is.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { afterAll, describe, expect, it } from 'vitest';
import { checkText } from '../spec/checker.ts';
import { EVENTS } from '../spec/trace-format.ts';

const root = join(import.meta.dirname, '..');
const scratch = mkdtempSync(join(tmpdir(), 'pdspec-pytrace-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
const HAS_PYTHON = spawnSync('python3', ['--version']).status === 0;
if (!HAS_PYTHON) console.warn('python-trace: the Python trace writer is not tested: python3 is not installed (.ci/run installs it)');

/** Runs a Python script with python/ on its path; returns its result. */
function python(script: string, args: string[] = [], input?: string) {
  const file = join(scratch, `script-${Math.random().toString(36).slice(2)}.py`);
  writeFileSync(file, script);
  return spawnSync('python3', [file, ...args], { cwd: root, encoding: 'utf8', input, env: { ...process.env, PYTHONPATH: join(root, 'python'), PYTHONDONTWRITEBYTECODE: '1' } });
}

function jsonlFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? (e.name === 'bad-input' ? [] : jsonlFiles(join(dir, e.name))) : e.name.endsWith('.jsonl') ? [join(dir, e.name)] : []));
}

/** Rewrites each source trace (relative to the repository root) through the writer into OUT. */
const REWRITE = `
import json, os, sys
from pdspec_trace import TraceWriter
out = sys.argv[1]
for src in sys.argv[2:]:
    with open(src, encoding="utf-8") as f:
        lines = [json.loads(l) for l in f if l.strip()]
    head = lines[0]
    rest = {k: v for k, v in head.items() if k not in ("format", "version", "mode", "blocks", "blockSize", "sms")}
    dst = os.path.join(out, src.replace("/", "_"))
    with TraceWriter(dst, mode=head["mode"], blocks=head["blocks"], block_size=head["blockSize"], sms=head["sms"],
                     version=head["version"], buffer_events=7, **rest) as w:
        for e in lines[1:]:
            fields = {k: v for k, v in e.items() if k not in ("t", "ev")}
            w.event(e["ev"], e["t"], **fields)
`;

describe.skipIf(!HAS_PYTHON)('python/pdspec_trace.py', () => {
  const schema = JSON.parse(readFileSync(join(root, 'docs', 'trace-schema.json'), 'utf8'));

  it("its table of events, fields and versions is the schema's", () => {
    const r = python(`
import json
from pdspec_trace import EVENTS
print(json.dumps({ev: [since, list(req), opt] for ev, (since, req, opt) in EVENTS.items()}))
`);
    expect(r.status, r.stderr).toBe(0);
    const table = JSON.parse(r.stdout) as Record<string, [number, string[], Record<string, number>]>;
    // The checker's own catalogue (spec/trace-format.ts), which the schema is generated from.
    const fromSpec = Object.fromEntries(
      Object.entries(EVENTS).map(([ev, spec]) => {
        const fields = Object.entries((spec as { fields: Record<string, { optional?: boolean; since?: number }> }).fields);
        return [ev, [(spec as { since?: number }).since ?? 1, fields.filter(([, f]) => !f.optional).map(([k]) => k), Object.fromEntries(fields.filter(([, f]) => f.optional).map(([k, f]) => [k, f.since ?? 1]))]];
      }),
    );
    expect(table).toEqual(fromSpec);
    expect(Object.keys(table)).toEqual(schema.$defs.event.oneOf.map((e: { properties: { ev: { const: string } } }) => e.properties.ev.const));
  });

  it('rewrites every example trace event by event into the same trace: schema-valid, the same verdict', () => {
    const ajv = new Ajv2020({ allErrors: true, strict: false });
    const validate = ajv.compile(schema);
    const files = jsonlFiles(join(root, 'examples', 'traces'));
    expect(files.length).toBeGreaterThan(60);
    const out = join(scratch, 'rewritten');
    mkdirSync(out);
    const r = python(REWRITE, [out, ...files.map((f) => relative(root, f))]);
    expect(r.status, r.stderr).toBe(0);
    const verdicts: Record<string, number> = {};
    for (const file of files) {
      const rel = relative(root, file);
      const original = readFileSync(file, 'utf8');
      const written = readFileSync(join(out, rel.replaceAll('/', '_')), 'utf8');
      const parse = (text: string) => text.trim().split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l));
      expect(parse(written), rel).toEqual(parse(original));
      for (const [i, value] of parse(written).entries()) expect(validate(value), `${rel}:${i + 1} ${ajv.errorsText(validate.errors)}`).toBe(true);
      const a = checkText(original);
      const b = checkText(written);
      expect(b.verdict, rel).toBe(a.verdict);
      if (a.verdict === 'violation' && b.verdict === 'violation') expect([b.finding.rule, b.conformingPrefix], rel).toEqual([a.finding.rule, a.conformingPrefix]);
      verdicts[b.verdict] = (verdicts[b.verdict] ?? 0) + 1;
    }
    // Both kinds are among them: the rewritten traces are judged, not merely parsed.
    expect(verdicts.conforms).toBeGreaterThan(20);
    expect(verdicts.violation).toBeGreaterThan(20);
  });

  it('a scripted live run, written with the clock to standard output, is judged by pdspec conform - as it comes', () => {
    const run = (violate: boolean) => {
      const r = python(`
import sys, time
from pdspec_trace import TraceWriter
w = TraceWriter("-", mode="unified", blocks=8, block_size=4, sms=132, version=2, buffer_events=1, source="scripted")
w.event("arrive", req="r1", prompt=6, max_tokens=2, keys=["a"])
w.event("schedule", req="r1", worker="U0")
w.event("alloc", worker="U0", req="r1", blocks=[0, 1])
w.event("step_begin", worker="U0", step=1, batch=[{"req": "r1", "tokens": 6}])
${violate ? 'w.event("free", req="r1", blocks=[0, 1])' : ''}
w.event("step_end", worker="U0", step=1)
w.event("token", req="r1", index=0, token=5)
w.event("join", req="r1", worker="U0")
w.event("cache_insert", req="r1", block=0, key="a")
w.event("step_begin", worker="U0", step=2, batch=[{"req": "r1", "tokens": 1}])
w.event("step_end", worker="U0", step=2)
w.event("token", req="r1", index=1)
w.event("finish", req="r1")
w.event("free", req="r1", blocks=[0, 1])
w.close()
`);
      expect(r.status, r.stderr).toBe(0);
      const times = r.stdout.trim().split('\n').slice(1).map((l) => JSON.parse(l).t as number);
      expect(times.every((t, i) => t >= 0 && (i === 0 || t >= times[i - 1]))).toBe(true);
      return spawnSync(process.execPath, [join(root, 'bin', 'pdspec.js'), 'conform', '-', '--quiescent'], { cwd: root, input: r.stdout, encoding: 'utf8' });
    };
    const good = run(false);
    expect(good.status, good.stderr).toBe(0);
    expect(good.stdout).toMatch(/\(stdin\): conforms — 13 events, 1 request\(s\), 1 ended, quiescent/);
    const bad = run(true);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('(stdin):6: violation of NoFreeWhileInFlight');
  });

  it('buffers events until buffer_events, flush() or close(), and at interpreter exit', () => {
    const file = join(scratch, 'buffered.jsonl');
    const r = python(`
import sys
from pdspec_trace import TraceWriter
path = sys.argv[1]
count = lambda: sum(1 for _ in open(path))
w = TraceWriter(path, mode="semi-pd", blocks=8, block_size=4, sms=132, buffer_events=3, flush_seconds=3600, clock=lambda: 0.0)
w.event("arrive", req="r1", prompt=4)
w.event("schedule", req="r1", worker="P0")
print(count())
w.event("arrive", req="r2", prompt=4)
print(count())
w.event("arrive", req="r3", prompt=4)
w.flush()
print(count())
w.event("abort", req="r3")
`, [file]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n')).toEqual(['1', '4', '5']);
    // The last event was pending at exit: written then.
    expect(readFileSync(file, 'utf8').trim().split('\n')).toHaveLength(6);
    expect(checkText(readFileSync(file, 'utf8')).verdict).toBe('conforms');
  });

  it('refuses a hook in the wrong place with a clear ValueError', () => {
    const r = python(`
from pdspec_trace import TraceWriter
import io
def attempt(f):
    try:
        f()
        print("accepted")
    except ValueError as e:
        print(e)
w = TraceWriter(io.StringIO(), mode="unified", blocks=8, block_size=4, sms=132, version=1)
attempt(lambda: w.event("cache_hit", 0.1, req="r1", blocks=[0], tokens=4))
attempt(lambda: w.event("arrive", 0.1, req="r1"))
attempt(lambda: w.event("arrive", 0.1, req="r1", prompt=4, keys=["a"]))
attempt(lambda: w.event("arrive", 0.1, req="r1", prompt=4, colour="red"))
attempt(lambda: w.event("swap_out", 0.1, req="r1"))
attempt(lambda: w.event("arrive", 0.2, req="r1", prompt=4))
attempt(lambda: w.event("arrive", 0.1, req="r2", prompt=4))
attempt(lambda: w.event("arrive", float("nan"), req="r2", prompt=4))
attempt(lambda: TraceWriter(io.StringIO(), mode="vllm", blocks=8, block_size=4, sms=132))
attempt(lambda: TraceWriter(io.StringIO(), mode="unified", blocks=8, block_size=4, sms=132, prefix_cache="radix"))
`);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n')).toEqual([
      "event 'cache_hit' needs trace version 2, the writer has 1",
      "event 'arrive' needs prompt",
      "field 'keys' of 'arrive' needs trace version 2, the writer has 1",
      "event 'arrive' has no field 'colour' (its fields: req, prompt, maxTokens, keys, note)",
      "unknown event 'swap_out'",
      'accepted',
      "t 0.1 is before the previous event's 0.2: times never go back",
      't must be a finite number of seconds >= 0, got nan',
      "mode must be one of semi-pd, nexus, disaggregated, unified, got 'vllm'",
      "header field 'prefixCache' needs trace version 2, the writer has 1",
    ]);
  });
});
