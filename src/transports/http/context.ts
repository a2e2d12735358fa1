/**
 * What every route of the HTTP transport shares.
 * @module
 */

import type { ActionExecutor } from '../../runtime/executor.ts';
import type { Logger } from '../../runtime/logger.ts';
import type { ResolvedSseOptions, ResolvedWsOptions } from './options.ts';
import type { SseWriter } from '../../channels/sse-writer.ts';

/** @internal The transport's shared state. */
export interface HttpContext {
  executor: ActionExecutor;
  /** The executor's logger: transport warnings go where run warnings go. */
  logger: Logger;
  sse: ResolvedSseOptions;
  ws: ResolvedWsOptions;
  /** Deepest nesting of objects/arrays accepted in a body or socket message. */
  maxDepth: number;
  /** Open SSE responses, ended when the server closes so `close()` does not wait on them. */
  writers: Set<SseWriter>;
}
