// The native-free storage engine: segment files, pure JavaScript (node: modules and
// msgpackr's JavaScript build only), the same semantics as the LMDB engine. docs/NATIVE-FREE.md.
import type { StorageEngine } from '../../log/engine.js';
import { DEFAULT_COMMIT_STORE_OPTIONS, SegmentCommitStore } from './commit-store.js';
import { SegmentMetadataStore } from './metadata.js';
import { SegmentReader } from './reader.js';
import { SegmentRetentionView } from './retention-view.js';

export const nativeFreeEngine: StorageEngine = {
  name: 'native-free',
  openReader: (dataDir) => new SegmentReader(dataDir),
  openCommitStore: (dataDir, tuning = {}) => new SegmentCommitStore(dataDir, { ...DEFAULT_COMMIT_STORE_OPTIONS, ...tuning }),
  openMetadata: (dataDir) => new SegmentMetadataStore(dataDir),
  openRetentionView: (dataDir) => new SegmentRetentionView(dataDir),
};
