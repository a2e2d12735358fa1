/**
 * Pauses in a run's text that the event model makes visible. When the model stops writing to call
 * a tool, or the action reports a status or sends a whole message, the text streamed so far will
 * not go on for a while (a tool may take seconds): the sentence in progress is complete, and a
 * voice must say it now rather than when the model resumes. Every sentence consumer (the sentence
 * reader behind `/voice/ws`, SSE, `/ws` and gRPC, and the output rails) cuts its open streams at
 * these events, so all of them release the same sentences at the same points. `stream-end` and
 * `run-end` end a stream anyway.
 * @module
 */

import type { SluiceEvent } from '../../protocol/events.ts';

/** True for an event before which the pending text of every open stream is released as a sentence. */
export function isTextPause(event: SluiceEvent): boolean {
  switch (event.type) {
    case 'status':
    case 'message':
    case 'tool-start':
    case 'tool-delta':
    case 'tool-call':
    case 'tool-result':
      return true;
    default:
      return false;
  }
}
