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
