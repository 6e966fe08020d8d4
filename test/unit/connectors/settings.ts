import { expect } from 'vitest';
import type { ConnectorModule } from '../../../src/core/connector.ts';
import { Reader, type SettingIssue } from '../../../src/core/settings.ts';

/** `parse` of a connector's settings block at `at`, and `issue`: the one problem a value has. */
export function settingsOf<C>(module: ConnectorModule<C>, at: string) {
  const parse = (value: unknown): { config: C; issues: SettingIssue[] } => {
    const r = new Reader();
    const config = module.parse(r, value, at);
    return { config, issues: r.issues };
  };
  /** Fails when there are none or several. */
  const issue = (value: unknown): SettingIssue => {
    const { issues } = parse(value);
    expect(issues).toHaveLength(1);
    return issues[0]!;
  };
  return { parse, issue };
}

/**
 * For connectors that need credentials of the source's own (SQS, Pub/Sub), cases about other
 * settings: a block that names no credentials opts in to the default chain, as an operator's
 * config file may. `settings` is the plain pair, for the cases about credentials.
 */
export function settingsWithDefaultCredentials<C>(module: ConnectorModule<C>, at: string) {
  const settings = settingsOf(module, at);
  const optIn = (value: unknown): unknown =>
    typeof value === 'object' && value !== null && !Array.isArray(value) && !('credentials' in value) && !('use_default_credentials' in value)
      ? { ...value, use_default_credentials: true }
      : value;
  return { settings, parse: (value: unknown) => settings.parse(optIn(value)), issue: (value: unknown) => settings.issue(optIn(value)) };
}
