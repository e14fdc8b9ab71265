// Entry of a guarded monotonicity check's worker: a worker starts as plain Node whatever loader its parent
// used, so it registers tsx before loading the TypeScript check and the user's policy module (the compiled
// check, in the built package).
import { existsSync } from 'node:fs';
import { register } from 'tsx/esm/api';

register();
const source = new URL('./guard-worker.ts', import.meta.url);
await import(existsSync(source) ? source.href : new URL('./guard-worker.js', import.meta.url).href);
