// The unified block pool: the free list is a stack (O(1) take and release, no scan), allocation follows
// query → take → update utilisation under the lock, and block ids follow the trace format's numbering.
import { describe, expect, it } from 'vitest';
import { BlockPool, EngineBugError, NO_OWNER } from '../engine/kv/block-pool.ts';

describe('BlockPool', () => {
  it('hands out the lowest ids first and reuses the most recently freed block first (a stack)', () => {
    const pool = new BlockPool(0, 8);
    const a: number[] = [];
    const r = pool.query('D0');
    pool.take(r, 1, 3, a);
    pool.commit(r);
    expect(a).toEqual([0, 1, 2]);
    expect(pool.free).toBe(5);
    expect(pool.used).toBe(3);
    pool.release(1, [1]);
    expect(pool.freeList()[0]).toBe(1);
    const b: number[] = [];
    const r2 = pool.query('D0');
    pool.take(r2, 2, 2, b);
    pool.commit(r2);
    expect(b).toEqual([1, 3]);
    expect(pool.owner[1]).toBe(2);
    expect(pool.owner[0]).toBe(1);
    expect(pool.owner[7]).toBe(NO_OWNER);
  });

  it('numbers the blocks of pool p as p·B .. p·B + B − 1', () => {
    const pool = new BlockPool(1, 4);
    const got: number[] = [];
    const r = pool.query('D0');
    pool.take(r, 0, 4, got);
    pool.commit(r);
    expect(got).toEqual([4, 5, 6, 7]);
    expect(pool.free).toBe(0);
  });

  it('allocation holds the lock from query to commit, and checks who holds it', () => {
    const pool = new BlockPool(0, 4);
    const r = pool.query('P0');
    expect(pool.lockHolder).toBe('P0');
    expect(() => pool.query('D0')).toThrow(EngineBugError);
    const version = pool.version;
    pool.commit(r);
    expect(pool.lockHolder).toBeNull();
    expect(pool.version).toBe(version + 1);
    expect(() => pool.take(r, 0, 1, [])).toThrow(/without holding the lock/);
  });

  it('refuses a double free and a free by a non-owner (self-check on)', () => {
    const pool = new BlockPool(0, 4);
    const got: number[] = [];
    const r = pool.query('D0');
    pool.take(r, 7, 2, got);
    pool.commit(r);
    expect(() => pool.release(8, [got[0]])).toThrow(/owned by request #7/);
    pool.release(7, got);
    expect(() => pool.release(7, [got[0]])).toThrow(/double free/);
  });

  it('without the lock (Z13) two workers that read the same utilisation take the same blocks', () => {
    const pool = new BlockPool(0, 8, false, false);
    const p = pool.query('P0');
    const d = pool.query('D0');
    const byP: number[] = [];
    const byD: number[] = [];
    pool.take(p, 1, 2, byP);
    pool.take(d, 2, 1, byD);
    pool.commit(p);
    pool.commit(d);
    expect(byD[0]).toBe(byP[0]);
  });

  it('take and release cost the same per block whatever the pool size (no scan)', () => {
    // Warm both pools, then time 200k take/release pairs on a 1,000-block and a 1,000,000-block pool; a
    // scan of the pool would make the large one about a thousand times slower.
    const time = (size: number) => {
      const pool = new BlockPool(0, size);
      const buf: number[] = [];
      const start = performance.now();
      for (let i = 0; i < 200_000; i++) {
        buf.length = 0;
        const r = pool.query('D0');
        pool.take(r, 1, 1, buf);
        pool.commit(r);
        pool.release(1, buf);
      }
      return performance.now() - start;
    };
    time(1000);
    time(1_000_000);
    const small = Math.min(time(1000), time(1000));
    const large = Math.min(time(1_000_000), time(1_000_000));
    expect(large / small).toBeLessThan(5);
  });
});
