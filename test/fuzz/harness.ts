/**
 * The fuzz suites' server and generators: the whole `sluice serve` stack (HTTP with apps, AI SDK
 * chat, sentences and the voice socket; gRPC) over the example actions, on loopback port 0.
 *
 * `FUZZ_RUNS` scales every suite (default 1: a few thousand inputs in all, well under 30 s).
 */
import fc from 'fast-check';
import { startServer, type RunningServer } from '../../src/cli/serve.ts';
import { silentLogger } from '../../src/runtime/logger.ts';
import { exampleApps } from '../../examples/app.ts';

/** Multiplier of every suite's number of runs. */
export const SCALE = Math.max(1, Number(process.env.FUZZ_RUNS ?? '1') || 1);

/** `numRuns` for a property, scaled by `FUZZ_RUNS`. */
export function runs(base: number): number {
  return Math.round(base * SCALE);
}

/** The server under fuzz. */
export async function fuzzServer(): Promise<RunningServer> {
  return startServer({
    actions: 'examples/actions.ts',
    host: '127.0.0.1',
    port: 0,
    grpcPort: 0,
    logger: silentLogger,
    apps: exampleApps({ path: ':memory:', wordDelayMs: 0 }),
  });
}

export { assertHealthy } from '../resources/health.ts';

/** JSON text nested `depth` levels deep (JSON.stringify itself cannot write very deep values). */
export function deepJson(depth: number, array = false): string {
  return array ? '['.repeat(depth) + ']'.repeat(depth) : '{"a":'.repeat(depth) + 'null' + '}'.repeat(depth);
}

/** Hostile strings: control characters, lone surrogates, huge, path tricks, injections. */
export const hostileString: fc.Arbitrary<string> = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary' }),
  fc.constantFrom('', ' ', '\u0000', '\ud800', '../../etc/passwd', '%00', '%', '%zz', '<script>', "'; DROP TABLE x;--", '\r\nX-Injected: 1', '{{7*7}}', '__proto__', 'constructor'),
  fc.nat({ max: 200_000 }).map((n) => 'x'.repeat(n)),
);

/** Any JSON value, including prototype keys and odd numbers. */
export const anyJson: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 6 }),
  fc.constantFrom({ __proto__: { polluted: true } }, { constructor: { prototype: { x: 1 } } }, [], {}, null, 1e308, -0),
);

/** A Rasa action call with hostile parts: known and unknown actions, wrong types everywhere. */
export const hostileCall: fc.Arbitrary<unknown> = fc.record(
  {
    next_action: fc.oneof(fc.constantFrom('action_weather', 'action_greet', 'action_card', 'action_nope', ''), hostileString, anyJson),
    sender_id: fc.oneof(hostileString, anyJson),
    tracker: fc.oneof(
      anyJson,
      fc.record({ sender_id: fc.oneof(hostileString, anyJson), slots: fc.oneof(anyJson, fc.dictionary(fc.string(), anyJson)), events: anyJson, latest_message: anyJson }, { requiredKeys: [] }),
    ),
    domain: anyJson,
    domain_digest: fc.oneof(hostileString, anyJson),
    version: fc.oneof(hostileString, anyJson),
  },
  { requiredKeys: [] },
);

/** A request body as text: valid JSON of hostile shapes, broken JSON, deep nesting. */
export const hostileBody: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: hostileCall.map((v) => JSON.stringify(v)) },
  { weight: 2, arbitrary: anyJson.map((v) => JSON.stringify(v) ?? 'null') },
  { weight: 1, arbitrary: hostileString },
  { weight: 1, arbitrary: fc.constantFrom(deepJson(10_000), deepJson(10_000, true), deepJson(65), `{"next_action":"action_greet","tracker":{"slots":${deepJson(5_000)}}}`, '{', '[', '{"a":', 'nul', '\u0000') },
);
