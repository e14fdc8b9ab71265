// The explicit-state explorer: breadth-first from the initial state over every interleaving the environment
// proposes and the spec allows. Every reached state is checked against every state invariant; a state with
// live requests and nothing enabled is a deadlock; a state with nothing enabled is checked at rest; after the
// search, the cycles of the state graph are searched for starvation. Breadth-first order makes every
// counterexample a shortest one.
import { alg } from '@dagrejs/graphlib';
import { checkAtRest, checkState } from '../../spec/invariants.ts';
import { CAD_ONLY, MACHINES, SLOTS_ONLY, stepKey, V2_ONLY } from '../../spec/system.ts';
import { System } from '../../spec/system.ts';
import { eventsOfVersion, type EventName, type TraceEvent } from '../../spec/trace-format.ts';
import { headerOf, type ExploreConfig } from './config.ts';
import { isProgress, proposals, type Node } from './generator.ts';
import { stateKey, writeKey } from './canonical.ts';
import { KeyBuffer, StateStore } from './state-store.ts';
import { VARIANTS, type Variant } from './variants.ts';

export interface Finding {
  /** `guard`: a judged variant took an event the reference spec refuses (the last event of `trace`). */
  kind: 'invariant' | 'at-rest' | 'deadlock' | 'starvation' | 'guard';
  rule: string;
  message: string;
  /** The events from the initial state to the violation (for starvation: to the cycle, then the cycle). */
  trace: TraceEvent[];
  /** Starvation: how many events at the end of `trace` repeat forever. */
  cycle?: number;
}

/**
 * Machine transitions only trace v3 reaches: a live request's free while prefilling (a window's oldest blocks
 * during a chunked prefill) and a prefilling request's preemption (a variant's switch before v3, which the v3
 * header allows). A v1 or v2 bound never takes them, and its coverage leaves them out.
 */
export const V3_ONLY = new Set(['request:prefilling:free', 'request:prefilling:preempt']);

/** Trace v2's events: a bound without `sharing` proposes none. */
const V2_EVENTS = new Set<EventName>(['cache_hit', 'cache_insert', 'evict', 'fork', 'cow', 'cache_size']);

/** The clock's events (trace v3): the explored model is untimed. */
const CLOCK_EVENTS = new Set<string>(['tick', 'idle']);

export interface ExploreResult {
  verdict: 'verified' | 'violated' | 'incomplete';
  config: ExploreConfig;
  states: number;
  transitions: number;
  depth: number;
  seconds: number;
  statesPerSecond: number;
  /** Peak memory of the search: JS heap plus typed arrays (the visited set and the state graph live in those). */
  peakMemoryMiB: number;
  /** Trace events enabled at least once, and those never enabled at this bound. */
  events: Partial<Record<EventName, number>>;
  neverEnabled: EventName[];
  /** Machine transitions (`machine:state:event`) of the reference machines never taken at this bound. */
  neverTaken: string[];
  /** Trace v2 (`sharing`): transitions of the search that are prefix-cache inserts, hits, evictions, forks and copies. */
  sharing?: SharingCoverage;
  /** Trace v3 (`positions`): transitions of the search that verify drafts, reject some, free out of a window, preempt a prefill. */
  v3?: V3Coverage;
  finding?: Finding;
}

/** How much shared KV a search covered: its transitions by event (each an edge between two distinct states). */
export interface SharingCoverage {
  inserts: number;
  hits: number;
  evictions: number;
  forks: number;
  copies: number;
}

export function sharingCoverage(events: Partial<Record<EventName, number>>): SharingCoverage {
  return { inserts: events.cache_insert ?? 0, hits: events.cache_hit ?? 0, evictions: events.evict ?? 0, forks: events.fork ?? 0, copies: events.cow ?? 0 };
}

/** How much of trace v3 a search covered: its transitions (edges of the state graph) of each kind. */
export interface V3Coverage {
  /** Steps with an item that verifies drafts. */
  verifies: number;
  /** Ends of such steps that accept fewer drafts than some item verified (the rest are rolled back). */
  rejections: number;
  /** Frees by a live request of its oldest blocks of a windowed group. */
  partialFrees: number;
  /** Preemptions of a request still prefilling. */
  prefillPreemptions: number;
  /** State slots given to requests (0 without the header's stateSlots). */
  slots: number;
}

/** The trace-v3 kind of a transition from `sys` by `ev`, or null for one of no v3 kind. */
export function v3KindOf(sys: System, ev: TraceEvent): keyof V3Coverage | null {
  switch (ev.ev) {
    case 'step_begin':
      return ev.batch.some((item) => (item.draft ?? 0) > 0) ? 'verifies' : null;
    case 'step_end': {
      const op = sys.ops.get(stepKey(ev.worker, ev.step));
      if (!op?.drafts || !ev.accepted) return null;
      return op.reqs.some((r, i) => op.drafts![i] > 0 && (ev.accepted![sys.requestIds[r]] ?? 0) < op.drafts![i]) ? 'rejections' : null;
    }
    case 'free': {
      if (ev.group === undefined) return null;
      const r = sys.requestIndex.get(ev.req);
      return r !== undefined && sys.isLive(r) && sys.requests[r].value !== 'retracting' ? 'partialFrees' : null;
    }
    case 'preempt': {
      const r = sys.requestIndex.get(ev.req);
      return r !== undefined && sys.requests[r].value === 'prefilling' ? 'prefillPreemptions' : null;
    }
    case 'slot_alloc':
      return 'slots';
    default:
      return null;
  }
}

/** Bytes in use: the JS heap and the typed arrays outside it. */
export function memoryInUse(): number {
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

/** Growable typed array. */
class IntList {
  data: Int32Array;
  length = 0;
  constructor(capacity = 1024) {
    this.data = new Int32Array(capacity);
  }
  push(v: number) {
    if (this.length === this.data.length) {
      const d = new Int32Array(this.data.length * 2);
      d.set(this.data);
      this.data = d;
    }
    this.data[this.length++] = v;
  }
}

export function initialNode(config: ExploreConfig, variant: Variant | null): Node {
  const header = headerOf(config);
  return {
    // A variant may run under its own reading of the header (its engine's view of a window); the reference,
    // and every counterexample, keep the explored system's.
    sys: new System(variant?.header ? variant.header(header) : header, variant?.system ?? {}),
    preemptions: variant?.unboundedPreemption ? -1 : 0,
    verifies: 0,
    ...(variant?.judged ? { ref: new System(header) } : {}),
  };
}

/** Trace v3: the batch items of a step that verify drafts. */
function verifiesIn(ev: TraceEvent): number {
  if (ev.ev !== 'step_begin') return 0;
  let n = 0;
  for (const item of ev.batch) if (item.draft) n++;
  return n;
}

/**
 * Applies a proposal to a copy of the node; null when the spec (the variant's, for a variant) refuses it. For
 * a judged variant, the reference spec takes the event too: where it refuses, the node says so (`refused`).
 */
export function successor(node: Node, ev: TraceEvent, fired: string[] | null = null): Node | null {
  node.sys.fired = fired;
  const pending = node.sys.attempt(ev);
  node.sys.fired = null;
  if (!Array.isArray(pending)) return null;
  const sys = node.sys.clone();
  sys.commit(ev, pending);
  // Preemptions are counted against the bound; where they are unbounded the count is not part of the state.
  const preemptions = node.preemptions + (ev.ev === 'preempt' && node.preemptions >= 0 ? 1 : 0);
  const verifies = node.verifies + verifiesIn(ev);
  if (!node.ref) return { sys, preemptions, verifies };
  const judged = node.ref.attempt(ev);
  if (!Array.isArray(judged)) return { sys, preemptions, verifies, ref: node.ref, refused: judged };
  const ref = node.ref.clone();
  ref.commit(ev, judged);
  return { sys, preemptions, verifies, ref };
}

/** A judged variant's event that the reference refuses, as a finding (the rule and message `conform` gives). */
export function refusalFinding(next: Node, trace: TraceEvent[]): Finding {
  const r = next.refused!;
  return { kind: 'guard', rule: r.protects, message: `the reference spec refuses ${trace[trace.length - 1].ev}: ${r.message}`, trace };
}

/**
 * Events that observe the state and change nothing (the cache's counters): not transitions of the search — a
 * self-loop in every state would hide deadlocks and rest states — but a judged variant's may be refused.
 */
export function isObservation(ev: TraceEvent): boolean {
  return ev.ev === 'cache_size';
}

/** The events along a path of (proposal index) choices from the initial state. */
export function replay(config: ExploreConfig, variant: Variant | null, choices: number[]): { trace: TraceEvent[]; node: Node } {
  let node = initialNode(config, variant);
  const trace: TraceEvent[] = [];
  for (const k of choices) {
    const ev = proposals(node, config, variant)[k];
    const next = successor(node, ev);
    if (!next) throw new Error('replay diverged from the search');
    trace.push(ev);
    node = next;
  }
  return { trace, node };
}

export interface ExploreHooks {
  /** Called now and then with the number of states so far. */
  progress?: (states: number, depth: number) => void;
}

export function explore(config: ExploreConfig, hooks: ExploreHooks = {}): ExploreResult {
  const variant = config.variant ? VARIANTS[config.variant] : null;
  if (config.variant && !variant) throw new Error(`unknown variant '${config.variant}'`);
  const t0 = performance.now();
  let peakMemory = memoryInUse();
  const visited = new StateStore();
  const key = new KeyBuffer();
  const parent = new IntList();
  const parentEdge = new IntList();
  const depthOf = new IntList();
  // The state graph, for the liveness search: edges with whether they advance some request.
  const src = new IntList();
  const dst = new IntList();
  const progress = new IntList();
  const labelOf: string[] = [];
  const labels = new Map<string, number>();
  const edgeLabel = new IntList();
  const events: Partial<Record<EventName, number>> = {};
  const v3: V3Coverage | null = config.positions ? { verifies: 0, rejections: 0, partialFrees: 0, prefillPreemptions: 0, slots: 0 } : null;
  const fired = new Set<string>();
  let transitions = 0;
  let maxDepth = 0;
  let finding: Finding | undefined;
  let incomplete = false;

  const root = initialNode(config, variant);
  writeKey(root, config.symmetry, key);
  visited.intern(key);
  parent.push(-1);
  parentEdge.push(-1);
  depthOf.push(0);
  const queue: (Node | undefined)[] = [root];

  const pathTo = (state: number): number[] => {
    const choices: number[] = [];
    for (let s = state; parent.data[s] >= 0; s = parent.data[s]) choices.push(parentEdge.data[s]);
    return choices.reverse();
  };

  search: for (let i = 0; i < queue.length && !finding; i++) {
    const node = queue[i]!;
    queue[i] = undefined;
    const depth = depthOf.data[i];
    maxDepth = Math.max(maxDepth, depth);
    // A judged variant: the invariants are the reference's, on the trace the variant wrote (as conform checks it).
    const broken = checkState(node.ref ?? node.sys);
    if (broken) {
      finding = { kind: 'invariant', rule: broken.invariant, message: broken.message, trace: replay(config, variant, pathTo(i)).trace };
      break;
    }
    const props = proposals(node, config, variant);
    let enabled = 0;
    for (let k = 0; k < props.length; k++) {
      const ev = props[k];
      const firedNow: string[] = [];
      const next = successor(node, ev, firedNow);
      if (!next) continue;
      if (next.refused) {
        finding = refusalFinding(next, [...replay(config, variant, pathTo(i)).trace, ev]);
        break search;
      }
      if (isObservation(ev)) {
        events[ev.ev] = (events[ev.ev] ?? 0) + 1;
        continue;
      }
      enabled++;
      transitions++;
      events[ev.ev] = (events[ev.ev] ?? 0) + 1;
      if (v3) {
        const kind = v3KindOf(node.sys, ev);
        if (kind) v3[kind]++;
      }
      for (const f of firedNow) fired.add(f);
      writeKey(next, config.symmetry, key);
      const known = visited.size;
      const j = visited.intern(key);
      if (j === known) {
        if (j >= config.maxStates) {
          incomplete = true;
          break search;
        }
        parent.push(i);
        parentEdge.push(k);
        depthOf.push(depth + 1);
        queue.push(next);
      }
      src.push(i);
      dst.push(j);
      progress.push(isProgress(ev) ? 1 : 0);
      // Fairness concerns what the engine's workers do; clients (arrive, abort) and the partition controller's
      // decision to resize are free to never act.
      // Labels name the request as this state names it; with symmetry reduction a cycle may rename requests,
      // which can only make a fair cycle look unfair (a missed report), never the other way round.
      const label = ev.ev === 'arrive' || ev.ev === 'abort' || ev.ev === 'resize_begin' ? '' : `${ev.ev}${'worker' in ev ? `:${ev.worker}` : ''}${'req' in ev ? `:${ev.req}` : ''}`;
      let l = labels.get(label);
      if (l === undefined) {
        l = labelOf.length;
        labels.set(label, l);
        labelOf.push(label);
      }
      edgeLabel.push(l);
    }
    if (enabled === 0) {
      if (node.sys.liveCount > 0) {
        const live = node.sys.requests.map((r, idx) => [r.value, node.sys.requestIds[idx]]).filter(([v]) => v !== 'finished' && v !== 'aborted');
        finding = {
          kind: 'deadlock',
          rule: 'deadlock',
          message: `nothing can move while request(s) ${live.map(([v, id]) => `${id} (${v})`).join(', ')} are live`,
          trace: replay(config, variant, pathTo(i)).trace,
        };
        break;
      }
      const rest = checkAtRest(node.ref ?? node.sys);
      if (rest) {
        finding = { kind: 'at-rest', rule: rest.invariant, message: rest.message, trace: replay(config, variant, pathTo(i)).trace };
        break;
      }
    }
    if ((i & 4095) === 0) {
      peakMemory = Math.max(peakMemory, memoryInUse());
      hooks.progress?.(visited.size, depth);
    }
  }

  if (!finding && !incomplete) {
    finding = starvation(visited, src, dst, progress, edgeLabel, labelOf, (state) => pathTo(state), config, variant) ?? undefined;
  }

  peakMemory = Math.max(peakMemory, memoryInUse());
  const seconds = (performance.now() - t0) / 1000;
  const header = headerOf(config);
  const slots = (header.stateSlots ?? 0) > 0;
  // Events the explored system cannot have: shared KV's without `sharing`, state slots' without them, and the
  // clock's (the model is untimed). The rest of the header's version is coverage.
  const cad = header.attentionServers !== undefined;
  const modelled = (e: EventName) => (config.sharing || !V2_EVENTS.has(e)) && (slots || !SLOTS_ONLY.events.has(e)) && (cad || !CAD_ONLY.events.has(e)) && !CLOCK_EVENTS.has(e);
  const neverEnabled = eventsOfVersion(header.version).filter((e) => modelled(e) && !events[e]);
  const neverTaken: string[] = [];
  // Machine transitions of shared KV count only at a sharing bound; those only trace v3 reaches (a partial free
  // while prefilling; a prefill's preemption, a variant's switch before v3) only at a v3 bound; the slot
  // machine's only with state slots.
  const inVersion = (name: string, e: { state: string; event: string; guard?: string; variant?: true }) => {
    if (!config.sharing && (V2_ONLY.events.has(e.event) || V2_ONLY.states.has(e.state))) return false;
    const t = `${name}:${e.state}:${e.event}`;
    if (header.version < 3 && V3_ONLY.has(t)) return false;
    if (e.variant) return header.version >= 3 && V3_ONLY.has(t);
    if (!cad && (CAD_ONLY.machines.has(name) || CAD_ONLY.events.has(e.event))) return false;
    return slots || (!SLOTS_ONLY.machines.has(name) && !SLOTS_ONLY.events.has(e.event));
  };
  for (const [name, m] of Object.entries(MACHINES))
    for (const e of m.edges) if (inVersion(name, e) && !fired.has(`${name}:${e.state}:${e.event}`)) neverTaken.push(`${name}:${e.state}:${e.event}`);
  return {
    verdict: finding ? 'violated' : incomplete ? 'incomplete' : 'verified',
    config,
    states: parent.length, // a state found at the cap is not counted
    transitions,
    depth: maxDepth,
    seconds,
    statesPerSecond: parent.length / Math.max(seconds, 1e-9),
    peakMemoryMiB: peakMemory / 2 ** 20,
    events,
    neverEnabled,
    neverTaken: [...new Set(neverTaken)],
    ...(config.sharing ? { sharing: sharingCoverage(events) } : {}),
    ...(v3 ? { v3 } : {}),
    ...(finding ? { finding } : {}),
  };
}

/**
 * Starvation under weak fairness: a reachable cycle (a non-trivial strongly connected component) in which
 * no request advances (no token, finish or abort), while requests are live; and which a weakly fair scheduler
 * could take forever: every kind of step (event and worker) enabled in all of its states is taken in it.
 * The components are found with graphlib's Tarjan over the part of the graph that can lie on a cycle.
 */
function starvation(
  visited: StateStore,
  src: IntList,
  dst: IntList,
  progress: IntList,
  edgeLabel: IntList,
  labelOf: string[],
  pathTo: (state: number) => number[],
  config: ExploreConfig,
  variant: Variant | null,
): Finding | null {
  const n = visited.size;
  const m = src.length;
  // Out-edges in CSR form.
  const start = new Int32Array(n + 1);
  for (let e = 0; e < m; e++) start[src.data[e] + 1]++;
  for (let v = 0; v < n; v++) start[v + 1] += start[v];
  const order = new Int32Array(m);
  const fill = start.slice(0, n);
  for (let e = 0; e < m; e++) order[fill[src.data[e]]++] = e;
  // Trim states that cannot lie on a cycle: repeatedly drop those with no remaining in- or out-edge.
  const inDeg = new Int32Array(n);
  const outDeg = new Int32Array(n);
  for (let e = 0; e < m; e++) {
    if (progress.data[e]) continue; // a cycle through a progress edge is not starvation
    outDeg[src.data[e]]++;
    inDeg[dst.data[e]]++;
  }
  const alive = new Uint8Array(n).fill(1);
  const stack: number[] = [];
  for (let v = 0; v < n; v++) if (inDeg[v] === 0 || outDeg[v] === 0) stack.push(v);
  // In-edges are needed to propagate the trim backwards.
  const inStart = new Int32Array(n + 1);
  for (let e = 0; e < m; e++) inStart[dst.data[e] + 1]++;
  for (let v = 0; v < n; v++) inStart[v + 1] += inStart[v];
  const inOrder = new Int32Array(m);
  const inFill = inStart.slice(0, n);
  for (let e = 0; e < m; e++) inOrder[inFill[dst.data[e]]++] = e;
  while (stack.length) {
    const v = stack.pop()!;
    if (!alive[v]) continue;
    alive[v] = 0;
    for (let k = start[v]; k < start[v + 1]; k++) {
      const e = order[k];
      if (progress.data[e]) continue;
      const w = dst.data[e];
      if (alive[w] && --inDeg[w] === 0) stack.push(w);
    }
    for (let k = inStart[v]; k < inStart[v + 1]; k++) {
      const e = inOrder[k];
      if (progress.data[e]) continue;
      const u = src.data[e];
      if (alive[u] && --outDeg[u] === 0) stack.push(u);
    }
  }
  const core: number[] = [];
  for (let v = 0; v < n; v++) if (alive[v]) core.push(v);
  if (core.length === 0) return null;
  // A graphlib view of the core: Tarjan needs only nodes() and successors().
  const succ = (v: number) => {
    const out: string[] = [];
    for (let k = start[v]; k < start[v + 1]; k++) {
      const e = order[k];
      if (!progress.data[e] && alive[dst.data[e]]) out.push(String(dst.data[e]));
    }
    return out;
  };
  const view = { nodes: () => core.map(String), successors: (v: string) => succ(Number(v)) };
  const components = alg.tarjan(view as never) as string[][];
  for (const comp of components) {
    const states = comp.map(Number);
    const inComp = new Set(states);
    if (states.length === 1 && !succ(states[0]).includes(comp[0])) continue;
    // Weak fairness: every step kind enabled in all states of the component is taken inside it.
    let always: Set<number> | undefined;
    const taken = new Set<number>();
    for (const v of states) {
      const here = new Set<number>();
      for (let k = start[v]; k < start[v + 1]; k++) {
        const e = order[k];
        if (labelOf[edgeLabel.data[e]] !== '') here.add(edgeLabel.data[e]);
        if (inComp.has(dst.data[e]) && !progress.data[e]) taken.add(edgeLabel.data[e]);
      }
      const before: Set<number> | undefined = always;
      always = before === undefined ? here : new Set([...before].filter((l) => here.has(l)));
    }
    const unfair = [...(always ?? [])].filter((l) => !taken.has(l));
    if (unfair.length > 0) continue;
    // A lasso: the path to the component's first state, then a cycle back to it inside the component.
    const entry = Math.min(...states);
    const prefix = pathTo(entry);
    const cycle = cycleThrough(entry, inComp, start, order, dst, progress);
    const trace = replayLasso(config, variant, prefix, cycle.map((e) => visited.keyText(dst.data[e])));
    return {
      kind: 'starvation',
      rule: 'starvation',
      message: `a fair cycle of ${cycle.length} event(s) in which no request advances; it repeats forever (${[...new Set(cycle.map((e) => labelOf[edgeLabel.data[e]]))].join(', ')})`,
      trace,
      cycle: cycle.length,
    };
  }
  return null;
}

function cycleThrough(entry: number, inComp: Set<number>, start: Int32Array, order: Int32Array, dst: IntList, progress: IntList): number[] {
  // Breadth-first inside the component from the entry back to itself; returns edge ids.
  const back = new Map<number, number>();
  const frontier = [entry];
  for (let h = 0; h < frontier.length; h++) {
    const v = frontier[h];
    for (let k = start[v]; k < start[v + 1]; k++) {
      const e = order[k];
      const w = dst.data[e];
      if (progress.data[e] || !inComp.has(w)) continue;
      if (w === entry) {
        const path = [e];
        for (let u = v; u !== entry; ) {
          const pe = back.get(u)!;
          path.push(pe);
          u = srcOfEdge(pe, start, order);
        }
        return path.reverse();
      }
      if (!back.has(w)) {
        back.set(w, e);
        frontier.push(w);
      }
    }
  }
  return [];
}

function srcOfEdge(e: number, start: Int32Array, order: Int32Array): number {
  // The CSR row holding edge e (binary search over row starts).
  let lo = 0;
  let hi = start.length - 2;
  const pos = order.indexOf(e);
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (start[mid] <= pos) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** The events of a path of choices, then of the cycle: at each state, the move whose successor has the key of the next state of the cycle. */
function replayLasso(config: ExploreConfig, variant: Variant | null, prefix: number[], cycleKeys: string[]): TraceEvent[] {
  const { trace, node } = replay(config, variant, prefix);
  let cur = node;
  for (const want of cycleKeys) {
    const ev = proposals(cur, config, variant).find((p) => {
      const next = successor(cur, p);
      return next !== null && !next.refused && !isObservation(p) && !isProgress(p) && stateKey(next, config.symmetry) === want;
    });
    if (!ev) throw new Error('the cycle could not be replayed');
    trace.push(ev);
    cur = successor(cur, ev)!;
  }
  return trace;
}
