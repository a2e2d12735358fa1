// @ts-check
/**
 * A run's events on a time axis, as an inline SVG: one lane per kind (status, stream, tools,
 * messages, end), streams and tool calls as bars from their start to their end, every event as a
 * mark with its type and time in a tooltip. Plain DOM, no dependency; shared by the playground
 * (latency.js) and the voice page.
 *
 * Times are what the page measured (milliseconds since it sent the call, see latency.js).
 */

const SVG = 'http://www.w3.org/2000/svg';

/** @typedef {{ type: string, t: number, seq?: number, responseId?: string, toolCallId?: string, label?: string }} TimedEvent */

const LANES = /** @type {const} */ (['status', 'stream', 'tool', 'message', 'end']);
const LANE_LABEL = { status: 'status', stream: 'stream', tool: 'tools', message: 'message', end: 'result' };

/** @param {string} type */
function laneOf(type) {
  if (type === 'status') return 'status';
  if (type === 'stream-start' || type === 'chunk' || type === 'stream-end' || type === 'sentence' || type === 'audio') return 'stream';
  if (type.startsWith('tool-')) return 'tool';
  if (type === 'message') return 'message';
  return 'end';
}

/**
 * @param {string} tag
 * @param {Record<string, string | number>} attrs
 * @param {string} [title]
 */
function svg(tag, attrs, title) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (title !== undefined) {
    const t = document.createElementNS(SVG, 'title');
    t.textContent = title;
    el.append(t);
  }
  return el;
}

/** A "nice" tick step for a span of `ms`: 1, 2 or 5 × 10^k. */
function tickStep(ms) {
  const raw = Math.max(ms, 1) / 6;
  const pow = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (raw <= m * pow) return m * pow;
  return 10 * pow;
}

/** @param {number} ms */
export function formatMs(ms) {
  return ms >= 1000 ? `${(ms / 1000).toFixed(ms >= 10_000 ? 1 : 2)} s` : `${Math.round(ms)} ms`;
}

/**
 * Renders `events` (in arrival order) into a new SVG element, `width` pixels wide.
 * @param {TimedEvent[]} events
 * @param {number} total the right end of the axis (ms)
 * @param {number} [width]
 * @returns {SVGSVGElement}
 */
export function renderTimeline(events, total, width = 560) {
  const left = 58;
  const right = 12;
  const laneH = 16;
  const top = 6;
  const axisY = top + LANES.length * laneH + 4;
  const height = axisY + 18;
  const span = Math.max(total, 1);
  const x = (/** @type {number} */ t) => left + ((width - left - right) * Math.min(Math.max(t, 0), span)) / span;
  const root = /** @type {SVGSVGElement} */ (svg('svg', { class: 'timeline', viewBox: `0 0 ${width} ${height}`, width, height, role: 'img' }));
  root.setAttribute('aria-label', `Timeline of ${events.length} events over ${formatMs(total)}`);

  LANES.forEach((lane, i) => {
    const y = top + i * laneH;
    root.append(svg('rect', { class: `lane lane-${lane}`, x: left, y, width: width - left - right, height: laneH - 2, rx: 2 }));
    const label = svg('text', { class: 'lane-label', x: left - 6, y: y + laneH - 5, 'text-anchor': 'end' });
    label.textContent = LANE_LABEL[lane];
    root.append(label);
  });

  // Bars: each stream from its start to its end, each tool call from its start to its result.
  /** @type {Map<string, number>} */
  const open = new Map();
  for (const e of events) {
    const key = e.type.startsWith('stream') ? `s:${e.responseId}` : e.type.startsWith('tool') ? `t:${e.toolCallId}` : null;
    if (key === null) continue;
    if ((e.type === 'stream-start' || e.type === 'tool-start') && !open.has(key)) open.set(key, e.t);
    if (e.type === 'stream-end' || e.type === 'tool-result') {
      const from = open.get(key) ?? e.t;
      open.delete(key);
      const lane = LANES.indexOf(laneOf(e.type));
      root.append(svg('rect', { class: `bar bar-${laneOf(e.type)}`, x: x(from), y: top + lane * laneH + 3, width: Math.max(x(e.t) - x(from), 2), height: laneH - 8, rx: 2 }));
    }
  }

  for (const e of events) {
    const lane = LANES.indexOf(laneOf(e.type));
    const cy = top + lane * laneH + (laneH - 2) / 2;
    const mark = svg('circle', { class: `mark mark-${e.type}`, cx: x(e.t).toFixed(1), cy, r: e.type === 'chunk' ? 1.8 : 3.2 }, `${e.seq ?? ''} ${e.label ?? e.type} at ${formatMs(e.t)}`);
    mark.setAttribute('data-t', e.t.toFixed(1));
    mark.setAttribute('data-type', e.type);
    root.append(mark);
  }

  root.append(svg('line', { class: 'axis', x1: left, x2: width - right, y1: axisY, y2: axisY }));
  const step = tickStep(span);
  for (let t = 0; t <= span + 1e-6; t += step) {
    root.append(svg('line', { class: 'tick', x1: x(t), x2: x(t), y1: axisY, y2: axisY + 4 }));
    const label = svg('text', { class: 'tick-label', x: x(t), y: axisY + 14, 'text-anchor': 'middle' });
    label.textContent = formatMs(t);
    root.append(label);
  }
  return root;
}
