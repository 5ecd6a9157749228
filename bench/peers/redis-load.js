// Load generator for Redis Streams, with the command line and the JSON result of
// bench/load.js: N writer connections pipelining XADD, M tailer connections looping on
// XREAD BLOCK from the start of their log. A "log" is one stream key; the script starts its
// own redis-server (bench/peers/servers.js) unless given --url.
//
//   node bench/peers/redis-load.js [options]
//
//   --connections N   writer connections (default 16), each its own client connection
//   --tailers M       tailer connections (default 4); tailer t tails log t % L from the start
//   --logs L          logs (stream keys), spread over the writers (default 16)
//   --size B          entry bytes (default 100; ≥ 8 carries a send timestamp for tail latency)
//   --seconds S       measured seconds, after the warm-up (default 10)
//   --warmup S        warm-up seconds (default 1)
//   --pipeline P      XADDs in flight (not yet answered) per connection (default 256)
//   --rate R          open loop: R appends/s in total, spread evenly over the connections
//                     (still at most P in flight each; latency counts from the scheduled time)
//   --durability D    fsync (default: appendfsync always) or relaxed (appendfsync everysec);
//                     see bench/peers/README.md
//   --url redis://…   use a running server instead of starting one (the keys are deleted after;
//                     its durability is whatever that server is configured with)
//   --timeout MS      per-XADD timeout (default 10000): a timeout counts as trouble
//   --client lean|official
//                     lean (default) speaks RESP2 over node:net (bench/peers/lean.js), writers
//                     and tailers; official uses ioredis (auto-pipelining), which tops out near
//                     110 k XADD/s of client CPU here
//   --json            print only the JSON line on stdout
//   --verbose         progress and server output on stderr
//
// Appends are `XADD key * d <payload>`, pipelined: up to P unanswered per connection, the
// commands of one tick in one socket write. Tailers run `XREAD COUNT n BLOCK 0 STREAMS key
// <last id>` in a loop from 0-0 (n = 10000, fewer for large entries: about 1 MiB a reply,
// at least 16). After the drain the keys' XLEN must add up to the acknowledged appends.
// The last line on stdout is one JSON object (the fields of bench/load.js where they
// exist, plus system and durability); exits 1 when the run saw errors, timeouts,
// unanswered appends or tailers short of their logs, 2 on bad options.
import { Redis } from 'ioredis';
import { main } from './common.js';
import { RedisConnection } from './lean.js';
import { startRedis } from './servers.js';

function ioredis(url, extra = {}) {
  return new Redis(url, {
    protocol: 2,
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null, // a dropped connection is trouble, not retried
    autoResendUnfulfilledCommands: false,
    enableReadyCheck: true,
    ...extra,
  });
}

/** Calls onEntry(payload, order) for each entry of an XREAD reply; returns the last id (or null). */
function deliver(reply, state, onEntry) {
  let last = null;
  for (const [, entries] of reply) {
    for (const [idBuffer, fields] of entries) {
      const id = idBuffer.toString('latin1');
      const dash = id.indexOf('-');
      const ms = Number(id.slice(0, dash));
      if (state.baseMs === null) state.baseMs = ms;
      // Entry ids are <ms>-<seq>: an increasing number without losing precision.
      onEntry(fields[1], (ms - state.baseMs) * 1e6 + Number(id.slice(dash + 1)));
      last = id;
    }
  }
  return last;
}

const driver = {
  system: 'redis',

  start: ({ durability, verbose }) => startRedis({ durability, verbose }),

  async prepare({ url, runId, logs, options }) {
    const keys = Array.from({ length: logs }, (_, i) => `tgbench:${runId}:${i}`);
    const admin = await RedisConnection.connect(url, { timeoutMs: 30000 });
    const tailBatch = Math.max(16, Math.min(10000, Math.floor((1 << 20) / (options.size + 64))));
    return { url, keys, options, admin, tailBatch };
  },

  async openWriter(context, index) {
    const { keys, options } = context;
    if (options.client === 'lean') {
      const connection = await RedisConnection.connect(context.url, { timeoutMs: options.timeoutMs });
      const heads = keys.map((key) => RedisConnection.xaddHead(key, options.size));
      return {
        copiesPayload: true,
        append: (logIndex, payload, done) => connection.xadd(heads[logIndex], payload, done),
        close: () => connection.close(),
      };
    }
    const redis = ioredis(context.url, {
      connectionName: `tailgrove-bench-w${index}`,
      enableAutoPipelining: true,
      commandTimeout: options.timeoutMs,
    });
    await redis.connect();
    return {
      copiesPayload: false,
      append: (logIndex, payload, done) => {
        redis.xadd(keys[logIndex], '*', 'd', payload).then(() => done(null), done);
      },
      close: () => redis.quit().catch(() => redis.disconnect()),
    };
  },

  async openTailer(context, index, logIndex, onEntry, onError) {
    const key = context.keys[logIndex];
    const state = { baseMs: null };
    let closed = false;
    let read;
    let shut;
    if (context.options.client === 'lean') {
      const connection = await RedisConnection.connect(context.url, { timeoutMs: 0 });
      read = (last) => connection.call('XREAD', 'COUNT', context.tailBatch, 'BLOCK', 0, 'STREAMS', key, last);
      shut = () => connection.close();
    } else {
      const redis = ioredis(context.url, { connectionName: `tailgrove-bench-t${index}` });
      await redis.connect();
      read = (last) => redis.xreadBuffer('COUNT', context.tailBatch, 'BLOCK', 0, 'STREAMS', key, last);
      shut = () => redis.disconnect();
    }
    const loop = (async () => {
      let last = '0-0';
      while (!closed) {
        let reply;
        try {
          reply = await read(last);
        } catch (error) {
          if (!closed) onError(error);
          return;
        }
        if (reply) last = deliver(reply, state, onEntry) ?? last;
      }
    })();
    return {
      close: async () => {
        closed = true;
        shut(); // ends the blocked XREAD
        await loop;
      },
    };
  },

  async count(context) {
    let total = 0;
    for (const key of context.keys) total += await context.admin.call('XLEN', key);
    return total;
  },

  async cleanup(context) {
    await context.admin.call('DEL', ...context.keys);
  },

  async close(context) {
    context.admin.close();
  },

  classify(error) {
    if (error?.code === 'TIMEOUT' || /timed out|timeout/i.test(error?.message ?? '')) return 'timeout';
    const prefix = /^([A-Z]+) /.exec(error?.message ?? '');
    return prefix ? `redis ${prefix[1]}` : error?.name ?? 'error';
  },
};

await main(driver, import.meta.url);
