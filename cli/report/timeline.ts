// Who owned which KV block when, read off a trace: the data behind a counterexample's timeline chart.
// Positions are trace line numbers (the header is line 1, the first event line 2), the numbering
// `pdspec conform` uses, so the chart, the event list and the checker's message point at the same lines.
import type { TraceEvent, TraceHeader } from '../../spec/trace-format.ts';

/** A request owning a block from its alloc to its free (or to the end of the trace). */
export interface OwnerBar {
  row: number;
  req: string;
  from: number;
  to: number;
  /** Still owned when the trace ends. */
  open: boolean;
  /** Sub-row within the block's row, 0-based: more than one lane means two owners at once. */
  lane: number;
  lanes: number;
}

/** A block in use by a step or transfer in flight: freeing it now would let a late write land. */
export interface UseBar {
  row: number;
  op: string;
  from: number;
  to: number;
  open: boolean;
}

/** A step or transfer in flight, on the row of the worker that runs it (transfers on their own row). */
export interface OpBar {
  lane: number;
  /** Sub-row within the lane, 0-based: a worker with two steps in flight at once (asynchronous scheduling). */
  sub: number;
  subs: number;
  label: string;
  from: number;
  to: number;
  open: boolean;
}

/** An event that touches a block its request does not own (a free of a free block, say). */
export interface StrayMark {
  row: number;
  line: number;
  what: string;
}

export interface BlockTimeline {
  /** Rows of workers (and transfers) with their steps in flight, drawn above the blocks. */
  lanes: { lane: number; label: string }[];
  ops: OpBar[];
  rows: { row: number; label: string }[];
  owners: OwnerBar[];
  uses: UseBar[];
  strays: StrayMark[];
  /** Line of the first and last event. */
  first: number;
  last: number;
  /** Requests in order of first appearance (for stable colours). */
  requests: string[];
  /** Rows each line touches (alloc, free, steps over owned blocks). */
  touched: Map<number, number[]>;
  /** Blocks never allocated in the trace that are left out of `rows`. */
  hiddenBlocks: number;
}

/** Rows for every block when the pool is this small or less; above it, only the blocks the trace touches. */
const ALL_BLOCKS_UP_TO = 24;

/** Line of the i-th event (0-based). */
export const lineOf = (i: number): number => i + 2;

export function blockTimeline(header: TraceHeader, events: readonly TraceEvent[]): BlockTimeline {
  const gpus = Math.max(1, header.gpus);
  const workerGpu = new Map(header.workers.map((w) => [w.id, w.gpu]));
  const key = (gpu: number, block: number) => `${gpu}:${block}`;
  const first = lineOf(0);
  const last = lineOf(Math.max(0, events.length - 1));

  // Intervals are collected by block key, then laid out in rows.
  const owned = new Map<string, { req: string; from: number; to: number; open: boolean }[]>();
  const used: { key: string; op: string; from: number; to: number; open: boolean }[] = [];
  const strays: { key: string; line: number; what: string }[] = [];
  const touchedKeys = new Map<number, string[]>();
  const requests: string[] = [];
  const seenReq = new Set<string>();
  const inFlight = new Map<string, { op: string; lane: string; label: string; keys: string[]; from: number }>();
  const opsDone: { lane: string; label: string; from: number; to: number; open: boolean }[] = [];
  const laneNames: string[] = [];

  const noteReq = (req: string) => {
    if (!seenReq.has(req)) {
      seenReq.add(req);
      requests.push(req);
    }
  };
  const touch = (line: number, k: string) => {
    const list = touchedKeys.get(line) ?? [];
    if (!list.includes(k)) list.push(k);
    touchedKeys.set(line, list);
  };
  /** Blocks a request owns right now, in every pool. */
  const heldBy = (req: string): string[] => {
    const out: string[] = [];
    for (const [k, list] of owned) if (list.some((o) => o.open && o.req === req)) out.push(k);
    return out;
  };
  const begin = (id: string, op: string, lane: string, label: string, keys: string[], line: number) => {
    inFlight.set(id, { op, lane, label, keys, from: line });
    if (!laneNames.includes(lane)) laneNames.push(lane);
    for (const k of keys) touch(line, k);
  };
  const end = (id: string, line: number) => {
    const op = inFlight.get(id);
    if (!op) return;
    inFlight.delete(id);
    opsDone.push({ lane: op.lane, label: op.label, from: op.from, to: line, open: false });
    for (const k of op.keys) used.push({ key: k, op: op.op, from: op.from, to: line, open: false });
  };

  events.forEach((e, i) => {
    const line = lineOf(i);
    switch (e.ev) {
      case 'arrive':
        noteReq(e.req);
        break;
      case 'worker_start':
        workerGpu.set(e.worker, e.gpu ?? 0);
        break;
      case 'alloc':
      case 'alloc_take': {
        noteReq(e.req);
        const gpu = workerGpu.get(e.worker) ?? 0;
        for (const b of e.blocks) {
          const k = key(gpu, b);
          const list = owned.get(k) ?? [];
          list.push({ req: e.req, from: line, to: line, open: true });
          owned.set(k, list);
          touch(line, k);
        }
        break;
      }
      case 'free': {
        noteReq(e.req);
        for (const b of e.blocks) {
          // A free names no pool: it releases the request's own copy of the block, in whichever pool holds it.
          let done = false;
          for (let g = 0; g < gpus && !done; g++) {
            const k = key(g, b);
            const o = owned.get(k)?.find((x) => x.open && x.req === e.req);
            if (o) {
              o.open = false;
              o.to = line;
              touch(line, k);
              done = true;
            }
          }
          if (!done) {
            const k = key(0, b);
            strays.push({ key: k, line, what: `free of block ${b}, not owned by ${e.req}` });
            touch(line, k);
          }
        }
        break;
      }
      case 'step_begin': {
        const keys = e.batch.flatMap((item) => heldBy(item.req));
        const label = `step ${e.step}: ${e.batch.map((item) => item.req).join(', ')}`;
        begin(`step:${e.worker}:${e.step}`, `step ${e.step} of ${e.worker}`, e.worker, label, keys, line);
        break;
      }
      case 'step_end':
        end(`step:${e.worker}:${e.step}`, line);
        break;
      case 'transfer_begin':
        begin(`xfer:${e.xfer}`, `transfer ${e.xfer}`, 'transfers', `${e.xfer}: ${e.req} ${e.from}→${e.to}`, heldBy(e.req), line);
        break;
      case 'transfer_end':
        end(`xfer:${e.xfer}`, line);
        break;
      default:
        break;
    }
  });
  for (const op of inFlight.values()) {
    opsDone.push({ lane: op.lane, label: op.label, from: op.from, to: last, open: true });
    for (const k of op.keys) used.push({ key: k, op: op.op, from: op.from, to: last, open: true });
  }

  // Rows: every block of a small pool, else the touched ones; in pool order, then block order.
  const touchedSet = new Set<string>([...owned.keys(), ...used.map((u) => u.key), ...strays.map((s) => s.key)]);
  const allKeys: string[] = [];
  const total = header.blocks * gpus;
  if (total <= ALL_BLOCKS_UP_TO) for (let g = 0; g < gpus; g++) for (let b = 0; b < header.blocks; b++) allKeys.push(key(g, b));
  else allKeys.push(...[...touchedSet]);
  const parse = (k: string) => k.split(':').map(Number) as [number, number];
  allKeys.sort((a, b) => {
    const [ga, ba] = parse(a);
    const [gb, bb] = parse(b);
    return ga - gb || ba - bb;
  });
  const rowOf = new Map(allKeys.map((k, i) => [k, i]));
  const rows = allKeys.map((k, row) => {
    const [g, b] = parse(k);
    return { row, label: gpus > 1 ? `GPU ${g} · block ${b}` : `block ${b}` };
  });

  // Lanes: owners of one block that overlap in time are drawn side by side, never on top of each other.
  const owners: OwnerBar[] = [];
  for (const [k, list] of owned) {
    const row = rowOf.get(k)!;
    const sorted = [...list].sort((a, b) => a.from - b.from);
    const laneEnds: number[] = [];
    const placed = sorted.map((o) => {
      const to = o.open ? last : o.to;
      let lane = laneEnds.findIndex((endAt) => endAt <= o.from);
      if (lane === -1) lane = laneEnds.length;
      laneEnds[lane] = o.open ? Infinity : to;
      return { row, req: o.req, from: o.from, to, open: o.open, lane };
    });
    for (const p of placed) owners.push({ ...p, lanes: laneEnds.length });
  }
  owners.sort((a, b) => a.row - b.row || a.from - b.from);

  const touched = new Map<number, number[]>();
  for (const [line, keys] of touchedKeys) touched.set(line, keys.map((k) => rowOf.get(k)).filter((r): r is number => r !== undefined));

  const laneOf = new Map(laneNames.map((name, i) => [name, i]));
  const roleOf = new Map(header.workers.map((w) => [w.id, w.role]));
  for (const e of events) if (e.ev === 'worker_start') roleOf.set(e.worker, e.role);
  return {
    lanes: laneNames.map((name, lane) => ({ lane, label: name === 'transfers' ? 'transfers' : `${name}${roleOf.has(name) ? ` (${roleOf.get(name)})` : ''}` })),
    ops: stack(opsDone.map((o) => ({ lane: laneOf.get(o.lane)!, label: o.label, from: o.from, to: o.to, open: o.open }))),
    rows,
    owners,
    uses: used.map((u) => ({ row: rowOf.get(u.key)!, op: u.op, from: u.from, to: u.to, open: u.open })),
    strays: strays.map((s) => ({ row: rowOf.get(s.key)!, line: s.line, what: s.what })),
    first,
    last,
    requests,
    touched,
    hiddenBlocks: total - rows.length,
  };
}

/** Ops of one lane that overlap in time get sub-rows, so none hides another. */
function stack(ops: Omit<OpBar, 'sub' | 'subs'>[]): OpBar[] {
  const out: OpBar[] = [];
  const lanes = new Set(ops.map((o) => o.lane));
  for (const lane of lanes) {
    const mine = ops.filter((o) => o.lane === lane).sort((a, b) => a.from - b.from);
    const ends: number[] = [];
    const placed = mine.map((o) => {
      let sub = ends.findIndex((e) => e < o.from);
      if (sub === -1) sub = ends.length;
      ends[sub] = o.open ? Infinity : o.to;
      return { ...o, sub };
    });
    for (const p of placed) out.push({ ...p, subs: ends.length });
  }
  return out.sort((a, b) => a.lane - b.lane || a.from - b.from);
}
