// Batch invariance on the CPU reference, as properties: whatever the schedule (chunked prefill, batch
// composition, which physical blocks, preemption and recompute, the split changing every step), each
// request's tokens and logits are bit for bit those of the request run alone. The same properties run on
// WebGPU in model-webgpu.test.ts.
import { describe, it } from 'vitest';
import { loadCheckpoint } from '../engine/model/checkpoint.ts';
import { STORIES260K_PATH } from '../engine/model/shipped.ts';
import { createCpuReferenceExecutor } from '../engine/executors/cpu-reference.ts';
import { checkScheduleInvariance, gqaModel, testPool } from './model-schedule.ts';

const stories = loadCheckpoint(STORIES260K_PATH);

describe('batch invariance on the CPU reference', () => {
  it('property: any schedule gives each request its solo tokens and logits, bit for bit (stories260K)', async () => {
    await checkScheduleInvariance(createCpuReferenceExecutor(stories, testPool), 25);
  });

  it('property: the same on a GQA model with a separate classifier', async () => {
    await checkScheduleInvariance(createCpuReferenceExecutor(gqaModel, testPool), 15);
  });
});
