/**
 * The voice controls outside the socket: pause, resume and interrupt a voice socket's speech by
 * its session id (the `sessionId` of its `turn-start` frames). A telephony or WebRTC gateway
 * often detects speech in another process than the one holding the audio socket; it calls these
 * over HTTP (`POST /voice/sessions/:sessionId/pause|resume|interrupt`, see `ws-routes.ts`) or gRPC
 * (`sluice.v1.VoiceService/PauseSpeech|ResumeSpeech|InterruptSpeech`). Same rules as the socket's
 * own `pause` / `resume` / `interrupt` commands (see `session.ts`).
 * @module
 */

import { SluiceError } from '../../protocol/errors.ts';
import type { PlayedReport, VoiceHistoryEntry } from './history.ts';
import type { VoiceSession } from './session.ts';

/** A voice control command. */
export type VoiceCommand = 'pause' | 'resume' | 'interrupt';

/** The commands, for routing and validation. */
export const VOICE_COMMANDS: readonly VoiceCommand[] = ['pause', 'resume', 'interrupt'];

/** Where sessions are found (a `VoiceChannel`). */
export interface VoiceSessionLookup {
  session(id: string): VoiceSession | undefined;
}

/**
 * The sessions of `lookup` that `owner` may control: someone else's session is not found, exactly
 * like an unknown one (both anonymous, or the same principal, may).
 */
export function ownedSessions(lookup: VoiceSessionLookup, owner: string | undefined): VoiceSessionLookup {
  return {
    session(id) {
      const found = lookup.session(id);
      return found !== undefined && found.owner === owner ? found : undefined;
    },
  };
}

/** What a control command did, as the HTTP route answers it. */
export interface VoiceControlResult {
  sessionId: string;
  turnId: string;
  runId: string;
  /** `pause`: where playback stood; `interrupt`: what the history counts as played. */
  played?: PlayedReport;
  /** `pause`: what had been heard at the pause; `interrupt`: what the history keeps as heard. */
  spoken?: string;
  /** `resume`: false (asked for). */
  auto?: boolean;
  /** `interrupt`: the turn's history entry. */
  history?: VoiceHistoryEntry;
}

/**
 * Runs `command` on the session `sessionId`.
 * @throws {SluiceError} `not_found` for an unknown (or closed) session; `failed_precondition`
 *   when the command does not apply now (no turn speaking, not paused, interruptions disabled);
 *   `invalid_argument` for a bad command or `played` report.
 */
export function controlVoiceSession(sessions: VoiceSessionLookup, sessionId: string, command: string, played?: unknown): VoiceControlResult {
  if (!(VOICE_COMMANDS as readonly string[]).includes(command)) {
    throw new SluiceError('invalid_argument', `Unknown voice command ${JSON.stringify(command)}; expected pause, resume or interrupt`);
  }
  const session = sessions.session(sessionId);
  if (session === undefined) throw new SluiceError('not_found', `No voice session found with id '${sessionId}'`);
  switch (command as VoiceCommand) {
    case 'pause': {
      const r = session.pause(played);
      return { sessionId, turnId: r.turnId, runId: r.runId, played: r.played, spoken: r.spoken };
    }
    case 'resume': {
      if (played !== undefined) throw new SluiceError('invalid_argument', "resume: 'played' is not accepted (playback goes on from where it stopped)");
      const r = session.resume();
      return { sessionId, turnId: r.turnId, runId: r.runId, auto: r.auto };
    }
    case 'interrupt': {
      const r = session.interrupt(played);
      const result: VoiceControlResult = { sessionId, turnId: r.turnId, runId: r.runId, spoken: r.history.spoken, history: r.history };
      if (r.history.played !== undefined) result.played = r.history.played;
      return result;
    }
  }
}
