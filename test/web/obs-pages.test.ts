/**
 * The observability pages in a real browser (Debian's chromium, playwright-core), against the dev
 * server on the offline scripted model: the playground's latency strip and timeline, the tracking
 * view of applications, and the voice page (audio frames arrive, and stop on interrupt).
 *
 * Screenshots go to the OS temp dir, or to `$SLUICE_SCREENSHOTS` (e.g. `docs/`, to refresh the
 * README's pictures). Without chromium the suite is skipped locally and fails in CI.
 */

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type BrowserContext, type Page, chromium } from 'playwright-core';
import { exampleApps } from '../../examples/app.ts';
import { type RunningServer, startServer } from '../../src/cli/serve.ts';
import { silentLogger } from '../../src/runtime/logger.ts';

const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-sync', '--autoplay-policy=no-user-gesture-required'];
const inCi = process.env.CI === 'true';
const skip = !existsSync(CHROMIUM) && !inCi ? `no chromium at ${CHROMIUM} (apt-get install chromium); in CI this fails instead` : false;

process.env.SLUICE_MODEL = 'scripted';

/** The DOM as the page-side callbacks use it (the project's lib has no DOM types). */
interface El {
  dataset: Record<string, string | undefined>;
  textContent: string | null;
  getAttribute(name: string): string | null;
  querySelectorAll(selector: string): ArrayLike<El>;
}
declare const document: { querySelectorAll(selector: string): ArrayLike<El>; querySelector(selector: string): El | null };
declare const window: { voiceStats: { frames: number; bytes: number; framesAfterInterrupt: number; sentences: number } };

type Figures = Record<string, number>;

/** The figures of the last latency strip under `scope`. */
function figuresOf(page: Page, scope: string): Promise<Figures> {
  return page.evaluate((root) => {
    const strips = document.querySelectorAll(`${root} .run-figures .latency`);
    const strip = strips[strips.length - 1];
    const out: Record<string, number> = {};
    if (strip === undefined) return out;
    for (const item of Array.from(strip.querySelectorAll('.figure'))) out[item.dataset.figure ?? ''] = Number(item.dataset.ms);
    return out;
  }, scope);
}

/** Times of the last timeline's marks, in document order (the order the events arrived). */
function marksOf(page: Page, scope: string): Promise<{ type: string; t: number }[]> {
  return page.evaluate((root) => {
    const timelines = document.querySelectorAll(`${root} svg.timeline`);
    const svg = timelines[timelines.length - 1];
    if (svg === undefined) return [];
    return Array.from(svg.querySelectorAll('circle.mark'), (m) => ({ type: m.getAttribute('data-type') ?? '', t: Number(m.getAttribute('data-t')) }));
  }, scope);
}

function assertPlausible(figures: Figures, marks: { type: string; t: number }[], expected: string[]): void {
  for (const name of expected) assert.ok(Number.isFinite(figures[name]) && figures[name]! >= 0, `${name} shown: ${JSON.stringify(figures)}`);
  assert.ok(figures['first-chunk']! <= figures.total!, 'first chunk ≤ total');
  if ('first-sentence' in figures) assert.ok(figures['first-chunk']! <= figures['first-sentence']! && figures['first-sentence']! <= figures.total!, 'chunk ≤ sentence ≤ total');
  if ('first-status' in figures) assert.ok(figures['first-status']! <= figures.total!);
  assert.ok(marks.length >= 5, `marks on the timeline: ${marks.length}`);
  for (let i = 1; i < marks.length; i++) assert.ok(marks[i]!.t >= marks[i - 1]!.t, `monotonic times at mark ${i}`);
  assert.equal(marks[0]!.type, 'run-start');
  assert.equal(marks.at(-1)!.type, 'run-end');
  assert.ok(marks.at(-1)!.t <= figures.total!);
}

describe('observability pages', { skip, timeout: 90_000 }, () => {
  let server: RunningServer;
  let context: BrowserContext;
  let profile: string;
  let data: string;
  const shots = process.env.SLUICE_SCREENSHOTS !== undefined ? resolve(process.env.SLUICE_SCREENSHOTS) : mkdtempSync(join(tmpdir(), 'sluice-shots-'));
  const errors: string[] = [];

  before(async () => {
    assert.ok(existsSync(CHROMIUM), `chromium is required in CI at ${CHROMIUM}`);
    data = mkdtempSync(join(tmpdir(), 'sluice-apps-'));
    server = await startServer({
      actions: 'examples/index.ts',
      host: '127.0.0.1',
      port: 0,
      grpcPort: 0,
      logger: silentLogger,
      playground: true,
      apps: exampleApps({ dataDir: data, wordDelayMs: 40 }),
    });
    profile = mkdtempSync(join(tmpdir(), 'sluice-chromium-'));
    context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: ARGS, viewport: { width: 1000, height: 720 } });
  });

  after(async () => {
    await context?.close();
    await server?.close();
    for (const dir of [profile, data]) if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    if (process.env.SLUICE_SCREENSHOTS === undefined) rmSync(shots, { recursive: true, force: true });
  });

  async function open(path: string): Promise<Page> {
    const page = await context.newPage();
    page.on('pageerror', (e) => errors.push(`${path}: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(`${path}: ${m.text()}`);
    });
    await page.goto(`${server.httpUrl}${path}`);
    return page;
  }

  test('playground: each run gets a latency strip and a timeline whose figures are plausible', async (t) => {
    const page = await open('/');
    await page.waitForFunction(() => document.querySelectorAll('#action option').length > 1);
    await page.selectOption('#action', 'action_assistant');
    await page.fill('#message', 'What is the weather in Paris?');
    await page.press('#message', 'Enter');
    await page.waitForSelector('.turn.bot .run-figures .latency [data-figure="total"]', { timeout: 20_000 });
    const figures = await figuresOf(page, '.turn.bot');
    assertPlausible(figures, await marksOf(page, '.turn.bot'), ['first-status', 'first-chunk', 'first-sentence', 'total']);
    assert.ok(!('barge-in' in figures), 'no barge-in figure without a barge-in');
    const reply = page.locator('.turn.bot').last();
    const file = join(shots, 'playground-latency.png');
    await reply.screenshot({ path: file });
    t.diagnostic(`screenshot: ${file}`);

    // A barge-in: the strip adds ack → stream end.
    await page.selectOption('#action', 'action_story');
    await page.fill('#message', 'a story please');
    await page.press('#message', 'Enter');
    await page.waitForFunction(() => document.querySelectorAll('.turn.bot')[document.querySelectorAll('.turn.bot').length - 1]?.textContent?.includes('small') === true, undefined, { timeout: 20_000 });
    await page.click('#barge-in');
    await page.waitForFunction(() => document.querySelectorAll('.turn.bot .run-figures').length === 2, undefined, { timeout: 20_000 });
    const barged = await figuresOf(page, '.turn.bot');
    assertPlausible(barged, await marksOf(page, '.turn.bot'), ['first-status', 'first-chunk', 'total', 'barge-in']);
    assert.ok(barged['barge-in']! <= barged.total!, 'barge-in → end within the run');
    assert.ok(barged.total! < 2500, `the story stopped early (total ${barged.total} ms; whole story ≈ 1 s of words plus delays)`);
    await page.close();
  });

  test('tracking view: app instances, steps with commit kind, state before/after, streamed items', async (t) => {
    const page = await open('/tracking.html');
    await page.fill('#app-id', 'obs-test');
    await page.fill('#app-message', 'first message');
    await page.click('#run-step');
    await page.waitForSelector('#steps tr.step[data-kind="completed"]', { timeout: 20_000 });
    // A second step, stopped after its first items: committed as interrupted.
    await page.fill('#app-message', 'second message that will be cut off');
    await page.click('#run-step');
    await page.waitForFunction(() => document.querySelector('#stop-step')?.getAttribute('disabled') === null, undefined, { timeout: 10_000 });
    await page.waitForTimeout(250);
    await page.click('#stop-step');
    await page.waitForSelector('#steps tr.step[data-kind="interrupted"]', { timeout: 20_000 });
    const kinds = await page.evaluate(() => Array.from(document.querySelectorAll('#steps tr.step'), (r) => r.getAttribute('data-kind')));
    assert.deepEqual(kinds, ['completed', 'interrupted']);
    const apps = await page.evaluate(() => Array.from(document.querySelectorAll('#apps button'), (b) => b.getAttribute('data-app')));
    assert.ok(apps.includes('obs-test'), apps.join());
    // The last step is shown: its state before holds the first exchange, after it the cut-off one.
    await page.waitForSelector('#detail .item-list li', { timeout: 10_000 });
    const detail = await page.evaluate(() => ({
      before: document.querySelector('#detail .state-before')?.textContent ?? '',
      after: document.querySelector('#detail .state-after')?.textContent ?? '',
      items: Array.from(document.querySelectorAll('#detail .item-list li.item'), (li) => li.textContent ?? ''),
    }));
    assert.match(detail.before, /first message/);
    assert.doesNotMatch(detail.before, /second message/);
    assert.match(detail.after, /second message that will be cut off/);
    assert.ok(detail.items.length >= 1, `streamed items listed: ${detail.items.join('|')}`);
    const file = join(shots, 'tracking.png');
    await page.screenshot({ path: file });
    t.diagnostic(`screenshot: ${file}`);
    await page.close();
  });

  test('voice page: sentences and audio frames arrive; interrupt stops the frames and the history says so', async (t) => {
    const page = await open('/voice.html');
    await page.check('#mute');
    await page.selectOption('#voice-action', 'action_story');
    await page.click('#speak');
    await page.waitForFunction(() => window.voiceStats.frames >= 3, undefined, { timeout: 20_000 });
    const before = await page.evaluate(() => ({ ...window.voiceStats }));
    assert.ok(before.sentences >= 1 && before.bytes > before.frames * 20, JSON.stringify(before));
    await page.click('#interrupt');
    await page.waitForSelector('.history td.col-interrupted.interrupted', { timeout: 10_000 });
    const soon = await page.evaluate(() => window.voiceStats.framesAfterInterrupt);
    await page.waitForTimeout(1200);
    const later = await page.evaluate(() => ({ ...window.voiceStats }));
    assert.equal(later.framesAfterInterrupt, soon, 'no audio frame after the interrupt was acknowledged');
    const history = await page.evaluate(() => Array.from(document.querySelectorAll('.history tbody tr td'), (td) => td.textContent ?? ''));
    assert.match(history[1] ?? '', /Once upon a time/, 'generated text');
    assert.ok((history[2] ?? '').length <= (history[1] ?? '').length, 'spoken is a prefix at most');
    assert.equal(history[3], 'yes');
    await page.waitForSelector('#voice-figures .latency [data-figure="first-audio"]', { timeout: 10_000 });
    const figures = await figuresOf(page, '#voice-figures');
    assert.ok(figures['first-sentence']! <= figures['first-audio']! && figures['first-audio']! <= figures.total!, JSON.stringify(figures));
    assert.ok('barge-in' in figures, 'interrupt → silence figure');
    const file = join(shots, 'voice.png');
    await page.screenshot({ path: file });
    t.diagnostic(`screenshot: ${file}`);
    await page.close();
    assert.deepEqual(errors, []);
  });
});
