// @ts-check
/**
 * The Sluice playground: a chat page that calls an action with Rasa's action-call body and renders
 * the run's Sluice events as they arrive. Plain DOM, no build step for its users. The run is read
 * with `sluice/client` (`client.js`, the browser build of src/client): it starts the run detached,
 * resumes it from the last seq when the connection drops, and stops it with `cancel()`.
 *
 * Everything the server sends is inserted with `textContent` / DOM nodes, never as HTML: action
 * output is untrusted as far as the page is concerned.
 */

import { RunFigures } from './latency.js';

/**
 * One Sluice event as it arrives on the wire (`src/protocol/events.ts` has the typed union).
 * @typedef {{ type: string, runId: string, seq: number, [key: string]: any }} SluiceEvent
 */

/** @typedef {{ event: string, timestamp: number, text: string }} HistoryEvent */

import { SluiceClient } from './client.js';

/** The server that serves this page. */
const client = new SluiceClient();

/** Oldest entries of the event log go once it holds this many: a long session must not grow without bound. */
const MAX_LOG_ENTRIES = 1000;
/** Length of a tool call's arguments and result in its one-line summary; the details show all of it. */
const SUMMARY_CHARS = 80;

// ---------------------------------------------------------------------------------------------
// Small DOM helpers

/**
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {{ className?: string, text?: string, attrs?: Record<string, string> }} [options]
 * @param {(Node | string)[]} [children]
 * @returns {HTMLElementTagNameMap[K]}
 */
function h(tag, options = {}, children = []) {
  const el = document.createElement(tag);
  if (options.className !== undefined) el.className = options.className;
  if (options.text !== undefined) el.textContent = options.text;
  for (const [name, value] of Object.entries(options.attrs ?? {})) el.setAttribute(name, value);
  el.append(...children);
  return el;
}

/** @param {string} id @returns {HTMLElement} */
function byId(id) {
  const el = document.getElementById(id);
  if (el === null) throw new Error(`#${id} is missing from the page`);
  return el;
}

/** @param {unknown} value */
function compactJson(value) {
  if (value === undefined) return '';
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/** @param {string} text @param {number} max */
function shorten(text, max) {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/**
 * Only URLs that cannot run script in the page: `javascript:` in an `href` or `src` from an
 * action would.
 * @param {string} url
 * @param {boolean} allowData data: URLs, for images
 */
function safeUrl(url, allowData) {
  try {
    const parsed = new URL(url, location.href);
    if (parsed.protocol === 'http:' || parsed.protocol === 'https:') return parsed.href;
    if (allowData && parsed.protocol === 'data:' && /^data:image\//i.test(url)) return url;
  } catch {
    // not a URL
  }
  return null;
}

const els = {
  conversation: byId('conversation'),
  composer: /** @type {HTMLFormElement} */ (byId('composer')),
  message: /** @type {HTMLInputElement} */ (byId('message')),
  send: /** @type {HTMLButtonElement} */ (byId('send')),
  stop: /** @type {HTMLButtonElement} */ (byId('stop')),
  bargeIn: /** @type {HTMLButtonElement} */ (byId('barge-in')),
  action: /** @type {HTMLSelectElement} */ (byId('action')),
  model: byId('model'),
  reset: /** @type {HTMLButtonElement} */ (byId('reset')),
  toggleLog: /** @type {HTMLButtonElement} */ (byId('toggle-log')),
  eventLog: byId('event-log'),
  events: byId('events'),
  clearLog: /** @type {HTMLButtonElement} */ (byId('clear-log')),
};

// ---------------------------------------------------------------------------------------------
// Rendering a reply

let bubbleCount = 0;

/**
 * One message of a reply: a streamed one (by `responseId`) or a whole `message` event. Text,
 * tool lines and rich blocks flow in the order they arrived; sources sit at the bottom.
 */
class Bubble {
  /** @param {string | null} responseId */
  constructor(responseId) {
    this.id = ++bubbleCount;
    this.responseId = responseId;
    this.text = '';
    this.open = responseId !== null;
    /** @type {Map<number, Record<string, any>>} */
    this.citations = new Map();
    /** @type {{ el: HTMLElement, text: string, afterBlock: boolean }[]} */
    this.segments = [];
    /** @type {{ el: HTMLElement, text: string, afterBlock: boolean } | null} */
    this.segment = null;
    this.flow = h('div', { className: 'flow' });
    this.sources = h('ol', { className: 'sources', attrs: { 'aria-label': 'Sources' } });
    this.sources.hidden = true;
    this.el = h('div', { className: 'bubble' }, [this.flow, this.sources]);
    if (responseId !== null) {
      this.el.dataset.responseId = responseId;
      // Screen readers hear the finished message rather than every word.
      this.el.setAttribute('aria-busy', 'true');
    }
  }

  /** @param {string} text */
  appendText(text) {
    if (text === '') return;
    if (this.segment === null) {
      this.segment = { el: h('div', { className: 'seg' }), text: '', afterBlock: this.flow.childElementCount > 0 };
      this.segments.push(this.segment);
      this.flow.append(this.segment.el);
    }
    this.segment.text += text;
    this.text += text;
    this.#render(this.segment);
  }

  /** Tool lines, images, cards and buttons end the current run of text. @param {HTMLElement} block */
  addBlock(block) {
    this.flow.append(block);
    this.segment = null;
  }

  /** @param {Record<string, any>[]} citations */
  addCitations(citations) {
    for (const raw of citations) {
      if (typeof raw !== 'object' || raw === null) continue;
      const position = Number.isInteger(raw.position) ? raw.position : this.citations.size + 1;
      if (this.citations.has(position)) continue;
      this.citations.set(position, raw);
      this.sources.append(this.#source(position, raw));
    }
    this.sources.hidden = this.citations.size === 0;
    for (const segment of this.segments) this.#render(segment);
  }

  /** @param {string} reason */
  end(reason) {
    this.open = false;
    this.el.removeAttribute('aria-busy');
    this.el.dataset.endReason = reason;
    if (reason === 'cancelled') this.el.append(h('span', { className: 'badge interrupted', text: 'interrupted' }));
    else if (reason === 'error') this.el.append(h('span', { className: 'badge failed', text: 'ended by an error' }));
  }

  /**
   * Re-renders one run of text so `[n]` markers become links to their sources, even when a marker
   * was split across chunks or its citation came after it.
   * @param {{ el: HTMLElement, text: string, afterBlock: boolean }} segment
   */
  #render(segment) {
    // A model's "\n\n" after a tool call would leave a gap under the tool line.
    const text = segment.afterBlock ? segment.text.replace(/^\n+/, '') : segment.text;
    if (this.citations.size === 0) {
      segment.el.textContent = text;
      return;
    }
    /** @type {(Node | string)[]} */
    const parts = [];
    let last = 0;
    for (const match of text.matchAll(/\[(\d+)\]/g)) {
      const position = Number(match[1]);
      if (!this.citations.has(position)) continue;
      parts.push(text.slice(last, match.index));
      const citation = this.citations.get(position) ?? {};
      parts.push(
        h('a', {
          className: 'cite',
          text: `[${position}]`,
          attrs: { href: `#source-${this.id}-${position}`, title: String(citation.title ?? `Source ${position}`) },
        }),
      );
      last = (match.index ?? 0) + match[0].length;
    }
    parts.push(text.slice(last));
    segment.el.replaceChildren(...parts);
  }

  /** @param {number} position @param {Record<string, any>} citation */
  #source(position, citation) {
    const title = typeof citation.title === 'string' && citation.title !== '' ? citation.title : `Source ${position}`;
    const url = typeof citation.url === 'string' ? safeUrl(citation.url, false) : null;
    const label = url === null ? h('span', { className: 'source-title', text: title }) : h('a', { text: title, attrs: { href: url, target: '_blank', rel: 'noopener noreferrer' } });
    const li = h('li', { attrs: { id: `source-${this.id}-${position}`, value: String(position) } }, [label]);
    if (typeof citation.snippet === 'string' && citation.snippet !== '') li.append(h('span', { className: 'snippet', text: ` — ${citation.snippet}` }));
    return li;
  }
}

/** A tool call: one line (name, arguments, outcome) that opens to show both in full. */
class ToolLine {
  /** @param {string} name */
  constructor(name) {
    this.argsText = '';
    this.name = h('code', { className: 'tool-name', text: name });
    this.args = h('code', { className: 'tool-args' });
    this.outcome = h('span', { className: 'tool-outcome', text: '…' });
    this.argsFull = h('pre');
    this.resultFull = h('pre', { text: '(waiting for the result)' });
    this.el = h('details', { className: 'tool running' }, [
      h('summary', {}, [h('span', { className: 'tool-label', text: 'tool' }), ' ', this.name, this.args, ' ', this.outcome]),
      h('div', { className: 'tool-detail' }, [h('h4', { text: 'Arguments' }), this.argsFull, h('h4', { text: 'Result' }), this.resultFull]),
    ]);
  }

  /** @param {string} text */
  #setArgs(text) {
    this.argsText = text;
    this.args.textContent = `(${shorten(text, SUMMARY_CHARS)})`;
    this.argsFull.textContent = text;
  }

  /** @param {string} delta */
  addArgsDelta(delta) {
    this.#setArgs(this.argsText + delta);
  }

  /** @param {unknown} args */
  setArgs(args) {
    this.#setArgs(compactJson(args));
    this.argsFull.textContent = JSON.stringify(args, null, 2) ?? '';
  }

  /** @param {SluiceEvent} event */
  setResult(event) {
    this.el.classList.remove('running');
    if (typeof event.error === 'string') {
      this.el.classList.add('failed');
      this.outcome.textContent = `→ error: ${shorten(event.error, SUMMARY_CHARS)}`;
      this.resultFull.textContent = event.error;
      return;
    }
    this.el.classList.add('done');
    this.outcome.textContent = `→ ${shorten(compactJson(event.output), SUMMARY_CHARS)}`;
    this.resultFull.textContent = JSON.stringify(event.output, null, 2) ?? '(no output)';
  }

  /** The run ended before the tool did. */
  abandon() {
    if (!this.el.classList.contains('running')) return;
    this.el.classList.remove('running');
    this.outcome.textContent = '→ (no result: the run ended first)';
  }
}

/** @param {Record<string, any>} value @param {string} label */
function renderCard(value, label) {
  const title = typeof value.title === 'string' ? value.title : null;
  return h('figure', { className: 'card' }, [
    h('figcaption', {}, [h('span', { className: 'card-kind', text: label }), title === null ? '' : h('strong', { text: ` ${title}` })]),
    h('pre', { text: JSON.stringify(value, null, 2) }),
  ]);
}

/** @param {string} src */
function renderImage(src) {
  const url = safeUrl(src, true);
  if (url === null) return h('p', { className: 'note', text: `(image not shown: ${shorten(src, 60)})` });
  return h('img', { className: 'image', attrs: { src: url, alt: 'Image sent by the action', loading: 'lazy' } });
}

/** @param {Record<string, any>[]} buttons */
function renderButtons(buttons) {
  const group = h('div', { className: 'buttons', attrs: { role: 'group', 'aria-label': 'Suggested replies' } });
  for (const button of buttons) {
    if (typeof button !== 'object' || button === null) continue;
    const title = String(button.title ?? button.payload ?? '');
    const payload = typeof button.payload === 'string' && button.payload !== '' ? button.payload : title;
    const el = h('button', { text: title, attrs: { type: 'button', title: `Sends ${payload}` } });
    el.addEventListener('click', () => {
      if (state.current !== null) return;
      for (const b of group.querySelectorAll('button')) b.disabled = true;
      el.classList.add('chosen');
      // As in Rasa's web widgets: the title is shown, the payload is what the bot receives.
      void send(payload, title);
    });
    group.append(el);
  }
  return group;
}

/**
 * Rich content of a chunk or a whole message, into a bubble. Rasa messages carry every key, most
 * of them empty (`buttons: []`, `custom: {}`, `image: null`), so emptiness is checked everywhere.
 * @param {Bubble} bubble
 * @param {Record<string, any>} content
 */
function addContent(bubble, content) {
  if (typeof content.text === 'string') bubble.appendText(content.text);
  if (Array.isArray(content.citations) && content.citations.length > 0) bubble.addCitations(content.citations);
  if (typeof content.image === 'string' && content.image !== '') bubble.addBlock(renderImage(content.image));
  const custom = content.custom ?? content.json_message;
  if (typeof custom === 'object' && custom !== null && Object.keys(custom).length > 0) bubble.addBlock(renderCard(custom, 'custom'));
  if (Array.isArray(content.elements)) for (const element of content.elements) if (typeof element === 'object' && element !== null) bubble.addBlock(renderCard(element, 'element'));
  if (typeof content.attachment === 'string' && content.attachment !== '') {
    const url = safeUrl(content.attachment, false);
    bubble.addBlock(url === null ? h('p', { className: 'note', text: `attachment: ${content.attachment}` }) : h('a', { className: 'attachment', text: 'Attachment', attrs: { href: url, target: '_blank', rel: 'noopener noreferrer' } }));
  } else if (typeof content.attachment === 'object' && content.attachment !== null) bubble.addBlock(renderCard(content.attachment, 'attachment'));
  if (Array.isArray(content.buttons) && content.buttons.length > 0) bubble.addBlock(renderButtons(content.buttons));
}

/** Everything one action call produced: its bubbles, tool lines, status line and outcome. */
class Reply {
  /** @param {string} action */
  constructor(action) {
    /** @type {string | null} */
    this.runId = null;
    this.ended = false;
    this.interrupted = false;
    /** The connection dropped and the client is resuming the run. */
    this.resuming = false;
    /** @type {Map<string, Bubble>} */
    this.streams = new Map();
    /** @type {Bubble[]} */
    this.bubbles = [];
    /** @type {Map<string, ToolLine>} */
    this.tools = new Map();
    /** @type {SluiceEvent | null} */
    this.result = null;
    this.body = h('div', { className: 'reply-body' });
    this.status = h('p', { className: 'status' });
    this.status.hidden = true;
    this.meta = h('p', { className: 'meta', text: 'waiting for the server…' });
    this.el = h('article', { className: 'turn bot', attrs: { 'aria-label': `Reply from ${action}` } }, [
      h('p', { className: 'who', text: action }),
      this.body,
      this.status,
      this.meta,
    ]);
  }

  /** The streamed message still open, if any: tool lines go into it, and barge-in targets it. */
  get openStream() {
    for (let i = this.bubbles.length - 1; i >= 0; i--) {
      const bubble = this.bubbles[i];
      if (bubble !== undefined && bubble.open) return bubble;
    }
    return null;
  }

  /** @param {string | null} responseId */
  #bubble(responseId) {
    const bubble = new Bubble(responseId);
    if (responseId !== null) this.streams.set(responseId, bubble);
    this.bubbles.push(bubble);
    this.body.append(bubble.el);
    return bubble;
  }

  /** @param {string} text */
  setStatus(text) {
    this.status.textContent = text;
    this.status.hidden = false;
  }

  clearStatus() {
    this.status.hidden = true;
    this.status.textContent = '';
  }

  /** @param {string} message */
  fail(message) {
    this.clearStatus();
    this.body.append(h('p', { className: 'error', text: message, attrs: { role: 'alert' } }));
  }

  /** The connection dropped; the client resumes the run. @param {number} attempt */
  reconnecting(attempt) {
    this.meta.textContent = `connection lost: resuming (attempt ${attempt})…`;
    this.resuming = true;
  }

  /** @param {SluiceEvent} event */
  handle(event) {
    if (typeof event.runId === 'string') this.runId ??= event.runId;
    if (this.resuming) {
      this.resuming = false;
      this.meta.textContent = 'streaming…';
    }
    switch (event.type) {
      case 'run-start':
        this.meta.textContent = 'streaming…';
        break;
      case 'status':
        this.setStatus(String(event.text ?? ''));
        break;
      case 'stream-start':
        if (!this.streams.has(event.responseId)) this.#bubble(event.responseId);
        break;
      case 'chunk': {
        // A chunk may open its stream without a stream-start reaching us first (a resumed reader).
        const bubble = this.streams.get(event.responseId) ?? this.#bubble(event.responseId);
        if (typeof event.text === 'string' && event.text !== '') this.clearStatus();
        addContent(bubble, event);
        break;
      }
      case 'stream-end': {
        const bubble = this.streams.get(event.responseId);
        if (bubble !== undefined) bubble.end(event.reason);
        if (event.reason === 'cancelled') this.interrupted = true;
        break;
      }
      case 'message':
        this.clearStatus();
        addContent(this.#bubble(null), event.message ?? {});
        break;
      case 'tool-start':
      case 'tool-call': {
        let tool = this.tools.get(event.toolCallId);
        if (tool === undefined) {
          tool = new ToolLine(String(event.name ?? 'tool'));
          this.tools.set(event.toolCallId, tool);
          const open = this.openStream;
          if (open === null) this.body.append(tool.el);
          else open.addBlock(tool.el);
        }
        if (event.type === 'tool-call') tool.setArgs(event.args);
        break;
      }
      case 'tool-delta':
        this.tools.get(event.toolCallId)?.addArgsDelta(String(event.argsDelta ?? ''));
        break;
      case 'tool-result':
        this.tools.get(event.toolCallId)?.setResult(event);
        break;
      case 'result':
        this.result = event;
        break;
      case 'error':
        this.fail(`${String(event.message ?? 'The action failed')} (${String(event.code ?? 'error')})`);
        break;
      case 'run-end':
        this.#end(String(event.reason ?? 'completed'), event.seq);
        break;
      default:
    }
  }

  /** @param {string} reason @param {number} seq */
  #end(reason, seq) {
    this.ended = true;
    this.clearStatus();
    for (const tool of this.tools.values()) tool.abandon();
    if (reason === 'cancelled' && !this.interrupted) {
      // Stopped before any streamed message ended as cancelled (e.g. while the status showed).
      this.interrupted = true;
      this.body.append(h('span', { className: 'badge interrupted', text: 'interrupted' }));
    }
    const events = Array.isArray(this.result?.events) ? this.result.events : null;
    const outcome = events === null ? 'no result' : `result: ${events.length === 0 ? 'no events' : events.map(describeRasaEvent).join(', ')}`;
    this.meta.textContent = `run ${reason} · ${seq} events · ${outcome}`;
    this.meta.title = `run ${this.runId ?? '?'}`;
    this.el.dataset.runEnd = reason;
  }

  /**
   * The connection ended without run-end: a network failure, or Stop before the server had said
   * which run it started (hanging up is then the only way to cancel it).
   * @param {boolean} stopped
   */
  finish(stopped) {
    if (this.ended) return;
    this.clearStatus();
    for (const bubble of this.bubbles) if (bubble.open) bubble.end('cancelled');
    for (const tool of this.tools.values()) tool.abandon();
    if (stopped && !this.interrupted) this.body.append(h('span', { className: 'badge interrupted', text: 'interrupted' }));
    this.interrupted ||= stopped;
    this.meta.textContent = stopped ? 'stopped: the connection was closed' : 'connection closed before the run ended';
    this.el.dataset.runEnd = 'disconnected';
  }

  /** What the user saw, as Rasa `bot` events, so the next call's tracker carries it. */
  botEvents() {
    return this.bubbles.filter((b) => b.text.trim() !== '').map((b) => ({ event: 'bot', timestamp: Date.now() / 1000, text: b.text }));
  }
}

/** @param {Record<string, any>} event */
function describeRasaEvent(event) {
  if (event.event === 'slot') return `slot ${String(event.name)} = ${compactJson(event.value)}`;
  return String(event.event ?? '?');
}

// ---------------------------------------------------------------------------------------------
// Event log

/** @param {SluiceEvent} event */
function eventDetail(event) {
  switch (event.type) {
    case 'run-start':
      return event.action;
    case 'status':
      return event.text;
    case 'chunk':
      return typeof event.text === 'string' ? JSON.stringify(event.text) : Object.keys(event).filter((k) => !['type', 'runId', 'seq', 'responseId'].includes(k)).join(', ');
    case 'stream-start':
      return event.responseId;
    case 'stream-end':
    case 'run-end':
      return event.reason;
    case 'message':
      return typeof event.message?.text === 'string' ? JSON.stringify(event.message.text) : '';
    case 'tool-start':
    case 'tool-call':
    case 'tool-result':
      return event.name;
    case 'tool-delta':
      return event.argsDelta;
    case 'result':
      return `${Array.isArray(event.events) ? event.events.length : 0} events`;
    case 'error':
      return `${event.code}: ${event.message}`;
    default:
      return '';
  }
}

/** @param {SluiceEvent} event */
function logEvent(event) {
  const log = els.events;
  const follow = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  if (event.type === 'run-start') log.append(h('li', { className: 'run-sep', text: `run ${event.runId}` }));
  log.append(
    h('li', { className: `ev ev-${event.type}` }, [
      h('span', { className: 'seq', text: String(event.seq) }),
      h('span', { className: 'type', text: event.type }),
      h('span', { className: 'detail', text: shorten(String(eventDetail(event) ?? ''), 60) }),
    ]),
  );
  while (log.childElementCount > MAX_LOG_ENTRIES) log.firstElementChild?.remove();
  if (follow) log.scrollTop = log.scrollHeight;
}

// ---------------------------------------------------------------------------------------------
// The conversation

/** Browsers give crypto.randomUUID only to secure contexts; the dev server may be reached over plain http. */
function newSenderId() {
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  return `playground-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

const state = {
  senderId: newSenderId(),
  /** @type {HistoryEvent[]} */
  history: [],
  /** @type {{ reply: Reply, controller: AbortController, run: import('./client.js').ClientRun, figures: RunFigures } | null} */
  current: null,
};

function nearBottom() {
  const c = els.conversation;
  return c.scrollHeight - c.scrollTop - c.clientHeight < 80;
}

function scrollToBottom() {
  els.conversation.scrollTop = els.conversation.scrollHeight;
}

function updateControls() {
  const current = state.current;
  els.send.disabled = current !== null;
  els.reset.disabled = current !== null;
  els.stop.hidden = current === null;
  els.bargeIn.hidden = current === null;
  els.bargeIn.disabled = current === null || current.reply.openStream === null;
}

/**
 * Sends one user message as a Rasa action call and renders the streamed reply.
 * @param {string} text what the action receives as the latest message
 * @param {string} [shown] what the user's bubble shows (a button's title)
 */
async function send(text, shown = text) {
  if (state.current !== null || text.trim() === '') return;
  const action = els.action.value;
  els.conversation.querySelector('.hint')?.remove();
  const userEvent = { event: 'user', timestamp: Date.now() / 1000, text };
  state.history.push(userEvent);
  els.conversation.append(
    h('article', { className: 'turn user', attrs: { 'aria-label': 'You' } }, [h('div', { className: 'bubble', text: shown, attrs: shown === text ? {} : { title: `sent as ${text}` } })]),
  );
  const reply = new Reply(action);
  els.conversation.append(reply.el);
  scrollToBottom();
  const controller = new AbortController();
  const figures = new RunFigures(reply.el); // latency strip + timeline (latency.js)

  const call = {
    next_action: action,
    sender_id: state.senderId,
    tracker: { sender_id: state.senderId, latest_message: { text }, events: [...state.history], slots: {} },
    domain: {},
  };
  const run = client.start(call, {
    signal: controller.signal,
    onReconnect: (info) => reply.reconnecting(info.attempt),
  });
  state.current = { reply, controller, run, figures };
  updateControls();
  try {
    for await (const event of run) {
      const follow = nearBottom();
      // Other page modules (a timeline, a latency strip) follow the runs without hooks in here.
      document.dispatchEvent(new CustomEvent('sluice:event', { detail: event }));
      logEvent(event);
      reply.handle(event);
      figures.event(event);
      updateControls();
      if (follow) scrollToBottom();
    }
  } catch (error) {
    if (!controller.signal.aborted) {
      reply.fail(error instanceof Error ? error.message : String(error));
      if (run.runId === undefined) {
        reply.meta.textContent = 'no run';
        reply.ended = true;
      }
    }
  } finally {
    reply.finish(controller.signal.aborted);
    figures.finish();
    state.history.push(...reply.botEvents());
    state.current = null;
    updateControls();
    els.message.focus();
  }
}

/** Stop button: cancel the run on the server; its result still arrives on the open stream. */
async function stop() {
  const current = state.current;
  if (current === null) return;
  els.stop.disabled = true;
  try {
    // 409 (false) means the run ended meanwhile: nothing left to stop.
    await current.run.cancel();
  } catch {
    // The server is unreachable: stop reading at least.
    current.controller.abort();
  } finally {
    els.stop.disabled = false;
  }
}

/** Barge-in: acknowledge the streamed message (Rasa's AckStreamChunks), which cancels its run. */
async function bargeIn() {
  const open = state.current?.reply.openStream;
  if (open === null || open === undefined || open.responseId === null) return;
  els.bargeIn.disabled = true;
  state.current?.figures.bargeIn();
  await state.current?.run.ack(open.responseId).catch(() => false);
}

function reset() {
  if (state.current !== null) return;
  state.senderId = newSenderId();
  state.history = [];
  els.conversation.replaceChildren(h('p', { className: 'hint', text: 'New conversation. The next message starts an empty history.' }));
  els.message.focus();
}

/**
 * Shows the latest run's events: its separator at the top of the log, or the log's end when the
 * run is shorter than the panel (so a live run goes on being followed). While the panel was
 * hidden it could not follow, and opening it would otherwise show the oldest run.
 */
function scrollLogToLatestRun() {
  const log = els.events;
  const separators = log.querySelectorAll('.run-sep');
  const latest = separators[separators.length - 1];
  if (latest === undefined) return;
  log.scrollTop += latest.getBoundingClientRect().top - log.getBoundingClientRect().top;
}

/** @param {boolean} open */
function showLog(open) {
  els.eventLog.hidden = !open;
  els.toggleLog.setAttribute('aria-expanded', String(open));
  if (open) scrollLogToLatestRun();
  try {
    localStorage.setItem('sluice.playground.log', open ? '1' : '0');
  } catch {
    // storage disabled: the choice lasts for this page only
  }
}

async function loadActions() {
  try {
    const response = await fetch('/actions');
    /** @type {{ name: string }[]} */
    const list = await response.json();
    const names = list.map((a) => a.name).filter((n) => typeof n === 'string');
    if (names.length === 0) return;
    const preferred = ['action_assistant', 'action_chat'].find((n) => names.includes(n)) ?? names[0];
    const wanted = new URLSearchParams(location.search).get('action');
    els.action.replaceChildren(...names.map((name) => h('option', { text: name, attrs: { value: name } })));
    els.action.value = wanted !== null && names.includes(wanted) ? wanted : (preferred ?? '');
  } catch {
    // keep the built-in default option
  }
}

async function loadInfo() {
  try {
    const response = await fetch('/info');
    if (!response.ok) return;
    const info = await response.json();
    if (typeof info?.model !== 'string') return;
    els.model.textContent = `Model: ${info.model}`;
    // Narrow windows cut the line short; the full text stays one hover away.
    els.model.title = info.model;
    els.model.hidden = false;
  } catch {
    // an older server without /info: no model line
  }
}

// Runs are started detached so that a dropped connection can be resumed; a page that goes away
// stops its run instead, rather than let it spend on a reply nobody will read.
window.addEventListener('pagehide', () => {
  void state.current?.run.cancel().catch(() => {});
});
els.composer.addEventListener('submit', (e) => {
  e.preventDefault();
  const text = els.message.value;
  if (text.trim() === '' || state.current !== null) return;
  els.message.value = '';
  void send(text);
});
els.stop.addEventListener('click', () => void stop());
els.bargeIn.addEventListener('click', () => void bargeIn());
els.reset.addEventListener('click', reset);
els.toggleLog.addEventListener('click', () => showLog(els.eventLog.hidden));
els.clearLog.addEventListener('click', () => els.events.replaceChildren());
document.addEventListener('keydown', (e) => {
  if (e.key === 'Escape' && state.current !== null) {
    e.preventDefault();
    void stop();
  }
});

try {
  if (localStorage.getItem('sluice.playground.log') === '1') showLog(true);
} catch {
  // storage disabled
}
updateControls();
document.body.dataset.ready = 'false';
void Promise.all([loadActions(), loadInfo()]).then(() => {
  // Tests (and impatient people) can tell when the action list is in place.
  document.body.dataset.ready = 'true';
});
els.message.focus();
