import pino, { type DestinationStream, type Logger } from 'pino';

/** Fields that may carry credentials; pino replaces them wherever they appear. */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'headers.authorization',
  'headers.cookie',
  '*.authorization',
  '*.Authorization',
  '*.secret',
  '*.secrets',
  '*.api_key',
  '*.api_keys',
  '*.password',
  '*.encryption_key',
  '*.client_secret',
  '*.header_value',
];

export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options = { level, redact: { paths: REDACT_PATHS, censor: '[redacted]' }, base: { service: 'wharf' } };
  return destination ? pino(options, destination) : pino(options);
}

/**
 * Node's process warnings as log lines, instead of loose text on stderr beside the JSON. One is
 * dropped: kafkajs 2.2.4 arms a timer with a negative delay on Node 24 (kafkajs#1751, unfixed in
 * its last release); Node runs it after 1 ms, which is what kafkajs means, and says so once per
 * client. Warnings from anywhere else, that one included, are logged.
 */
export function logProcessWarnings(logger: Logger): void {
  for (const listener of process.listeners('warning')) process.removeListener('warning', listener);
  process.on('warning', (warning) => {
    if (warning.name === 'TimeoutNegativeWarning' && /[\\/]kafkajs[\\/]/.test(warning.stack ?? '')) return;
    logger.warn({ warning: warning.name, code: (warning as { code?: unknown }).code }, warning.message);
  });
}
