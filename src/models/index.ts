/**
 * `sluice/models`: chat models for actions — the {@link ChatModel} seam, adapters for
 * OpenAI-compatible servers and the AI SDK, an offline {@link ScriptedModel}, and
 * {@link streamModel}, which streams a model's answer and runs its tool calls through a dispatcher.
 * @module
 */

export type {
  AssistantMessage,
  ChatMessage,
  ChatModel,
  FinishReason,
  JsonSchema,
  ModelDelta,
  ModelRequest,
  ModelUsage,
  SystemMessage,
  ToolCall,
  ToolChoice,
  ToolDefinition,
  ToolMessage,
  UserMessage,
} from './types.ts';
export { addUsage, emptyUsage, estimateInputTokens, estimateTokens } from './types.ts';
export { streamModel } from './stream-model.ts';
export type { StreamModelOptions, StreamModelResult, Tool, ToolCallRecord, ToolContext, UsageInfo } from './stream-model.ts';
export { OpenAIChatModel, toOpenAIMessages } from './openai.ts';
export type { OpenAIModelOptions } from './openai.ts';
export { AiSdkChatModel, toModelMessages } from './ai-sdk.ts';
export type { AiSdkModelOptions } from './ai-sdk.ts';
export { DEFAULT_FORECASTS, DEFAULT_SCRIPT, ScriptedModel, scriptTokens, timerDelay } from './scripted.ts';
export type { Delay, Forecast, ScriptEntry, ScriptedModelOptions } from './scripted.ts';
export { DEFAULT_OPENAI_MODEL, modelFromEnv } from './env.ts';
export type { ModelFromEnvOptions } from './env.ts';
export { modelError } from './errors.ts';
export { historyFromTracker } from './history.ts';
export type { HistoryOptions } from './history.ts';
