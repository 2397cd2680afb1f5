/**
 * Speed and time-left estimates from byte counts sampled over time: an exponentially weighted
 * moving average, so the figure neither jumps with every sample nor lags for long.
 */

export class RateMeter {
  readonly #halfLifeMs: number;
  #lastAt: number | null = null;
  #lastBytes = 0;
  #rate: number | null = null;

  constructor(halfLifeMs = 2000) {
    this.#halfLifeMs = halfLifeMs;
  }

  /** Records that `bytes` (a running total) had been reached at `atMs`. */
  sample(bytes: number, atMs: number): void {
    if (this.#lastAt === null) {
      this.#lastAt = atMs;
      this.#lastBytes = bytes;
      return;
    }
    const dt = atMs - this.#lastAt;
    if (dt < 100) return;
    const instant = ((bytes - this.#lastBytes) * 1000) / dt;
    const keep = Math.pow(0.5, dt / this.#halfLifeMs);
    this.#rate = this.#rate === null ? instant : this.#rate * keep + instant * (1 - keep);
    this.#lastAt = atMs;
    this.#lastBytes = bytes;
  }

  /** Bytes per second, or `null` before two samples. */
  get bytesPerSecond(): number | null {
    return this.#rate;
  }

  /** Seconds until `remaining` bytes are done at the current rate; `null` when unknown. */
  etaSeconds(remaining: number): number | null {
    if (this.#rate === null || this.#rate <= 1) return null;
    return Math.ceil(remaining / this.#rate);
  }
}

/** How many of `total` bytes (running over files in order) fall into each file. */
export function spreadOverFiles(total: number, sizes: readonly number[]): number[] {
  let left = total;
  return sizes.map((size) => {
    const here = Math.max(0, Math.min(size, left));
    left -= here;
    return here;
  });
}
