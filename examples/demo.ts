/**
 * Terminal demo: runs the example actions in-process and prints what a streaming client sees.
 * Ctrl-C cancels the running action (barge-in): the stream stops, the action's events still arrive.
 */

import { ActionExecutor, type SluiceEvent } from '../src/index.ts';
import { silentLogger } from '../src/runtime/logger.ts';
import { actions } from './actions.ts';

const executor = new ActionExecutor({ actions, logger: silentLogger, bargeInTimeoutSeconds: 2 });
const out = process.stdout;
// Colours only on a terminal, and not when NO_COLOR is set (https://no-color.org).
const colour = out.isTTY === true && (process.env.NO_COLOR ?? '') === '';
// `npm run demo | head` closes the pipe early: that is the end of the demo, not a crash.
out.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code !== 'EPIPE') throw error;
  process.exit(0);
});
const paint = (code: string, text: string): string => (colour ? `\x1b[${code}m${text}\x1b[0m` : text);

function show(event: SluiceEvent): void {
  switch (event.type) {
    case 'status':
      out.write(`${paint('2', `… ${event.text}`)}\n`);
      break;
    case 'chunk':
      if (event.text !== undefined) out.write(event.text);
      if (event.buttons) out.write(`\n  [${event.buttons.map((b) => String(b.title)).join('] [')}]`);
      if (event.custom) out.write(`\n  ${JSON.stringify(event.custom)}`);
      break;
    case 'stream-end':
      out.write(event.reason === 'cancelled' ? ` ${paint('33', '⏹ interrupted')}\n` : '\n');
      break;
    case 'message':
      out.write(`${String(event.message.text)}\n`);
      break;
    case 'result':
      out.write(`${paint('2', `  events: ${JSON.stringify(event.events)}`)}\n`);
      break;
    case 'error':
      out.write(`${paint('31', `  error (${event.code}): ${event.message}`)}\n`);
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
  out.write(`\n${paint('1', `> ${name}`)}\n`);
  const run = executor.start({ next_action: name, tracker });
  current = run.id;
  for await (const event of run.subscribe()) show(event);
  current = null;
}
