/**
 * Debian packages the integration tests need (broker fakes, their toolchains, a browser), installed with
 * apt-get when missing, so `npm test` works on a fresh machine. Runs once per test run, before the
 * services start; `apt-get update` only when something is missing.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * kcat: librdkafka's mock Kafka cluster. golang + golang-google-cloud-dev: Google's pstest Pub/Sub
 * fake. chromium: the headless browser the portal's browser test drives through playwright-core.
 */
export const TEST_PACKAGES = ['kcat', 'golang-go', 'golang-google-cloud-dev', 'chromium'] as const;

async function installed(pkg: string): Promise<boolean> {
  try {
    const { stdout } = await run('dpkg-query', ['-W', '-f=${Status}', pkg]);
    return stdout.includes('install ok installed');
  } catch {
    return false;
  }
}

export async function ensureDebianPackages(packages: readonly string[] = TEST_PACKAGES): Promise<void> {
  const missing: string[] = [];
  for (const p of packages) if (!(await installed(p))) missing.push(p);
  if (missing.length === 0) return;
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const opts = { env, maxBuffer: 64 * 1024 * 1024 };
  try {
    await run('apt-get', ['update', '-qq'], opts);
    await run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], opts);
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`apt-get install ${missing.join(' ')} failed: ${(e.stderr ?? e.message).trim().slice(-2000)}`, { cause: err });
  }
}
