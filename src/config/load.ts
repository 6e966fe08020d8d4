import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import convict from 'convict';
import { parseDocument } from 'yaml';
import { ConfigError } from '../core/errors.ts';
import { redactKeys } from '../core/redact.ts';
import { credentialSecretKeys } from '../delivery/credentials.ts';
import { redactSource } from '../sources/settings.ts';
import {
  captureRejections,
  checkSetting,
  configSchema,
  normalizeProjects,
  type WharfConfig,
} from './schema.ts';
import { got, type SettingIssue } from '../core/settings.ts';

export interface LoadedConfig {
  config: WharfConfig;
  /** The absolute path read. */
  file: string;
}

export interface LoadOptions {
  /** Default: `env.WHARF_CONFIG`, then `config/wharf.yaml`; resolved against `cwd`. */
  file?: string;
  /** Source of `${VAR}` values and WHARF_* overrides. Default: `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Default: `process.cwd()`. */
  cwd?: string;
}

/** One thing wrong, as the user should read it (without the file, which every line gets). */
interface Problem {
  key: string;
  text: string;
}

type Mapping = Record<string, unknown>;
/** Key path → the environment variables whose values went into it, to name them in a problem. */
type Origins = Map<string, string>;

const DEFAULT_FILE = 'config/wharf.yaml';
const REDACTED = '[redacted]';
// `$${` is a literal `${`; any other `${` must start a well-formed reference.
const REFERENCE = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{/g;

/**
 * Reads, expands and validates the YAML config. Environment overrides (WHARF_PORT, ...) beat the
 * file. Throws ConfigError naming the file and every wrong key; never quotes a secret.
 */
export function loadConfig(options: LoadOptions = {}): LoadedConfig {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const file = resolve(cwd, options.file ?? (env.WHARF_CONFIG || DEFAULT_FILE));

  const parsed = parseYaml(file, readText(file));
  const problems: Problem[] = [];
  const origins: Origins = new Map();
  const expanded = expand(parsed, '', env, problems, origins) as Mapping;
  const settings = knownSettings(expanded, configSchema, '', problems);
  if (problems.length > 0) fail(file, problems);

  // `args: []` keeps convict away from process.argv, which belongs to the CLI.
  const config = convict<WharfConfig>(configSchema, { env, args: [] });
  config.load(settings);
  const { rejected, error } = captureRejections(() => config.validate({ allowed: 'strict' }));
  for (const err of rejected) {
    const setting = err.fullName ?? '';
    const envVar = envVarOf(setting);
    problems.push(...describe(setting, err.issues, envVar !== undefined && env[envVar] !== undefined ? envVar : undefined, origins));
  }
  if (error !== undefined) problems.push(...convictProblems(error, rejected.map((e) => e.fullName ?? '')));
  if (problems.length > 0) fail(file, problems);

  const props = config.getProperties();
  return {
    file,
    config: { ...props, data_dir: resolve(cwd, props.data_dir), projects: normalizeProjects(props.projects).projects },
  };
}

/** A deep copy safe to print: passwords, keys and secrets become '[redacted]'. */
export function redactConfig(config: WharfConfig): unknown {
  const copy = structuredClone(config);
  copy.database.url = redactDatabaseUrl(copy.database.url);
  // '' stays visible: it says "generated key in data_dir", which is not a secret.
  if (copy.encryption_key !== '') copy.encryption_key = REDACTED;
  for (const project of copy.projects) {
    project.api_keys = project.api_keys.map(() => REDACTED);
    for (const endpoint of project.endpoints) {
      if (endpoint.secret !== null) endpoint.secret = REDACTED;
      endpoint.credentials = redactKeys(endpoint.credentials, credentialSecretKeys(endpoint.credentials));
    }
    project.sources = project.sources.map(redactSource);
  }
  return copy;
}

function fail(file: string, problems: Problem[]): never {
  // One line per problem, each starting with the file, the way compilers report.
  throw new ConfigError(problems.map((p) => `${file}: ${p.text}`).join('\n'), { file, key: problems[0]?.key });
}

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT' ? 'config file not found' : code === 'EISDIR' ? 'is a directory, not a config file' : `cannot read config file (${code})`;
    throw new ConfigError(`${file}: ${why}`, { file, cause: err });
  }
}

function parseYaml(file: string, text: string): Mapping {
  const doc = parseDocument(text);
  const error = doc.errors[0];
  if (error) {
    const at = error.linePos?.[0];
    const where = at ? ` at line ${at.line}, column ${at.col}` : '';
    // Only the first line, and no `cause`: the rest of yaml's message quotes the file around the
    // error, which may be a secret.
    const what =
      error.code === 'MULTIPLE_DOCS'
        ? 'a config file holds one YAML document'
        : (error.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '');
    throw new ConfigError(`${file}: YAML syntax error${where}: ${what}`, { file });
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw new ConfigError(`${file}: YAML error: ${(err as Error).message}`, { file });
  }
  if (value === null || value === undefined) return {};
  if (!isMapping(value)) throw new ConfigError(`${file}: must be a mapping of settings${got(value)}`, { file });
  return value;
}

/** Replaces `${VAR}` and `${VAR:-default}` in every string value (keys stay as written). */
function expand(value: unknown, key: string, env: NodeJS.ProcessEnv, problems: Problem[], origins: Origins): unknown {
  if (Array.isArray(value)) return value.map((v, i) => expand(v, `${key}[${i}]`, env, problems, origins));
  if (isMapping(value)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, expand(v, key ? `${key}.${k}` : k, env, problems, origins)]));
  }
  if (typeof value !== 'string') return value;
  const used: string[] = [];
  const out = value.replace(REFERENCE, (match: string, name: string | undefined, fallback: string | undefined) => {
    if (match === '$${') return '${';
    if (name === undefined) {
      // The text after "${" is not quoted: the value may be a secret.
      problems.push({ key, text: `${key}: has a "\${" that is not a \${VAR} or \${VAR:-default} reference (write "$\${" for a literal "\${")` });
      return match;
    }
    const set = Object.hasOwn(env, name) ? env[name] : undefined;
    // As in the shell, `:-` also replaces a variable that is set but empty.
    if (fallback !== undefined && (set === undefined || set === '')) return fallback;
    if (set === undefined) {
      problems.push({ key, text: `${key}: environment variable ${name} is not set (write \${${name}:-default} to give a default)` });
      return match;
    }
    used.push(name);
    return set;
  });
  if (used.length > 0) origins.set(key, used.join(', '));
  return out;
}

/**
 * The file's settings without keys that have no value (YAML `key:`), which mean "use the default".
 * Reports unknown keys and wrongly shaped values that convict would mishandle: it ignores dotted
 * keys (`"server.port": 1`), garbles a section given as a scalar, and merges a mapping given for a
 * list into the list, where it vanishes.
 */
function knownSettings(value: Mapping, schema: Mapping, prefix: string, problems: Problem[]): Mapping {
  const out: Mapping = {};
  for (const [k, v] of Object.entries(value)) {
    const key = prefix ? `${prefix}.${k}` : k;
    const node = Object.hasOwn(schema, k) ? schema[k] : undefined;
    if (!isMapping(node)) problems.push(unknownKey(key));
    else if (v === null) continue;
    else if ('default' in node) {
      if (isMapping(v)) problems.push(...describe(key, checkSetting(node, v)));
      else out[k] = v;
    } else if (!isMapping(v)) problems.push({ key, text: `${key}: must be a mapping${got(v)}` });
    else out[k] = knownSettings(v, node, key, problems);
  }
  return out;
}

/**
 * Problems in a setting's terms; `envVar` names the variable its value came from, if it did, and
 * `origins` the variables a `${VAR}` put into a key (a short WHARF_API_KEY names itself).
 */
function describe(setting: string, issues: SettingIssue[], envVar?: string, origins?: Origins): Problem[] {
  return issues.map((issue) => {
    const key = setting + issue.path;
    if (issue.unknown) return unknownKey(key);
    const variables = envVar !== undefined && issue.path === '' ? envVar : origins?.get(key);
    const from = variables !== undefined ? ` (from ${variables})` : '';
    return { key, text: `${key}${from}: ${issue.message}` };
  });
}

/** Convict's own messages, for what the formats did not already report; one per line. */
function convictProblems(error: unknown, reported: string[]): Problem[] {
  const lines = (error instanceof Error ? error.message : String(error)).split('\n');
  return lines.flatMap((line): Problem[] => {
    const undeclared = /^configuration param '(.+)' not declared in the schema$/.exec(line);
    if (undeclared?.[1] !== undefined) return [unknownKey(undeclared[1])];
    if (line === '' || reported.some((name) => line.startsWith(`${name}: `))) return [];
    // Convict leaves out the values of sensitive settings, so this cannot show a secret.
    return [{ key: line.split(':')[0] ?? '', text: line }];
  });
}

function unknownKey(key: string): Problem {
  return { key, text: `unknown key ${JSON.stringify(key)}` };
}

function envVarOf(key: string): string | undefined {
  let node: unknown = configSchema;
  for (const part of key.split('.')) node = isMapping(node) && Object.hasOwn(node, part) ? node[part] : undefined;
  return isMapping(node) && typeof node.env === 'string' ? node.env : undefined;
}

function redactDatabaseUrl(url: string): string {
  if (url === '') return '';
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return REDACTED;
  }
  const userinfo = u.username || u.password ? `${u.username}${u.password ? `:${REDACTED}` : ''}@` : '';
  const search = u.search.replace(/([?&][^=&]*password=)[^&]*/gi, `$1${REDACTED}`);
  return `${u.protocol}//${userinfo}${u.host}${u.pathname}${search}${u.hash}`;
}

function isMapping(value: unknown): value is Mapping {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
