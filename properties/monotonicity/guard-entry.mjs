// Entry of a guarded monotonicity check's worker: a worker starts as plain Node whatever loader its parent
// used, so it registers tsx before loading the TypeScript check and the user's policy module.
import { register } from 'tsx/esm/api';

register();
await import('./guard-worker.ts');
