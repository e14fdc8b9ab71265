// What the run remembers of its past: arrival times and TTFT/TPOT samples (the policy's observation window
// slides over them), the KV occupancy sampled every `sampleInterval` of virtual time, and the split over
// time. The metrics of the run and the policy's percentiles come from here.
import { percentiles, type OccupancySample, type SplitSample } from '../metrics.ts';
import type { Observation, Split } from '../policy-api.ts';

interface Sample {
  t: number;
  v: number;
}

export class History {
  readonly splitTimeline: SplitSample[] = [];
  readonly occupancy: OccupancySample[] = [];
  private sampleIndex = 0;
  private readonly arrivals: number[] = [];
  private arrivalHead = 0;
  private readonly ttft: Sample[] = [];
  private ttftHead = 0;
  private readonly tpot: Sample[] = [];
  private tpotHead = 0;

  constructor(
    private readonly sampleInterval: number,
    private readonly window: number,
  ) {}

  arrived(t: number): void {
    this.arrivals.push(t);
  }

  firstToken(t: number, ttft: number): void {
    this.ttft.push({ t, v: ttft });
  }

  finished(t: number, tpot: number): void {
    this.tpot.push({ t, v: tpot });
  }

  split(t: number, split: Split): void {
    this.splitTimeline.push({ t, prefill: split.prefill, decode: split.decode });
  }

  /** Before virtual time moves to `time`: one occupancy sample of `kv` per interval boundary passed. */
  sampleUpTo(time: number, kv: { occupancy(): number }): void {
    while ((this.sampleIndex + 1) * this.sampleInterval <= time) {
      this.sampleIndex++;
      this.occupancy.push({ t: this.sampleIndex * this.sampleInterval, used: kv.occupancy() });
    }
  }

  /** The observation window ending at `now`: arrival rate and latency percentiles. */
  windowAt(now: number): Pick<Observation, 'arrivalRate' | 'ttft' | 'tpot'> {
    const cutoff = now - this.window;
    while (this.arrivalHead < this.arrivals.length && this.arrivals[this.arrivalHead] < cutoff) this.arrivalHead++;
    while (this.ttftHead < this.ttft.length && this.ttft[this.ttftHead].t < cutoff) this.ttftHead++;
    while (this.tpotHead < this.tpot.length && this.tpot[this.tpotHead].t < cutoff) this.tpotHead++;
    const span = Math.min(this.window, now);
    return {
      arrivalRate: span > 0 ? (this.arrivals.length - this.arrivalHead) / span : 0,
      ttft: percentiles(this.ttft.slice(this.ttftHead).map((s) => s.v)),
      tpot: percentiles(this.tpot.slice(this.tpotHead).filter((s) => s.v > 0).map((s) => s.v)),
    };
  }
}
