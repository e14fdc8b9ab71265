// Canonical state keys. Two abstractions make the search finite and small:
// - utilisation versions grow without bound, but a guard only compares a block's write-back version with a
//   querying worker's read version; the key keeps those comparisons, not the numbers;
// - with symmetry reduction, blocks of one pool are interchangeable, and so are requests with the same
//   parameters and progress: the key sorts requests by everything observable about them (their blocks by
//   position in their table, their place in FIFOs and steps) and renames requests and blocks in that order.
// Without symmetry reduction the key keeps every id as it is (the count to compare against).
import type { System } from '../../spec/system.ts';
import type { Node } from './generator.ts';

function blockAttrs(sys: System, b: number, querying: number[]): string {
  const { value, context: c } = sys.blocks[b];
  let s = (value === 'free' ? 'f' : 'o') + c.owners.length + c.inFreeList + (c.committed ? 'c' : 'u');
  if (c.committed) for (let i = 0; i < querying.length; i++) s += c.committedAt > sys.allocators[querying[i]].context.seen ? '1' : '0';
  return s + sys.holds[b];
}

function requestAttrs(sys: System, r: number, querying: number[], opSlots: Map<number, string> | null): string {
  const { value, context: c } = sys.requests[r];
  let s = `${value}|${c.prompt}|${c.maxTokens}|${c.generated}|${c.computed}|${c.owned.join('.')}|${c.server ?? '-'}|${c.inFlight}${+c.tokenOwed}${+c.awaitingKv}${+c.deferredFree}`;
  if (c.server !== null) {
    const pos = sys.workers[sys.workerIndex.get(c.server)!].context.fifo.indexOf(sys.requestIds[r]);
    if (pos >= 0) s += `q${pos}`;
  }
  if (opSlots) s += `|${opSlots.get(r) ?? ''}`;
  const table = sys.tables[r];
  s += '|';
  for (let i = 0; i < table.length; i++) s += `${blockAttrs(sys, table[i], querying)},`;
  return s;
}

const workerOrders = new Map<string, number[]>();

/** Worker indices sorted by id (memoised by the id list: there are few distinct ones). */
function byId(ids: readonly string[]): number[] {
  const sig = ids.join(',');
  let order = workerOrders.get(sig);
  if (!order) {
    order = ids.map((_, i) => i).sort((a, b) => (ids[a] < ids[b] ? -1 : ids[a] > ids[b] ? 1 : 0));
    workerOrders.set(sig, order);
  }
  return order;
}

/** The key of a search state; equal keys mean states with the same future (up to renaming, with symmetry). */
export function stateKey(node: Node, symmetry: boolean): string {
  const sys = node.sys;
  // Workers in id order, not in the order they started: which new worker of a resize started first has no
  // bearing on the future (the generator and the spec find workers by id or role).
  const workers = byId(sys.workerIds);
  const querying: number[] = [];
  for (const w of workers) if (sys.allocators[w].value === 'querying') querying.push(w);
  // Where each request sits in the ops in flight (by the op's kind and writer, not its id).
  let opSlots: Map<number, string> | null = null;
  if (sys.ops.size > 0) {
    opSlots = new Map();
    for (const op of sys.ops.values())
      for (let k = 0; k < op.reqs.length; k++) opSlots.set(op.reqs[k], `${opSlots.get(op.reqs[k]) ?? ''}${op.kind[0]}${op.writer}:${op.tokens[k]}:${op.held[k].length}+`);
  }

  const R = sys.requests.length;
  const attrs = new Array<string>(R);
  const order = new Array<number>(R);
  for (let r = 0; r < R; r++) {
    attrs[r] = requestAttrs(sys, r, querying, opSlots);
    order[r] = r;
  }
  if (symmetry) order.sort((a, b) => (attrs[a] < attrs[b] ? -1 : attrs[a] > attrs[b] ? 1 : 0));
  // rank[r]: the request's name in the key.
  const rank = new Int32Array(R);
  for (let i = 0; i < R; i++) rank[order[i]] = i;
  const nameOf = (id: string) => rank[sys.requestIndex.get(id)!];

  // Block names: in the order the (sorted) requests list them, then the rest by their attributes.
  const B = sys.header.blocks;
  const n = sys.blocks.length;
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
    const restAttrs: string[] = [];
    for (let b = 0; b < n; b++) {
      if (blockName[b] >= 0) continue;
      rest.push(b);
      let a = blockAttrs(sys, b, querying);
      for (const o of sys.blocks[b].context.owners) a += `,${nameOf(o)}`;
      restAttrs[b] = a;
    }
    rest.sort((x, y) => (restAttrs[x] < restAttrs[y] ? -1 : restAttrs[x] > restAttrs[y] ? 1 : 0));
    for (const b of rest) {
      const pool = (b / B) | 0;
      blockName[b] = pool * B + next[pool]++;
    }
  } else {
    for (let b = 0; b < n; b++) blockName[b] = b;
  }

  let key = `p${node.preemptions}/`;
  for (const r of order) {
    key += `${attrs[r]}>`;
    for (const b of sys.tables[r]) key += `${blockName[b]}.`;
    key += '/';
  }
  const blocks = new Array<string>(n);
  for (let b = 0; b < n; b++) {
    let a = blockAttrs(sys, b, querying);
    for (const o of sys.blocks[b].context.owners) a += `,${nameOf(o)}`;
    blocks[blockName[b]] = a;
  }
  key += blocks.join(';');
  for (const w of workers) {
    const { value, context: c } = sys.workers[w];
    const a = sys.allocators[w];
    key += `/${sys.workerIds[w]}${value}${c.load}${c.inFlight}[`;
    for (const r of c.fifo) key += `${nameOf(r)},`;
    key += `]${a.value}`;
    for (const b of a.context.taken) key += `${blockName[b]}.`;
  }
  for (const p of sys.pools) key += `/${p.value}${p.context.holder ?? ''}`;
  const pc = sys.partition[0].context;
  key += `/${sys.partition[0].value}${pc.epoch}${pc.oldLive}${pc.started}${pc.ready}/`;
  if (sys.ops.size > 0) {
    const ops: string[] = [];
    for (const op of sys.ops.values()) ops.push(`${op.kind}${op.writer}:${op.reqs.map((r) => rank[r]).join(',')}`);
    key += ops.sort().join(';');
  }
  return key;
}
