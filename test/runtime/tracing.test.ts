// OpenTelemetry spans of runs, with a real SDK tracer provider and an in-memory exporter: the span
// tree of a streamed tool-calling run over HTTP (SSE) and over gRPC, the parent taken from an
// incoming `traceparent`, and a cancelled run's span.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { context, propagation, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { BasicTracerProvider, InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { assistantAction } from '../../examples/assistant.ts';
import { ScriptedModel } from '../../src/models/scripted.ts';
import { defineAction } from '../../src/runtime/action.ts';
import { ActionExecutor } from '../../src/runtime/executor.ts';
import { silentLogger } from '../../src/runtime/logger.ts';
import { SPAN_ATTRIBUTES } from '../../src/runtime/tracing.ts';
import { createGrpcServer } from '../../src/transports/grpc/index.ts';
import { ActionService } from '../../src/transports/grpc/gen/action_webhook_pb.ts';
import { createHttpServer } from '../../src/transports/http/index.ts';
import WebSocket from 'ws';

const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });

before(() => {
  trace.setGlobalTracerProvider(provider);
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
});
after(async () => {
  await provider.shutdown();
  trace.disable();
  propagation.disable();
  context.disable();
});
beforeEach(() => exporter.reset());

const CALLER_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const CALLER_SPAN = '00f067aa0ba902b7';
const TRACEPARENT = `00-${CALLER_TRACE}-${CALLER_SPAN}-01`;

function executor(): ActionExecutor {
  const stop = defineAction({
    name: 'action_slow',
    async *stream({ signal }) {
      for (let i = 0; i < 1000; i++) {
        await new Promise((resolve) => setTimeout(resolve, 5));
        if (signal.aborted) return [];
        yield `tick ${i} `;
      }
      return [];
    },
  });
  return new ActionExecutor({ actions: [assistantAction({ model: ScriptedModel.instant() }), stop], logger: silentLogger, bargeInTimeoutSeconds: 2 });
}

const weatherCall = {
  next_action: 'action_assistant',
  sender_id: 'u1',
  tracker: { sender_id: 'u1', slots: {}, latest_message: { text: 'What is the weather in Paris?' }, events: [] },
  domain: { intents: [] },
  version: '3.17.0',
};

/** Waits until the run span (a root of the tree, or the caller's child) has been exported. */
async function runSpans(): Promise<ReadableSpan[]> {
  for (let i = 0; i < 200; i++) {
    const spans = exporter.getFinishedSpans();
    if (spans.some((s) => s.name.startsWith('sluice.run '))) return spans;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error('no run span was exported');
}

const parentOf = (span: ReadableSpan): string | undefined => span.parentSpanContext?.spanId;

/** The run → action → model / tool tree of one tool-calling run, checked. */
function checkToolCallingTree(spans: ReadableSpan[], transport: string): void {
  const run = spans.find((s) => s.name === 'sluice.run action_assistant');
  assert.ok(run, `a run span among ${spans.map((s) => s.name).join(', ')}`);
  assert.equal(run.kind, SpanKind.SERVER);
  assert.equal(run.attributes[SPAN_ATTRIBUTES.transport], transport);
  assert.equal(run.attributes[SPAN_ATTRIBUTES.action], 'action_assistant');
  assert.equal(run.attributes[SPAN_ATTRIBUTES.outcome], 'completed');
  assert.ok(Number(run.attributes[SPAN_ATTRIBUTES.chunks]) > 0, 'chunks counted');
  assert.ok(Number(run.attributes[SPAN_ATTRIBUTES.bytes]) >= Number(run.attributes[SPAN_ATTRIBUTES.chunks]), 'bytes counted');
  assert.equal(typeof run.attributes[SPAN_ATTRIBUTES.runId], 'string');
  const names = run.events.map((e) => e.name);
  assert.ok(names.includes('stream-start') && names.includes('stream-end') && names.includes('first-chunk'), names.join(', '));
  // Joined the caller's trace.
  assert.equal(run.spanContext().traceId, CALLER_TRACE);
  assert.equal(parentOf(run), CALLER_SPAN);

  const body = spans.find((s) => s.name === 'sluice.action action_assistant');
  assert.ok(body, 'an action body span');
  assert.equal(parentOf(body), run.spanContext().spanId);
  const models = spans.filter((s) => s.name === 'chat scripted');
  assert.ok(models.length >= 2, `a model span per round (tool call, then the answer): ${models.length}`);
  for (const model of models) {
    assert.equal(parentOf(model), body.spanContext().spanId);
    assert.equal(model.kind, SpanKind.CLIENT);
    assert.equal(model.attributes['gen_ai.system'], 'scripted');
    assert.equal(model.attributes['gen_ai.request.model'], 'scripted');
    assert.equal(typeof model.attributes['gen_ai.usage.output_tokens'], 'number');
  }
  assert.ok(models.some((m) => typeof m.attributes['sluice.model.time_to_first_token_ms'] === 'number'), 'time to first token on the answering round');
  const tool = spans.find((s) => s.name === 'execute_tool get_weather');
  assert.ok(tool, 'a tool span');
  assert.equal(parentOf(tool), body.spanContext().spanId);
  assert.equal(tool.attributes['gen_ai.tool.name'], 'get_weather');
  assert.equal(tool.status.code, SpanStatusCode.UNSET);
  for (const span of spans) assert.equal(span.spanContext().traceId, CALLER_TRACE, `${span.name} is in the caller's trace`);
}

describe('run spans', () => {
  test('a streamed tool-calling run over HTTP (SSE) joins the caller trace: run → action → model calls and tool', async () => {
    const ex = executor();
    const app = createHttpServer({ executor: ex });
    await app.listen({ port: 0, host: '127.0.0.1' });
    try {
      const address = app.server.address() as { port: number };
      const response = await fetch(`http://127.0.0.1:${address.port}/webhook/stream`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', traceparent: TRACEPARENT },
        body: JSON.stringify(weatherCall),
      });
      const text = await response.text();
      assert.match(text, /event: run-end/);
      assert.match(text, /event: tool-result/);
      checkToolCallingTree(await runSpans(), 'http-sse');
    } finally {
      await app.close();
      await ex.close();
    }
  });

  test('a run started on /ws joins the trace of the upgrade request', async () => {
    const ex = executor();
    const app = createHttpServer({ executor: ex });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const address = app.server.address() as { port: number };
    const socket = new WebSocket(`ws://127.0.0.1:${address.port}/ws`, { headers: { traceparent: TRACEPARENT } });
    try {
      await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
      const ended = new Promise<void>((resolve) =>
        socket.on('message', (data) => {
          if ((JSON.parse(String(data)) as { type?: string }).type === 'run-end') resolve();
        }),
      );
      socket.send(JSON.stringify({ type: 'start', call: weatherCall }));
      await ended;
      checkToolCallingTree(await runSpans(), 'ws');
    } finally {
      socket.close();
      await app.close();
      await ex.close();
    }
  });

  test('a streamed tool-calling run over gRPC WebhookStream: the traceparent metadata is the parent', async () => {
    const ex = executor();
    const server = createGrpcServer({ executor: ex, logger: silentLogger });
    const { port } = await server.listen(0, '127.0.0.1');
    try {
      const client = createClient(ActionService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }));
      const kinds: string[] = [];
      const request = {
        nextAction: 'action_assistant',
        senderId: 'u1',
        tracker: { senderId: 'u1', latestMessage: { text: 'What is the weather in Paris?' } },
        version: '3.17.0',
      };
      for await (const event of client.webhookStream(request as never, { headers: { traceparent: TRACEPARENT } })) kinds.push(event.event.case ?? '');
      assert.ok(kinds.includes('finalResult'), kinds.join(','));
      checkToolCallingTree(await runSpans(), 'grpc');
    } finally {
      await server.close();
      await ex.close();
    }
  });

  test('without a traceparent the run span is a root, in-process', async () => {
    const ex = executor();
    const run = ex.start(weatherCall, { transport: 'in-process' });
    for await (const _ of run.subscribe());
    const spans = await runSpans();
    const span = spans.find((s) => s.name === 'sluice.run action_assistant')!;
    assert.equal(parentOf(span), undefined);
    assert.equal(span.attributes[SPAN_ATTRIBUTES.transport], 'in-process');
  });

  test('a cancelled run: status not an error, outcome cancelled, a cancel event; barge-in has its own event', async () => {
    const ex = executor();
    const stopped = ex.start({ next_action: 'action_slow', tracker: { sender_id: 'a' } }, { transport: 'in-process' });
    let responseId = '';
    for await (const event of stopped.subscribe()) {
      if (event.type === 'chunk' && event.seq > 5) ex.cancel(stopped.id);
      if (event.type === 'stream-start') responseId = event.responseId;
    }
    assert.notEqual(responseId, '');
    const barged = ex.start({ next_action: 'action_slow', tracker: { sender_id: 'b' } }, { transport: 'in-process' });
    for await (const event of barged.subscribe()) {
      if (event.type === 'chunk' && event.seq > 5) ex.ack(event.responseId);
    }
    await stopped.done;
    await barged.done;
    const spans = (await runSpans()).filter((s) => s.name === 'sluice.run action_slow');
    assert.equal(spans.length, 2);
    const byRun = new Map(spans.map((s) => [s.attributes[SPAN_ATTRIBUTES.runId], s]));
    const stop = byRun.get(stopped.id)!;
    const barge = byRun.get(barged.id)!;
    for (const span of [stop, barge]) {
      assert.equal(span.attributes[SPAN_ATTRIBUTES.outcome], 'cancelled');
      assert.equal(span.status.code, SpanStatusCode.UNSET);
      const end = span.events.find((e) => e.name === 'stream-end');
      assert.equal(end?.attributes?.['sluice.stream.end_reason'], 'cancelled');
    }
    assert.deepEqual(stop.events.filter((e) => e.name === 'cancel').map((e) => e.attributes?.[SPAN_ATTRIBUTES.cancelReason]), ['stop']);
    assert.deepEqual(barge.events.filter((e) => e.name === 'barge-in').map((e) => e.attributes?.[SPAN_ATTRIBUTES.cancelReason]), ['barge_in']);
    const body = exporter.getFinishedSpans().find((s) => s.name === 'sluice.action action_slow' && s.parentSpanContext?.spanId === stop.spanContext().spanId);
    assert.ok(body, 'the action body span ended too');
  });

  test('an action error sets the run span status to ERROR with the error code', async () => {
    const ex = new ActionExecutor({
      actions: [defineAction({ name: 'action_boom', run() { throw new Error('kaput'); } })],
      logger: silentLogger,
    });
    const run = ex.start({ next_action: 'action_boom', tracker: { sender_id: 'x' } });
    for await (const _ of run.subscribe());
    const span = (await runSpans()).find((s) => s.name === 'sluice.run action_boom')!;
    assert.equal(span.status.code, SpanStatusCode.ERROR);
    assert.equal(span.attributes[SPAN_ATTRIBUTES.errorCode], 'internal');
    assert.equal(span.attributes[SPAN_ATTRIBUTES.outcome], 'error');
  });

  test('tracing: false makes no span', async () => {
    const ex = new ActionExecutor({ actions: [assistantAction({ model: ScriptedModel.instant() })], logger: silentLogger, tracing: false });
    const run = ex.start(weatherCall);
    for await (const _ of run.subscribe());
    assert.equal(exporter.getFinishedSpans().filter((s) => s.name.startsWith('sluice.')).length, 0);
  });
});
