// Headless Chromium for the report's screenshot and its browser test, through playwright-core (an optional
// dependency: without it, callers get null and say why). Chromium itself is the system's, not a download.
import { existsSync } from 'node:fs';
import type { Browser } from 'playwright-core';

/** The Chromium binary: $PDSPEC_CHROMIUM, else Debian's. */
export const CHROMIUM_PATH = process.env.PDSPEC_CHROMIUM ?? '/usr/bin/chromium';

// Nothing in the report needs the network, so the browser is kept from reaching for it.
const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

/** Why a browser cannot be had here, or null when it can. */
export async function chromiumUnavailable(): Promise<string | null> {
  try {
    await import('playwright-core');
  } catch {
    return 'playwright-core is not installed (npm install --save-dev playwright-core)';
  }
  if (!existsSync(CHROMIUM_PATH)) return `no Chromium at ${CHROMIUM_PATH} (install it, or set PDSPEC_CHROMIUM)`;
  return null;
}

/** Starts headless Chromium with a fresh, throw-away profile. */
export async function launchChromium(): Promise<Browser> {
  const why = await chromiumUnavailable();
  if (why) throw new Error(why);
  const { chromium } = await import('playwright-core');
  return chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: ARGS });
}
