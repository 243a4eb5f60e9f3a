import type { Consumer, ConsumerGroupJoinEvent } from 'kafkajs';
import type { Logger } from '../../log.ts';

/**
 * Where kafkajs 2.2.4's consumer behaves in a way the keyed consumer must work around. Each can
 * go when kafkajs changes the behaviour it names.
 */

/**
 * kafkajs restarts a consumer that crashed with a retriable error (a broker restart, a rebalance
 * during its stop) even when it was told to disconnect meanwhile: its crash handler schedules the
 * restart after the disconnect cleared the timer. Back in the group, a consumer nobody runs any
 * more would hold partitions that nothing handles, for ever.
 *
 * So, once `stopping()`: a crash that kafkajs is about to restart is disconnected again on the
 * next turn (the timer is set by then, and the disconnect clears it); a restart that got through
 * anyway is caught at its join and leaves the group again, so a live member gets its partitions.
 * Until then, every join is the consumer's (`joined`). `logger` is told of a leave (the live
 * consumer's); without it the consumer leaves quietly.
 */
export const onGroupJoinUnlessStopped = (
  consumer: Consumer,
  stopping: () => boolean,
  joined: (event: ConsumerGroupJoinEvent) => void,
  logger?: Logger,
): void => {
  consumer.on(consumer.events.CRASH, (event) => {
    if (stopping() && event.payload.restart)
      setImmediate(() => void consumer.disconnect().catch(() => undefined));
  });
  consumer.on(consumer.events.GROUP_JOIN, (event) => {
    if (!stopping()) {
      joined(event);
      return;
    }
    if (!logger) {
      void consumer.disconnect().catch(() => undefined);
      return;
    }
    logger.warn(
      { groupId: event.payload.groupId },
      'a stopped consumer rejoined its group (kafkajs restarted it after a crash): leaving again',
    );
    void consumer
      .disconnect()
      .catch((error: unknown) =>
        logger.warn(
          { err: error },
          'stopped consumer did not leave its group; it will when its session times out',
        ),
      );
  });
};

/**
 * kafkajs keeps a partition paused across a rebalance (the pause is in its subscription state,
 * which outlives the group generation). A partition paused for back-pressure whose queued work
 * the new assignment dropped would stay paused if it came back to this consumer, with nothing
 * queued that could resume it: resume them all at the join.
 */
export const resumeAfterRebalance = (
  consumer: Consumer,
  paused: readonly { readonly topic: string; readonly partition: number }[],
): void => {
  if (paused.length > 0)
    consumer.resume(paused.map(({ topic, partition }) => ({ topic, partitions: [partition] })));
};

/** Where a reader stood on a partition when kafkajs restarted it. */
export type ReaderPosition = {
  readonly topic: string;
  readonly partition: number;
  readonly offset: bigint;
  readonly paused: boolean;
};

/**
 * kafkajs restarts a crashed consumer (a broker restart) as a new member of its group that has
 * forgotten every seek and pause: a reader whose group commits nothing starts each partition at
 * its end, and a replay still reading would wait for ever for offsets that never come again, and
 * its tenant's messages with it. At each join, each such partition is pointed back to where it
 * stood, and paused again if it was.
 */
export const pointBackAfterRestart = (
  reader: Consumer,
  positions: readonly ReaderPosition[],
  logger: Logger,
): void => {
  for (const { topic, partition, offset, paused } of positions) {
    const where = { topic, partition };
    try {
      reader.seek({ ...where, offset: offset.toString() });
      if (paused) reader.pause([{ topic, partitions: [partition] }]);
      logger.info(
        { ...where, from: offset.toString() },
        'replay reader (re)joined: reading parked tenants’ messages on from where the replay stood',
      );
    } catch (error) {
      logger.warn(
        { ...where, err: error },
        'could not point the replay reader back; trying at its next join',
      );
    }
  }
};
