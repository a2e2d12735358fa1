/**
 * An example application served over HTTP: a tiny chat whose one streaming action answers each
 * message word by word and keeps the conversation in its state. Each app id is a conversation,
 * saved in SQLite and resumed after a restart; every step is tracked.
 *
 *   const server = createHttpServer({ executor, apps: exampleApps() });
 *   curl -N -X POST localhost:5055/apps/demo/stream -H 'content-type: application/json' \
 *        -d '{"inputs":{"message":"hello there"}}'
 *   curl localhost:5055/apps/demo/state
 *   curl localhost:5055/apps/demo/runs
 */

import { ApplicationBuilder, CachedAppRegistry, status, streamingAction } from '../src/app/index.ts';
import { SQLitePersister, SQLiteTracker, type SQLiteOptions } from '../src/stores/index.ts';
import { pause } from './pause.ts';

type Turn = { role: 'user' | 'assistant'; text: string };

/** Echoes the message back, one word at a time; a stop keeps what was said, marked as cut off. */
export function respond(wordDelayMs = 60) {
  return streamingAction({ reads: ['history'], writes: ['history'] }, async function* (state, inputs, ctx) {
    const history = state.get('history') as Turn[];
    const message = String(inputs.message ?? '').trim() || '(nothing)';
    yield [status('Thinking…'), null];
    let text = '';
    for (const word of `You said: ${message}. That is message ${history.length / 2 + 1} of this chat.`.split(/(?<= )/)) {
      await pause(wordDelayMs, ctx.signal);
      if (ctx.signal.aborted) break;
      text += word;
      yield [word, null];
    }
    // After a stop the generator still gets to commit its own final item (within the grace period).
    const reply = ctx.signal.aborted ? `${text.trimEnd()}…` : text;
    const turns: Turn[] = [
      { role: 'user', text: message },
      { role: 'assistant', text: reply },
    ];
    yield [{ text: reply }, state.update({ history: [...history, ...turns] })];
  });
}

/** The builder of one conversation (resumed from `persister` when it has saved steps). */
export function chatApp(appId: string, persister: SQLitePersister, options: { wordDelayMs?: number } = {}): ApplicationBuilder {
  return new ApplicationBuilder()
    .withActions({ respond: respond(options.wordDelayMs) })
    .withTransitions(['respond', 'respond'])
    .withState({ history: [] as Turn[] })
    .withEntrypoint('respond')
    .withIdentifiers(appId)
    .withPersister(persister)
    .initializeFromPersister(persister);
}

/** A registry of chat apps, one per app id, saved and tracked in one SQLite file (default `.data/sluice.db`). */
export function exampleApps(options: SQLiteOptions & { wordDelayMs?: number } = {}): CachedAppRegistry {
  const { wordDelayMs, ...sqlite } = options;
  const persister = new SQLitePersister(sqlite);
  // Apps are resumed from SQLite, so the cache may drop idle ones: it stays bounded however many ids are asked for.
  return new CachedAppRegistry((appId) => chatApp(appId, persister, { wordDelayMs }), { tracker: new SQLiteTracker(sqlite), maxApps: 1_000 });
}
