// The share table: step latencies measured at partial SM shares (bench/measure-shares.ts on WebGPU, or a
// CUDA user's MPS / green-context runs in the same format), and the fit of the share curves to it.
//
//   phase,share_percent,tokens,context,seconds
//   prefill,100,1024,0,0.0791        a prompt of `tokens` tokens alone at the share
//   decode,50,64,1024,0.0137         a batch of `tokens` requests with `context` cached tokens each
//
// Each work point (phase, tokens, context) needs a row at 100 %: the fit reads slowdowns, time(s) / time(100).
import { readFileSync } from 'node:fs';
import { round4 } from './fit.ts';

export const SHARE_TABLE_HEADER = 'phase,share_percent,tokens,context,seconds';

export interface ShareRow {
  phase: 'prefill' | 'decode';
  share: number;
  tokens: number;
  context: number;
  seconds: number;
}

/** A share table that cannot be used: one line naming the file, row and column. */
export class ShareTableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ShareTableError';
  }
}

/** One CSV line of a row, in the header's order. */
export function shareTableLine(r: ShareRow): string {
  return `${r.phase},${r.share},${r.tokens},${r.context},${Number(r.seconds.toPrecision(6))}`;
}

/** The file bench/measure-shares.ts writes: a comment saying how it was measured, the header, the rows. */
export function formatShareTable(rows: readonly ShareRow[], comment: string): string {
  return [`# ${comment.replace(/\n/g, ' ')}`, SHARE_TABLE_HEADER, ...rows.map(shareTableLine), ''].join('\n');
}

export function parseShareTable(text: string, where: string): ShareRow[] {
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  if (lines[0] !== SHARE_TABLE_HEADER) throw new ShareTableError(`${where}: the first line must be '${SHARE_TABLE_HEADER}', got '${lines[0] ?? ''}'`);
  return lines.slice(1).map((line, i) => {
    const cells = line.split(',');
    const at = `${where}: row ${i + 2}`;
    if (cells.length !== 5) throw new ShareTableError(`${at}: 5 columns expected, got ${cells.length}`);
    const [phase, ...numbers] = cells;
    if (phase !== 'prefill' && phase !== 'decode') throw new ShareTableError(`${at}: phase must be prefill or decode, got '${phase}'`);
    const [share, tokens, context, seconds] = numbers.map(Number);
    if (!(share > 0 && share <= 100)) throw new ShareTableError(`${at}: share_percent must be in (0, 100], got '${numbers[0]}'`);
    if (!(Number.isInteger(tokens) && tokens >= 1)) throw new ShareTableError(`${at}: tokens must be an integer ≥ 1, got '${numbers[1]}'`);
    if (!(Number.isInteger(context) && context >= 0)) throw new ShareTableError(`${at}: context must be an integer ≥ 0, got '${numbers[2]}'`);
    if (!(seconds > 0 && Number.isFinite(seconds))) throw new ShareTableError(`${at}: seconds must be a finite number > 0, got '${numbers[3]}'`);
    return { phase, share, tokens, context, seconds };
  });
}

export function readShareTable(path: string): ShareRow[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ShareTableError(`cannot read ${path}: ${(err as Error).message}`);
  }
  return parseShareTable(text, path);
}

/** The fitted slowdown a/s + b (a + b = 1, so 1 at the whole GPU) of one phase, and its error on the rows. */
export interface ShareCurveFit {
  a: number;
  b: number;
  rows: number;
  mape: number;
}

/**
 * Least squares of slowdown(s) = a/s + (1 − a) over every row below 100 % whose work point has a row at
 * 100 % (the mean of several). The closed form: a = Σ (1/s − 1)(r − 1) / Σ (1/s − 1)².
 */
export function fitShareCurve(rows: readonly ShareRow[], phase: 'prefill' | 'decode'): ShareCurveFit {
  const mine = rows.filter((r) => r.phase === phase);
  const key = (r: ShareRow) => `${r.tokens}/${r.context}`;
  const whole = new Map<string, number[]>();
  for (const r of mine) if (r.share === 100) whole.set(key(r), [...(whole.get(key(r)) ?? []), r.seconds]);
  const points: [number, number][] = [];
  for (const r of mine) {
    const base = whole.get(key(r));
    if (r.share === 100 || !base) continue;
    points.push([r.share / 100, r.seconds / (base.reduce((x, y) => x + y, 0) / base.length)]);
  }
  if (points.length === 0) throw new ShareTableError(`no ${phase} rows below 100 % with a matching row at 100 %: nothing to fit`);
  let num = 0;
  let den = 0;
  for (const [s, r] of points) {
    num += (1 / s - 1) * (r - 1);
    den += (1 / s - 1) ** 2;
  }
  // Kept in (0, 1]: a profile's curve needs a > 0, and b = 1 − a ≥ 0 keeps the slowdown non-increasing.
  const a = Math.min(1, Math.max(1e-4, num / den));
  const mape = points.reduce((sum, [s, r]) => sum + Math.abs(a / s + 1 - a - r) / r, 0) / points.length;
  return { a: round4(a), b: round4(1 - a), rows: points.length, mape: round4(mape) };
}

export function fitShareCurves(rows: readonly ShareRow[]): { prefill: ShareCurveFit; decode: ShareCurveFit } {
  return { prefill: fitShareCurve(rows, 'prefill'), decode: fitShareCurve(rows, 'decode') };
}
