// An explorer worker thread: one member of a swarm search; posts its result.
import { parentPort, workerData } from 'node:worker_threads';
import type { ExploreConfig } from './config.ts';
import { swarmSearch, type SwarmMember } from './swarm.ts';

const { config, member } = workerData as { config: ExploreConfig; member: SwarmMember };
parentPort!.postMessage(swarmSearch(config, member));
