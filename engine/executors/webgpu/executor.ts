// The WebGPU executor: the Llama 2 forward pass as WGSL kernels over one paged KV pool.
// Weights are uploaded once and pipelines built once; a step writes its small tables (tokens, items,
// tiles, block tables, the split), records one compute pass, and reads back once.
import type { ModelWeights } from '../../model/checkpoint.ts';
import {
  ExecutorInputError,
  kvPoolFloats,
  kvBlockFloats,
  planStep,
  validatePool,
  type KvPool,
  type ModelConfig,
  type ModelExecutor,
  type StepInput,
  type StepOutput,
  type StepPlan,
} from '../model-executor.ts';
import { installWebGpuGlobals, requestAdapter, requestDevice, webGpu } from './device.ts';
import {
  argmaxShader,
  attentionShader,
  embedShader,
  matmulShader,
  MATMUL_THREADS,
  rmsnormShader,
  type KernelShape,
  type MatmulSpec,
} from './shaders.ts';
import { isSoftwareAdapter, prefillWorkgroups, type Capacity, type Pipelines, type StepBuffers } from './resources.ts';

export { isSoftwareAdapter, prefillWorkgroups };

export interface WebGpuExecutorOptions {
  /** Workgroups of the fused attention dispatch, divided between prefill and decode by the split. */
  attentionWorkgroups?: number;
  /** Lanes per attention workgroup (power of two; default 8 on a software adapter, 32 otherwise). */
  attentionLanes?: number;
  /** Tokens per matmul invocation. */
  tokensPerThread?: number;
  /** Output rows per matmul invocation. */
  rowsPerThread?: number;
  /** Use this device instead of requesting one (the executor then does not destroy it). */
  device?: GPUDevice;
  /**
   * Time every kernel with timestamp queries (needs the 'timestamp-query' feature; requested when the
   * executor creates its device). Each dispatch then gets its own compute pass, which adds overhead, so
   * profile separately from throughput runs. Results: lastProfile after each step.
   */
  profile?: boolean;
}

const UNIFORM_STRIDE = 256;
const pipelineCache = new WeakMap<GPUDevice, Map<string, GPUComputePipeline>>(); // ≥ every adapter's minUniformBufferOffsetAlignment
const STEP_UNIFORM_BYTES = 32;

export class WebGpuExecutor implements ModelExecutor {
  readonly name = 'webgpu' as const;
  readonly model: ModelConfig;
  readonly pool: KvPool;
  readonly attentionWorkgroups: number;
  readonly shape: KernelShape;
  private readonly device: GPUDevice;
  private readonly ownsDevice: boolean;
  private readonly pipelines: Pipelines;
  private readonly weights: Record<'emb' | 'norms' | 'wqkv' | 'wo' | 'w13' | 'w2' | 'wcls', GPUBuffer>;
  private readonly kv: GPUBuffer;
  /** Staging for copy-on-write copies (one block), made on the first copy. */
  private copyBlock: GPUBuffer | null = null;
  private readonly stepUniform: GPUBuffer;
  private readonly layerUniform: GPUBuffer;
  private buffers: StepBuffers | null = null;
  /** Counters that make "built once, read back once per step" checkable. */
  readonly stats = { pipelinesBuilt: 0, pipelinesUsed: 0, weightUploads: 0, bindGroupBuilds: 0, steps: 0, readbacks: 0, dispatches: 0 };
  private busy = false;
  private destroyed = false;
  private lostReason: string | null = null;
  private readonly querySet: GPUQuerySet | null = null;
  /** Kernel → nanoseconds (summed over layers) of the last step, when created with profile: true. */
  lastProfile: Map<string, number> | null = null;

  private constructor(device: GPUDevice, ownsDevice: boolean, weights: ModelWeights, pool: KvPool, options: WebGpuExecutorOptions) {
    this.device = device;
    this.ownsDevice = ownsDevice;
    this.model = weights.config;
    this.pool = { numBlocks: pool.numBlocks, blockSize: pool.blockSize };
    this.attentionWorkgroups = options.attentionWorkgroups ?? 64;
    // The lane count changes no bit of the output (each score and each sum is one lane's serial loop),
    // only speed: llvmpipe pays per barrier per 8-lane group, a real GPU wants at least a warp.
    const attentionLanes = options.attentionLanes ?? (isSoftwareAdapter(device) ? 8 : 32);
    if (!Number.isInteger(this.attentionWorkgroups) || this.attentionWorkgroups < 2) {
      throw new ExecutorInputError(`attentionWorkgroups must be an integer ≥ 2, got ${this.attentionWorkgroups}`);
    }
    if (!Number.isInteger(Math.log2(attentionLanes)) || attentionLanes < 1) throw new ExecutorInputError(`attentionLanes must be a power of two, got ${attentionLanes}`);
    this.shape = { model: this.model, blockSize: pool.blockSize, attentionLanes, tokensPerThread: options.tokensPerThread ?? 8, rowsPerThread: options.rowsPerThread ?? 4 };
    device.lost.then((info) => {
      this.lostReason = info.message || info.reason;
    });

    this.weights = this.uploadWeights(weights);
    this.kv = this.storage('kv pool', kvPoolFloats(this.model, this.pool), GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST);
    if (options.profile) {
      if (!device.features.has('timestamp-query')) throw new ExecutorInputError("profile needs a device with the 'timestamp-query' feature");
      this.querySet = device.createQuerySet({ type: 'timestamp', count: 2 * this.dispatchesPerStep() });
    }
    const L = this.model.nLayers;
    this.stepUniform = device.createBuffer({ label: 'step', size: STEP_UNIFORM_BYTES, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
    this.layerUniform = device.createBuffer({ label: 'layers', size: UNIFORM_STRIDE * L, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
    const layerIds = new Uint32Array((UNIFORM_STRIDE / 4) * L);
    for (let l = 0; l < L; l++) layerIds[(UNIFORM_STRIDE / 4) * l] = l;
    device.queue.writeBuffer(this.layerUniform, 0, layerIds);
    this.pipelines = this.buildPipelines();
  }

  /** A storage buffer of `floats` 32-bit words, within the device's binding limit. */
  private storage(label: string, floats: number, usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC): GPUBuffer {
    const limit = this.device.limits.maxStorageBufferBindingSize;
    const bytes = Math.max(4 * floats, 16);
    if (bytes > limit) throw new ExecutorInputError(`${label} needs ${bytes} bytes, more than this device's storage binding limit of ${limit}`);
    return this.device.createBuffer({ label, size: bytes, usage });
  }

  private upload(label: string, parts: Float32Array[]): GPUBuffer {
    const floats = parts.reduce((a, p) => a + p.length, 0);
    const buffer = this.storage(label, floats);
    let offset = 0;
    for (const p of parts) {
      this.device.queue.writeBuffer(buffer, offset, p.buffer, p.byteOffset, p.byteLength);
      offset += p.byteLength;
    }
    this.stats.weightUploads++;
    return buffer;
  }

  /** The weights, uploaded once: per layer [q rows | k rows | v rows] so one matmul produces q, k and v; w1 and w3 likewise. */
  private uploadWeights(weights: ModelWeights): WebGpuExecutor['weights'] {
    const m = this.model;
    const perLayer = (tensors: [Float32Array, number][]) => {
      const parts: Float32Array[] = [];
      for (let l = 0; l < m.nLayers; l++) for (const [t, size] of tensors) parts.push(t.subarray(l * size, (l + 1) * size));
      return parts;
    };
    const emb = this.upload('token embedding', [weights.tokenEmbedding]);
    return {
      emb,
      norms: this.upload('rmsnorm weights', [weights.rmsAtt, weights.rmsFfn, weights.rmsFinal]),
      wqkv: this.upload('wq|wk|wv', perLayer([[weights.wq, m.dim * m.dim], [weights.wk, m.kvDim * m.dim], [weights.wv, m.kvDim * m.dim]])),
      wo: this.upload('wo', [weights.wo]),
      w13: this.upload('w1|w3', perLayer([[weights.w1, m.hiddenDim * m.dim], [weights.w3, m.hiddenDim * m.dim]])),
      w2: this.upload('w2', [weights.w2]),
      wcls: m.sharedClassifier ? emb : this.upload('classifier', [weights.wcls]),
    };
  }

  /**
   * The pipelines. They are immutable, so executors on one device share them by WGSL text: a second
   * executor of the same shape compiles nothing (llvmpipe's JIT takes seconds per kernel set).
   */
  private buildPipelines(): Pipelines {
    const device = this.device;
    const m = this.model;
    const s = this.shape;
    let cache = pipelineCache.get(device);
    if (!cache) pipelineCache.set(device, (cache = new Map()));
    const pipeline = (label: string, code: string) => {
      let built = cache.get(code);
      if (!built) {
        built = device.createComputePipeline({ label, layout: 'auto', compute: { module: device.createShaderModule({ label, code }), entryPoint: 'main' } });
        cache.set(code, built);
        this.stats.pipelinesBuilt++;
      }
      this.stats.pipelinesUsed++;
      return built;
    };
    const mm = (label: string, spec: MatmulSpec) => pipeline(label, matmulShader(s, spec));
    return {
      embed: pipeline('embed', embedShader(s)),
      normAttention: pipeline('rmsnorm attention', rmsnormShader(s, 'attention')),
      normFfn: pipeline('rmsnorm ffn', rmsnormShader(s, 'ffn')),
      normFinal: pipeline('rmsnorm final', rmsnormShader(s, 'final')),
      qkv: mm('matmul qkv', { kind: 'store', n: m.dim, d: m.dim + 2 * m.kvDim, layerStride: (m.dim + 2 * m.kvDim) * m.dim, rows: 'tokens' }),
      wo: mm('matmul wo', { kind: 'residual', n: m.dim, d: m.dim, layerStride: m.dim * m.dim, rows: 'tokens' }),
      w13: mm('matmul w1 w3 swiglu', { kind: 'swiglu', n: m.dim, d: m.hiddenDim, layerStride: 2 * m.hiddenDim * m.dim, rows: 'tokens' }),
      w2: mm('matmul w2', { kind: 'residual', n: m.hiddenDim, d: m.dim, layerStride: m.dim * m.hiddenDim, rows: 'tokens' }),
      classifier: mm('matmul classifier', { kind: 'store', n: m.dim, d: m.vocabSize, layerStride: 0, rows: 'outputs' }),
      attention: pipeline('paged attention', attentionShader(s)),
      argmax: pipeline('argmax', argmaxShader(s)),
    };
  }

  /** Requests an adapter and device (unless given one), uploads the weights and builds the pipelines. */
  static async create(weights: ModelWeights, pool: KvPool, options: WebGpuExecutorOptions = {}): Promise<WebGpuExecutor> {
    validatePool(pool);
    installWebGpuGlobals();
    let device = options.device;
    const owns = device === undefined;
    if (!device) {
      const adapter = await requestAdapter(webGpu());
      if (!adapter) throw new ExecutorInputError('no WebGPU adapter (run `pdspec doctor`)');
      device = await requestDevice(adapter, options.profile && adapter.features.has('timestamp-query') ? ['timestamp-query'] : []);
    }
    device.pushErrorScope('validation');
    device.pushErrorScope('out-of-memory');
    let executor: WebGpuExecutor;
    try {
      executor = new WebGpuExecutor(device, owns, weights, pool, options);
    } catch (err) {
      await device.popErrorScope();
      await device.popErrorScope();
      if (owns) device.destroy();
      throw err;
    }
    const oom = await device.popErrorScope();
    const invalid = await device.popErrorScope();
    const error = oom ?? invalid;
    if (error) {
      executor.destroy();
      throw new Error(`WebGPU executor setup failed: ${error.message.split('\n')[0]}`);
    }
    return executor;
  }

  /** Dispatches in one step: embedding, 7 per layer, final norm, classifier, argmax. */
  dispatchesPerStep(): number {
    return 4 + 7 * this.model.nLayers;
  }

  /** Bytes of the KV pool buffer. */
  get kvBytes(): number {
    return this.kv.size;
  }

  /** Bytes of the uploaded weights (the shared classifier counted once). */
  get weightBytes(): number {
    const w = this.weights;
    return [w.emb, w.norms, w.wqkv, w.wo, w.w13, w.w2].reduce((a, b) => a + b.size, 0) + (this.model.sharedClassifier ? 0 : w.wcls.size);
  }

  /** The step buffers and bind groups, grown (to powers of two) when a step needs more room. */
  private ensureCapacity(need: Capacity): StepBuffers {
    const have = this.buffers?.capacity;
    if (have && need.rows <= have.rows && need.items <= have.items && need.tableEntries <= have.tableEntries && need.outputs <= have.outputs) return this.buffers!;
    const grow = (n: number, old = 0) => Math.max(old, 2 ** Math.ceil(Math.log2(Math.max(n, 1))));
    const capacity: Capacity = {
      rows: grow(need.rows, have?.rows),
      items: grow(need.items, have?.items),
      tableEntries: grow(need.tableEntries, have?.tableEntries),
      outputs: grow(need.outputs, have?.outputs),
    };
    this.releaseStepBuffers();
    this.stats.bindGroupBuilds++;
    const d = this.device;
    const m = this.model;
    const limit = d.limits.maxStorageBufferBindingSize;
    const buf = (label: string, words: number, usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC) => {
      const size = Math.max(4 * words, 16);
      if (size > limit) throw new ExecutorInputError(`step too large: ${label} would need ${size} bytes (limit ${limit})`);
      return d.createBuffer({ label, size, usage });
    };
    const C = capacity;
    const b = {
      tokens: buf('tokens', C.rows),
      items: buf('items', 4 * C.items),
      tiles: buf('tiles', 2 * C.items * m.nKvHeads),
      tables: buf('block tables', C.tableEntries),
      x: buf('x', C.rows * m.dim),
      xb: buf('xb', C.rows * m.dim),
      qkv: buf('qkv', C.rows * (m.dim + 2 * m.kvDim)),
      qrot: buf('q after rope', C.rows * m.dim),
      att: buf('attention out', C.rows * m.dim),
      hb: buf('ffn hidden', C.rows * m.hiddenDim),
      outRows: buf('classified rows', C.outputs),
      last: buf('last rows', C.outputs * m.dim),
      logits: buf('logits', C.outputs * m.vocabSize),
      next: buf('next', C.outputs),
      readback: d.createBuffer({
        label: 'readback',
        size: 4 * C.outputs * (1 + m.vocabSize) + (this.querySet ? 16 * this.dispatchesPerStep() : 0),
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      }),
      timestamps: this.querySet
        ? d.createBuffer({ label: 'timestamps', size: 16 * this.dispatchesPerStep(), usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC })
        : null,
    };
    this.buffers = { capacity, ...b, groups: this.bindGroups(b) };
    return this.buffers;
  }

  /** The bind groups of every dispatch of a step, over the step buffers `b`. */
  private bindGroups(b: Omit<StepBuffers, 'capacity' | 'groups'>): StepBuffers['groups'] {
    const d = this.device;
    const m = this.model;
    const P = this.pipelines;
    const W = this.weights;
    const group = (p: GPUComputePipeline, resources: (GPUBuffer | GPUBufferBinding)[]) =>
      d.createBindGroup({
        layout: p.getBindGroupLayout(0),
        entries: resources.map((r, i) => ({ binding: i, resource: r instanceof GPUBuffer ? { buffer: r } : r })),
      });
    const layerSlice = (l: number): GPUBufferBinding => ({ buffer: this.layerUniform, offset: UNIFORM_STRIDE * l, size: 16 });
    const step = this.stepUniform;
    const perLayer = Array.from({ length: m.nLayers }, (_, l) => ({
      normAttention: group(P.normAttention, [layerSlice(l), W.norms, b.x, b.xb]),
      qkv: group(P.qkv, [step, layerSlice(l), W.wqkv, b.xb, b.qkv]),
      attention: group(P.attention, [step, layerSlice(l), b.qkv, b.qrot, b.att, this.kv, b.items, b.tiles, b.tables]),
      wo: group(P.wo, [step, layerSlice(l), W.wo, b.att, b.x]),
      normFfn: group(P.normFfn, [layerSlice(l), W.norms, b.x, b.xb]),
      w13: group(P.w13, [step, layerSlice(l), W.w13, b.xb, b.hb]),
      w2: group(P.w2, [step, layerSlice(l), W.w2, b.hb, b.x]),
    }));
    const finalGroup = d.createBindGroup({
      layout: P.normFinal.getBindGroupLayout(0),
      entries: [
        { binding: 1, resource: { buffer: W.norms } },
        { binding: 2, resource: { buffer: b.x } },
        { binding: 3, resource: { buffer: b.last } },
        { binding: 4, resource: { buffer: b.outRows } },
      ],
    });
    return {
      embed: group(P.embed, [W.emb, b.tokens, b.x]),
      normFinal: finalGroup,
      classifier: group(P.classifier, [step, layerSlice(0), W.wcls, b.last, b.logits]),
      argmax: group(P.argmax, [b.logits, b.next]),
      perLayer,
    };
  }

  private releaseStepBuffers(): void {
    const b = this.buffers;
    if (!b) return;
    for (const buffer of [b.tokens, b.items, b.tiles, b.tables, b.x, b.xb, b.qkv, b.qrot, b.att, b.hb, b.outRows, b.last, b.logits, b.next, b.readback]) buffer.destroy();
    b.timestamps?.destroy();
    this.buffers = null;
  }

  async step(input: StepInput): Promise<StepOutput> {
    if (this.destroyed) throw new Error('webgpu executor used after destroy()');
    if (this.lostReason !== null) throw new Error(`webgpu device lost: ${this.lostReason}`);
    if (this.busy) throw new Error('webgpu executor: step() called while the previous step is still running');
    const plan = planStep(input, this.model, this.pool);
    if (plan.items.length === 0) return plan.wantLogits ? { next: new Map(), logits: new Map() } : { next: new Map() };
    const maxGroups = this.device.limits.maxComputeWorkgroupsPerDimension;
    if (plan.rows > maxGroups) throw new ExecutorInputError(`step has ${plan.rows} tokens, more than ${maxGroups} (one workgroup per token row)`);
    this.busy = true;
    try {
      return await this.run(plan);
    } finally {
      this.busy = false;
    }
  }

  private async run(plan: StepPlan): Promise<StepOutput> {
    const nItems = plan.items.length;
    const nOut = plan.outRows.length;
    const tableEntries = plan.items.reduce((a, it) => a + it.blockTable.length, 0);
    const b = this.ensureCapacity({ rows: plan.rows, items: nItems, tableEntries, outputs: nOut });
    const d = this.device;
    this.writeTables(plan, b, tableEntries);
    d.pushErrorScope('validation');
    const enc = d.createCommandEncoder({ label: 'step' });
    if (plan.copies.length > 0) {
      // Copy-on-write first; a buffer cannot be copied onto itself, so each block goes through a staging block.
      const bytes = 4 * kvBlockFloats(this.model, this.pool);
      this.copyBlock ??= d.createBuffer({ label: 'cow block', size: bytes, usage: GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
      for (const c of plan.copies) {
        enc.copyBufferToBuffer(this.kv, c.from * bytes, this.copyBlock, 0, bytes);
        enc.copyBufferToBuffer(this.copyBlock, 0, this.kv, c.to * bytes, bytes);
      }
    }
    const kernels = this.encodeForward(enc, plan, b);
    const nextBytes = 4 * nOut;
    const logitsBytes = plan.wantLogits ? 4 * nOut * this.model.vocabSize : 0;
    const stampBytes = this.querySet ? 16 * kernels.length : 0;
    enc.copyBufferToBuffer(b.next, 0, b.readback, 0, nextBytes);
    if (logitsBytes > 0) enc.copyBufferToBuffer(b.logits, 0, b.readback, nextBytes, logitsBytes);
    if (this.querySet) {
      enc.resolveQuerySet(this.querySet, 0, 2 * kernels.length, b.timestamps!, 0);
      enc.copyBufferToBuffer(b.timestamps!, 0, b.readback, nextBytes + logitsBytes, stampBytes);
    }
    d.queue.submit([enc.finish()]);
    const invalid = await d.popErrorScope();
    if (invalid) throw new Error(`webgpu step rejected by validation: ${invalid.message.split('\n')[0]}`);

    this.stats.steps++;
    this.stats.readbacks++;
    await b.readback.mapAsync(GPUMapMode.READ, 0, nextBytes + logitsBytes + stampBytes);
    const data = b.readback.getMappedRange(0, nextBytes + logitsBytes + stampBytes).slice(0);
    b.readback.unmap();
    if (this.querySet) {
      const stamps = new BigUint64Array(data, nextBytes + logitsBytes, 2 * kernels.length);
      const profile = new Map<string, number>();
      kernels.forEach((k, i) => profile.set(k, (profile.get(k) ?? 0) + Number(stamps[2 * i + 1] - stamps[2 * i])));
      this.lastProfile = profile;
    }
    return this.results(plan, data, nextBytes);
  }

  /**
   * The step's tables: token ids per row; per item (rowBase, nRows, startPos, tableOffset); tiles (item,
   * kvHead), prefill items' tiles first; block tables concatenated; and the step uniform with the split.
   */
  private writeTables(plan: StepPlan, b: StepBuffers, tableEntries: number): void {
    const m = this.model;
    const d = this.device;
    const nItems = plan.items.length;
    const tokens = new Uint32Array(plan.rows);
    const items = new Uint32Array(4 * nItems);
    const tiles = new Uint32Array(2 * nItems * m.nKvHeads);
    const tables = new Uint32Array(Math.max(tableEntries, 1));
    let tableOffset = 0;
    plan.items.forEach((it, i) => {
      tokens.set(it.tokens, it.rowBase);
      items.set([it.rowBase, it.tokens.length, it.startPos, tableOffset], 4 * i);
      tables.set(it.blockTable, tableOffset);
      tableOffset += it.blockTable.length;
      for (let h = 0; h < m.nKvHeads; h++) tiles.set([i, h], 2 * (i * m.nKvHeads + h));
    });
    const nPrefillTiles = plan.prefillItems * m.nKvHeads;
    const nDecodeTiles = (nItems - plan.prefillItems) * m.nKvHeads;
    const G = this.attentionWorkgroups;
    const X = prefillWorkgroups(plan.prefillShare, G, nPrefillTiles > 0, nDecodeTiles > 0);
    d.queue.writeBuffer(this.stepUniform, 0, new Uint32Array([plan.rows, nItems, nPrefillTiles, nDecodeTiles, X, G, plan.outRows.length, 0]));
    d.queue.writeBuffer(b.outRows, 0, new Uint32Array(plan.outRows));
    d.queue.writeBuffer(b.tokens, 0, tokens);
    d.queue.writeBuffer(b.items, 0, items);
    d.queue.writeBuffer(b.tiles, 0, tiles);
    d.queue.writeBuffer(b.tables, 0, tables);
  }

  /** The forward pass's dispatches; one compute pass for the whole step, or, when profiling, one per dispatch with timestamps. Returns the kernels profiled. */
  private encodeForward(enc: GPUCommandEncoder, plan: StepPlan, b: StepBuffers): string[] {
    const m = this.model;
    const P = this.pipelines;
    const G2 = b.groups;
    const querySet = this.querySet;
    const nOut = plan.outRows.length;
    const kernels: string[] = [];
    let pass = querySet ? null : enc.beginComputePass({ label: 'forward' });
    const dispatch = (p: GPUComputePipeline, g: GPUBindGroup, x: number, y = 1) => {
      if (querySet) {
        const q = 2 * kernels.length;
        kernels.push(p.label);
        pass = enc.beginComputePass({ label: p.label, timestampWrites: { querySet, beginningOfPassWriteIndex: q, endOfPassWriteIndex: q + 1 } });
      }
      pass!.setPipeline(p);
      pass!.setBindGroup(0, g);
      pass!.dispatchWorkgroups(x, y);
      if (querySet) pass!.end();
      this.stats.dispatches++;
    };
    const TB = this.shape.tokensPerThread;
    const RB = this.shape.rowsPerThread;
    const mmGroups = (dOut: number, rows: number): [number, number] => [Math.ceil(dOut / (RB * MATMUL_THREADS)), Math.ceil(rows / TB)];
    dispatch(P.embed, G2.embed, plan.rows);
    for (let l = 0; l < m.nLayers; l++) {
      const g = G2.perLayer[l];
      dispatch(P.normAttention, g.normAttention, plan.rows);
      dispatch(P.qkv, g.qkv, ...mmGroups(m.dim + 2 * m.kvDim, plan.rows));
      dispatch(P.attention, g.attention, this.attentionWorkgroups);
      dispatch(P.wo, g.wo, ...mmGroups(m.dim, plan.rows));
      dispatch(P.normFfn, g.normFfn, plan.rows);
      dispatch(P.w13, g.w13, ...mmGroups(m.hiddenDim, plan.rows));
      dispatch(P.w2, g.w2, ...mmGroups(m.dim, plan.rows));
    }
    dispatch(P.normFinal, G2.normFinal, nOut);
    dispatch(P.classifier, G2.classifier, ...mmGroups(m.vocabSize, nOut));
    dispatch(P.argmax, G2.argmax, nOut);
    if (!querySet) pass!.end();
    return kernels;
  }

  /** Each item's next token (every position's for an item with allNext), and its logits when asked, from the read-back bytes. */
  private results(plan: StepPlan, data: ArrayBuffer, nextBytes: number): StepOutput {
    const m = this.model;
    const next = new Map<string, number>();
    const ids = new Uint32Array(data, 0, plan.outRows.length);
    const lastOut = (it: StepPlan['items'][number]) => (it.allNext ? it.outBase + it.tokens.length - 1 : it.outBase);
    let nextAll: Map<string, number[]> | undefined;
    for (const it of plan.items) {
      next.set(it.req, ids[lastOut(it)]);
      if (it.allNext) (nextAll ??= new Map()).set(it.req, Array.from(ids.subarray(it.outBase, it.outBase + it.tokens.length)));
    }
    const out: StepOutput = { next };
    if (nextAll) out.nextAll = nextAll;
    if (plan.wantLogits) {
      const logits = new Map<string, Float32Array>();
      for (const it of plan.items) logits.set(it.req, new Float32Array(data, nextBytes + 4 * lastOut(it) * m.vocabSize, m.vocabSize).slice());
      out.logits = logits;
    }
    return out;
  }

  /** Reads the whole KV pool back (for tests and debugging; not used by step()). */
  async readKvPool(): Promise<Float32Array> {
    const d = this.device;
    const staging = d.createBuffer({ size: this.kv.size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    const enc = d.createCommandEncoder();
    enc.copyBufferToBuffer(this.kv, 0, staging, 0, this.kv.size);
    d.queue.submit([enc.finish()]);
    await staging.mapAsync(GPUMapMode.READ);
    const out = new Float32Array(staging.getMappedRange().slice(0));
    staging.unmap();
    staging.destroy();
    return out;
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.releaseStepBuffers();
    const w = this.weights;
    for (const buffer of new Set([w.emb, w.norms, w.wqkv, w.wo, w.w13, w.w2, w.wcls])) buffer?.destroy();
    this.kv.destroy();
    this.copyBlock?.destroy();
    this.stepUniform.destroy();
    this.layerUniform.destroy();
    this.querySet?.destroy();
    if (this.ownsDevice) this.device.destroy();
  }
}

export function createWebGpuExecutor(weights: ModelWeights, pool: KvPool, options: WebGpuExecutorOptions = {}): Promise<WebGpuExecutor> {
  return WebGpuExecutor.create(weights, pool, options);
}
