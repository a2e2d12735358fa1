// @ts-check
/**
 * Per-run figures for the playground: a latency strip (first status, first chunk, first sentence,
 * first audio when there is audio, total, and barge-in ack → stream end when a barge-in was sent)
 * and a timeline of the run's events (timeline.js).
 *
 * Where the times come from: events carry no time stamp on the wire (only `run-start.at`, the
 * server's clock), so the page measures arrival times itself with `performance.now()`, from the
 * moment it sent the call. The figures are what the user saw: server time plus network plus the
 * browser's own parsing. "First sentence" is the arrival of the chunk that completed the first
 * sentence of the streamed text (a `.`, `!`, `?` or `…` followed by a space or the end of a message).
 */

import { formatMs, renderTimeline } from './timeline.js';

const SENTENCE_END = /[.!?…](?:["')\]]*)(?:\s|$)/;

/** The figures of one run, shown in `container` once the run ends. */
export class RunFigures {
  /**
   * @param {HTMLElement} container where the strip and the timeline are appended
   * @param {number} [t0] `performance.now()` when the call was sent (default: now)
   */
  constructor(container, t0 = performance.now()) {
    this.t0 = t0;
    /** @type {import('./timeline.js').TimedEvent[]} */
    this.events = [];
    /** @type {Record<string, number>} figure name → ms */
    this.figures = {};
    this.text = '';
    this.bargeAt = -1;
    this.container = container;
    this.el = document.createElement('div');
    this.el.className = 'run-figures';
  }

  now() {
    return performance.now() - this.t0;
  }

  /** @param {string} name @param {number} t */
  #first(name, t) {
    if (!(name in this.figures)) this.figures[name] = t;
  }

  /**
   * One event of the run, as it arrived.
   * @param {{ type: string, seq?: number, text?: string, responseId?: string, toolCallId?: string, name?: string, reason?: string }} event
   */
  event(event) {
    const t = this.now();
    this.events.push({ type: event.type, t, seq: event.seq, responseId: event.responseId, toolCallId: event.toolCallId, label: label(event) });
    switch (event.type) {
      case 'status':
        this.#first('first-status', t);
        break;
      case 'chunk':
        this.#first('first-chunk', t);
        if (!('first-sentence' in this.figures) && typeof event.text === 'string') {
          this.text += event.text;
          if (SENTENCE_END.test(this.text)) this.#first('first-sentence', t);
        }
        break;
      case 'stream-end':
        if (!('first-sentence' in this.figures) && this.text !== '') this.#first('first-sentence', t);
        if (this.bargeAt >= 0 && !('barge-in' in this.figures)) this.figures['barge-in'] = t - this.bargeAt;
        break;
      case 'message':
        this.#first('first-sentence', t);
        break;
      default:
        break;
    }
  }

  /** A sentence (voice) arrived. */
  sentence() {
    const t = this.now();
    this.events.push({ type: 'sentence', t, label: 'sentence' });
    this.#first('first-sentence', t);
  }

  /** An audio frame (voice) arrived; only the first is put on the timeline. */
  audio() {
    if ('first-audio' in this.figures) return;
    const t = this.now();
    this.events.push({ type: 'audio', t, label: 'first audio' });
    this.#first('first-audio', t);
  }

  /** The page sent a barge-in (ack) or an interrupt. */
  bargeIn() {
    if (this.bargeAt < 0) this.bargeAt = this.now();
  }

  /** The run's stream (or audio) stopped after a barge-in, without a `stream-end` the page saw. */
  silenced() {
    if (this.bargeAt >= 0 && !('barge-in' in this.figures)) this.figures['barge-in'] = this.now() - this.bargeAt;
  }

  /** The run is over: shows the strip and the timeline. */
  finish() {
    if ('total' in this.figures) return;
    this.figures.total = this.now();
    if (this.bargeAt >= 0) this.silenced();
    this.render();
  }

  render() {
    const f = this.figures;
    const items = [
      ['first-status', 'first status'],
      ['first-chunk', 'first chunk'],
      ['first-sentence', 'first sentence'],
      ['first-audio', 'first audio'],
      ['total', 'total'],
      ['barge-in', 'barge-in → end'],
    ];
    const strip = document.createElement('dl');
    strip.className = 'latency';
    for (const [key, name] of items) {
      if (!(key in f)) continue;
      const item = document.createElement('div');
      item.className = `figure figure-${key}`;
      item.dataset.figure = key;
      item.dataset.ms = f[key].toFixed(1);
      const dt = document.createElement('dt');
      dt.textContent = name;
      const dd = document.createElement('dd');
      dd.textContent = formatMs(f[key]);
      item.append(dt, dd);
      strip.append(item);
    }
    const details = document.createElement('details');
    details.className = 'timeline-box';
    details.open = true;
    const summary = document.createElement('summary');
    summary.textContent = `Timeline (${this.events.length} events, arrival times in this page)`;
    details.append(summary, renderTimeline(this.events, f.total ?? this.now()));
    this.el.replaceChildren(strip, details);
    this.container.append(this.el);
  }
}

/** @param {{ type: string, name?: string, reason?: string }} event */
function label(event) {
  if (event.type.startsWith('tool-') && event.name) return `${event.type} ${event.name}`;
  if ((event.type === 'stream-end' || event.type === 'run-end') && event.reason) return `${event.type} (${event.reason})`;
  return event.type;
}
