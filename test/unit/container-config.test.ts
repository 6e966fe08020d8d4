/**
 * The container image must not allow loopback or private egress by default (issue 12, item 7):
 * only the local quick start may. Reads the Dockerfile for the config it runs with, loads that
 * config as the image would, and asks the egress policy about the addresses an attacker wants.
 */
import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.ts';
import { egressProblem } from '../../src/delivery/egress.ts';

const REPO = join(import.meta.dirname, '../..');
const dockerfile = readFileSync(join(REPO, 'Dockerfile'), 'utf8');

/** ENV lines of the runtime stage, continuation lines joined. */
function runtimeEnv(): Record<string, string> {
  const runtime = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
  const env: Record<string, string> = {};
  for (const m of runtime.replace(/\\\n\s*/g, ' ').matchAll(/^ENV\s+(.+)$/gm)) {
    for (const pair of m[1]!.trim().split(/\s+/)) {
      const [k, v] = pair.split('=');
      if (k && v !== undefined) env[k] = v;
    }
  }
  return env;
}

describe('container image config', () => {
  const env = runtimeEnv();

  it('runs config/container.yaml, listening on every interface', () => {
    expect(env.WHARF_CONFIG).toBe('/app/config/container.yaml');
    const { config } = loadConfig({ file: join(REPO, relative('/app', env.WHARF_CONFIG!)), env: { ...env, WHARF_CONFIG: '' } });
    expect(config.server.host).toBe('0.0.0.0');
  });

  it.each(['127.0.0.1', '::1', '10.0.0.5', '172.17.0.1', '192.168.1.10', '169.254.169.254', 'fd00::1'])('refuses egress to %s by default', (address) => {
    const { config } = loadConfig({ file: join(REPO, 'config/container.yaml'), env: { ...env, WHARF_CONFIG: '' } });
    expect(egressProblem(config.egress, address)).not.toBeNull();
  });

  it('lists no loopback or private range in egress.allow', () => {
    const { config } = loadConfig({ file: join(REPO, 'config/container.yaml'), env: { ...env, WHARF_CONFIG: '' } });
    const internal = ['127.0.0.1', '::1', '10.0.0.5', '172.17.0.1', '192.168.1.10', '169.254.169.254', '100.64.0.1', 'fd00::1', 'fe80::1'];
    // Each entry alone must open none of them (a public range may be added; an internal one may not).
    const opened = config.egress.allow.flatMap((cidr) =>
      internal.filter((address) => egressProblem({ allow: [cidr], block: [] }, address) === null).map((address) => `${cidr} opens ${address}`),
    );
    expect(opened).toEqual([]);
  });

  it('while the local quick start allows loopback only', () => {
    const { config } = loadConfig({ file: join(REPO, 'config/wharf.yaml'), env: {} });
    expect(egressProblem(config.egress, '127.0.0.1')).toBeNull();
    expect(egressProblem(config.egress, '10.0.0.5')).not.toBeNull();
    expect(egressProblem(config.egress, '169.254.169.254')).not.toBeNull();
  });
});
