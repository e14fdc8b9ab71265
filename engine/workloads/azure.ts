// The Azure LLM inference traces of 2023 (conversation and code, one hour each; CC-BY 4.0, Patel et al.,
// Splitwise, ISCA 2024), read from the project's copy in data/azure-llm-inference-2023/.
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WorkloadError, type WorkloadRequest } from './types.ts';

const here = dirname(fileURLToPath(import.meta.url));
export const AZURE_DIR = resolve(here, '../../data/azure-llm-inference-2023');
export const AZURE_FILES = { conv: 'AzureLLMInferenceTrace_conv.csv', code: 'AzureLLMInferenceTrace_code.csv' } as const;
export const AZURE_HEADER = 'TIMESTAMP,ContextTokens,GeneratedTokens';

/** Seconds since 1970 of "2023-11-16 18:15:46.6805900" (UTC; only differences matter). */
export function parseAzureTimestamp(text: string): number {
  const m = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2}(?:\.\d+)?)$/.exec(text);
  if (!m) return Number.NaN;
  const days = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])) / 1000;
  return days + Number(m[4]) * 3600 + Number(m[5]) * 60 + Number(m[6]);
}

/**
 * Parses the Azure schema (TIMESTAMP,ContextTokens,GeneratedTokens): arrivals become seconds after the
 * first row; ids are `${prefix}${row}` (row 0 is the first request). A bad row is an error naming it.
 */
export function parseAzureCsv(text: string, name: string, prefix: string): WorkloadRequest[] {
  const lines = text.split(/\r?\n/);
  if (lines[0]?.trim() !== AZURE_HEADER) throw new WorkloadError(`${name}:1: expected the header '${AZURE_HEADER}'`);
  const out: WorkloadRequest[] = [];
  let t0 = Number.NaN;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
    if (line.trim() === '') continue;
    const cells = line.split(',');
    const where = `${name}:${i + 1}`;
    if (cells.length !== 3) throw new WorkloadError(`${where}: expected 3 fields (${AZURE_HEADER}), got ${cells.length}`);
    const t = parseAzureTimestamp(cells[0].trim());
    if (!Number.isFinite(t)) throw new WorkloadError(`${where}: field 'TIMESTAMP' must look like 2023-11-16 18:15:46.6805900, got '${cells[0]}'`);
    const prompt = Number(cells[1]);
    const output = Number(cells[2]);
    if (!Number.isInteger(prompt) || prompt < 1) throw new WorkloadError(`${where}: field 'ContextTokens' must be an integer ≥ 1, got '${cells[1]}'`);
    if (!Number.isInteger(output) || output < 1) throw new WorkloadError(`${where}: field 'GeneratedTokens' must be an integer ≥ 1, got '${cells[2]}'`);
    if (Number.isNaN(t0)) t0 = t;
    const arrival = t - t0;
    if (arrival < 0) throw new WorkloadError(`${where}: TIMESTAMP is earlier than the first row's; the trace must be in time order`);
    out.push({ id: `${prefix}${out.length}`, arrival, prompt, output });
  }
  return out;
}

const cache = new Map<string, WorkloadRequest[]>();

/** The whole trace (19,366 conversation or 8,819 code requests), arrivals from 0. */
export function loadAzure(which: 'conv' | 'code'): WorkloadRequest[] {
  let reqs = cache.get(which);
  if (!reqs) {
    const path = join(AZURE_DIR, AZURE_FILES[which]);
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      throw new WorkloadError(`the Azure ${which} trace is missing: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
    reqs = parseAzureCsv(text, path, `${which}-`);
    cache.set(which, reqs);
  }
  return reqs.map((r) => ({ ...r }));
}
