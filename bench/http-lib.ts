/**
 * Helpers shared by the transport benchmarks (sse.ts, ws.ts, sse-concurrency.ts, ui-message.ts,
 * sentences.ts); figures only.
 */

import { defineAction, type ActionDefinition } from '../src/runtime/action.ts';

/** Median of a list of numbers. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** The p-th percentile (0–100) of a sorted list. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index]!;
}

/** Reads a positive integer from the environment. */
export function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive integer (got ${raw})`);
  return value;
}

/** A streaming action that yields `count` small text chunks as fast as backpressure allows. */
export function chunksAction(count: number): ActionDefinition {
  return defineAction({
    name: 'bench_chunks',
    async *stream() {
      for (let i = 0; i < count; i++) yield 'tok ';
    },
  });
}

/** Formats a per-item line: `unit` names the item (default 'chunk': "µs/chunk", "chunks/s"). */
export function line(label: string, ms: number, chunks: number, unit = 'chunk'): string {
  const us = (ms * 1000) / chunks;
  const perSecond = Math.round(chunks / (ms / 1000));
  return `  ${label.padEnd(26)} ${us.toFixed(3).padStart(8)} µs/${unit}  ${perSecond.toLocaleString('en-US').padStart(12)} ${unit}s/s  (median ${ms.toFixed(1)} ms)`;
}

/** The Rasa call that runs `bench_chunks`. */
export const benchCall = {
  next_action: 'bench_chunks',
  sender_id: 'bench',
  tracker: { sender_id: 'bench', slots: {}, latest_message: {}, events: [] },
  domain: { version: '3.1' },
};
