/**
 * What to do with a tenant's message at the head of its conversation's queue, before any
 * handler is called. No I/O, no clock.
 *
 * It keeps per-conversation order across parking: while a tenant waits (its gate is closed on
 * any partition of this process) or is parked on this partition, each of its messages joins the
 * parked ones; while a replay of the tenant runs, a live message the replay will read again is
 * passed over (the replay's copy follows the earlier messages of its conversation in the same
 * queue). A message read by a replay that has since ended is passed over: the replay that
 * replaced it, or the live stream, has it.
 */
export type Disposition = 'handle' | 'park' | 'covered';

export type DispositionInput = {
  readonly offset: bigint;
  /** The tenant's gate is closed, or the tenant is parked on the message's partition. */
  readonly tenantWaits: boolean;
  /** Read again by a replay: whether that replay is still the partition's ('current'). Undefined: live. */
  readonly replayed: 'current' | 'ended' | undefined;
  /** What the partition's running replay reads again of the tenant, if one does. */
  readonly replaying: { readonly from: bigint; readonly handoverAt: bigint | undefined } | undefined;
};

export const dispositionOf = ({
  offset,
  tenantWaits,
  replayed,
  replaying,
}: DispositionInput): Disposition => {
  if (replayed === 'ended') return 'covered';
  if (tenantWaits) return 'park';
  if (replayed === 'current') return 'handle';
  if (
    replaying &&
    offset >= replaying.from &&
    (replaying.handoverAt === undefined || offset < replaying.handoverAt)
  )
    return 'covered';
  return 'handle';
};
