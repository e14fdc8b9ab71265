// The explorer's visited set: a key found again gets its first index; a different key, however close
// (a prefix, one word changed, a hash collision), gets a new one; through growth and rehashing.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KeyBuffer, keyText, StateStore } from '../properties/explore/state-store.ts';

function buffer(words: number[]): KeyBuffer {
  const k = new KeyBuffer();
  for (const w of words) k.push(w);
  return k;
}

describe('StateStore', () => {
  it('agrees with a Map of key texts on any sequence of keys', () => {
    // Few distinct words and short keys, so that prefixes, repeats and near misses are common.
    const key = fc.array(fc.integer({ min: -2, max: 3 }), { maxLength: 6 });
    fc.assert(
      fc.property(fc.array(key, { maxLength: 400 }), fc.boolean(), (keys, colliding) => {
        // With a hash that is the same for every key, equal hashes must never be taken for equal keys.
        const store = colliding ? new StateStore(() => 42) : new StateStore();
        const reference = new Map<string, number>();
        for (const words of keys) {
          const k = buffer(words);
          const text = keyText(k);
          const expected = reference.get(text) ?? reference.size;
          reference.set(text, expected);
          expect(store.intern(k)).toBe(expected);
          expect(store.size).toBe(reference.size);
          expect(store.keyText(expected)).toBe(text);
        }
      }),
      { seed: 7, numRuns: 300 },
    );
  });

  it('keeps 200,000 long keys apart through growth and rehashing', () => {
    const store = new StateStore();
    const k = new KeyBuffer();
    for (let i = 0; i < 200_000; i++) {
      k.length = 0;
      for (let j = 0; j < 40; j++) k.push(j === 39 ? i : j);
      expect(store.intern(k)).toBe(i);
    }
    for (const i of [0, 1, 65_535, 199_999]) {
      k.length = 0;
      for (let j = 0; j < 40; j++) k.push(j === 39 ? i : j);
      expect(store.intern(k)).toBe(i);
    }
    expect(store.size).toBe(200_000);
  });
});
