/**
 * compose.yaml cannot be run where the tests run (no Docker engine), so it is checked against what
 * Wharf and its image really are (issue 14, item 4): Wharf's config schema and loader, the
 * Dockerfile's runtime stage and the sources' imports. Each check is a function listing problems;
 * the real files must have none, and a broken copy of them must show the problem.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, posix, relative, resolve } from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { BROKER_TYPES } from '../../connectors/index.ts';
import { loadConfig } from '../../src/config/load.ts';
import { configSchema, type WharfConfig } from '../../src/config/schema.ts';

const REPO = join(import.meta.dirname, '../..');
const PROFILE = 'brokers';

type Mapping = Record<string, unknown>;
interface Service {
  image?: string;
  build?: unknown;
  environment?: Record<string, string | null> | string[];
  ports?: (string | number | { target?: number; published?: string | number })[];
  healthcheck?: { test?: string | string[]; disable?: boolean };
  depends_on?: string[] | Record<string, { condition?: string }>;
  profiles?: string[];
  networks?: string[] | Record<string, { ipv4_address?: string } | null>;
}
interface Compose {
  services: Record<string, Service>;
  networks?: Record<string, { ipam?: { config?: { subnet?: string }[] } } | null>;
}

// ---- reading the files

/** Compose's own interpolation: `$$`, `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`. */
function interpolate(value: unknown, env: Record<string, string>): unknown {
  if (Array.isArray(value)) return value.map((v) => interpolate(v, env));
  if (typeof value === 'object' && value !== null) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolate(v, env)]));
  if (typeof value !== 'string') return value;
  return value.replace(/\$\$|\$\{([A-Za-z_]\w*)(?:(:?-)([^}]*))?\}|\$([A-Za-z_]\w*)|\$\{[^}]*\}?/g, (match, name?: string, op?: string, fallback?: string, bare?: string) => {
    if (match === '$$') return '$';
    if (bare !== undefined) return env[bare] ?? '';
    // `:?`, `?`, `:+` and the rest are not used here; a test cannot say what they would give.
    if (name === undefined) throw new Error(`compose.yaml: unsupported interpolation ${match}`);
    const set = env[name];
    if (op === ':-') return set === undefined || set === '' ? fallback! : set;
    if (op === '-') return set ?? fallback!;
    return set ?? '';
  });
}

function readCompose(env: Record<string, string> = {}): Compose {
  return interpolate(parse(readFileSync(join(REPO, 'compose.yaml'), 'utf8')), env) as Compose;
}

function environmentOf(service: Service): Record<string, string> {
  const env = service.environment ?? {};
  if (Array.isArray(env)) return Object.fromEntries(env.map((pair) => [pair.split('=')[0]!, pair.slice(pair.indexOf('=') + 1)]));
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v ?? '']));
}

interface Image {
  workdir: string;
  env: Record<string, string>;
  /** Runtime-stage COPY lines from the build context (not `--from` another stage); `into` when dest is a directory. */
  copies: { sources: string[]; dest: string; into: boolean }[];
  entrypoint: string[];
  expose: number[];
}

/** The Dockerfile's runtime (last) stage. */
function readImage(dockerfile: string): Image {
  const stage = dockerfile.slice(dockerfile.lastIndexOf('\nFROM ')).replace(/\\\n\s*/g, ' ');
  const image: Image = { workdir: '/', env: {}, copies: [], entrypoint: [], expose: [] };
  for (const [, instruction, rest] of stage.matchAll(/^(\w+)\s+(.+)$/gm)) {
    const args = rest!.trim();
    if (instruction === 'WORKDIR') image.workdir = posix.resolve(image.workdir, args);
    else if (instruction === 'ENV') {
      for (const pair of args.split(/\s+/)) {
        const [k, v] = pair.split('=');
        if (k && v !== undefined) image.env[k] = v;
      }
    } else if (instruction === 'COPY' && !/--from=/.test(args)) {
      const words = args.startsWith('[') ? (JSON.parse(args) as string[]) : args.split(/\s+/).filter((w) => !w.startsWith('--'));
      const [dest, sources] = [words.at(-1)!, words.slice(0, -1)];
      // As Docker reads it: several sources, or a dest ending in "/" (or "."), copy into a directory.
      image.copies.push({ sources, dest: posix.resolve(image.workdir, dest), into: sources.length > 1 || /(^|\/)\.?$|\/$/.test(dest) });
    } else if (instruction === 'ENTRYPOINT') image.entrypoint = JSON.parse(args) as string[];
    else if (instruction === 'EXPOSE') image.expose.push(...args.split(/\s+/).map((p) => Number.parseInt(p, 10)));
  }
  return image;
}

/** Where a path of the image comes from in the repository, through its COPY lines; null if from none. */
function repoPathOf(image: Image, containerPath: string): string | null {
  for (const { sources, dest, into } of image.copies) {
    for (const source of sources) {
      const from = join(REPO, source);
      if (!existsSync(from)) continue;
      // A directory's contents land in dest; a file lands in dest, or under its name in a dest directory.
      if (statSync(from).isDirectory()) {
        if (containerPath === dest || containerPath.startsWith(`${dest}/`)) return join(from, posix.relative(dest, containerPath));
      } else if (containerPath === (into ? posix.join(dest, posix.basename(source)) : dest)) return from;
    }
  }
  return null;
}

/** Every WHARF_* variable the config schema reads from the environment. */
function schemaEnvVars(): Set<string> {
  const out = new Set<string>();
  const walk = (node: unknown): void => {
    if (typeof node !== 'object' || node === null) return;
    const env = (node as Mapping).env;
    if (typeof env === 'string') out.add(env);
    for (const v of Object.values(node)) walk(v);
  };
  walk(configSchema);
  return out;
}

// ---- the checks

/** The service built from the Dockerfile. */
function wharfService(compose: Compose): [string, Service] {
  const found = Object.entries(compose.services).filter(([, s]) => s.build !== undefined);
  if (found.length !== 1) throw new Error(`compose.yaml: expected one service with build:, found ${found.length}`);
  return found[0]!;
}

/** Wharf's environment in the container: the image's ENV, then the service's. */
function containerEnv(compose: Compose, image: Image): Record<string, string> {
  return { ...image.env, ...environmentOf(wharfService(compose)[1]) };
}

interface Resolved {
  problems: string[];
  /** The config file in the repository, when the image has one at the path WHARF_CONFIG names. */
  file?: string;
  config?: WharfConfig;
}

/** The config file Wharf runs in the container, loaded by Wharf's own loader with the container's environment. */
function resolveConfig(compose: Compose, image: Image): Resolved {
  const env = containerEnv(compose, image);
  // The loader reads WHARF_CONFIG itself (relative to the working directory, default config/wharf.yaml).
  const inContainer = posix.resolve(image.workdir, env.WHARF_CONFIG || 'config/wharf.yaml');
  const file = repoPathOf(image, inContainer);
  if (file === null) return { problems: [`${inContainer} (WHARF_CONFIG) comes from no COPY line of the Dockerfile`] };
  if (!existsSync(file)) return { problems: [`${inContainer} (WHARF_CONFIG) would be ${relative(REPO, file)}, which does not exist`] };
  try {
    const { config } = loadConfig({ file, env: { ...env, WHARF_CONFIG: '' }, cwd: REPO });
    return { problems: [], file, config };
  } catch (err) {
    return { problems: [`${relative(REPO, file)} with the container's environment: ${(err as Error).message}`], file };
  }
}

function envProblems(compose: Compose, image: Image): string[] {
  const known = schemaEnvVars();
  const { file } = resolveConfig(compose, image);
  // Variables the config file reads through ${VAR} (such as WHARF_API_KEY) are Wharf's too.
  const referenced = new Set(file ? [...readFileSync(file, 'utf8').matchAll(/\$\{([A-Za-z_]\w*)/g)].map((m) => m[1]!) : []);
  const [name, service] = wharfService(compose);
  return Object.keys(environmentOf(service))
    .filter((k) => k.startsWith('WHARF_') && k !== 'WHARF_CONFIG' && !known.has(k) && !referenced.has(k))
    .map((k) => `services.${name}.environment.${k} is no setting of Wharf's config schema nor read by ${file ? relative(REPO, file) : 'its config'}`);
}

function portProblems(compose: Compose, image: Image): string[] {
  const { config } = resolveConfig(compose, image);
  if (!config) return ['no config to take the port from'];
  const port = config.server.port;
  const [name, service] = wharfService(compose);
  const problems: string[] = [];
  if (!['0.0.0.0', '::'].includes(config.server.host)) problems.push(`server.host is ${config.server.host}: unreachable from outside the container`);
  const targets = (service.ports ?? []).map((p) => (typeof p === 'object' ? Number(p.target) : Number(String(p).split(':').at(-1)!.split('/')[0])));
  if (!targets.includes(port)) problems.push(`services.${name}.ports publishes ${targets.join(', ') || 'nothing'}, not Wharf's port ${port}`);
  const test = [service.healthcheck?.test ?? []].flat().join(' ');
  const probed = [...test.matchAll(/https?:\/\/[^/'"\s]+:(\d+)\/healthz/g)].map((m) => Number(m[1]));
  if (probed.length === 0) problems.push(`services.${name}.healthcheck probes no /healthz URL`);
  else if (!probed.every((p) => p === port)) problems.push(`services.${name}.healthcheck probes port ${probed.join(', ')}, Wharf listens on ${port}`);
  if (!image.expose.includes(port)) problems.push(`the Dockerfile EXPOSEs ${image.expose.join(', ')}, not ${port}`);
  return problems;
}

function databaseProblems(compose: Compose, image: Image): string[] {
  const { config } = resolveConfig(compose, image);
  if (!config) return ['no config to take the database from'];
  if (config.database.url === '') return ['database.url is "": Wharf would run an embedded database instead of the compose Postgres'];
  const url = new URL(config.database.url);
  const [name, wharf] = wharfService(compose);
  const service = compose.services[url.hostname];
  if (!service) return [`database.url names host ${url.hostname}, which is no service`];
  const env = environmentOf(service);
  const problems: string[] = [];
  if (!service.image?.startsWith('postgres')) problems.push(`services.${url.hostname} is not the official postgres image`);
  if ((url.port || '5432') !== '5432') problems.push(`database.url uses port ${url.port}, Postgres listens on 5432`);
  const expected: [string, string, string][] = [
    ['POSTGRES_USER', decodeURIComponent(url.username), env.POSTGRES_USER ?? 'postgres'],
    ['POSTGRES_PASSWORD', decodeURIComponent(url.password), env.POSTGRES_PASSWORD ?? ''],
    ['POSTGRES_DB', url.pathname.slice(1), env.POSTGRES_DB ?? env.POSTGRES_USER ?? 'postgres'],
  ];
  // Values are compared, never printed: one of them is a password.
  for (const [key, inUrl, inService] of expected) if (inUrl !== inService) problems.push(`database.url and services.${url.hostname}.environment.${key} differ`);
  const deps = wharf.depends_on;
  const condition = Array.isArray(deps) ? undefined : deps?.[url.hostname]?.condition;
  if (condition !== 'service_healthy') problems.push(`services.${name} does not wait for ${url.hostname} to be healthy (depends_on condition service_healthy)`);
  return problems;
}

function dependsProblems(compose: Compose): string[] {
  const problems: string[] = [];
  for (const [name, service] of Object.entries(compose.services)) {
    const deps: Record<string, { condition?: string }> = Array.isArray(service.depends_on) ? Object.fromEntries(service.depends_on.map((d) => [d, {}])) : (service.depends_on ?? {});
    for (const [dep, { condition }] of Object.entries(deps)) {
      const target = compose.services[dep];
      if (!target) {
        problems.push(`services.${name}.depends_on names ${dep}, which is no service`);
        continue;
      }
      if (condition === 'service_healthy' && (!target.healthcheck?.test || target.healthcheck.disable)) problems.push(`services.${name} waits for ${dep} to be healthy, which has no healthcheck`);
      // A plain `docker compose up` starts only services without profiles.
      if (!service.profiles?.length && target.profiles?.length) problems.push(`services.${name} (no profile) depends on ${dep}, which is behind profile ${target.profiles.join(', ')}`);
    }
  }
  return problems;
}

/** The broker type a service's image provides, as Wharf's source types name them. */
function brokerOf(service: Service): string | null {
  if (/(^|\/)rabbitmq(:|$)/.test(service.image ?? '')) return 'rabbitmq';
  if (/(^|\/)(redpanda|kafka)(:|$)/.test(service.image ?? '')) return 'kafka';
  return null;
}

function profileProblems(compose: Compose): string[] {
  const problems: string[] = [];
  const found = new Set<string>();
  for (const [name, service] of Object.entries(compose.services)) {
    const broker = brokerOf(service);
    if (broker === null) {
      if (service.profiles?.length) problems.push(`services.${name} is behind a profile: a plain \`docker compose up\` would lack it`);
      continue;
    }
    found.add(broker);
    if (!(BROKER_TYPES as readonly string[]).includes(broker)) problems.push(`services.${name} is a ${broker} broker, which Wharf has no source type for`);
    if (!service.profiles?.includes(PROFILE)) problems.push(`services.${name} (${broker}) is not behind the ${PROFILE} profile`);
    if (!service.healthcheck?.test) problems.push(`services.${name} (${broker}) has no healthcheck`);
  }
  for (const broker of ['rabbitmq', 'kafka']) if (!found.has(broker)) problems.push(`no ${broker} service behind the ${PROFILE} profile`);
  return problems;
}

function ipv4(address: string): number {
  return address.split('.').reduce((n, part) => n * 256 + Number(part), 0);
}

/** Fixed addresses (the ones egress.allow can name) lie inside their network's subnet. */
function addressProblems(compose: Compose): string[] {
  const problems: string[] = [];
  for (const [name, service] of Object.entries(compose.services)) {
    if (!service.networks || Array.isArray(service.networks)) continue;
    for (const [network, settings] of Object.entries(service.networks)) {
      const address = settings?.ipv4_address;
      if (!address) continue;
      const subnets = (compose.networks?.[network]?.ipam?.config ?? []).map((c) => c.subnet).filter((s): s is string => !!s);
      const inside = subnets.some((subnet) => {
        const [base, bits] = subnet.split('/');
        const size = 2 ** (32 - Number(bits));
        return Math.floor(ipv4(address) / size) === Math.floor(ipv4(base!) / size);
      });
      if (!inside) problems.push(`services.${name}.networks.${network}.ipv4_address ${address} is outside ${subnets.join(', ') || 'a subnet of its network'}`);
    }
  }
  return problems;
}

/** Relative imports (static and dynamic, types excepted) from `entry`, and the packages imported on the way. */
function importGraph(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const visit = (file: string): void => {
    if (files.has(file)) return;
    files.add(file);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/^\s*(?:import|export)\s+(?!type\s)(?:[^'";]*?\sfrom\s+)?'([^']+)'|import\(\s*'([^']+)'\s*\)/gm)) {
      const spec = (m[1] ?? m[2])!;
      if (spec.startsWith('.')) visit(resolve(dirname(file), spec));
      else if (!spec.startsWith('node:') && !builtinModules.includes(spec)) packages.add(spec.split('/').slice(0, spec.startsWith('@') ? 2 : 1).join('/'));
    }
  };
  visit(entry);
  return { files, packages };
}

function copyProblems(compose: Compose, image: Image, packageJson: { dependencies?: Record<string, string> }): string[] {
  const problems: string[] = [];
  const script = image.entrypoint.find((a) => a.endsWith('.ts'));
  if (!script) return [`the Dockerfile's ENTRYPOINT runs no .ts file: ${JSON.stringify(image.entrypoint)}`];
  const entry = posix.resolve(image.workdir, script);
  const main = repoPathOf(image, entry);
  if (main === null || !existsSync(main)) return [`${entry} (the ENTRYPOINT) comes from no COPY line of the Dockerfile`];
  const { files, packages } = importGraph(main);
  // Relative imports need the repository's layout under the working directory.
  const needed = new Set([...files].map((f) => posix.join(image.workdir, relative(REPO, f))));
  // package.json says "type": "module", which decides how Node loads every .ts file.
  needed.add(posix.join(image.workdir, 'package.json'));
  for (const path of needed) {
    const from = repoPathOf(image, path);
    if (from === null || !existsSync(from)) problems.push(`${path} comes from no COPY line of the Dockerfile`);
  }
  problems.push(...resolveConfig(compose, image).problems.filter((p) => p.includes('COPY')));
  // The image installs production dependencies only (npm ci --omit=dev).
  for (const pkg of packages) if (!packageJson.dependencies?.[pkg]) problems.push(`${pkg} is imported at run time but is not in package.json dependencies`);
  return problems;
}

// ---- the tests

describe('compose.yaml', () => {
  const dockerfile = readFileSync(join(REPO, 'Dockerfile'), 'utf8');
  const image = readImage(dockerfile);
  const packageJson = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
  /** A copy of compose.yaml to break. */
  const broken = (change: (c: Compose) => void, env: Record<string, string> = {}): Compose => {
    const c = readCompose(env);
    change(c);
    return c;
  };
  const setEnv = (c: Compose, key: string, value: string): void => {
    const service = wharfService(c)[1];
    service.environment = { ...environmentOf(service), [key]: value };
  };

  it('sets only WHARF_* variables that Wharf reads', () => {
    expect(envProblems(readCompose(), image)).toEqual([]);
    expect(envProblems(broken((c) => setEnv(c, 'WHARF_DATABASE', 'postgres://x@postgres/wharf')), image)).toEqual([
      expect.stringContaining('environment.WHARF_DATABASE is no setting'),
    ]);
  });

  it("runs a config file the image has, which Wharf's loader accepts with the container's environment", () => {
    // Compose's defaults, and values an operator sets in the shell or an .env file.
    const operator = { WHARF_API_KEY: 'k'.repeat(40), WHARF_OPERATOR_TOKEN: 't'.repeat(40), WHARF_ENCRYPTION_KEY: 'ab'.repeat(32), POSTGRES_PASSWORD: 's3cret-Pass_1' };
    for (const env of [{}, operator] as Record<string, string>[]) {
      const { problems, file, config } = resolveConfig(readCompose(env), image);
      expect(problems).toEqual([]);
      expect(relative(REPO, file!)).toMatch(/^config\//);
      expect(config!.projects.length).toBeGreaterThan(0);
    }
    expect(resolveConfig(broken((c) => setEnv(c, 'WHARF_CONFIG', '/app/config/missing.yaml')), image).problems).toEqual([expect.stringContaining('does not exist')]);
    expect(resolveConfig(broken((c) => setEnv(c, 'WHARF_CONFIG', '/etc/wharf.yaml')), image).problems).toEqual([expect.stringContaining('comes from no COPY line')]);
    expect(resolveConfig(broken((c) => setEnv(c, 'WHARF_PORT', 'http')), image).problems).toEqual([expect.stringContaining('server.port (from WHARF_PORT)')]);
    // A key shorter than the schema allows is refused by name, whatever compose passes.
    expect(resolveConfig(readCompose({ WHARF_OPERATOR_TOKEN: 'short' }), image).problems).toEqual([expect.stringContaining('server.operator_token')]);
  });

  it("publishes and probes the port Wharf listens on, on every interface", () => {
    expect(portProblems(readCompose(), image)).toEqual([]);
    expect(portProblems(broken((c) => (wharfService(c)[1].ports = ['5005:8080'])), image)).toEqual([expect.stringContaining('not Wharf\'s port 5005')]);
    expect(portProblems(broken((c) => setEnv(c, 'WHARF_PORT', '6000')), image)).toEqual([
      expect.stringContaining('not Wharf\'s port 6000'),
      expect.stringContaining('probes port 5005, Wharf listens on 6000'),
      expect.stringContaining('EXPOSEs 5005, not 6000'),
    ]);
    expect(portProblems(broken((c) => delete wharfService(c)[1].healthcheck), image)).toEqual([expect.stringContaining('probes no /healthz URL')]);
    expect(portProblems(broken((c) => setEnv(c, 'WHARF_HOST', '127.0.0.1')), image)).toEqual([expect.stringContaining('unreachable from outside')]);
  });

  it('points Wharf at the compose Postgres with its credentials, once it is healthy', () => {
    expect(databaseProblems(readCompose({ POSTGRES_PASSWORD: 's3cret' }), image)).toEqual([]);
    expect(databaseProblems(broken((c) => setEnv(c, 'WHARF_DATABASE_URL', 'postgres://wharf:wharf@db:5432/wharf')), image)).toEqual([expect.stringContaining('no service')]);
    expect(databaseProblems(broken((c) => (c.services.postgres!.environment = { ...environmentOf(c.services.postgres!), POSTGRES_DB: 'other' })), image)).toEqual([
      expect.stringContaining('POSTGRES_DB differ'),
    ]);
    expect(databaseProblems(broken((c) => setEnv(c, 'WHARF_DATABASE_URL', '')), image)).toEqual([expect.stringContaining('embedded database')]);
    expect(databaseProblems(broken((c) => (wharfService(c)[1].depends_on = ['postgres'])), image)).toEqual([expect.stringContaining('service_healthy')]);
  });

  it('depends only on services that exist, have healthchecks and start without a profile', () => {
    expect(dependsProblems(readCompose())).toEqual([]);
    expect(dependsProblems(broken((c) => (wharfService(c)[1].depends_on = { postgres: { condition: 'service_healthy' }, cache: {} })))).toEqual([expect.stringContaining('names cache')]);
    expect(dependsProblems(broken((c) => delete c.services.postgres!.healthcheck))).toEqual([expect.stringContaining('which has no healthcheck')]);
    expect(dependsProblems(broken((c) => (wharfService(c)[1].depends_on = { rabbitmq: { condition: 'service_healthy' } })))).toEqual([expect.stringContaining('behind profile brokers')]);
  });

  it('keeps RabbitMQ and a Kafka-compatible broker, with healthchecks, behind the brokers profile', () => {
    expect(profileProblems(readCompose())).toEqual([]);
    expect(profileProblems(broken((c) => delete c.services.rabbitmq!.profiles))).toEqual([expect.stringContaining('rabbitmq (rabbitmq) is not behind')]);
    expect(profileProblems(broken((c) => delete c.services.redpanda))).toEqual(['no kafka service behind the brokers profile']);
    expect(profileProblems(broken((c) => (c.services.postgres!.profiles = [PROFILE])))).toEqual([expect.stringContaining('postgres is behind a profile')]);
    expect(profileProblems(broken((c) => delete c.services.redpanda!.healthcheck))).toEqual([expect.stringContaining('has no healthcheck')]);
  });

  it('gives the brokers fixed addresses inside their network', () => {
    expect(addressProblems(readCompose())).toEqual([]);
    expect(addressProblems(broken((c) => ((c.services.rabbitmq!.networks as Mapping).wharf = { ipv4_address: '172.30.90.10' })))).toEqual([
      expect.stringContaining('outside 172.30.89.0/24'),
    ]);
  });

  it("builds an image holding everything Wharf loads: sources, connectors, config and production dependencies", () => {
    expect(copyProblems(readCompose(), image, packageJson)).toEqual([]);
    const without = (pattern: RegExp) => readImage(dockerfile.replace(pattern, ''));
    expect(copyProblems(readCompose(), without(/^COPY connectors .*$/m), packageJson)).toContain('/app/connectors/rabbitmq.ts comes from no COPY line of the Dockerfile');
    expect(copyProblems(readCompose(), without(/^COPY config .*$/m), packageJson)).toEqual([expect.stringContaining('(WHARF_CONFIG) comes from no COPY')]);
    expect(copyProblems(readCompose(), without(/^COPY package\.json \.\/$/m), packageJson)).toEqual(['/app/package.json comes from no COPY line of the Dockerfile']);
    const { amqplib: _, ...rest } = packageJson.dependencies!;
    expect(copyProblems(readCompose(), image, { dependencies: rest })).toEqual(['amqplib is imported at run time but is not in package.json dependencies']);
  });
});
