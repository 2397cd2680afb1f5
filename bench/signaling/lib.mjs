// Shared helpers: a monotonic clock that agrees across processes, a mergeable latency
// histogram, /proc readers.

import { readFileSync } from 'node:fs';

/** Milliseconds on CLOCK_MONOTONIC (the same clock in every process of the machine). */
export function nowMs() {
  return Number(process.hrtime.bigint()) / 1e6;
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Log-linear histogram: bucket i holds values in [1µs·1.01^i, 1µs·1.01^(i+1)); ~1% error.
const BASE = Math.log(1.01);
const BUCKETS = 2400; // up to ~ 1µs·1.01^2400 ≈ 23 000 s

export class Histogram {
  constructor() {
    this.counts = new Float64Array(BUCKETS);
    this.n = 0;
    this.sum = 0;
    this.max = 0;
  }

  add(ms) {
    const us = Math.max(ms * 1000, 1);
    const i = Math.min(BUCKETS - 1, Math.floor(Math.log(us) / BASE));
    this.counts[i]++;
    this.n++;
    this.sum += ms;
    if (ms > this.max) this.max = ms;
  }

  toJSON() {
    // Sparse form for IPC: [[index, count], ...]
    const sparse = [];
    for (let i = 0; i < BUCKETS; i++) if (this.counts[i]) sparse.push([i, this.counts[i]]);
    return { sparse, n: this.n, sum: this.sum, max: this.max };
  }

  static from(json) {
    const h = new Histogram();
    h.merge(json);
    return h;
  }

  merge(other) {
    const json = other instanceof Histogram ? other.toJSON() : other;
    for (const [i, c] of json.sparse) this.counts[i] += c;
    this.n += json.n;
    this.sum += json.sum;
    this.max = Math.max(this.max, json.max);
    return this;
  }

  /** The q-quantile (0..1) in ms, null when empty. */
  quantile(q) {
    if (this.n === 0) return null;
    const target = Math.max(1, Math.ceil(q * this.n));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i];
      if (seen >= target) return Math.exp((i + 0.5) * BASE) / 1000; // bucket midpoint, ms
    }
    return this.max;
  }

  summary() {
    return {
      n: this.n,
      p50: round(this.quantile(0.5)),
      p99: round(this.quantile(0.99)),
      max: round(this.max),
      mean: this.n ? round(this.sum / this.n) : null,
    };
  }
}

export function round(v, digits = 3) {
  if (v === null || v === undefined || Number.isNaN(v)) return null;
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

/** VmRSS and VmHWM of a process, in KiB (null when it is gone). */
export function memOf(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN);
    return { rssKiB: kb('VmRSS'), hwmKiB: kb('VmHWM'), threads: Number(/^Threads:\s+(\d+)/m.exec(s)?.[1]) };
  } catch {
    return null;
  }
}

const TICKS = 100; // USER_HZ on Linux

/** CPU seconds (user + system) a process has used so far (null when it is gone). */
export function cpuOf(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = s.slice(s.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state); utime is field 14, stime field 15
    return (Number(fields[11]) + Number(fields[12])) / TICKS;
  } catch {
    return null;
  }
}

/** CPU seconds the whole machine has been busy (all cores; from /proc/stat). */
export function machineBusy() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const idle = f[3] + (f[4] ?? 0);
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return (total - idle) / TICKS;
}
