/**
 * What a reconcile run of one organisation talks to: its HubSpot client, the processor's dedup
 * keys in Redis (what it handled), and the raw topic (where a gap goes). One builder for the
 * reconciler and for `npm run reconcile`, so an operator's run checks and writes exactly what a
 * scheduled one does.
 */
import { RAW_WEBHOOK_EVENT_RECORD } from '../../../../lib/contracts/index.ts';
import { dedupRedisKey } from '../../../../lib/dedup-store.ts';
import type { HubSpotApi, HubSpotMessage } from '../../../../lib/hubspot/index.ts';
import { ORDERING_KEY_HEADER } from '../../../../lib/kafka/index.ts';
import type { RecordWriter } from '../../../../lib/kafka/record-writer.ts';
import type { Org } from '../../../../lib/orgs/index.ts';
import { mgetAcrossSlots, type Redis } from '../../../../lib/redis.ts';
import type { AvroCodec } from '../../../../lib/registry.ts';
import { messageDedupKey } from '../handle-raw-event.ts';
import { RECONCILED_HEADER, rawRecordRouting, reconciledRawEvent } from './raw-event.ts';
import type { ReconcileRunDeps } from './run.ts';

export type ReconcileRunParts = {
  readonly redis: Redis;
  readonly redisKeyPrefix: string;
  readonly codec: Pick<AvroCodec, 'encodeRecordNow'>;
  readonly rawTopic: string;
  readonly writer: Pick<RecordWriter, 'write'>;
  readonly hubspotFor: (org: Org) => HubSpotApi;
  readonly now: () => number;
};

export const reconcileRunDeps =
  (parts: ReconcileRunParts) =>
  (org: Org): ReconcileRunDeps => ({
    hubspot: parts.hubspotFor(org),
    handled: async (orgId, messageIds) => {
      const values = await mgetAcrossSlots(
        parts.redis,
        messageIds.map((id) => dedupRedisKey(parts.redisKeyPrefix, messageDedupKey(orgId, id))),
      );
      // `done`, or claimed by a replica handling it now: either way not a gap.
      return new Set(messageIds.filter((_, index) => values[index] !== null));
    },
    emit: (gaps: readonly HubSpotMessage[]) =>
      parts.writer.write(
        parts.rawTopic,
        gaps.map((gap) => {
          const routing = rawRecordRouting(org.orgId, gap.conversationsThreadId ?? '');
          return {
            key: routing.key,
            headers: { [ORDERING_KEY_HEADER]: routing.orderingKey, [RECONCILED_HEADER]: '1' },
            value: parts.codec.encodeRecordNow(
              RAW_WEBHOOK_EVENT_RECORD,
              reconciledRawEvent(
                gap,
                {
                  orgId: org.orgId,
                  portalId: org.hubspot.portalId,
                  privateApp: org.hubspot.privateAppClientSecret !== undefined,
                },
                parts.now(),
              ),
            ),
          };
        }),
        `${gaps.length} reconciled messages of ${org.orgId}`,
      ),
  });
