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
