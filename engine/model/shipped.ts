// The checkpoint the project ships (data/llama2c-stories260K, MIT, Karpathy) and its golden output,
// located from this file so that it works from any working directory.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const dataDir = new URL('../../data/llama2c-stories260K/', import.meta.url);

export const STORIES260K_PATH = fileURLToPath(new URL('stories260K.bin', dataDir));
export const STORIES260K_GOLDEN_PATH = fileURLToPath(new URL('golden-bos-64.txt', dataDir));

/** The token ids llama2.c's run.c prints greedily from BOS (token 1) with -n 64 on stories260K. */
export function readStories260KGolden(): number[] {
  const text = readFileSync(STORIES260K_GOLDEN_PATH, 'utf8').trim();
  const ids = text.split(/\s+/).map(Number);
  if (ids.length !== 64 || !ids.every((n) => Number.isInteger(n) && n >= 0)) {
    throw new Error(`${STORIES260K_GOLDEN_PATH}: expected 64 token ids, got '${text.slice(0, 60)}…'`);
  }
  return ids;
}
