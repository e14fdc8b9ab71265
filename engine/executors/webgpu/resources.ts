// What the WebGPU executor holds on the device: its pipelines and a step's buffers, and two small
// decisions about the adapter and the split.

/** Mesa llvmpipe/lavapipe, SwiftShader or another fallback adapter: compute runs on the CPU. */
export function isSoftwareAdapter(device: GPUDevice): boolean {
  const info = (device as GPUDevice & { adapterInfo?: GPUAdapterInfo & { isFallbackAdapter?: boolean } }).adapterInfo;
  if (!info) return false;
  return info.isFallbackAdapter === true || info.architecture === 'software' || /llvmpipe|lavapipe|swiftshader/i.test(`${info.device} ${info.description}`);
}

/** The split as a workgroup count: share·G rounded, but a phase with tiles always gets ≥ 1 workgroup. */
export function prefillWorkgroups(share: number, total: number, hasPrefill: boolean, hasDecode: boolean): number {
  let x = Math.round(share * total);
  if (hasPrefill) x = Math.max(x, 1);
  if (hasDecode) x = Math.min(x, total - 1);
  return x;
}

/** What a step's buffers can hold: rows (positions), items (requests), block-table entries, classified rows. */
export interface Capacity {
  rows: number;
  items: number;
  tableEntries: number;
  outputs: number;
}

/** The compute pipelines, built once per device. */
export interface Pipelines {
  embed: GPUComputePipeline;
  normAttention: GPUComputePipeline;
  normFfn: GPUComputePipeline;
  normFinal: GPUComputePipeline;
  qkv: GPUComputePipeline;
  wo: GPUComputePipeline;
  w13: GPUComputePipeline;
  w2: GPUComputePipeline;
  classifier: GPUComputePipeline;
  attention: GPUComputePipeline;
  argmax: GPUComputePipeline;
}

/** The buffers and bind groups of a step, sized for `capacity` and grown when a step needs more. */
export interface StepBuffers {
  capacity: Capacity;
  tokens: GPUBuffer;
  items: GPUBuffer;
  tiles: GPUBuffer;
  tables: GPUBuffer;
  x: GPUBuffer;
  xb: GPUBuffer;
  qkv: GPUBuffer;
  qrot: GPUBuffer;
  att: GPUBuffer;
  hb: GPUBuffer;
  outRows: GPUBuffer;
  last: GPUBuffer;
  logits: GPUBuffer;
  next: GPUBuffer;
  readback: GPUBuffer;
  timestamps: GPUBuffer | null;
  groups: {
    embed: GPUBindGroup;
    normFinal: GPUBindGroup;
    classifier: GPUBindGroup;
    argmax: GPUBindGroup;
    perLayer: {
      normAttention: GPUBindGroup;
      qkv: GPUBindGroup;
      attention: GPUBindGroup;
      wo: GPUBindGroup;
      normFfn: GPUBindGroup;
      w13: GPUBindGroup;
      w2: GPUBindGroup;
    }[];
  };
}
