import { readFile, readdir } from 'node:fs/promises';
import { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import { ConfluentSchemaRegistryValidationError } from '@kafkajs/confluent-schema-registry/dist/errors.js';
import { ErrorCode, PipelineError } from './errors.ts';
import { linearDelay, withRetry } from './retry.ts';
import { avroRecordName, type PipelineEvent, type PipelineEventType } from './domain-events.ts';

const schemasDir = new URL('../schemas/', import.meta.url);

export type AvroSchemaFile = { readonly file: string; readonly name: string; readonly text: string };

export const readAvroSchemas = async (): Promise<AvroSchemaFile[]> => {
  const files = (await readdir(schemasDir)).filter((file) => file.endsWith('.avsc')).sort();
  return Promise.all(
    files.map(async (file) => {
      const text = await readFile(new URL(file, schemasDir), 'utf8');
      const parsed = JSON.parse(text) as { name: string; namespace: string };
      return { file, name: `${parsed.namespace}.${parsed.name}`, text };
    }),
  );
};

const typeByRecordName = new Map<string, PipelineEventType>(
  Object.entries(avroRecordName).map(([type, name]) => [name, type as PipelineEventType]),
);

/** The part of an avsc Type used to write a record (the registry client compiles it). */
type AvroWriter = {
  encode(value: unknown, buffer: Buffer, position: number): number;
  isValid(value: unknown, options: { errorHook: (path: string[]) => void }): boolean;
  readonly fields?: readonly { readonly name: string; readonly type: { readonly typeName?: string } }[];
};

/**
 * A record whose last field, an Avro `string`, is given as UTF-8 bytes (`head` from
 * AvroCodec.encodeRecordHead): Avro writes a string as its byte length (a zigzag varint) and
 * then its bytes, and a record as its fields one after the other, so this is the whole record.
 * The bytes must be valid UTF-8; nothing here checks them.
 */
export const withAvroStringTail = (head: Buffer, utf8: Buffer): Buffer => {
  const length = utf8.length;
  let zigzag = length * 2;
  let varintBytes = 1;
  for (let rest = zigzag; rest >= 0x80; rest = Math.floor(rest / 0x80)) varintBytes++;
  const record = Buffer.allocUnsafe(head.length + varintBytes + length);
  head.copy(record, 0);
  let position = head.length;
  while (zigzag >= 0x80) {
    record[position++] = (zigzag % 0x80) | 0x80;
    zigzag = Math.floor(zigzag / 0x80);
  }
  record[position++] = zigzag;
  utf8.copy(record, position);
  return record;
};

/** Confluent's wire format: a zero magic byte, then the schema id (4 bytes, big-endian), then Avro. */
const WIRE_HEADER_BYTES = 5;

/** The registry did not answer a registration, or answered 5xx: tried again. */
class RegistryUnanswered extends Error {}

/**
 * Avro encoding through a Confluent-compatible registry. Every schema in schemas/ is registered
 * at start under `<topic prefix><record full name>` (record-name strategy: one topic carries
 * several event types); a record's type is read back from its schema id.
 */
export class AvroCodec {
  readonly #registry: SchemaRegistry;
  readonly #subjectPrefix: string;
  readonly #url: string;
  readonly #nameById = new Map<number, string>();
  /** Each registered record's compiled schema, so encoding needs no promise and one buffer. */
  readonly #writerByName = new Map<string, { readonly id: number; readonly type: AvroWriter }>();
  /** Records are written here first (synchronously, so one is enough), then copied out at their size. */
  #scratch = Buffer.allocUnsafe(64 * 1024);

  constructor(options: { url: string; subjectPrefix: string }) {
    this.#registry = new SchemaRegistry({ host: options.url, retry: { retries: 3 } });
    this.#subjectPrefix = options.subjectPrefix;
    this.#url = options.url.replace(/\/$/, '');
  }

  /**
   * Registers every schema of schemas/ (or finds it registered). Registration goes straight to
   * the registry's REST API: the client library's `register` insists the subject's compatibility
   * level equal its own default (BACKWARD) and then sets it, which fails for a subject an
   * operator configured otherwise, and races when several services start at once. Here the
   * registry's own compatibility configuration decides.
   */
  async registerAll(): Promise<void> {
    for (const schema of await readAvroSchemas()) {
      const subject = `${this.#subjectPrefix}${schema.name}`;
      const id = await this.#registerOne(subject, schema.text);
      this.#nameById.set(id, schema.name);
      // Into the client's cache now: it caches a schema only once its fetch returns, so the
      // first burst of records would each fetch and compile it (thousands of requests at start).
      const type = (await this.#registry.getSchema(id)) as unknown as AvroWriter;
      this.#writerByName.set(schema.name, { id, type });
    }
  }

  async #registerOne(subject: string, text: string): Promise<number> {
    const url = `${this.#url}/subjects/${encodeURIComponent(subject)}/versions`;
    return withRetry(
      { attempts: 8, delayMs: linearDelay(250) },
      async () => {
        let response: Response | undefined;
        try {
          response = await fetch(url, {
            method: 'POST',
            headers: {
              'content-type': 'application/vnd.schemaregistry.v1+json',
              accept: 'application/json',
            },
            body: JSON.stringify({ schema: text }),
            signal: AbortSignal.timeout(10000),
          });
        } catch {
          response = undefined;
        }
        if (response?.ok) return ((await response.json()) as { id: number }).id;
        const detail = response
          ? `${response.status} ${(await response.text()).slice(0, 300)}`
          : 'unreachable';
        if (response && response.status < 500) {
          throw new PipelineError(
            ErrorCode.config,
            `schema ${subject} refused by the schema registry (${detail}): is it compatible with the registered versions?`,
            { retriable: false },
          );
        }
        throw new RegistryUnanswered(detail);
      },
      {
        retryIf: (error) => error instanceof RegistryUnanswered,
        giveUp: (error) =>
          new PipelineError(
            ErrorCode.config,
            `schema registry at ${this.#url} did not register ${subject} (${(error as Error).message}): check SCHEMA_REGISTRY_URL`,
            { retriable: false },
          ),
      },
    );
  }

  /**
   * The record in Confluent's wire format, written synchronously with the schema registerAll()
   * compiled: one buffer of the record's size, where the registry client's `encode` takes a
   * promise, a zero-filled buffer and a concatenation per record. A value the schema does not
   * accept throws the client's own ConfluentSchemaRegistryValidationError, naming its paths.
   */
  encodeRecordNow(recordName: string, payload: object): Buffer {
    const writer = this.#writerByName.get(recordName);
    if (writer === undefined)
      throw new Error(`schema ${recordName} is not registered: call registerAll() first`);
    const scratch = this.#scratch;
    scratch[0] = 0;
    scratch.writeInt32BE(writer.id, 1);
    let end: number;
    try {
      end = writer.type.encode(payload, scratch, WIRE_HEADER_BYTES);
      if (end < 0) {
        // Larger than the scratch buffer: written again into one of its exact size (avsc
        // answered how many bytes were missing), which is also the buffer returned.
        const record = Buffer.allocUnsafe(scratch.length - end);
        record[0] = 0;
        record.writeInt32BE(writer.id, 1);
        writer.type.encode(payload, record, WIRE_HEADER_BYTES);
        return record;
      }
    } catch (error) {
      const paths: string[][] = [];
      writer.type.isValid(payload, { errorHook: (path) => paths.push(path) });
      throw new ConfluentSchemaRegistryValidationError(error, paths);
    }
    const record = Buffer.allocUnsafe(end);
    scratch.copy(record, 0, 0, end);
    return record;
  }

  /**
   * A record without its last field, for `withAvroStringTail`: the fields before it written as
   * encodeRecordNow writes them (validated, in Confluent's wire format). The last field must be
   * an Avro `string`; `payload` must not hold it. Records that share everything but their last
   * field (ingest's events of one batch) share one head.
   */
  encodeRecordHead(recordName: string, payload: object): Buffer {
    const writer = this.#writerByName.get(recordName);
    const last = writer?.type.fields?.at(-1);
    if (writer && (last === undefined || last.type.typeName !== 'string'))
      throw new Error(`schema ${recordName} does not end in a string field: encode it with encodeRecordNow`);
    if (last && Object.hasOwn(payload, last.name))
      throw new Error(`encodeRecordHead(${recordName}): the payload holds the last field ${last.name}`);
    // The empty string is one byte, its length 0: the head is everything before it.
    const whole = this.encodeRecordNow(recordName, { ...payload, [last?.name ?? '']: '' });
    return whole.subarray(0, whole.length - 1);
  }

  async encodeRecord(recordName: string, payload: object): Promise<Buffer> {
    return this.encodeRecordNow(recordName, payload);
  }

  async encodeEvent(event: PipelineEvent): Promise<Buffer> {
    const { type, ...record } = event;
    return this.encodeRecordNow(avroRecordName[type], record);
  }

  /** Decodes any record of ours; throws a non-retriable `undecodable` error otherwise. */
  async decodeRecord(buffer: Buffer): Promise<{ recordName: string; record: Record<string, unknown> }> {
    try {
      if (buffer.length < 5 || buffer[0] !== 0) throw new Error('no Confluent magic byte');
      const id = buffer.readInt32BE(1);
      let recordName = this.#nameById.get(id);
      if (recordName === undefined) {
        const schema = (await this.#registry.getSchema(id)) as { name?: string };
        recordName = schema.name ?? `schema-${id}`;
        this.#nameById.set(id, recordName);
      }
      return { recordName, record: (await this.#registry.decode(buffer)) as Record<string, unknown> };
    } catch (error) {
      throw new PipelineError(ErrorCode.undecodable, `cannot decode an Avro record: ${String(error)}`, {
        retriable: false,
        cause: error,
      });
    }
  }

  async decodeEvent(buffer: Buffer): Promise<PipelineEvent> {
    const { recordName, record } = await this.decodeRecord(buffer);
    const type = typeByRecordName.get(recordName);
    if (type === undefined) {
      throw new PipelineError(ErrorCode.undecodable, `record ${recordName} is not a pipeline event`, {
        retriable: false,
      });
    }
    return { type, ...record } as PipelineEvent;
  }
}
