// GET /metrics: the Prometheus exposition, built with prom-client when scraped. Gauges and
// counters read the shared metrics blocks in their collect() callbacks. The pipeline's
// histograms are already bucketed in shared memory, and prom-client has no way to import
// bucket counts, so they are small metric objects of our own that the registry formats.
import { Counter, Gauge, Registry, collectDefaultMetrics, type MetricType, type MetricObjectWithValues, type MetricValueWithName } from 'prom-client';
import { ERROR_NAMES } from '../net/protocol.js';
import type { IoMetrics } from './io-metrics.js';
import type { PipelineMetricsReader } from './pipeline-reader.js';
import {
  BATCH_SIZE_BUCKETS,
  DISK_COMMIT_HISTOGRAM,
  DISK_COMMITS,
  DURATION_BUCKETS_MS,
  ERROR_CODE_SLOTS,
  PHASE_COUNT,
  PHASE_NAMES,
  WORKER_APPENDS,
  WORKER_BATCHES,
  WORKER_BATCH_SIZE_HISTOGRAM,
  WORKER_DELIVERED,
  WORKER_ERRORS,
  WORKER_LEASES,
  WORKER_LOGS,
  WORKER_SLOW_BATCHES,
  WORKER_TAILS,
  WORKER_TRIMMED,
  phaseHistogram,
} from './pipeline-metrics.js';

export interface RingOccupancy {
  worker: number;
  ring: 'input' | 'output' | 'staging';
  usedBytes: number;
  capacityBytes: number;
}

export interface MetricsSources {
  pipeline: PipelineMetricsReader;
  io: IoMetrics;
  connections: () => number;
  sessions: () => number;
  ready: () => boolean;
  rings: () => RingOccupancy[];
  /** Offline notifications, when on. */
  notifications: (() => NotificationStats) | undefined;
}

export interface NotificationStats {
  notifications: number;
  rateLimited: number;
  pushSent: number;
  pushFailed: number;
  pushGone: number;
  webhookDelivered: number;
  webhookFailed: number;
  webhookDropped: number;
  webhookRetries: number;
}

interface HistogramSeries {
  labels: Record<string, string>;
  blocks: readonly Float64Array[];
  at: number;
}

/** A histogram whose buckets live in shared memory (see the header). */
class SharedHistogram {
  readonly name: string;
  readonly help: string;
  private readonly reader: PipelineMetricsReader;
  private readonly buckets: readonly number[];
  private readonly scale: number;
  private readonly series: () => HistogramSeries[];

  /** `scale` converts the stored unit to the exported one (milliseconds to seconds). */
  constructor(name: string, help: string, reader: PipelineMetricsReader, buckets: readonly number[], scale: number, series: () => HistogramSeries[]) {
    this.name = name;
    this.help = help;
    this.reader = reader;
    this.buckets = buckets;
    this.scale = scale;
    this.series = series;
  }

  get(): Omit<MetricObjectWithValues<MetricValueWithName<string>>, 'collect'> {
    const values: MetricValueWithName<string>[] = [];
    for (const { labels, blocks, at } of this.series()) {
      const sample = this.reader.histogram(blocks, at, this.buckets);
      this.buckets.forEach((bound, index) => {
        values.push({ metricName: `${this.name}_bucket`, labels: { ...labels, le: bound * this.scale }, value: sample.cumulative[index]! });
      });
      values.push({ metricName: `${this.name}_bucket`, labels: { ...labels, le: '+Inf' }, value: sample.cumulative[this.buckets.length]! });
      values.push({ metricName: `${this.name}_sum`, labels, value: sample.sum * this.scale });
      values.push({ metricName: `${this.name}_count`, labels, value: sample.count });
    }
    return { name: this.name, help: this.help, type: 'histogram' as unknown as MetricType, values, aggregator: 'sum' };
  }

  reset(): void {}
}

export function createMetricsRegistry(sources: MetricsSources): Registry {
  const registry = new Registry();
  const { pipeline, io } = sources;
  collectDefaultMetrics({ register: registry });

  const gauge = (name: string, help: string, read: () => number): void => {
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read());
      },
    });
  };
  const counter = (name: string, help: string, read: () => number): void => {
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  };

  gauge('tailgrove_ready', '1 once recovery has finished and the server accepts sessions', () => (sources.ready() ? 1 : 0));
  gauge('tailgrove_connections', 'open WebSocket connections', sources.connections);
  gauge('tailgrove_sessions', 'connected sessions', sources.sessions);
  gauge('tailgrove_logs', 'logs held in memory by the workers', () => pipeline.sum(WORKER_LOGS));
  gauge('tailgrove_leases', 'leases held by sessions', () => pipeline.sum(WORKER_LEASES));
  gauge('tailgrove_tails', 'tails running', () => pipeline.sum(WORKER_TAILS));
  counter('tailgrove_batches_total', 'batches run (every worker runs each batch)', () => pipeline.workers[0]![WORKER_BATCHES]!);
  counter('tailgrove_slow_batches_total', 'batches of a worker slower than --slow-batch-ms', () => pipeline.sum(WORKER_SLOW_BATCHES));
  counter('tailgrove_appends_total', 'entries appended and acknowledged (after their commit)', () => pipeline.sum(WORKER_APPENDS));
  counter('tailgrove_entries_delivered_total', 'entries sent to devices: live pushes, catch-up and reads', () => pipeline.sum(WORKER_DELIVERED));
  counter('tailgrove_entries_trimmed_total', 'entries removed by retention', () => pipeline.sum(WORKER_TRIMMED));
  counter('tailgrove_commits_total', 'group commits of the storage engine (each one fsync)', () => pipeline.disk[DISK_COMMITS]!);
  counter('tailgrove_slow_consumer_pauses_total', 'times a backed-up socket had its tails paused', () => io.pauses);
  counter('tailgrove_upgrades_refused_total', 'WebSocket upgrades refused (connection limits, recovery)', () => io.upgradesRefused);

  const notifications = sources.notifications;
  if (notifications !== undefined) {
    counter('tailgrove_notifications_total', 'offline notifications made (one per user per interval at most)', () => notifications().notifications);
    counter('tailgrove_notifications_rate_limited_total', 'notifications dropped by the per-user hourly cap', () => notifications().rateLimited);
    counter('tailgrove_push_sent_total', 'Web Push messages accepted by push services', () => notifications().pushSent);
    counter('tailgrove_push_failed_total', 'Web Push messages refused or undeliverable', () => notifications().pushFailed);
    counter('tailgrove_push_gone_total', 'push subscriptions forgotten because the push service said gone (404/410)', () => notifications().pushGone);
    counter('tailgrove_webhook_delivered_total', 'webhook deliveries answered 2xx', () => notifications().webhookDelivered);
    counter('tailgrove_webhook_failed_total', 'webhook notifications given up after retries or refused', () => notifications().webhookFailed);
    counter('tailgrove_webhook_dropped_total', 'webhook notifications dropped by the bounded queue', () => notifications().webhookDropped);
    counter('tailgrove_webhook_retries_total', 'webhook delivery attempts retried', () => notifications().webhookRetries);
  }

  new Counter({
    name: 'tailgrove_errors_total',
    help: 'error frames sent to devices, by error name',
    labelNames: ['code'],
    registers: [registry],
    collect() {
      this.reset();
      for (let code = 1; code < ERROR_CODE_SLOTS; code++) {
        const count = pipeline.sum(WORKER_ERRORS + code) + io.errors[code]!;
        if (count > 0) this.inc({ code: ERROR_NAMES[code] ?? String(code) }, count);
      }
    },
  });
  new Gauge({
    name: 'tailgrove_ring_used_bytes',
    help: 'bytes published and not yet consumed in each ring',
    labelNames: ['worker', 'ring'],
    registers: [registry],
    collect() {
      for (const ring of sources.rings()) this.set({ worker: String(ring.worker), ring: ring.ring }, ring.usedBytes);
    },
  });
  new Gauge({
    name: 'tailgrove_ring_capacity_bytes',
    help: 'capacity of each ring',
    labelNames: ['worker', 'ring'],
    registers: [registry],
    collect() {
      for (const ring of sources.rings()) this.set({ worker: String(ring.worker), ring: ring.ring }, ring.capacityBytes);
    },
  });

  const seconds = 1 / 1000;
  registry.registerMetric(
    new SharedHistogram('tailgrove_batch_size', 'records and tailers processed per batch, all workers together', pipeline, BATCH_SIZE_BUCKETS, 1, () => [
      { labels: {}, blocks: [pipeline.workers[0]!], at: WORKER_BATCH_SIZE_HISTOGRAM },
    ]) as never,
  );
  registry.registerMetric(
    new SharedHistogram('tailgrove_phase_duration_seconds', 'time one worker spent in a phase of a batch', pipeline, DURATION_BUCKETS_MS, seconds, () =>
      Array.from({ length: PHASE_COUNT }, (_, phase) => ({ labels: { phase: PHASE_NAMES[phase]! }, blocks: pipeline.workers, at: phaseHistogram(phase) })),
    ) as never,
  );
  registry.registerMetric(
    new SharedHistogram('tailgrove_commit_duration_seconds', 'group commit latency of the storage engine, fsync included', pipeline, DURATION_BUCKETS_MS, seconds, () => [
      { labels: {}, blocks: [pipeline.disk], at: DISK_COMMIT_HISTOGRAM },
    ]) as never,
  );
  return registry;
}
