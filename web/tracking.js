// @ts-check
/**
 * The tracking view: app instances (`GET /apps`), each one's steps (`GET /apps/:appId/runs`) with
 * their commit kind (completed / interrupted / failed), timing (a waterfall bar: time to first item,
 * then the stream), the state before and after, the result, and the streamed items of steps whose
 * run the server still retains (`GET /apps/:appId/runs/:runId/events`). A form runs a step
 * (`POST /apps/:appId/stream`) and stops it, so the page can make its own traffic.
 */

/** @typedef {{ appId: string, partitionKey: string, sequenceId: number, action: string, runId: string, status: string, startedAt: number, endedAt: number, durationMs: number, streamed: boolean, timeToFirstItemMs: number | null, itemCount: number, streamDurationMs: number | null, error: string | null, state?: unknown, result?: unknown }} Step */

/** @param {string} id */
function byId(id) {
  const el = document.getElementById(id);
  if (el === null) throw new Error(`missing #${id}`);
  return el;
}

/**
 * @param {string} tag
 * @param {{ className?: string, text?: string, attrs?: Record<string, string> }} [options]
 * @param {(Node | string)[]} [children]
 */
function h(tag, options = {}, children = []) {
  const el = document.createElement(tag);
  if (options.className) el.className = options.className;
  if (options.text !== undefined) el.textContent = options.text;
  for (const [k, v] of Object.entries(options.attrs ?? {})) el.setAttribute(k, v);
  el.append(...children);
  return el;
}

/** @param {number} ms */
function formatMs(ms) {
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`;
}

/** @param {unknown} value */
function pretty(value) {
  return value === undefined ? '(not recorded)' : JSON.stringify(value, null, 2);
}

const els = {
  form: /** @type {HTMLFormElement} */ (byId('step-form')),
  appId: /** @type {HTMLInputElement} */ (byId('app-id')),
  message: /** @type {HTMLInputElement} */ (byId('app-message')),
  run: /** @type {HTMLButtonElement} */ (byId('run-step')),
  stop: /** @type {HTMLButtonElement} */ (byId('stop-step')),
  apps: byId('apps'),
  appsEmpty: byId('apps-empty'),
  title: byId('app-title'),
  steps: /** @type {HTMLTableElement} */ (byId('steps')),
  detail: byId('detail'),
};

/** @type {{ selected: string | null, running: { appId: string, runId: string | null, controller: AbortController } | null }} */
const state = { selected: null, running: null };

async function loadApps() {
  const response = await fetch('/apps');
  const body = await response.json();
  /** @type {{ appId: string, partitionKey: string, steps: number, lastStatus: string }[]} */
  const apps = body.apps ?? [];
  els.appsEmpty.hidden = apps.length > 0;
  els.apps.replaceChildren(
    ...apps.map((app) => {
      const button = h('button', { text: `${app.appId} (${app.steps})`, attrs: { type: 'button', 'data-app': app.appId, 'aria-current': String(app.appId === state.selected) } }, [
        ' ',
        h('span', { className: `kind kind-${app.lastStatus}`, text: app.lastStatus }),
      ]);
      button.addEventListener('click', () => void select(app.appId));
      return h('li', {}, [button]);
    }),
  );
}

/** @param {string} appId */
async function select(appId) {
  state.selected = appId;
  for (const b of els.apps.querySelectorAll('button')) b.setAttribute('aria-current', String(b.dataset.app === appId));
  els.title.textContent = `Steps of ${appId}`;
  const response = await fetch(`/apps/${encodeURIComponent(appId)}/runs`);
  const body = await response.json();
  /** @type {Step[]} */
  const steps = (body.runs ?? []).slice().sort((/** @type {Step} */ a, /** @type {Step} */ b) => a.sequenceId - b.sequenceId || a.endedAt - b.endedAt);
  const t0 = steps.length > 0 ? Math.min(...steps.map((s) => s.startedAt)) : 0;
  const longest = Math.max(1, ...steps.map((s) => s.durationMs));
  const tbody = /** @type {HTMLElement} */ (els.steps.tBodies[0]);
  tbody.replaceChildren(
    ...steps.map((step, i) => {
      const bar = h('div', { className: 'waterfall', attrs: { title: `duration ${formatMs(step.durationMs)}` } });
      const width = (ms) => `${Math.max(1, (100 * ms) / longest).toFixed(1)}%`;
      bar.append(h('span', { attrs: { style: `left:0;width:${width(step.durationMs)}` } }));
      if (step.timeToFirstItemMs !== null) bar.append(h('span', { className: 'ttfi', attrs: { style: `left:0;width:${width(step.timeToFirstItemMs)}`, title: `first item after ${formatMs(step.timeToFirstItemMs)}` } }));
      const row = h('tr', { className: 'step', attrs: { 'data-run': step.runId, 'data-kind': step.status, tabindex: '0' } }, [
        h('td', { text: String(step.sequenceId) }),
        h('td', { text: step.action }),
        h('td', {}, [h('span', { className: `kind kind-${step.status}`, text: step.status })]),
        h('td', { text: `+${formatMs(step.startedAt - t0)}` }),
        h('td', { text: formatMs(step.durationMs) }),
        h('td', { text: step.timeToFirstItemMs === null ? '—' : formatMs(step.timeToFirstItemMs) }),
        h('td', { text: String(step.itemCount) }),
        h('td', {}, [bar]),
      ]);
      const open = () => void showStep(appId, step, i > 0 ? steps[i - 1] : undefined, row);
      row.addEventListener('click', open);
      row.addEventListener('keydown', (e) => {
        if (e.key === 'Enter') open();
      });
      return row;
    }),
  );
  els.steps.hidden = steps.length === 0;
  els.detail.hidden = true;
  const last = tbody.lastElementChild;
  if (last instanceof HTMLElement) last.click();
}

/**
 * @param {string} appId
 * @param {Step} step
 * @param {Step | undefined} previous
 * @param {HTMLElement} row
 */
async function showStep(appId, step, previous, row) {
  for (const r of els.steps.querySelectorAll('tr.step')) r.setAttribute('aria-selected', String(r === row));
  const items = h('ol', { className: 'item-list' });
  els.detail.replaceChildren(
    h('div', {}, [h('h3', { text: `State before #${step.sequenceId}` }), h('pre', { className: 'state-before', text: previous === undefined ? '(initial state)' : pretty(previous.state) })]),
    h('div', {}, [h('h3', { text: `State after (${step.status})` }), h('pre', { className: 'state-after', text: pretty(step.state) })]),
    h('div', { className: 'items' }, [
      h('h3', { text: `Streamed items (${step.itemCount})${step.error ? ` — ${step.error}` : ''}` }),
      items,
      h('h3', { text: 'Result' }),
      h('pre', { className: 'result', text: pretty(step.result) }),
    ]),
  );
  els.detail.hidden = false;
  try {
    const response = await fetch(`/apps/${encodeURIComponent(appId)}/runs/${encodeURIComponent(step.runId)}/events`);
    if (!response.ok || response.body === null) {
      items.append(h('li', { className: 'hint', text: 'The step’s run is no longer retained by the server: only its count and timing are tracked.' }));
      return;
    }
    for await (const event of readEvents(response.body)) {
      if (event.type === 'chunk') items.append(h('li', { className: 'item', text: typeof event.text === 'string' ? event.text : JSON.stringify(event) }));
      else if (event.type === 'status' || event.type === 'message') items.append(h('li', { className: `item item-${event.type}`, text: `${event.type}: ${event.text ?? event.message?.text ?? ''}` }));
    }
  } catch {
    items.append(h('li', { className: 'hint', text: 'Could not read the step’s events.' }));
  }
}

/**
 * The `data:` JSON of each SSE frame of a body.
 * @param {ReadableStream<Uint8Array>} body
 */
async function* readEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = frame.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
      if (data !== '') yield JSON.parse(data);
    }
  }
}

/** Runs one step of the app in the form and reads its stream to the end. */
async function runStep() {
  if (state.running !== null) return;
  const appId = els.appId.value.trim();
  const controller = new AbortController();
  state.running = { appId, runId: null, controller };
  els.run.disabled = true;
  els.stop.disabled = false;
  try {
    const response = await fetch(`/apps/${encodeURIComponent(appId)}/stream?detach=true`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ inputs: { message: els.message.value } }),
      signal: controller.signal,
    });
    state.running.runId = response.headers.get('x-sluice-run-id');
    if (response.body !== null) for await (const _ of readEvents(response.body));
  } catch {
    // Stopped or failed: the step's commit kind says which.
  } finally {
    state.running = null;
    els.run.disabled = false;
    els.stop.disabled = true;
    await loadApps();
    await select(appId);
  }
}

async function stopStep() {
  const running = state.running;
  if (running === null || running.runId === null) return;
  els.stop.disabled = true;
  await fetch(`/apps/${encodeURIComponent(running.appId)}/runs/${encodeURIComponent(running.runId)}/cancel`, { method: 'POST' }).catch(() => {});
}

els.form.addEventListener('submit', (e) => {
  e.preventDefault();
  void runStep();
});
els.stop.addEventListener('click', () => void stopStep());
byId('refresh').addEventListener('click', () => {
  void loadApps().then(() => (state.selected === null ? undefined : select(state.selected)));
});
void loadApps().then(() => {
  const first = els.apps.querySelector('button');
  if (first instanceof HTMLElement) first.click();
});
