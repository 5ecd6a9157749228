// Rebuild a partition's tables from durable storage at startup: every log of the shards it
// owns with its committed tail and epoch, every writer's epoch and RIFL state, and the
// completion records not yet acknowledged. lastLsn is the larger of the stored writer
// record and the highest completion record (completions are written with their entries;
// the writer record only when its epoch or ack changes).
import { SHARD_COUNT } from '../constants.js';
import { insertLog } from './sessions.js';
import type { Partition } from './state.js';

export interface RecoverySummary {
  logs: number;
  writers: number;
  completions: number;
  entries: number;
}

export function recoverPartition(partition: Partition): RecoverySummary {
  const summary: RecoverySummary = { logs: 0, writers: 0, completions: 0, entries: 0 };
  const mask = SHARD_COUNT - 1;
  for (const log of partition.storage.logs()) {
    const shard = log.logId & mask;
    if (!partition.ownsShard(shard)) continue;
    insertLog(partition, log.name, log.logId, log.epoch, log.tail, log.first, log.bytes);
    const sequence = Math.floor(log.logId / SHARD_COUNT);
    if (sequence >= partition.nextLogSequence[shard]!) partition.nextLogSequence[shard] = sequence + 1;
    summary.logs++;
    summary.entries += log.tail - log.first;
  }
  const writerSlots = new Map<number, number>();
  for (const writer of partition.storage.writers()) {
    const shard = writer.logId & mask;
    if (!partition.ownsShard(shard)) continue;
    const slot = partition.writers.insert(writer.logId, partition.deviceNumber(writer.device));
    const columns = partition.writers.columns;
    columns.writerId[slot] = writer.writerId;
    columns.epoch[slot] = writer.epoch;
    columns.lastLsn[slot] = writer.lastLsn;
    columns.ackedLsn[slot] = writer.ackedLsn;
    columns.trimmedLsn[slot] = writer.ackedLsn;
    writerSlots.set(writer.writerId, slot);
    const sequence = Math.floor(writer.writerId / SHARD_COUNT);
    if (sequence >= partition.nextWriterSequence[shard]!) partition.nextWriterSequence[shard] = sequence + 1;
    summary.writers++;
  }
  for (const completion of partition.storage.completions()) {
    if (!partition.ownsShard(completion.writerId & mask)) continue;
    const writer = writerSlots.get(completion.writerId);
    if (writer === undefined) throw new Error(`recovery: completion record for unknown writer ${completion.writerId}`);
    // Records of acknowledged writes not yet deleted are not restored; the next deletion
    // for this writer starts below them.
    if (completion.lsn <= partition.writers.columns.ackedLsn[writer]!) {
      if (completion.lsn <= partition.writers.columns.trimmedLsn[writer]!) partition.writers.columns.trimmedLsn[writer] = completion.lsn - 1;
      continue;
    }
    const slot = partition.completions.insert(completion.writerId, completion.lsn);
    partition.completions.columns.outcome[slot] = completion.outcome;
    if (completion.lsn > partition.writers.columns.lastLsn[writer]!) partition.writers.columns.lastLsn[writer] = completion.lsn;
    summary.completions++;
  }
  return summary;
}
