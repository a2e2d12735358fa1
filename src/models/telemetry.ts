/**
 * Spans of model and tool calls made by {@link streamModel}, children of whatever span is active
 * (the action body's span, when the executor traces runs: `src/runtime/tracing.ts`). Attribute
 * names follow OpenTelemetry's GenAI conventions. Without an SDK nothing records and these return
 * null after one no-op call.
 * @module
 */

import { type Span, SpanKind, SpanStatusCode, context, trace } from '@opentelemetry/api';
import { TRACER_NAME } from '../runtime/tracing.ts';
import type { ChatModel, ModelUsage } from './types.ts';

/** A recording model-call span. */
export interface ModelSpan {
  /** Ends the span with the call's usage, finish reason, time to first token (ms, or < 0: none) and failure. */
  end(usage: ModelUsage | null, finish: string | null, firstTokenMs: number, failure?: Error): void;
}

/** Starts the span of one model call (one round of `streamModel`), or null when nothing records. */
export function startModelSpan(model: ChatModel, round: number): ModelSpan | null {
  const span = trace.getTracer(TRACER_NAME).startSpan(
    `chat ${model.name}`,
    {
      kind: SpanKind.CLIENT,
      attributes: {
        'gen_ai.operation.name': 'chat',
        'gen_ai.system': model.provider ?? 'unknown',
        'gen_ai.request.model': model.name,
        'sluice.model.round': round,
      },
    },
    context.active(),
  );
  if (!span.isRecording()) return null;
  return {
    end(usage, finish, firstTokenMs, failure) {
      if (usage !== null) {
        span.setAttributes({
          'gen_ai.usage.input_tokens': usage.inputTokens,
          'gen_ai.usage.output_tokens': usage.outputTokens,
          'sluice.usage.estimated': usage.estimated === true,
        });
      }
      if (finish !== null) span.setAttribute('gen_ai.response.finish_reasons', [finish]);
      if (firstTokenMs >= 0) span.setAttribute('sluice.model.time_to_first_token_ms', firstTokenMs);
      if (failure !== undefined) fail(span, failure);
      span.end();
    },
  };
}

/** A recording tool-call span. */
export interface ToolSpan {
  end(error?: string): void;
}

/** Starts the span of one tool execution, or null when nothing records. */
export function startToolSpan(name: string, toolCallId: string): ToolSpan | null {
  const span = trace.getTracer(TRACER_NAME).startSpan(
    `execute_tool ${name}`,
    { kind: SpanKind.INTERNAL, attributes: { 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': name, 'gen_ai.tool.call.id': toolCallId } },
    context.active(),
  );
  if (!span.isRecording()) return null;
  return {
    end(error) {
      if (error !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: error });
      span.end();
    },
  };
}

function fail(span: Span, error: Error): void {
  span.recordException(error);
  span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
}
