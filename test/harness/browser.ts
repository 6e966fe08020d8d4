/**
 * Headless Chromium for browser tests: Debian's `chromium` (installed by the harness, see
 * packages.ts) driven by playwright-core, which brings no browser of its own.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM_PATH = process.env.WHARF_TEST_CHROMIUM ?? '/usr/bin/chromium';

/** Where tests save screenshots for people to look at (git-ignored). */
export const ARTIFACTS_DIR = join(import.meta.dirname, '..', 'artifacts');

export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    // No sandbox: the tests run as root in a VM, where Chromium's sandbox cannot start.
    args: ['--no-sandbox', '--disable-background-networking'],
  });
}

/** A path under test/artifacts/, the directory made if needed. */
export function artifactPath(name: string): string {
  mkdirSync(ARTIFACTS_DIR, { recursive: true });
  return join(ARTIFACTS_DIR, name);
}
