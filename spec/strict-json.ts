// What JSON.parse lets through and the trace format calls an error: a key twice in one object (JSON.parse
// keeps the last, so `"ev"` twice hides an event), a `__proto__` key, and nesting deep enough to exhaust a
// recursive reader. One linear scan of the line, allocation-free on the common path (strings are skipped
// with indexOf, keys compared in place); syntax itself is left to JSON.parse.

/** Deepest nesting of objects and arrays a trace line may have (events nest two levels). */
export const MAX_JSON_DEPTH = 64;

// Per open container: where its keys start in the key list, or -1 for an array.
const frames = new Int32Array(MAX_JSON_DEPTH + 1);
// The keys of the open objects, as [start, end) ranges of the text.
let keyStart = new Int32Array(256);
let keyEnd = new Int32Array(256);

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** Whether the quote at `j` is escaped (an odd number of backslashes before it). */
function escapedAt(text: string, j: number): boolean {
  let p = j - 1;
  while (p >= 0 && text.charCodeAt(p) === BACKSLASH) p--;
  return (j - 1 - p) % 2 === 1;
}

/** The key text of range [a, b): raw, or decoded when it has escapes. Null when the escapes are invalid. */
function keyText(text: string, a: number, b: number): string | null {
  const raw = text.slice(a, b);
  if (raw.indexOf('\\') === -1) return raw;
  try {
    return JSON.parse(`"${raw}"`) as string;
  } catch {
    return null;
  }
}

function sameRange(text: string, a: number, b: number, c: number, d: number): boolean {
  if (b - a !== d - c) return false;
  for (let i = 0; i < b - a; i++) if (text.charCodeAt(a + i) !== text.charCodeAt(c + i)) return false;
  return true;
}

/** The first such problem of `text`, as a message, or null. */
export function strictJsonProblem(text: string): string | null {
  const n = text.length;
  let depth = 0;
  let keys = 0;
  // A line with an escape anywhere compares keys decoded (rare); others compare them in place.
  const escapes = text.indexOf('\\') !== -1;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      let j = text.indexOf('"', i + 1);
      while (j !== -1 && escapedAt(text, j)) j = text.indexOf('"', j + 1);
      if (j === -1) return null; // unterminated: JSON.parse reports it
      if (depth > 0 && frames[depth - 1] >= 0) {
        let k = j + 1;
        while (k < n && text.charCodeAt(k) <= 0x20) k++;
        // In an object, a string followed by ':' is a key (a value there would be a syntax error).
        if (text.charCodeAt(k) === 0x3a) {
          const problem = addKey(text, frames[depth - 1], keys, i + 1, j, escapes);
          if (problem) return problem;
          keys++;
        }
      }
      i = j;
    } else if (c === 0x7b || c === 0x5b) {
      if (depth === MAX_JSON_DEPTH) return `nesting deeper than ${MAX_JSON_DEPTH} levels`;
      frames[depth++] = c === 0x7b ? keys : -1;
    } else if ((c === 0x7d || c === 0x5d) && depth > 0) {
      depth--;
      if (frames[depth] >= 0) keys = frames[depth];
    }
  }
  return null;
}

/** Checks key [a, b) against the keys of its object (from `first` to `count`) and records it. */
function addKey(text: string, first: number, count: number, a: number, b: number, escapes: boolean): string | null {
  if (escapes) {
    const key = keyText(text, a, b);
    if (key === null) return null; // a bad escape: JSON.parse reports it
    if (key === '__proto__') return `the key '__proto__' is not allowed`;
    for (let k = first; k < count; k++) if (keyText(text, keyStart[k], keyEnd[k]) === key) return duplicate(key);
  } else {
    if (b - a === 9 && text.startsWith('__proto__', a)) return `the key '__proto__' is not allowed`;
    for (let k = first; k < count; k++) if (sameRange(text, keyStart[k], keyEnd[k], a, b)) return duplicate(text.slice(a, b));
  }
  if (count === keyStart.length) {
    const grow = (old: Int32Array) => {
      const next = new Int32Array(old.length * 2);
      next.set(old);
      return next;
    };
    keyStart = grow(keyStart);
    keyEnd = grow(keyEnd);
  }
  keyStart[count] = a;
  keyEnd[count] = b;
  return null;
}

function duplicate(key: string): string {
  return `the key '${key.length > 40 ? `${key.slice(0, 40)}…` : key}' appears twice in one object`;
}
