/**
 * The playground page (`web/`) in a real browser: Debian's chromium driven by playwright-core,
 * against the real dev server on the offline scripted model. Screenshots go to the OS temp dir
 * (their paths are printed as diagnostics) for a human to look at; nothing asserts on pixels.
 *
 * Without chromium the suite is skipped locally (apt-get install chromium) and fails in CI.
 */

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type BrowserContext, type Page, chromium } from 'playwright-core';
import { type RunningServer, startServer } from '../../src/cli/serve.ts';
import { silentLogger } from '../../src/runtime/logger.ts';
import { buildWebClient } from '../../scripts/build-web.ts';
import { startTcpProxy } from '../client/tcp-proxy.ts';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const inCi = process.env.CI === 'true';
const skip = !existsSync(CHROMIUM) && !inCi ? `no chromium at ${CHROMIUM} (apt-get install chromium); in CI this fails instead` : false;

/**
 * The DOM as the page-side callbacks below use it. They run in chromium, but are type-checked with
 * the project's lib, which has no DOM (adding it would retype Node's globals everywhere).
 */
interface PageElement {
  id: string;
  className: string;
  textContent: string | null;
  hidden: boolean;
  disabled?: boolean;
  src?: string;
  querySelector(selector: string): PageElement | null;
  querySelectorAll(selector: string): ArrayLike<PageElement>;
  getBoundingClientRect(): Rect;
}
declare const document: {
  addEventListener(type: string, listener: (event: { detail: { seq: number } }) => void): void;
  querySelector(selector: string): PageElement | null;
  querySelectorAll(selector: string): ArrayLike<PageElement>;
  getElementById(id: string): PageElement | null;
  documentElement: { scrollWidth: number; clientWidth: number };
};
declare const window: { seen?: string[]; dispatched?: number[] };
interface Rect {
  top: number;
  bottom: number;
}
declare const MutationObserver: new (callback: () => void) => { observe(target: PageElement, options: Record<string, boolean>): void };

// Read when examples/index.ts is imported (by startServer): never reach for a real model here.
process.env.SLUICE_MODEL = 'scripted';

/** The text of the streamed message bubbles of the last reply. */
function lastReplyText(page: Page): Promise<string> {
  return page.evaluate(() => {
    const replies = document.querySelectorAll('.turn.bot');
    const reply = replies[replies.length - 1];
    return reply === undefined ? '' : Array.from(reply.querySelectorAll('.bubble .seg'), (s) => s.textContent ?? '').join('|');
  });
}

async function send(page: Page, text: string): Promise<void> {
  await page.fill('#message', text);
  await page.press('#message', 'Enter');
}

describe('startServer playground option', () => {
  test('serves the page and GET /info only when asked, and no catch-all route', async () => {
    const on = await startServer({ actions: 'examples/index.ts', host: '127.0.0.1', port: 0, grpcPort: 0, logger: silentLogger, playground: true });
    const off = await startServer({ actions: 'examples/index.ts', host: '127.0.0.1', port: 0, grpcPort: 0, logger: silentLogger });
    try {
      const page = await fetch(`${on.httpUrl}/`);
      assert.equal(page.status, 200);
      assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
      assert.match(await page.text(), /<title>Sluice playground<\/title>/);
      for (const file of ['app.js', 'style.css']) assert.equal((await fetch(`${on.httpUrl}/${file}`)).status, 200, file);
      const info = (await (await fetch(`${on.httpUrl}/info`)).json()) as { model: string | null; actions: string[] };
      assert.match(info.model ?? '', /^ScriptedModel/);
      assert.ok(info.actions.includes('action_assistant') && info.actions.includes('action_story'), info.actions.join());
      // Unknown paths still get the server's own JSON 404, with the playground on.
      const missing = await fetch(`${on.httpUrl}/nope.js`);
      assert.equal(missing.status, 404);
      assert.deepEqual(await missing.json(), { error: 'Route GET /nope.js not found', code: 'not_found' });
      for (const path of ['/', '/app.js', '/info']) assert.equal((await fetch(`${off.httpUrl}${path}`)).status, 404, path);
    } finally {
      await Promise.all([on.close(), off.close()]);
    }
  });
});

describe('playground page', { skip, timeout: 60_000 }, () => {
  let server: RunningServer;
  let context: BrowserContext;
  let profile: string;

  before(async () => {
    assert.ok(existsSync(CHROMIUM), `chromium is required in CI at ${CHROMIUM} (apt-get install chromium)`);
    // The page imports the browser build of sluice/client: build it from the current source.
    await buildWebClient();
    server = await startServer({ actions: 'examples/index.ts', host: '127.0.0.1', port: 0, grpcPort: 0, logger: silentLogger, playground: true });
    profile = mkdtempSync(join(tmpdir(), 'sluice-chromium-'));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1100, height: 760 },
    });
  });

  after(async () => {
    await context?.close();
    await server?.close();
    if (profile !== undefined) rmSync(profile, { recursive: true, force: true });
  });

  /** Script errors and failed loads (console errors) of each page: a page that works has none. */
  const problems = new WeakMap<Page, string[]>();

  async function open(base = server.httpUrl): Promise<Page> {
    const page = await context.newPage();
    page.setDefaultTimeout(8_000);
    const seen: string[] = [];
    problems.set(page, seen);
    page.on('pageerror', (error) => seen.push(error.message));
    page.on('console', (message) => {
      if (message.type() === 'error') seen.push(message.text());
    });
    await page.goto(`${base}/`);
    await page.waitForSelector('body[data-ready="true"]');
    return page;
  }

  function problemsOf(page: Page): string[] {
    return problems.get(page) ?? [];
  }

  test('streams an assistant answer: status line first, then text and a tool line; the event log lists every seq', async (t) => {
    const page = await open();
    assert.equal(await page.inputValue('#action'), 'action_assistant');
    const options = await page.$$eval('#action option', (els) => els.map((e) => e.textContent));
    assert.ok(options.includes('action_story') && options.includes('action_card'), options.join(','));
    assert.match(await page.textContent('#model') ?? '', /^Model: ScriptedModel/);

    // What appeared, in order: the status line is transient, so a poll could miss it.
    await page.evaluate(() => {
      const seen: string[] = [];
      window.seen = seen;
      const note = (what: string): void => {
        if (!seen.includes(what)) seen.push(what);
      };
      new MutationObserver(() => {
        const status = document.querySelector('.turn.bot .status');
        if (status !== null && !status.hidden && status.textContent !== '') note(`status:${status.textContent}`);
        if ((document.querySelector('.turn.bot .seg')?.textContent ?? '') !== '') note('text');
        if (document.querySelector('.turn.bot .tool') !== null) note('tool');
      }).observe(document.getElementById('conversation')!, { subtree: true, childList: true, characterData: true, attributes: true });
    });

    await page.evaluate(() => {
      const dispatched: number[] = [];
      window.dispatched = dispatched;
      document.addEventListener('sluice:event', (e) => dispatched.push(e.detail.seq));
    });
    await send(page, 'weather in Paris');
    await page.waitForSelector('.turn.bot[data-run-end="completed"]');
    const seen = await page.evaluate(() => window.seen ?? []);
    assert.equal(seen[0], 'status:Thinking…', seen.join(' / '));
    assert.ok(seen.indexOf('text') > 0 && seen.indexOf('tool') > seen.indexOf('text'), seen.join(' / '));
    assert.ok(seen.includes('status:Checking the weather in Paris…'), seen.join(' / '));

    assert.equal(await page.textContent('.turn.user .bubble'), 'weather in Paris');
    const text = await lastReplyText(page);
    assert.match(text, /^Let me check the weather in Paris\./);
    assert.match(text, /In Paris it is light rain in the morning, clearing by noon, around 14 °C\.$/);
    assert.equal(await page.isHidden('.turn.bot .status'), true, 'the status line is gone once the answer is there');
    const tool = (await page.textContent('.turn.bot .tool summary')) ?? '';
    assert.match(tool, /get_weather\(\{"city":"Paris"\}\)/);
    assert.match(tool, /→ \{"city":"Paris","conditions":"light rain/);
    assert.equal(await page.$eval('.turn.bot .tool', (el) => el.className), 'tool done');
    assert.match((await page.textContent('.turn.bot .meta')) ?? '', /^run completed · \d+ events · result: no events$/);

    if ((await page.getAttribute('#toggle-log', 'aria-expanded')) !== 'true') await page.click('#toggle-log');
    assert.equal(await page.isVisible('#event-log'), true);
    const log = await page.$$eval('#events li.ev', (items) => items.map((li) => `${li.querySelector('.seq')?.textContent} ${li.querySelector('.type')?.textContent}`));
    assert.equal(log[0], '1 run-start');
    assert.equal(log.at(-1), `${log.length} run-end`);
    assert.deepEqual(log.map((line) => Number(line.split(' ')[0])), log.map((_, i) => i + 1), 'gap-free seqs');
    const dispatched = await page.evaluate(() => window.dispatched ?? []);
    assert.deepEqual(dispatched, log.map((_, i) => i + 1), 'every event is also dispatched as sluice:event on document');
    assert.ok(log.includes('2 status') && log.some((l) => l.endsWith(' tool-result')) && log.some((l) => l.endsWith(' result')), log.join(','));

    const shot = join(tmpdir(), 'sluice-playground-wide.png');
    await page.screenshot({ path: shot });
    t.diagnostic(`screenshot: ${shot}`);
    assert.deepEqual(problemsOf(page), []);
    await page.close();
  });

  test('Stop mid-reply: the message shows "interrupted", no text follows, and the run\'s result still arrives', async () => {
    const page = await open();
    await page.selectOption('#action', 'action_story');
    await send(page, 'tell me a story');
    await page.waitForFunction(() => (document.querySelector('.turn.bot .seg')?.textContent ?? '').includes('time,'));
    assert.equal(await page.isVisible('#stop'), true);
    await page.click('#stop');
    await page.waitForSelector('.turn.bot .bubble .badge.interrupted');
    const atInterrupt = await lastReplyText(page);
    // After run-end nothing more can arrive, so equal text means no chunk followed the interruption.
    await page.waitForSelector('.turn.bot[data-run-end="cancelled"]');
    assert.equal(await lastReplyText(page), atInterrupt);
    assert.match(atInterrupt, /^Once upon a time, /);
    assert.doesNotMatch(atInterrupt, /flooded anyone/);
    assert.equal(await page.$$eval('.turn.bot .buttons', (els) => els.length), 0, 'the buttons chunk came after the stop');
    assert.match((await page.textContent('.turn.bot .meta')) ?? '', /^run cancelled · \d+ events · result: slot story_told = false$/);
    assert.equal(await page.isHidden('#stop'), true);
    assert.equal(await page.isEnabled('#send'), true);
    assert.deepEqual(problemsOf(page), []);
    await page.close();
  });

  test('Barge-in acks the open streamed message, which interrupts it', async () => {
    const page = await open();
    await send(page, 'tell me a story');
    await page.waitForFunction(() => (document.querySelector('.turn.bot .seg')?.textContent ?? '').includes('stream'));
    await page.click('#barge-in');
    await page.waitForSelector('.turn.bot[data-run-end="cancelled"]');
    assert.equal(await page.$$eval('.turn.bot .bubble[data-end-reason="cancelled"] .badge.interrupted', (els) => els.length), 1);
    assert.doesNotMatch(await lastReplyText(page), /never complained/);
    await page.close();
  });

  test('a button sends its payload as the next message, with the conversation so far in the tracker', async () => {
    const page = await open();
    const calls: { next_action: string; tracker: { latest_message: { text: string }; events: { event: string; text: string }[] } }[] = [];
    page.on('request', (request) => {
      if (new URL(request.url()).pathname === '/webhook/stream') calls.push(JSON.parse(request.postData() ?? 'null'));
    });
    await page.selectOption('#action', 'action_story');
    await send(page, 'tell me a story');
    await page.waitForSelector('.turn.bot[data-run-end="completed"] .buttons button:has-text("Yes")');
    await page.click('.buttons button:has-text("Yes")');
    await page.waitForFunction(() => document.querySelectorAll('.turn.bot').length === 2 && (document.querySelectorAll('.turn.bot')[1]?.querySelector('.seg')?.textContent ?? '') !== '');
    assert.deepEqual(await page.$$eval('.turn.user .bubble', (els) => els.map((e) => e.textContent)), ['tell me a story', 'Yes']);
    assert.deepEqual(await page.$$eval('.turn.bot .buttons button', (els) => els.map((e) => [e.textContent, (e as unknown as PageElement).disabled])), [['Yes', true], ['No', true]]);
    assert.equal(calls.length, 2);
    const follow = calls[1]!;
    assert.equal(follow.next_action, 'action_story');
    assert.equal(follow.tracker.latest_message.text, '/affirm');
    assert.deepEqual(follow.tracker.events.map((e) => [e.event, e.text]), [
      ['user', 'tell me a story'],
      ['bot', 'Once upon a time, a small stream met a sluice. It learned to wait its turn, and so it never flooded anyone. Want another?'],
      ['user', '/affirm'],
    ]);
    await page.close();
  });

  test('renders whole messages and custom cards from the server', async () => {
    const page = await open();
    await page.selectOption('#action', 'action_card');
    await send(page, 'book it');
    await page.waitForSelector('.turn.bot[data-run-end="completed"]');
    assert.match((await page.textContent('.turn.bot .card')) ?? '', /custom Table for two[\s\S]*"time": "19:30"/);
    assert.equal(await lastReplyText(page), 'Here is your booking:|Anything else?');
    await page.selectOption('#action', 'action_greet');
    await send(page, 'hi');
    await page.waitForSelector('.turn.bot:nth-of-type(4)[data-run-end="completed"]');
    assert.match(await lastReplyText(page), /^Hello playground-[0-9a-f]{12}! Ask me/);
    await page.close();
  });

  test('renders citations, images, cards and errors safely from any stream (CRLF, pings)', async (t) => {
    const page = await open();
    const runId = 'r-1';
    const events = [
      { type: 'run-start', action: 'action_assistant', at: 0 },
      { type: 'status', text: 'Searching…' },
      { type: 'stream-start', responseId: 'a'.repeat(32) },
      { type: 'chunk', responseId: 'a'.repeat(32), text: 'The handbook says so [', citations: [{ position: 1, title: 'Store handbook', url: 'https://example.com/handbook', snippet: 'Open 9–18.' }] },
      { type: 'chunk', responseId: 'a'.repeat(32), text: '1]. <b>not bold</b>' },
      { type: 'chunk', responseId: 'a'.repeat(32), image: 'data:image/svg+xml,%3Csvg xmlns="http://www.w3.org/2000/svg" width="40" height="20"%3E%3Crect width="40" height="20" fill="teal"/%3E%3C/svg%3E' },
      { type: 'chunk', responseId: 'a'.repeat(32), image: 'javascript:alert(1)', custom: { type: 'card', title: 'Order 42' } },
      { type: 'stream-end', responseId: 'a'.repeat(32), reason: 'completed' },
      { type: 'error', code: 'internal', message: 'The action failed' },
      { type: 'run-end', reason: 'error' },
    ].map((e, i) => ({ ...e, runId, seq: i + 1 }));
    const body = `: ping\r\n\r\n${events.map((e) => `id: ${e.seq}\r\nevent: ${e.type}\r\ndata: ${JSON.stringify(e)}\r\n\r\n`).join('')}`;
    // The playground starts runs detached (resumable): `?detach=true`.
    await page.route('**/webhook/stream?detach=true', (route) =>
      route.fulfill({ status: 200, headers: { 'content-type': 'text/event-stream', 'x-sluice-run-id': runId }, body }),
    );
    await send(page, 'opening hours?');
    await page.waitForSelector('.turn.bot[data-run-end="error"]');
    assert.equal(await lastReplyText(page), 'The handbook says so [1]. <b>not bold</b>');
    assert.equal(await page.$$eval('.turn.bot b', (els) => els.length), 0, 'action text is never HTML');
    const href = (await page.getAttribute('.turn.bot a.cite', 'href')) ?? '';
    assert.match(href, /^#source-\d+-1$/, 'a marker split across chunks still links to its source');
    assert.equal(await page.getAttribute('.turn.bot .sources li', 'id'), href.slice(1));
    assert.equal(await page.textContent('.turn.bot .sources li'), 'Store handbook — Open 9–18.');
    assert.equal(await page.getAttribute('.turn.bot .sources a', 'href'), 'https://example.com/handbook');
    assert.equal(await page.$$eval('.turn.bot img.image', (els) => els.map((e) => ((e as unknown as PageElement).src ?? '').slice(0, 19)).join()), 'data:image/svg+xml,');
    assert.match((await page.textContent('.turn.bot .note')) ?? '', /image not shown: javascript:alert\(1\)/);
    assert.match((await page.textContent('.turn.bot .card')) ?? '', /Order 42/);
    assert.equal(await page.textContent('.turn.bot .error[role="alert"]'), 'The action failed (internal)');
    assert.match((await page.textContent('.turn.bot .meta')) ?? '', /^run error · 10 events · no result$/);

    await page.setViewportSize({ width: 390, height: 800 });
    // The page remembers the panel in localStorage, which this profile shares between tests.
    if ((await page.getAttribute('#toggle-log', 'aria-expanded')) !== 'true') await page.click('#toggle-log');
    assert.equal(await page.isVisible('#event-log'), true);
    const shot = join(tmpdir(), 'sluice-playground-narrow.png');
    await page.screenshot({ path: shot });
    t.diagnostic(`screenshot: ${shot}`);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.equal(overflow, 0, 'no horizontal scrolling in a narrow window');
    assert.deepEqual(problemsOf(page), []);
    await page.close();
  });
  test('the event log opens on the latest run, not the oldest', async () => {
    const page = await open();
    if ((await page.getAttribute('#toggle-log', 'aria-expanded')) === 'true') await page.click('#toggle-log');
    await page.selectOption('#action', 'action_story');
    for (let i = 1; i <= 3; i++) {
      await send(page, 'tell me a story');
      await page.waitForSelector(`.turn.bot:nth-of-type(${2 * i})[data-run-end]`, { timeout: 15_000 });
    }
    await page.click('#toggle-log');
    const view = await page.evaluate(() => {
      const log = document.getElementById('events')!;
      const box = log.getBoundingClientRect();
      const seps = Array.from(document.querySelectorAll('#events .run-sep'), (el) => el.getBoundingClientRect());
      const visible = (r: Rect): boolean => r.bottom > box.top + 1 && r.top < box.bottom - 1;
      return { runs: seps.length, latest: visible(seps[seps.length - 1]!), first: visible(seps[0]!) };
    });
    assert.equal(view.runs, 3);
    assert.equal(view.latest, true, 'the latest run is in view');
    assert.equal(view.first, false, 'the log overflows, and the oldest run is scrolled away');
    assert.deepEqual(problemsOf(page), []);
    await page.close();
  });

  test('a connection cut mid-reply is resumed: the reply completes with no word lost or repeated', async () => {
    const proxy = await startTcpProxy(server.httpUrl);
    try {
      const page = await open(proxy.url);
      await page.selectOption('#action', 'action_story');
      await send(page, 'tell me a story');
      await page.waitForFunction(() => (document.querySelector('.turn.bot .seg')?.textContent ?? '').includes('time,'));
      proxy.cut();
      await page.waitForSelector('.turn.bot[data-run-end="completed"]', { timeout: 15_000 });
      assert.equal(await lastReplyText(page), 'Once upon a time, a small stream met a sluice. It learned to wait its turn, and so it never flooded anyone. Want another?');
      if ((await page.getAttribute('#toggle-log', 'aria-expanded')) !== 'true') await page.click('#toggle-log');
      const seqs = await page.$$eval('#events li.ev .seq', (items) => items.map((li) => Number(li.textContent)));
      assert.deepEqual(seqs, seqs.map((_, i) => i + 1), 'every seq once, in order');
      assert.match((await page.textContent('.turn.bot .meta')) ?? '', /^run completed · /);
      // The dropped connection shows up as a failed request only: no script error.
      assert.deepEqual(problemsOf(page).filter((p) => !/net::ERR_|Failed to load resource/.test(p)), []);
      await page.close();
    } finally {
      await proxy.close();
    }
  });
  test('closing the page mid-reply cancels its run on the server', async () => {
    const page = await open();
    await page.selectOption('#action', 'action_story');
    await send(page, 'tell me a story');
    await page.waitForFunction(() => (document.querySelector('.turn.bot .seg')?.textContent ?? '').includes('time,'));
    const runId = await page.evaluate(() => document.querySelector('#events .run-sep')?.textContent?.slice(4) ?? '');
    const run = server.executor.getRun(runId);
    assert.ok(run !== undefined, `run ${runId} is on the server`);
    await page.close({ runBeforeUnload: false });
    await run.done;
    assert.equal(run.endReason, 'cancelled');
  });
});
