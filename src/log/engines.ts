// Storage engines by name, loaded on demand: a thread imports only the engine it runs, so the
// native-free engine never loads lmdb-js (a native addon) at all.
import type { EngineName, StorageEngine } from './engine.js';

export async function loadEngine(name: EngineName): Promise<StorageEngine> {
  if (name === 'native') return (await import('./lmdb-engine.js')).lmdbEngine;
  return (await import('../native-free/storage/engine.js')).nativeFreeEngine;
}
