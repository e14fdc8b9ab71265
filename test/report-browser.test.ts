// The report as a reader sees it: headless Chromium opens index.html from disk, with the network out of
// reach, and every chart must have drawn. Needs playwright-core and a Chromium binary; without them the
// test is skipped and says why.
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromiumUnavailable, launchChromium } from '../cli/report/chromium.ts';
import { writeReport } from '../cli/report/render.ts';
import { screenshot } from '../cli/report/screenshot.ts';
import { reportFixture } from './report-fixture.ts';

const why = await chromiumUnavailable();
if (why) console.warn(`report-browser: skipped — ${why}`);

describe.skipIf(why !== null)(`the report in headless Chromium${why ? ` (skipped: ${why})` : ''}`, () => {
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pdspec-report-browser-'));
    await writeReport(reportFixture(), dir);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('opens from disk with no console error and no request beyond the file itself', async () => {
    const browser = await launchChromium();
    try {
      const page = await browser.newPage({ viewport: { width: 1240, height: 900 } });
      const problems: string[] = [];
      const requests: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()}`);
      });
      page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
      page.on('request', (r) => requests.push(r.url()));
      const url = pathToFileURL(join(dir, 'index.html')).href;
      await page.goto(url, { waitUntil: 'load' });

      expect(problems).toEqual([]);
      expect(requests).toEqual([url]);

      // Every chart drew: a real box on the page, a title, axes and marks.
      const charts = await page.$$eval('figure.chart svg', (svgs) =>
        svgs.map((svg) => {
          const box = svg.getBoundingClientRect();
          return {
            id: svg.getAttribute('data-chart'),
            width: box.width,
            height: box.height,
            marks: svg.querySelectorAll('.role-mark path, .role-mark line, .role-mark rect, .role-mark text').length,
            title: svg.querySelector('.role-title-text text')?.textContent ?? '',
            axisTitles: svg.querySelectorAll('.role-axis-title text').length,
          };
        }),
      );
      expect(charts).toHaveLength(17);
      for (const c of charts) {
        expect(c.width, `${c.id} width`).toBeGreaterThan(250);
        expect(c.height, `${c.id} height`).toBeGreaterThan(120);
        expect(c.marks, `${c.id} marks`).toBeGreaterThan(0);
        expect(c.title, `${c.id} title`).not.toBe('');
        expect(c.axisTitles, `${c.id} axis titles`).toBeGreaterThanOrEqual(1);
      }

      // The counterexample's timeline: bars for the owners, the offending line marked, the event list beside it.
      const timeline = page.locator('[data-kind="counterexample-timeline"] svg');
      await expect(timeline.count()).resolves.toBe(1);
      expect(await timeline.locator('text', { hasText: '✗ line 22' }).count()).toBe(1);
      expect(await timeline.locator('.role-mark text', { hasText: /^r2$/ }).count()).toBe(2);
      expect(await page.locator('table.events tr.offending').textContent()).toContain('free');

      // The copy button appears once the inline script has run.
      expect(await page.locator('button[data-copy]').first().isVisible()).toBe(true);

      // Nothing spills out of the page sideways.
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      expect(overflow).toBeLessThanOrEqual(0);
    } finally {
      await browser.close();
    }
  });

  it('screenshot.ts writes a PNG of the page', async () => {
    const out = join(dir, 'report.png');
    await screenshot(dir, out, { fullPage: false });
    const png = await readFile(out);
    expect(png.subarray(0, 8).toString('hex')).toBe('89504e470d0a1a0a');
    expect((await stat(out)).size).toBeGreaterThan(20_000);
  });
});
