import { ErrorCode, PipelineError, describeError } from '../../errors.ts';

/**
 * How a caller's records may share a send. After a record-level refusal of a shared send, each
 * caller of it is sent on its own; if its own send is refused too, one record at a time: so only
 * the guilty caller fails.
 */
export type Isolation = 'shared' | 'caller' | 'record';

/** Kafka refused a record or the records of one partition, not the request as a whole. */
const RECORD_LEVEL_ERRORS: ReadonlySet<string> = new Set([
  'MESSAGE_TOO_LARGE',
  'RECORD_LIST_TOO_LARGE',
  'INVALID_RECORD',
  'CORRUPT_MESSAGE',
]);
const SIZE_ERRORS: ReadonlySet<string> = new Set(['MESSAGE_TOO_LARGE', 'RECORD_LIST_TOO_LARGE']);

/** kafkajs wraps a broker's error code (`type`) in retry errors; the first one found names it. */
export const kafkaErrorTypeOf = (error: unknown): string | undefined => {
  for (let current = error, depth = 0; current instanceof Error && depth < 8; depth++) {
    const type = (current as { type?: unknown }).type;
    if (typeof type === 'string') return type;
    current = current.cause;
  }
  return undefined;
};

/** What a failed send was: how many callers and records it carried, over how many partitions. */
export type FailedSend = { readonly callers: number; readonly records: number; readonly partitions: number };

/**
 * What follows a failed send. `replaceProducer`: kafkajs rolled back the idempotent sequence
 * numbers of every partition of the request, so only a record-level refusal of a one-partition
 * request leaves the producer sound. Then either its callers are sent again, more isolated
 * (`isolate`: a record of a shared send was refused, so only the guilty caller fails), or they
 * fail with `error`; `writesFailing` when the fault was Kafka's, not a record's.
 */
export type AfterFailedSend = { readonly replaceProducer: boolean } & (
  | { readonly kind: 'isolate'; readonly isolation: Exclude<Isolation, 'shared'> }
  | { readonly kind: 'fail'; readonly error: PipelineError; readonly writesFailing: boolean }
);

export const afterFailedSend = (error: unknown, send: FailedSend): AfterFailedSend => {
  const type = kafkaErrorTypeOf(error);
  const recordLevel = type !== undefined && RECORD_LEVEL_ERRORS.has(type);
  const replaceProducer = !(recordLevel && send.partitions === 1);
  // Partitions the broker already wrote are written again when isolated: a duplicate, never a loss.
  if (recordLevel && (send.callers > 1 || send.records > 1))
    return { replaceProducer, kind: 'isolate', isolation: send.callers > 1 ? 'caller' : 'record' };
  const failure =
    recordLevel && SIZE_ERRORS.has(type)
      ? new PipelineError(
          ErrorCode.recordTooLarge,
          `Kafka refused a record as too large: ${describeError(error)}`,
          {
            retriable: false,
            cause: error,
          },
        )
      : new PipelineError(ErrorCode.kafkaUnavailable, `not written to Kafka: ${describeError(error)}`, {
          retriable: true,
          cause: error,
        });
  return { replaceProducer, kind: 'fail', error: failure, writesFailing: !recordLevel };
};
