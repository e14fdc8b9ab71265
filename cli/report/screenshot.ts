// `npx tsx cli/report/screenshot.ts DIR OUT.png [--width PX] [--dark] [--viewport]`: a PNG of DIR/index.html
// as headless Chromium draws it, for the README and for looking at a report without opening it.
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { launchChromium } from './chromium.ts';

const usage = 'usage: npx tsx cli/report/screenshot.ts DIR OUT.png [--width PX] [--dark] [--viewport]';

export async function screenshot(dir: string, out: string, opts: { width?: number; dark?: boolean; fullPage?: boolean } = {}): Promise<void> {
  const browser = await launchChromium();
  try {
    const page = await browser.newPage({ viewport: { width: opts.width ?? 1240, height: 900 }, deviceScaleFactor: 1, colorScheme: opts.dark ? 'dark' : 'light' });
    await page.goto(pathToFileURL(resolve(dir, 'index.html')).href, { waitUntil: 'load' });
    await page.screenshot({ path: out, fullPage: opts.fullPage ?? true });
  } finally {
    await browser.close();
  }
}

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: { width: { type: 'string' }, dark: { type: 'boolean' }, viewport: { type: 'boolean' } } });
  } catch (err) {
    console.error(`${(err as Error).message}\n${usage}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (positionals.length !== 2) {
    console.error(usage);
    return 2;
  }
  const width = values.width === undefined ? undefined : Number(values.width);
  if (width !== undefined && !(Number.isInteger(width) && width >= 320)) {
    console.error(`--width must be an integer ≥ 320, got '${values.width}'`);
    return 2;
  }
  await screenshot(positionals[0], positionals[1], { width, dark: values.dark, fullPage: !values.viewport });
  console.log(`wrote ${positionals[1]}`);
  return 0;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: Error) => {
      console.error(err.message);
      process.exit(2);
    },
  );
}
