// The disk thread: the only LMDB writer. Whenever workers have staged records it commits
// everything staged by every worker in one write transaction (group commit; the commit
// returns after fsync), then publishes per worker how far it committed and rings the
// workers, whose io-contributions phase releases acks and pushes.
import { workerData } from 'node:worker_threads';
import { Doorbell } from '../ring/doorbell.js';
import { Ring } from '../ring/ring.js';
import { DISK_DOORBELL, STOP_BATCHES, THREADS_STOPPED, WORK_DOORBELL, type WorkerBuffers } from '../workers/layout.js';
import { applyStaged, type CommitSink } from './commit.js';
import { COMPLETION_KEY_BYTES, ENTRY_KEY_BYTES, writeCompletionKey, writeEntryKey } from './keys.js';
import { openStore, type Store } from './lmdb-store.js';
import { COMMITTED_POSITION } from './staging.js';

export interface DiskThreadData {
  dataDir: string;
  control: SharedArrayBuffer;
  workers: WorkerBuffers[];
}

const IDLE_WAIT_MS = 100;

class LmdbCommitSink implements CommitSink {
  private readonly store: Store;
  private readonly entryKey = Buffer.alloc(ENTRY_KEY_BYTES);
  private readonly completionKey = Buffer.alloc(COMPLETION_KEY_BYTES);
  // lmdb-js misreads values backed by a SharedArrayBuffer, so an entry is first copied to
  // this ordinary buffer; put() copies it into the transaction before returning.
  private value = Buffer.alloc(1 << 20);

  constructor(store: Store) {
    this.store = store;
  }

  entry(logId: number, position: number, data: Buffer): void {
    if (data.length > this.value.length) this.value = Buffer.alloc(data.length);
    data.copy(this.value, 0);
    this.store.entries.put(writeEntryKey(this.entryKey, logId, position), this.value.subarray(0, data.length));
  }

  completion(writerId: number, lsn: number, outcome: number): void {
    this.store.completions.put(writeCompletionKey(this.completionKey, writerId, lsn), outcome);
  }

  writer(writerId: number, logId: number, device: string, epoch: number, lastLsn: number, ackedLsn: number): void {
    this.store.writers.put([logId, device], [writerId, epoch, lastLsn, ackedLsn]);
  }

  log(logId: number, epoch: number, name: string): void {
    this.store.logs.put(name, [logId, epoch]);
  }

  trimCompletions(writerId: number, fromLsn: number, toLsn: number): void {
    for (let lsn = fromLsn; lsn <= toLsn; lsn++) this.store.completions.remove(writeCompletionKey(this.completionKey, writerId, lsn));
  }
}

const data = workerData as DiskThreadData;
const control = new Int32Array(data.control);
const diskDoorbell = new Doorbell(control, DISK_DOORBELL);
const workDoorbell = new Doorbell(control, WORK_DOORBELL);
const rings = data.workers.map((buffers) => new Ring(buffers.arena, buffers.staging));
const committed = data.workers.map((buffers) => new Int32Array(buffers.stagingControl));
const store = openStore(data.dataDir);
const sink = new LmdbCommitSink(store);
const workerCount = data.workers.length;

function commitStaged(): void {
  store.root.transactionSync(() => {
    for (const ring of rings) applyStaged(ring, sink);
  });
}

let seen = diskDoorbell.sequence();
for (;;) {
  let pending = 0;
  for (const ring of rings) pending += ring.refresh();
  if (pending === 0) {
    // Stop once every worker has stopped and nothing is left to commit.
    if (Atomics.load(control, STOP_BATCHES) === 1 && Atomics.load(control, THREADS_STOPPED) >= workerCount) break;
    diskDoorbell.wait(seen, IDLE_WAIT_MS);
    seen = diskDoorbell.sequence();
    continue;
  }
  commitStaged();
  for (let index = 0; index < rings.length; index++) Atomics.store(committed[index]!, COMMITTED_POSITION, rings[index]!.readPosition | 0);
  for (const words of committed) Atomics.notify(words, COMMITTED_POSITION);
  workDoorbell.ring();
}
Atomics.add(control, THREADS_STOPPED, 1);
await store.root.close();
process.exit(0);
