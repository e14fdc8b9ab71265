// A workload: the requests a run serves, each with its arrival time and lengths, and optionally the time
// the client aborts it.

export interface WorkloadRequest {
  /** Request id, unique in the workload (the trace's `req`). */
  id: string;
  /** Arrival time, seconds from the start of the run. */
  arrival: number;
  /** Prompt length in tokens (≥ 1). */
  prompt: number;
  /** Output length in tokens (≥ 1): the request finishes after this many tokens. */
  output: number;
  /** Absolute time (seconds) at which the client aborts the request, if it is still live then. */
  abortAt?: number;
  /** Seed of the request's pseudo-tokens; by default derived from the run's seed and the id. */
  seed?: number;
  /**
   * The prompt starts with a shared prefix: `id` names the token sequence, `length` (1..prompt) how many of
   * the prompt's first tokens are that sequence's first tokens. With prefix caching (EngineOptions
   * .prefixCaching) the full blocks of a prefix are reused from the cache by later requests with the same id.
   */
  prefix?: { id: string; length: number };
  /** Parallel samples (vLLM's `n`, default 1): n > 1 forks the request n − 1 times once its prompt is prefilled. */
  n?: number;
}

/** The most parallel samples one request may ask for. */
export const MAX_SAMPLES = 16;

/** A workload that cannot be read or built: one line, naming the file and line where there is one. */
export class WorkloadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WorkloadError';
  }
}

/** Checks one request; `where` prefixes the message (e.g. "trace.csv:12"). */
export function checkRequest(r: WorkloadRequest, where: string): void {
  if (typeof r.id !== 'string' || r.id.length === 0) throw new WorkloadError(`${where}: request id must be a non-empty string`);
  if (!Number.isFinite(r.arrival) || r.arrival < 0) throw new WorkloadError(`${where}: arrival must be a finite number of seconds ≥ 0, got ${r.arrival}`);
  if (!Number.isInteger(r.prompt) || r.prompt < 1) throw new WorkloadError(`${where}: prompt must be an integer ≥ 1, got ${r.prompt}`);
  if (!Number.isInteger(r.output) || r.output < 1) throw new WorkloadError(`${where}: output must be an integer ≥ 1, got ${r.output}`);
  if (r.abortAt !== undefined && (!Number.isFinite(r.abortAt) || r.abortAt < r.arrival)) {
    throw new WorkloadError(`${where}: abort time must be a finite number ≥ the arrival (${r.arrival}), got ${r.abortAt}`);
  }
  if (r.prefix !== undefined) {
    const p = r.prefix;
    if (p === null || typeof p !== 'object' || typeof p.id !== 'string' || p.id.length === 0) throw new WorkloadError(`${where}: prefix must be {id, length} with a non-empty string id`);
    if (!Number.isInteger(p.length) || p.length < 1 || p.length > r.prompt) throw new WorkloadError(`${where}: prefix length must be an integer in 1..prompt (${r.prompt}), got ${p.length}`);
  }
  if (r.n !== undefined && (!Number.isInteger(r.n) || r.n < 1 || r.n > MAX_SAMPLES)) throw new WorkloadError(`${where}: n (parallel samples) must be an integer in 1..${MAX_SAMPLES}, got ${r.n}`);
}

/** Requests sorted by arrival, ties in input order (a stable sort), after checking ids are unique. */
export function normalise(requests: readonly WorkloadRequest[], where = 'workload'): WorkloadRequest[] {
  const seen = new Set<string>();
  for (let i = 0; i < requests.length; i++) {
    const r = requests[i];
    checkRequest(r, `${where} request ${i + 1}`);
    if (seen.has(r.id)) throw new WorkloadError(`${where}: request id '${r.id}' appears twice`);
    seen.add(r.id);
  }
  return requests
    .map((r, i) => ({ r, i }))
    .sort((a, b) => a.r.arrival - b.r.arrival || a.i - b.i)
    .map((x) => x.r);
}
