import type { DomainEvent, TicketHoldCheck } from '../../../../lib/domain-events.ts';

/**
 * OpenCX takes ISO-8601 dates of years 1970 to 9999. Outside them there is no date to send (and
 * `new Date(9e15).toISOString()` throws a RangeError): such an event is dead-lettered as
 * malformed rather than clamped, since a clamped date would put a made-up time into the session
 * and hide the upstream bug from the operator.
 */
const LATEST_ISO_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);
const isIsoDate = (ms: number): boolean => Number.isInteger(ms) && ms >= 0 && ms <= LATEST_ISO_MS;
export const iso = (ms: number): string => new Date(ms).toISOString();

/** The timestamp this event sends to OpenCX that is not a date, if any. */
export const unsendableTimestamp = (event: DomainEvent | TicketHoldCheck): string | undefined => {
  const sent: readonly (readonly [string, number])[] =
    event.type === 'rep-reply'
      ? [['occurredAt', event.occurredAt]]
      : event.type === 'note-mirrored'
        ? [['createdAt', event.createdAt]]
        : [];
  const bad = sent.find(([, ms]) => !isIsoDate(ms));
  return bad && `${bad[0]} ${bad[1]} is not a date OpenCX can take (epoch ms of years 1970 to 9999)`;
};
