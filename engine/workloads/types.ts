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
}

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
