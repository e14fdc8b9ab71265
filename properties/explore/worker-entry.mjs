// Entry of an explorer worker thread: a worker starts as plain Node whatever loader its parent used, so it
// registers tsx before loading the TypeScript search.
import { register } from 'tsx/esm/api';

register();
await import('./worker.ts');
