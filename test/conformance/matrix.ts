/**
 * The scenarios × wires tests, declared once for every mode the conformance suite runs in (the
 * in-memory executor, the Redis mode).
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ActionExecutor } from '../../src/runtime/executor.ts';
import { expectedTranscript } from './expectations.ts';
import { SCENARIOS } from './scenarios.ts';
import { WIRES, runScenario, settle, type WireContext } from './wires.ts';

/** One test per scenario and wire; `get` is read when a test runs (after the suite's `before`). */
export function scenarioMatrix(get: () => { ctx: WireContext; executor: ActionExecutor }): void {
  for (const scenario of SCENARIOS) {
    for (const wire of WIRES) {
      test(`${scenario.name} over ${wire.name}`, async () => {
        const { ctx, executor } = get();
        // A sender per test keeps the probe's records apart.
        const sender = `${scenario.name} @ ${wire.name}`;
        const call = scenario.call(sender);
        try {
          const transcript = await runScenario(wire, scenario, ctx, sender, call);
          assert.deepStrictEqual(transcript, expectedTranscript(scenario, wire.name, call));
        } finally {
          // The wire may close before the server has finished with the run.
          await settle(executor);
          assert.equal(executor.activeRuns, 0, 'no run left');
          assert.equal(executor.activeStreams, 0, 'no ackable stream left');
        }
      });
    }
  }
}
