// Load generator for NATS JetStream, with the command line and the JSON result of
// bench/load.js: N writer connections publishing with acks, M tailer connections on ordered
// push consumers from the start of their log. A "log" is one subject of one stream (or,
// with --streams per-log, of its own stream; file storage, 1 replica); the script starts its
// own nats-server (bench/peers/servers.js) unless given --url.
//
//   node bench/peers/nats-load.js [options]
//
//   --connections N   writer connections (default 16), each its own NATS connection
//   --tailers M       tailer connections (default 4); tailer t tails log t % L from the start
//   --logs L          logs (subjects), spread over the writers (default 16)
//   --size B          entry bytes (default 100; ≥ 8 carries a send timestamp for tail latency)
//   --seconds S       measured seconds, after the warm-up (default 10)
//   --warmup S        warm-up seconds (default 1)
//   --pipeline P      publishes in flight (not yet acknowledged) per connection (default 256)
//   --rate R          open loop: R appends/s in total, spread evenly over the connections
//                     (still at most P in flight each; latency counts from the scheduled time)
//   --durability D    fsync (default: every acknowledged publish is on disk) or relaxed
//                     (the default file store); see bench/peers/README.md
//   --url nats://…    use a running server instead of starting one (the streams are deleted after)
//   --timeout MS      per-publish ack timeout (default 10000): a timeout counts as trouble
//   --client lean|official
//                     publishers: lean (default) speaks the NATS protocol over node:net
//                     (bench/peers/lean.js); official uses js.publish() of the `nats` package
//                     (which tops out near 45 k publishes/s of client CPU here). Tailers always
//                     use the `nats` package's ordered consumers.
//   --streams one|per-log
//                     one (default): every log is a subject of one stream; per-log: a stream
//                     per log (JetStream writes each stream's messages one at a time, so in
//                     fsync mode per-log lets the syncs of different logs overlap)
//   --json            print only the JSON line on stdout
//   --verbose         progress and server output on stderr
//
// Appends are publishes answered by a PubAck (what js.publish() sends and awaits), up to P
// un-acknowledged per connection. After the drain the streams' message count must equal
// the acknowledged publishes. The last line on stdout is one JSON object (the fields of
// bench/load.js where they exist, plus system and durability); exits 1 when the run saw
// errors, timeouts, unacknowledged publishes or tailers short of their logs, 2 on bad
// options.
import { connect, consumerOpts, StorageType, RetentionPolicy, DiscardPolicy } from 'nats';
import { main } from './common.js';
import { NatsPublisher } from './lean.js';
import { startNats } from './servers.js';

const CONNECT = { reconnect: false, noAsyncTraces: true, pingInterval: 60_000, maxPingOut: 5, timeout: 10_000 };

const driver = {
  system: 'nats',

  options: {
    streams: { type: 'string', default: 'one', check: (value) => (value === 'one' || value === 'per-log' ? null : 'is one or per-log') },
  },

  start: ({ durability, verbose }) => startNats({ durability, verbose }),

  async prepare({ url, runId, logs, options }) {
    const nc = await connect({ ...CONNECT, servers: url, name: 'tailgrove-bench-admin' });
    const jsm = await nc.jetstreamManager();
    const prefix = `tgbench.${runId}`;
    const subjects = Array.from({ length: logs }, (_, i) => `${prefix}.${i}`);
    const config = (name, subjectList) => ({
      name,
      subjects: subjectList,
      storage: StorageType.File,
      num_replicas: 1,
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
      max_msgs: -1,
      max_bytes: -1,
      max_age: 0,
    });
    const streams = options.streams === 'per-log' ? subjects.map((subject, i) => config(`TGBENCH_${runId}_${i}`, [subject])) : [config(`TGBENCH_${runId}`, [`${prefix}.>`])];
    for (const stream of streams) await jsm.streams.add(stream);
    return { url, nc, jsm, streams: streams.map((stream) => stream.name), subjects, options };
  },

  async openWriter(context, index) {
    const { subjects, options } = context;
    const name = `tailgrove-bench-w${index}`;
    if (options.client === 'lean') {
      const publisher = await NatsPublisher.connect(context.url, { timeoutMs: options.timeoutMs, name });
      const heads = subjects.map((subject) => publisher.pubHead(subject));
      return {
        copiesPayload: true,
        append: (logIndex, payload, done) => publisher.publish(heads[logIndex], payload, done),
        close: () => publisher.close(),
      };
    }
    const nc = await connect({ ...CONNECT, servers: context.url, name });
    const js = nc.jetstream({ timeout: options.timeoutMs });
    return {
      copiesPayload: false,
      append: (logIndex, payload, done) => {
        js.publish(subjects[logIndex], payload).then(() => done(null), done);
      },
      close: () => nc.close(),
    };
  },

  async openTailer(context, index, logIndex, onEntry, onError) {
    const nc = await connect({ ...CONNECT, servers: context.url, name: `tailgrove-bench-t${index}` });
    const js = nc.jetstream();
    const opts = consumerOpts();
    opts.orderedConsumer(); // ephemeral, in order, no acks, flow control, resets on gaps
    opts.deliverAll();
    opts.callback((error, message) => {
      if (error) return onError(error);
      if (message) onEntry(message.data, message.seq);
    });
    const sub = await js.subscribe(context.subjects[logIndex], opts);
    return {
      close: async () => {
        sub.unsubscribe();
        await nc.close();
      },
    };
  },

  async count(context) {
    let total = 0;
    for (const stream of context.streams) total += (await context.jsm.streams.info(stream)).state.messages;
    return total;
  },

  async cleanup(context) {
    for (const stream of context.streams) await context.jsm.streams.delete(stream);
  },

  async close(context) {
    await context.nc.close();
  },

  classify(error) {
    const code = error?.code;
    if (code === 'TIMEOUT' || /timeout/i.test(error?.message ?? '')) return 'timeout';
    return code ? `nats ${code}` : error?.name ?? 'error';
  },
};

await main(driver, import.meta.url);
