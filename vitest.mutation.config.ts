// The tests `npm run mutation` runs against each mutant of spec/: the judge's own tests, fast ones only (the
// explorer's and the engine's campaigns take minutes and would multiply by thousands of mutants).
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: [
      'test/invariants.test.ts',
      'test/machines.test.ts',
      'test/spec-survivors.test.ts',
      'test/examples.test.ts',
      'test/trace-format.test.ts',
      'test/strict-input.test.ts',
      'test/release-deadline.test.ts',
    ],
    testTimeout: 60_000,
    pool: 'forks',
  },
});
