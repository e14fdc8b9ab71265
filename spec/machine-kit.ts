// The bridge between the XState machine definitions and the fast transition function the checker and
// the explorer run. The machine (states, transitions, guard and action names) is the definition; the
// guard and update functions come from the same registries that `setup()` was given. Nothing here is a
// second copy of the protocol: `compileMachine` reads it off the machine, and a test checks that the
// compiled function and XState's own `transition()` agree.
import { and, assign, type AnyStateMachine } from 'xstate';
import type { InvariantName } from './invariants.ts';

/** The state of one entity: which state of its machine it is in, and its context. Never mutated. */
export interface Snapshot<C> {
  readonly value: string;
  readonly context: C;
}

export interface GuardArgs<C, E> {
  context: C;
  event: E;
}

/**
 * A named guard: what it checks, the invariant it protects, and how to say why it refused. A guard without
 * `protects` only chooses between transitions (which branch applies); it never names a refusal.
 */
export interface GuardDef<C, E> {
  check: (args: GuardArgs<C, E>) => boolean;
  protects?: InvariantName;
  /** Why the guard refused, naming the ids involved. */
  explain: (context: C, event: E) => string;
  /** A spec-variant switch, false in the reference spec: its transitions exist only in variants (and diagrams omit them). */
  variant?: true;
}

/** A context update: returns the fields that change. */
export type Update<C, E> = (args: GuardArgs<C, E>) => Partial<C>;

/** Why an event has no transition at all in a state (rather than a failing guard). */
export type Unhandled<C, E> = (state: string, context: C, event: E) => { protects: InvariantName; message: string };

export interface MachineParts<C, E> {
  guards: Record<string, GuardDef<C, E>>;
  updates: Record<string, Update<C, E>>;
  unhandled: Unhandled<C, E>;
}

/** The XState guard implementations of a guard registry. */
export function guardChecks<C, E>(guards: Record<string, GuardDef<C, E>>): Record<string, (args: GuardArgs<C, E>) => boolean> {
  return Object.fromEntries(Object.entries(guards).map(([name, g]) => [name, g.check]));
}

/** The XState `assign` actions of an update registry. */
export function assignActions<C, E>(updates: Record<string, Update<C, E>>) {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  return Object.fromEntries(Object.entries(updates).map(([name, u]) => [name, assign(u as any)])) as Record<string, any>;
}

export interface Refusal {
  machine: string;
  state: string;
  event: string;
  /** The guard that refused, or undefined when the state has no transition for the event. */
  guard?: string;
  protects: InvariantName;
  message: string;
}

interface CompiledTransition<C, E> {
  /** All must hold (a single named guard, or XState's `and([...])` of named guards). */
  guards: { name: string; def: GuardDef<C, E> }[];
  target?: string;
  updates: Update<C, E>[];
}

/** A machine compiled to a lookup table: state → event type → guarded transitions, in XState's order. */
export interface CompiledMachine<C, E extends { type: string }> {
  id: string;
  machine: AnyStateMachine;
  states: string[];
  initial: string;
  table: Map<string, Map<string, CompiledTransition<C, E>[]>>;
  parts: MachineParts<C, E>;
  /** Every (state, event) pair that has a transition: the event coverage universe. */
  edges: { state: string; event: string; target: string; guard?: string; variant?: true }[];
  /** A context with an update's fields replaced (built on first use from its fields, which updates never add to). */
  merge?: (context: C, update: Partial<C>) => C;
}

const AND_CHECK = (and([]) as unknown as { check: unknown }).check;

function guardNames(g: unknown, machineId: string): string[] {
  if (g === undefined) return [];
  if (typeof g === 'function' && (g as { check?: unknown }).check === AND_CHECK) {
    return ((g as unknown as { guards: unknown[] }).guards).flatMap((x) => guardNames(x, machineId));
  }
  return [nameOf(g, 'guard', machineId)];
}

function nameOf(x: unknown, what: string, machineId: string): string {
  if (typeof x === 'string') return x;
  if (x && typeof x === 'object' && typeof (x as { type?: unknown }).type === 'string') return (x as { type: string }).type;
  throw new Error(`machine '${machineId}': every ${what} must be named (inline ${what}s cannot be compiled)`);
}

export function compileMachine<C, E extends { type: string }>(machine: AnyStateMachine, parts: MachineParts<C, E>): CompiledMachine<C, E> {
  const id = machine.id;
  const table = new Map<string, Map<string, CompiledTransition<C, E>[]>>();
  const edges: CompiledMachine<C, E>['edges'] = [];
  const states = Object.keys(machine.root.states);
  for (const [stateName, node] of Object.entries(machine.root.states)) {
    if (Object.keys(node.states).length > 0) throw new Error(`machine '${id}': state '${stateName}' is compound; only flat machines are compiled`);
    if (node.always && node.always.length > 0) throw new Error(`machine '${id}': eventless transitions are not compiled`);
    const byEvent = new Map<string, CompiledTransition<C, E>[]>();
    for (const [eventType, transitions] of node.transitions) {
      const compiled = transitions.map((t) => {
        const guards = guardNames(t.guard, id).map((name) => {
          const def = parts.guards[name];
          if (!def) throw new Error(`machine '${id}': guard '${name}' has no definition`);
          return { name, def };
        });
        const updates = t.actions.map((a) => {
          const name = nameOf(a, 'action', id);
          const u = parts.updates[name];
          if (!u) throw new Error(`machine '${id}': action '${name}' has no update definition`);
          return u;
        });
        const target = t.target?.[0]?.key ?? stateName;
        edges.push({
          state: stateName,
          event: eventType,
          target,
          ...(guards.length ? { guard: guards.map((g) => g.name).join(' && ') } : {}),
          ...(guards.some((g) => g.def.variant) ? { variant: true as const } : {}),
        });
        return { guards, target: t.target?.[0]?.key, updates };
      });
      byEvent.set(eventType, compiled);
    }
    table.set(stateName, byEvent);
  }
  const initial = machine.root.initial?.target?.[0]?.key;
  if (!initial) throw new Error(`machine '${id}': no initial state`);
  return { id, machine, states, initial, table, parts, edges };
}

/**
 * One transition of one entity: the first transition for the event whose guard holds, as XState picks it.
 * Returns the next snapshot, or a Refusal naming the guard (or the missing transition) and what it protects.
 */
export function fire<C, E extends { type: string }>(m: CompiledMachine<C, E>, snap: Snapshot<C>, event: E, entity: string): Snapshot<C> | Refusal {
  const refused = fireOrRefuse(m, snap, event);
  if ('protects' in refused) refused.message = `${entity}: ${refused.message}`;
  return refused;
}

/** As `fire`, with the refusal's message not yet prefixed by the entity (the hot path names it only on refusal). */
export function fireOrRefuse<C, E extends { type: string }>(m: CompiledMachine<C, E>, snap: Snapshot<C>, event: E): Snapshot<C> | Refusal {
  const transitions = m.table.get(snap.value)?.get(event.type);
  if (!transitions) {
    const why = m.parts.unhandled(snap.value, snap.context, event);
    return { machine: m.id, state: snap.value, event: event.type, protects: why.protects, message: why.message };
  }
  let failed: { name: string; def: GuardDef<C, E> } | undefined;
  // One argument object for every guard and update of this transition (the hot path allocates little).
  const args: GuardArgs<C, E> = { context: snap.context, event };
  next: for (let i = 0; i < transitions.length; i++) {
    const t = transitions[i];
    for (let j = 0; j < t.guards.length; j++) {
      const g = t.guards[j];
      if (!g.def.check(args)) {
        if (!failed && g.def.protects) failed = g;
        continue next;
      }
    }
    if (t.updates.length > 0) {
      const merge = (m.merge ??= contextMerger(snap.context));
      for (let j = 0; j < t.updates.length; j++) args.context = merge(args.context, t.updates[j](args));
    }
    return { value: t.target ?? snap.value, context: args.context };
  }
  if (!failed) {
    const why = m.parts.unhandled(snap.value, snap.context, event);
    return { machine: m.id, state: snap.value, event: event.type, protects: why.protects, message: why.message };
  }
  return {
    machine: m.id,
    state: snap.value,
    event: event.type,
    guard: failed.name,
    protects: failed.def.protects!,
    message: failed.def.explain(snap.context, event),
  };
}

/**
 * A merger for contexts with the fields of `sample`: one object literal of known shape, several times faster
 * than a spread or Object.assign on the hot path. Every context of a machine has the same fields (the
 * definition's initial context; updates return only some of them), so the literal lists all of them.
 */
function contextMerger<C>(sample: C): (context: C, update: Partial<C>) => C {
  const keys = Object.keys(sample as object);
  if (!keys.every((k) => /^[A-Za-z_$][\w$]*$/.test(k))) return (c, u) => ({ ...c, ...u });
  // An update names only the fields it changes; a field it leaves out is undefined there (no context field
  // is ever undefined: absent values are null).
  // eslint-disable-next-line @typescript-eslint/no-implied-eval
  return new Function('c', 'u', `return { ${keys.map((k) => `${k}: u.${k} === undefined ? c.${k} : u.${k}`).join(', ')} };`) as (context: C, update: Partial<C>) => C;
}

export function isRefusal(x: unknown): x is Refusal {
  return typeof x === 'object' && x !== null && 'protects' in x && 'machine' in x;
}

/** The members of an event union that accept event type T (a member may list several types). */
export type Narrow<E, T> = E extends { type: infer U } ? (T extends U ? E : never) : never;
