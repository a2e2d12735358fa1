/**
 * The scenarios × wires tests, declared once for every mode the conformance suite runs in (the
 * in-memory executor, the Redis mode), and the scenarios × cross-instance pairs.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ActionExecutor } from '../../src/runtime/executor.ts';
import { expectedPairTranscript, expectedTranscript } from './expectations.ts';
import { SCENARIOS, type Scenario } from './scenarios.ts';
import { WIRES, runScenario, settle, type Wire, type WireContext } from './wires.ts';

/** Waits until each executor has no live run and no ackable stream, then asserts it. */
async function assertSettled(executors: Record<string, ActionExecutor>): Promise<void> {
  // The wire may close before the server has finished with the run.
  await Promise.all(Object.values(executors).map((executor) => settle(executor)));
  for (const [name, executor] of Object.entries(executors)) {
    assert.equal(executor.activeRuns, 0, `no run left${name === '' ? '' : ` on ${name}`}`);
    assert.equal(executor.activeStreams, 0, `no ackable stream left${name === '' ? '' : ` on ${name}`}`);
  }
}

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
          await assertSettled({ '': executor });
        }
      });
    }
  }
}

/**
 * Whether a scenario × pair has a half on the peer. gRPC `WebhookStream` carries no run id, so a
 * client cannot follow its run elsewhere: the only half of Rasa's flow that may reach another
 * instance is `AckStreamChunks`, which only barge-in scenarios send. Without one, the pair would be
 * the `grpc stream` wire of the Redis mode (conformance-redis.test.ts) with an idle peer, so it is
 * not declared.
 */
function pairApplies(scenario: Scenario, wire: Wire): boolean {
  return wire.name !== 'grpc stream' || scenario.bargeIn !== undefined;
}

/**
 * One test per scenario and pair wire: the call starts on instance A (`ctx`), the client's other
 * half goes to B (`ctx.peer`); the client must see what the wire shows on one instance. After each
 * test neither instance may hold a run or an ackable stream (see `pairApplies` for the pairs left out).
 */
export function pairMatrix(get: () => { ctx: WireContext & { peer: NonNullable<WireContext['peer']> } }): void {
  for (const wire of WIRES.filter((w) => w.pairs === true)) {
    for (const scenario of SCENARIOS.filter((s) => pairApplies(s, wire))) {
      test(`${scenario.name} over ${wire.name} A→B`, async () => {
        const { ctx } = get();
        const sender = `${scenario.name} @ ${wire.name} A→B`;
        const call = scenario.call(sender);
        try {
          const transcript = await runScenario(wire, scenario, ctx, sender, call);
          assert.deepStrictEqual(transcript, expectedPairTranscript(scenario, wire.name, call));
        } finally {
          await assertSettled({ A: ctx.executor, B: ctx.peer.executor });
        }
      });
    }
  }
}
