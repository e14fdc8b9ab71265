// Swarm search: many randomized depth-first searches with different seeds, each with its own state budget,
// as separate jobs (`pdspec explore --shard I/N`) or worker threads (`--workers N`). Each member checks every
// state it reaches against every invariant and looks for deadlocks; a violation from any member is a real
// counterexample (replayable, not necessarily the shortest). Members that find nothing prove nothing on
// their own: at bounds too large for the exhaustive search, the swarm is how the bound is covered wide
// rather than not at all. Exhaustive verification is `pdspec explore` without --shard.
import { checkAtRest, checkState } from '../../spec/invariants.ts';
import type { TraceEvent } from '../../spec/trace-format.ts';
import type { ExploreConfig } from './config.ts';
import type { ExploreResult, Finding } from './explorer.ts';
import { initialNode, isObservation, memoryInUse, refusalFinding, sharingCoverage, successor, v3KindOf, type V3Coverage } from './explorer.ts';
import { proposals, type Node } from './generator.ts';
import { writeKey } from './canonical.ts';
import { KeyBuffer, StateStore } from './state-store.ts';
import { VARIANTS } from './variants.ts';

/** A small seeded generator (sfc32) so that a member's order of choices is reproducible. */
function rng(seed: number) {
  let a = 0x9e3779b9 ^ seed;
  let b = 0x243f6a88 ^ (seed * 31);
  let c = 0xb7e15162;
  let d = seed | 0;
  const next = () => {
    a |= 0;
    b |= 0;
    c |= 0;
    d |= 0;
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
  for (let i = 0; i < 12; i++) next();
  return next;
}

export interface SwarmMember {
  /** Index of this member among `count`; its seed is `seed + index`. */
  index: number;
  count: number;
  seed: number;
}

/** One member of the swarm: a randomized depth-first search until its state budget is spent. */
export function swarmSearch(config: ExploreConfig, member: SwarmMember, stateBudget = Math.floor(config.maxStates / Math.max(1, member.count))): ExploreResult {
  const variant = config.variant ? VARIANTS[config.variant] : null;
  const t0 = performance.now();
  const random = rng(member.seed + member.index);
  const visited = new StateStore();
  const key = new KeyBuffer();
  const events: ExploreResult['events'] = {};
  const v3: V3Coverage | null = config.positions ? { verifies: 0, rejections: 0, partialFrees: 0, prefillPreemptions: 0, slots: 0 } : null;
  let transitions = 0;
  let maxDepth = 0;
  let finding: Finding | undefined;
  // The path of the current branch: each frame is a state and the proposals left to try from it.
  const root = initialNode(config, variant);
  writeKey(root, config.symmetry, key);
  visited.intern(key);
  const stack: { node: Node; todo: TraceEvent[]; via: TraceEvent | null }[] = [];
  const enter = (node: Node, via: TraceEvent | null): boolean => {
    const trace = () => [...stack.slice(1).map((f) => f.via!), ...(via ? [via] : [])];
    const broken = checkState(node.ref ?? node.sys);
    if (broken) {
      finding = { kind: 'invariant', rule: broken.invariant, message: broken.message, trace: trace() };
      return false;
    }
    const todo = proposals(node, config, variant);
    for (let i = todo.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [todo[i], todo[j]] = [todo[j], todo[i]];
    }
    stack.push({ node, todo, via });
    maxDepth = Math.max(maxDepth, stack.length - 1);
    return true;
  };
  enter(root, null);
  let enabledHere = new Map<Node, number>();
  while (stack.length > 0 && !finding && visited.size < stateBudget) {
    const frame = stack[stack.length - 1];
    const ev = frame.todo.pop();
    if (ev === undefined) {
      // Every proposal of this state tried: a state where none was allowed is a deadlock or a rest state.
      if ((enabledHere.get(frame.node) ?? 0) === 0) {
        const trace = stack.slice(1).map((f) => f.via!);
        if (frame.node.sys.liveCount > 0) finding = { kind: 'deadlock', rule: 'deadlock', message: 'nothing can move while requests are live', trace };
        else {
          const rest = checkAtRest(frame.node.ref ?? frame.node.sys);
          if (rest) finding = { kind: 'at-rest', rule: rest.invariant, message: rest.message, trace };
        }
      }
      enabledHere.delete(frame.node);
      stack.pop();
      continue;
    }
    const next = successor(frame.node, ev);
    if (!next) continue;
    if (next.refused) {
      finding = refusalFinding(next, [...stack.slice(1).map((f) => f.via!), ev]);
      break;
    }
    if (isObservation(ev)) continue;
    enabledHere.set(frame.node, (enabledHere.get(frame.node) ?? 0) + 1);
    transitions++;
    events[ev.ev] = (events[ev.ev] ?? 0) + 1;
    if (v3) {
      const kind = v3KindOf(frame.node.sys, ev);
      if (kind) v3[kind]++;
    }
    writeKey(next, config.symmetry, key);
    const known = visited.size;
    if (visited.intern(key) < known) continue;
    enter(next, ev);
  }
  enabledHere = new Map();
  const seconds = (performance.now() - t0) / 1000;
  return {
    verdict: finding ? 'violated' : stack.length === 0 ? 'verified' : 'incomplete',
    config,
    states: visited.size,
    transitions,
    depth: maxDepth,
    seconds,
    statesPerSecond: visited.size / Math.max(seconds, 1e-9),
    peakMemoryMiB: memoryInUse() / 2 ** 20,
    events,
    neverEnabled: [],
    neverTaken: [],
    ...(config.sharing ? { sharing: sharingCoverage(events) } : {}),
    ...(v3 ? { v3 } : {}),
    ...(finding ? { finding } : {}),
  };
}
