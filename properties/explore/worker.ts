// An explorer worker thread: searches one shard and posts its result.
import { parentPort, workerData } from 'node:worker_threads';
import type { ExploreConfig } from './config.ts';
import { explore, type Shard } from './explorer.ts';

const { config, shard } = workerData as { config: ExploreConfig; shard: Shard };
parentPort!.postMessage(explore(config, {}, shard));
