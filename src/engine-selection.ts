// Which engine runs: native (uWebSockets.js + LMDB, both native addons) or native-free (pure
// JavaScript). `auto` tries the native addons and falls back, saying in one log line what
// failed and what was chosen.
import type { Logger } from 'pino';
import type { EngineChoice } from './config/schema.js';
import type { StorageEngine } from './log/engine.js';
import { loadEngine } from './log/engines.js';

/** The native addons the native engine needs, and how to load each. */
const NATIVE_ADDONS: readonly [string, () => Promise<unknown>][] = [
  ['lmdb', () => import('lmdb')],
  ['uWebSockets.js', () => import('uWebSockets.js')],
];

export async function selectEngine(choice: EngineChoice, logger: Logger): Promise<StorageEngine> {
  if (choice !== 'auto') return loadEngine(choice);
  for (const [addon, load] of NATIVE_ADDONS) {
    try {
      await load();
    } catch (error) {
      logger.warn({ addon, err: error }, `engine: the native addon ${addon} cannot load here (${(error as Error).message.split('\n')[0]}); running the native-free engine (pure JavaScript)`);
      return loadEngine('native-free');
    }
  }
  return loadEngine('native');
}
