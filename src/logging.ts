// The server's log: pino, JSON lines (one object per line, for log shippers) or pretty
// (for a person at a terminal). Writes are synchronous: the log is small (startup, errors,
// slow batches, shutdown) and must not lose its last lines when the process exits.
import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';

export type LogFormat = 'auto' | 'json' | 'pretty';

export function createLogger(level: string, format: LogFormat): Logger {
  const usePretty = format === 'pretty' || (format === 'auto' && process.stdout.isTTY === true);
  const options = { name: 'tailgrove', level };
  if (usePretty) return pino(options, pretty({ sync: true, destination: 1, ignore: 'pid,hostname,name', translateTime: 'SYS:HH:MM:ss.l' }));
  return pino(options, pino.destination({ dest: 1, sync: true }));
}
