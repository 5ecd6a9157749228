// Which engine runs: native (uWebSockets.js + LMDB, both native addons) or native-free (pure
// JavaScript: node:http + ws, segment files). `auto` tries the native addons and falls back,
// saying in one log line what failed and what was chosen. Only the chosen engine's modules
// are loaded, so native-free never touches a `.node` file.
import type { Logger } from 'pino';
import type { EngineChoice } from './config/schema.js';
import type { EngineName, StorageEngine } from './log/engine.js';
import { loadEngine } from './log/engines.js';
import type { UwsTransport } from './native-free/transport/uws-compat.js';

export interface Engine {
  name: EngineName;
  storage: StorageEngine;
  transport: UwsTransport;
}

async function loadTransport(name: EngineName): Promise<UwsTransport> {
  if (name === 'native-free') {
    // ws would try its optional native helpers (bufferutil, utf-8-validate): not even that.
    process.env.WS_NO_BUFFER_UTIL = '1';
    process.env.WS_NO_UTF_8_VALIDATE = '1';
    return (await import('./native-free/transport/uws-compat.js')).default;
  }
  const uWS = (await import('uWebSockets.js')).default as unknown as UwsTransport;
  // This uWebSockets.js build does not throw when its binary cannot load: it warns and returns
  // a JavaScript stand-in. Only the native App will do.
  if (!uWS.App.toString().includes('[native code]')) throw new Error('the uWebSockets.js binary did not load (no build for this platform or Node version)');
  return uWS;
}

async function load(name: EngineName): Promise<Engine> {
  const transport = await loadTransport(name);
  return { name, storage: await loadEngine(name), transport };
}

export async function selectEngine(choice: EngineChoice, logger: Logger): Promise<Engine> {
  if (choice !== 'auto') return load(choice);
  try {
    return await load('native');
  } catch (error) {
    logger.warn({ err: error }, `engine: the native engine cannot run here (${(error as Error).message.split('\n')[0]}); running the native-free engine (pure JavaScript, docs/NATIVE-FREE.md)`);
    return load('native-free');
  }
}
