// Users' own traces (docs/workload-format.md): CSV with a header, or JSON Lines, one request per row.
// Every row is checked; a bad row is a WorkloadError naming the file, the line and the field, and no row is
// ever skipped silently (blank lines and `#` comment lines are the only lines without a request).
import { readFileSync } from 'node:fs';
import { AZURE_HEADER, parseAzureCsv } from './azure.ts';
import { WorkloadError, type WorkloadRequest } from './types.ts';

export const CSV_COLUMNS = ['arrival', 'prompt', 'output', 'id', 'abort', 'seed'] as const;
const REQUIRED = ['arrival', 'prompt', 'output'] as const;

type Column = (typeof CSV_COLUMNS)[number];

function readNumber(value: unknown, field: string, where: string, kind: 'time' | 'positive' | 'seed'): number {
  const n = typeof value === 'string' ? (value.trim() === '' ? Number.NaN : Number(value)) : typeof value === 'number' ? value : Number.NaN;
  const shown = typeof value === 'string' ? `'${value}'` : JSON.stringify(value);
  if (kind === 'time') {
    if (!Number.isFinite(n) || n < 0) throw new WorkloadError(`${where}: field '${field}' must be a number of seconds ≥ 0, got ${shown}`);
  } else if (kind === 'positive') {
    if (!Number.isInteger(n) || n < 1) throw new WorkloadError(`${where}: field '${field}' must be an integer ≥ 1, got ${shown}`);
  } else if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) {
    throw new WorkloadError(`${where}: field '${field}' must be an integer in 0..4294967295, got ${shown}`);
  }
  return n;
}

function build(fields: Partial<Record<Column, unknown>>, where: string, index: number): WorkloadRequest {
  for (const name of REQUIRED) if (fields[name] === undefined || fields[name] === '') throw new WorkloadError(`${where}: missing field '${name}'`);
  const r: WorkloadRequest = {
    id: fields.id === undefined || fields.id === '' ? `r${index}` : String(fields.id),
    arrival: readNumber(fields.arrival, 'arrival', where, 'time'),
    prompt: readNumber(fields.prompt, 'prompt', where, 'positive'),
    output: readNumber(fields.output, 'output', where, 'positive'),
  };
  if (fields.id !== undefined && typeof fields.id !== 'string' && !(typeof fields.id === 'number' && Number.isInteger(fields.id))) {
    throw new WorkloadError(`${where}: field 'id' must be a string or an integer, got ${JSON.stringify(fields.id)}`);
  }
  if (fields.abort !== undefined && fields.abort !== '') {
    r.abortAt = readNumber(fields.abort, 'abort', where, 'time');
    if (r.abortAt < r.arrival) throw new WorkloadError(`${where}: field 'abort' (${r.abortAt}) is before the arrival (${r.arrival})`);
  }
  if (fields.seed !== undefined && fields.seed !== '') r.seed = readNumber(fields.seed, 'seed', where, 'seed');
  return r;
}

export function parseCsvWorkload(text: string, name: string): WorkloadRequest[] {
  const lines = text.split(/\r?\n/);
  let headerLine = -1;
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i].trim();
    if (l !== '' && !l.startsWith('#')) {
      headerLine = i;
      break;
    }
  }
  if (headerLine < 0) throw new WorkloadError(`${name}: empty workload (no header line)`);
  if (lines[headerLine].trim() === AZURE_HEADER) return parseAzureCsv(lines.slice(headerLine).join('\n'), name, 'r');
  const columns = lines[headerLine].split(',').map((c) => c.trim());
  const seen = new Set<string>();
  for (const c of columns) {
    if (!(CSV_COLUMNS as readonly string[]).includes(c)) {
      throw new WorkloadError(`${name}:${headerLine + 1}: unknown column '${c}' (known: ${CSV_COLUMNS.join(', ')}; or the Azure header ${AZURE_HEADER})`);
    }
    if (seen.has(c)) throw new WorkloadError(`${name}:${headerLine + 1}: column '${c}' appears twice`);
    seen.add(c);
  }
  for (const r of REQUIRED) if (!seen.has(r)) throw new WorkloadError(`${name}:${headerLine + 1}: the header has no '${r}' column`);
  const out: WorkloadRequest[] = [];
  for (let i = headerLine + 1; i < lines.length; i++) {
    const l = lines[i];
    const trimmed = l.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const where = `${name}:${i + 1}`;
    const cells = l.split(',');
    if (cells.length !== columns.length) throw new WorkloadError(`${where}: expected ${columns.length} fields (${columns.join(',')}), got ${cells.length}`);
    const fields: Partial<Record<Column, unknown>> = {};
    columns.forEach((c, k) => (fields[c as Column] = cells[k].trim()));
    out.push(build(fields, where, out.length));
  }
  return out;
}

export function parseJsonlWorkload(text: string, name: string): WorkloadRequest[] {
  const lines = text.split(/\r?\n/);
  const out: WorkloadRequest[] = [];
  for (let i = 0; i < lines.length; i++) {
    const trimmed = lines[i].trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const where = `${name}:${i + 1}`;
    let raw: unknown;
    try {
      raw = JSON.parse(trimmed);
    } catch (err) {
      throw new WorkloadError(`${where}: not valid JSON (${(err as Error).message})`);
    }
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new WorkloadError(`${where}: each line must be a JSON object {arrival, prompt, output, ...}`);
    for (const key of Object.keys(raw)) {
      if (!(CSV_COLUMNS as readonly string[]).includes(key)) throw new WorkloadError(`${where}: unknown field '${key}' (known: ${CSV_COLUMNS.join(', ')})`);
    }
    out.push(build(raw as Partial<Record<Column, unknown>>, where, out.length));
  }
  if (out.length === 0) throw new WorkloadError(`${name}: empty workload (no request lines)`);
  return out;
}

/** Reads a CSV (`.csv`) or JSON Lines (`.jsonl`, `.ndjson`, or content starting with `{`) workload file. */
export function loadWorkloadFile(path: string): WorkloadRequest[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new WorkloadError(code === 'ENOENT' ? `no such workload file: ${path}` : code === 'EISDIR' ? `${path} is a directory` : `cannot read ${path}: ${(err as Error).message}`);
  }
  const lower = path.toLowerCase();
  const jsonl = lower.endsWith('.jsonl') || lower.endsWith('.ndjson') || (!lower.endsWith('.csv') && text.trimStart().startsWith('{'));
  const requests = jsonl ? parseJsonlWorkload(text, path) : parseCsvWorkload(text, path);
  const ids = new Map<string, number>();
  requests.forEach((r, i) => {
    if (ids.has(r.id)) throw new WorkloadError(`${path}: request id '${r.id}' appears twice (requests ${ids.get(r.id)! + 1} and ${i + 1})`);
    ids.set(r.id, i);
  });
  return requests;
}
