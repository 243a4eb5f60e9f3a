import type { Kafka } from 'kafkajs';
import type { Logger } from '../log.ts';
import type { RecordWriter } from './record-writer.ts';
import { KafkaTable } from './table.ts';

export type JsonTableOptions = {
  readonly kafka: Kafka;
  readonly topic: string;
  readonly groupPrefix: string;
  readonly logger: Logger;
};

/** What checks a record's parsed JSON (a zod schema): throws when it is not a V. */
export type JsonRecordSchema<V> = { readonly parse: (value: unknown) => V };

/**
 * A compacted topic of JSON records, each checked by its schema, read whole into memory by every
 * replica and followed live (KafkaTable). What this replica writes is durable first, then
 * visible here at once (read-your-writes). The base of the pipeline's tables: organisations,
 * session links, posted replies, held ticket events.
 */
export class JsonTable<V> {
  protected readonly table: KafkaTable<V>;
  protected readonly topic: string;

  constructor(schema: JsonRecordSchema<V>, options: JsonTableOptions) {
    this.topic = options.topic;
    this.table = new KafkaTable<V>({
      kafka: options.kafka,
      topic: options.topic,
      groupPrefix: options.groupPrefix,
      decode: (raw) => schema.parse(JSON.parse(raw.toString('utf8'))),
      logger: options.logger,
    });
  }

  /** Resolves once the table holds everything that was on its topic. */
  start(): Promise<void> {
    return this.table.start();
  }

  stop(): Promise<void> {
    return this.table.stop();
  }

  /** Waits (5 s at most) until the table holds everything on its topic now: before trusting a miss. */
  catchUp(): Promise<boolean> {
    return this.table.catchUp();
  }

  /** Durable (acks=all) before it returns, and visible here at once; a value of undefined is a tombstone. */
  protected async writeThrough(
    writer: Pick<RecordWriter, 'write'>,
    entries: readonly { readonly key: string; readonly value: V | undefined }[],
    what: string,
  ): Promise<void> {
    await writer.write(
      this.topic,
      entries.map(({ key, value }) => ({ key, value: value === undefined ? null : JSON.stringify(value) })),
      what,
    );
    for (const { key, value } of entries) this.table.applyLocal(key, value);
  }
}
