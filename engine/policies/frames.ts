// Messages between a policy's sandboxed process and its worker: each a v8-serialised value (NaN, nested
// objects and all, as structured clone keeps them) behind a 4-byte big-endian length.
import { deserialize, serialize } from 'node:v8';

/** A frame larger than this is not a message of the protocol: the other side is sending garbage. */
export const MAX_FRAME_BYTES = 64 * 1024 * 1024;

export function frame(value: unknown): Buffer {
  const body = serialize(value);
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length);
  return Buffer.concat([head, body]);
}

/** Cuts a byte stream into the values its frames hold; throws on a frame that cannot be one. */
export class FrameReader {
  private pending: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): unknown[] {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const values: unknown[] = [];
    while (this.pending.length >= 4) {
      const length = this.pending.readUInt32BE(0);
      if (length > MAX_FRAME_BYTES) throw new Error(`a frame of ${length} bytes, beyond ${MAX_FRAME_BYTES}`);
      if (this.pending.length < 4 + length) break;
      values.push(deserialize(this.pending.subarray(4, 4 + length)));
      this.pending = this.pending.subarray(4 + length);
    }
    return values;
  }
}
