/**
 * Terminal demo: runs the example actions in-process and prints what a streaming client sees.
 * Ctrl-C cancels the running action (barge-in): the stream stops, the action's events still arrive.
 */

import { ActionExecutor, type SluiceEvent } from '../src/index.ts';
import { silentLogger } from '../src/runtime/logger.ts';
import { actions } from './actions.ts';

const executor = new ActionExecutor({ actions, logger: silentLogger, bargeInTimeoutSeconds: 2 });
const out = process.stdout;

function show(event: SluiceEvent): void {
  switch (event.type) {
    case 'status':
      out.write(`\x1b[2m… ${event.text}\x1b[0m\n`);
      break;
    case 'chunk':
      if (event.text !== undefined) out.write(event.text);
      if (event.buttons) out.write(`\n  [${event.buttons.map((b) => String(b.title)).join('] [')}]`);
      if (event.custom) out.write(`\n  ${JSON.stringify(event.custom)}`);
      break;
    case 'stream-end':
      out.write(event.reason === 'cancelled' ? ' \x1b[33m⏹ interrupted\x1b[0m\n' : '\n');
      break;
    case 'message':
      out.write(`${String(event.message.text)}\n`);
      break;
    case 'result':
      out.write(`\x1b[2m  events: ${JSON.stringify(event.events)}\x1b[0m\n`);
      break;
    case 'error':
      out.write(`\x1b[31m  error (${event.code}): ${event.message}\x1b[0m\n`);
      break;
    default:
  }
}

let current: string | null = null;
process.on('SIGINT', () => {
  if (current !== null && executor.cancel(current, 'Interrupted from the terminal')) return;
  process.exit(130);
});

const tracker = { sender_id: 'demo', slots: { city: 'Paris' } };
for (const name of ['action_greet', 'action_weather', 'action_story', 'action_card']) {
  out.write(`\n\x1b[1m> ${name}\x1b[0m\n`);
  const run = executor.start({ next_action: name, tracker });
  current = run.id;
  for await (const event of run.subscribe()) show(event);
  current = null;
}
