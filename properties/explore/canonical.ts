// Canonical state keys. Two abstractions make the search finite and small:
// - utilisation versions grow without bound, but a guard only compares a block's write-back version with a
//   querying worker's read version; the key keeps those comparisons, not the numbers;
// - with symmetry reduction, blocks of one pool are interchangeable, and so are requests with the same
//   parameters and progress: the key sorts requests by everything observable about them (their blocks by
//   position in their table, their place in FIFOs and steps) and renames requests and blocks in that order.
// Without symmetry reduction the key keeps every id as it is (the count to compare against).
// Trace v2 adds what sharing makes observable: each request's cache keys (by value: requests with different
// keys are not interchangeable, and keys are never renamed), each block's key and its holders (a block shared
// by several requests is named once, where the first of them lists it, and its holders are written by rank),
// which is enough to tell apart every state the spec tells apart. Trace v3 adds each request's accepted drafts
// still owed, its state slots and the blocks it freed out of a window, each block's layer group, the drafts of a
// verify in flight, the verifies so far and the owners of the state slots (by rank; with symmetry the slots of
// a GPU are interchangeable, like its blocks). A judged variant's key is the variant's state and the
// reference's, both without renaming.
// A key is a sequence of 32-bit words (state-store.ts keeps them): names and machine states are interned as
// small codes, and every list is written with its length first, so that different states never share a key.
import type { System } from '../../spec/system.ts';
import type { Node } from './generator.ts';
import { KeyBuffer, keyText } from './state-store.ts';

/** Codes of the strings a key mentions (machine states, worker ids, op kinds); 0 stands for none. */
const codes = new Map<string, number>();
function code(s: string | null): number {
  if (s === null) return 0;
  let c = codes.get(s);
  if (c === undefined) {
    c = codes.size + 1;
    codes.set(s, c);
  }
  return c;
}

// A state shares its worker id list with its copies until a worker starts, so orders are memoised by list
// (and by its length: a list that is not shared grows in place).
const workerOrders = new WeakMap<readonly string[], number[]>();

/** Worker indices sorted by id. */
function byId(ids: readonly string[]): number[] {
  let order = workerOrders.get(ids);
  if (!order || order.length !== ids.length) {
    order = ids.map((_, i) => i).sort((a, b) => (ids[a] < ids[b] ? -1 : ids[a] > ids[b] ? 1 : 0));
    workerOrders.set(ids, order);
  }
  return order;
}

function writeBlockAttrs(out: KeyBuffer, sys: System, b: number, querying: number[]): void {
  const { value, context: c } = sys.blocks[b];
  out.push(code(value));
  out.push(c.owners.length);
  out.push(c.inFreeList);
  out.push(c.committed ? 1 : 0);
  if (c.committed) for (let i = 0; i < querying.length; i++) out.push(c.committedAt > sys.allocators[querying[i]].context.seen ? 1 : 0);
  out.push(sys.holds[b]);
  if (sys.header.version !== 1) out.push(code(c.key));
  if (sys.blockGroup !== null) out.push(sys.blockGroup[b]);
}

function writeRequestAttrs(out: KeyBuffer, sys: System, r: number, querying: number[], opSlots: Map<number, number[]> | null): void {
  const { value, context: c } = sys.requests[r];
  out.push(code(value));
  out.push(c.prompt);
  out.push(c.maxTokens);
  out.push(c.generated);
  out.push(c.computed);
  out.push(c.owned.length);
  for (let i = 0; i < c.owned.length; i++) out.push(c.owned[i]);
  out.push(code(c.server));
  out.push(c.inFlight);
  out.push((c.tokenOwed ? 1 : 0) | (c.awaitingKv ? 2 : 0) | (c.deferredFree ? 4 : 0));
  out.push(c.server === null ? -1 : sys.workers[sys.workerIndex.get(c.server)!].context.fifo.indexOf(sys.requestIds[r]));
  const slots = opSlots?.get(r);
  out.push(slots ? slots.length : 0);
  if (slots) for (let i = 0; i < slots.length; i++) out.push(slots[i]);
  if (sys.header.version !== 1) {
    const keys = sys.keys[r];
    out.push(keys.length);
    for (let i = 0; i < keys.length; i++) out.push(code(keys[i] ?? null));
  }
  if (sys.header.version >= 3) {
    // Trace v3: accepted drafts still to append, state slots held, blocks freed out of each group's window, and
    // the token ids of its output and of its verify's drafts (only where a trace names them).
    out.push(c.extraOwed);
    out.push(c.slots);
    const dropped = sys.dropped.get(r);
    out.push(dropped ? dropped.length : 0);
    if (dropped) for (let i = 0; i < dropped.length; i++) out.push(dropped[i]);
    for (const ids of [sys.outputIds.get(r), sys.draftIds.get(r)]) {
      out.push(ids ? ids.length : -1);
      if (ids) for (let i = 0; i < ids.length; i++) out.push(ids[i]);
    }
  }
  const table = sys.tables[r];
  out.push(table.length);
  for (let i = 0; i < table.length; i++) writeBlockAttrs(out, sys, table[i], querying);
}

function compareRegions(w: Int32Array, a0: number, a1: number, b0: number, b1: number): number {
  const n = Math.min(a1 - a0, b1 - b0);
  for (let i = 0; i < n; i++) if (w[a0 + i] !== w[b0 + i]) return w[a0 + i] - w[b0 + i];
  return a1 - a0 - (b1 - b0);
}

// Scratch space for attributes (requests, then unnamed blocks), reused by every call.
const scratch = new KeyBuffer();

/** Writes the key of a search state into `out` (cleared first); equal keys mean states with the same future (up to renaming, with symmetry). */
export function writeKey(node: Node, symmetry: boolean, out: KeyBuffer): void {
  out.length = 0;
  out.push(node.preemptions);
  if (node.sys.header.version >= 3) out.push(node.verifies);
  if (!node.ref) return writeSystem(node.sys, symmetry, out);
  writeSystem(node.sys, false, out);
  writeSystem(node.ref, false, out);
}

/** Appends the key of a system to `out`. */
function writeSystem(sys: System, symmetry: boolean, out: KeyBuffer): void {
  scratch.length = 0;
  // Workers in id order, not in the order they started: which new worker of a resize started first has no
  // bearing on the future (the generator and the spec find workers by id or role).
  const workers = byId(sys.workerIds);
  const querying: number[] = [];
  for (const w of workers) if (sys.allocators[w].value === 'querying') querying.push(w);
  // Where each request sits in the ops in flight (by the op's kind and writer, not its id).
  let opSlots: Map<number, number[]> | null = null;
  if (sys.ops.size > 0) {
    opSlots = new Map();
    for (const op of sys.ops.values())
      for (let k = 0; k < op.reqs.length; k++) {
        let slots = opSlots.get(op.reqs[k]);
        if (!slots) opSlots.set(op.reqs[k], (slots = []));
        slots.push(code(op.kind), code(op.writer), op.tokens[k], op.held[k].length);
        if (sys.header.version >= 3) slots.push(op.drafts?.[k] ?? 0);
      }
  }

  const R = sys.requests.length;
  const n = sys.blocks.length;
  const from = new Int32Array(R + 1);
  const order = new Array<number>(R);
  for (let r = 0; r < R; r++) {
    from[r] = scratch.length;
    writeRequestAttrs(scratch, sys, r, querying, opSlots);
    order[r] = r;
  }
  from[R] = scratch.length;
  if (symmetry) order.sort((a, b) => compareRegions(scratch.data, from[a], from[a + 1], from[b], from[b + 1]) || a - b);
  // rank[r]: the request's name in the key.
  const rank = new Int32Array(R);
  for (let i = 0; i < R; i++) rank[order[i]] = i;

  // Block names: in the order the (sorted) requests list them, then the rest by their attributes.
  const B = sys.header.blocks;
  const blockName = new Int32Array(n).fill(-1);
  if (symmetry) {
    const next = new Int32Array(sys.header.gpus);
    for (const r of order)
      for (const b of sys.tables[r]) {
        if (blockName[b] >= 0) continue;
        const pool = (b / B) | 0;
        blockName[b] = pool * B + next[pool]++;
      }
    const rest: number[] = [];
    const restFrom = new Int32Array(n);
    const restEnd = new Int32Array(n);
    for (let b = 0; b < n; b++) {
      if (blockName[b] >= 0) continue;
      rest.push(b);
      restFrom[b] = scratch.length;
      writeBlockAttrs(scratch, sys, b, querying);
      const owners = sys.blocks[b].context.owners;
      for (let i = 0; i < owners.length; i++) scratch.push(rank[sys.requestIndex.get(owners[i])!]);
      restEnd[b] = scratch.length;
    }
    const w = scratch.data;
    rest.sort((x, y) => compareRegions(w, restFrom[x], restEnd[x], restFrom[y], restEnd[y]) || x - y);
    for (const b of rest) {
      const pool = (b / B) | 0;
      blockName[b] = pool * B + next[pool]++;
    }
  } else {
    for (let b = 0; b < n; b++) blockName[b] = b;
  }

  out.push(querying.length); // how many comparison bits each committed block carries below
  out.push(R);
  for (const r of order) {
    out.append(scratch.data, from[r], from[r + 1]);
    const table = sys.tables[r];
    out.push(table.length);
    for (let i = 0; i < table.length; i++) out.push(blockName[table[i]]);
  }
  // Blocks in name order.
  const byName = new Int32Array(n);
  for (let b = 0; b < n; b++) byName[blockName[b]] = b;
  for (let i = 0; i < n; i++) {
    const b = byName[i];
    writeBlockAttrs(out, sys, b, querying);
    const owners = sys.blocks[b].context.owners;
    out.push(owners.length);
    for (let k = 0; k < owners.length; k++) out.push(rank[sys.requestIndex.get(owners[k])!]);
  }
  out.push(workers.length);
  for (const w of workers) {
    const { value, context: c } = sys.workers[w];
    const a = sys.allocators[w];
    out.push(code(sys.workerIds[w]));
    out.push(code(value));
    out.push(c.load);
    out.push(c.inFlight);
    out.push(c.fifo.length);
    for (const r of c.fifo) out.push(rank[sys.requestIndex.get(r)!]);
    out.push(code(a.value));
    out.push(a.context.taken.length);
    for (const b of a.context.taken) out.push(blockName[b]);
  }
  for (const p of sys.pools) {
    out.push(code(p.value));
    out.push(code(p.context.holder));
  }
  if (sys.slots.length > 0) {
    // Trace v3: each GPU's state slots by owner (renamed). With symmetry the slots of a GPU are interchangeable,
    // like its blocks: the key keeps which requests own one, in rank order, not which slot.
    const S = sys.slots.length / sys.header.gpus;
    for (let g = 0; g < sys.header.gpus; g++) {
      const owners: number[] = [];
      for (let i = g * S; i < (g + 1) * S; i++) {
        const owner = sys.slots[i].context.owner;
        const o = owner === null ? -1 : rank[sys.requestIndex.get(owner)!];
        if (!symmetry) owners.push(o);
        else if (o >= 0) owners.push(o);
      }
      if (symmetry) owners.sort((a, b) => a - b);
      out.push(owners.length);
      for (const o of owners) out.push(o);
    }
  }
  if (sys.cad) writeCad(out, sys, rank, blockName);
  const pc = sys.partition[0].context;
  out.push(code(sys.partition[0].value));
  out.push(pc.epoch);
  out.push(pc.oldLive);
  out.push(pc.started);
  out.push(pc.ready);
  out.push(sys.ops.size);
  if (sys.ops.size > 0) {
    // Ops by kind, writer and requests (renamed), in a fixed order.
    const ops: number[][] = [];
    for (const op of sys.ops.values()) {
      const o = [code(op.kind), code(op.writer), op.reqs.length];
      for (const r of op.reqs) o.push(rank[r]);
      ops.push(o);
    }
    ops.sort((x, y) => {
      for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
      return x.length - y.length;
    });
    for (const o of ops) for (const v of o) out.push(v);
  }
}

/**
 * Trace v4: the tasks and buffers. A task is what its future depends on — its request (renamed), its state,
 * its server and buffer, the buffers it reads, the step it belongs to and its blocks (renamed) — written as a
 * sorted multiset (tasks with equal attributes are interchangeable; consumed tasks of ended steps have no
 * future and are left out, those of a step in flight count its shards made). Then each buffer's state, and
 * the servers lost. Servers are not renamed.
 */
function writeCad(out: KeyBuffer, sys: System, rank: Int32Array, blockName: Int32Array): void {
  const cad = sys.cad!;
  const tasks: number[][] = [];
  for (let x = 0; x < cad.tasks.length; x++) {
    const { value, context: c } = cad.tasks[x];
    const info = cad.taskInfo(x);
    if (value === 'consumed' && !sys.ops.has(info.step)) continue;
    const words = [rank[info.req], code(value), code(c.server), c.buffer, code(info.step), info.reads.length, ...info.reads, info.blocks.length];
    for (const b of info.blocks) words.push(blockName[b]);
    tasks.push(words);
  }
  tasks.sort((a, b) => {
    for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] - b[i];
    return a.length - b.length;
  });
  out.push(tasks.length);
  for (const w of tasks) {
    out.push(w.length);
    for (const v of w) out.push(v);
  }
  for (const b of cad.buffers) out.push(code(b.value));
  for (const s of cad.serverList()) out.push(s.lost ? 1 : 0);
}

/** The key of a search state as text (tests, the replay of a starvation cycle). */
export function stateKey(node: Node, symmetry: boolean): string {
  const out = new KeyBuffer();
  writeKey(node, symmetry, out);
  return keyText(out);
}
