/**
 * HubSpot retries a failed delivery for 24 h and does not order deliveries, so a property change
 * can arrive after a newer change of the same property. `lastAppliedAt` is the `occurredAt` of
 * the newest change of that object's property already handled (kept outside, durably). An equal
 * `occurredAt` is not stale: exact repeats are the dedup's business, and two changes in the
 * same millisecond cannot be ordered anyway.
 */
export const isStaleChange = (occurredAt: number, lastAppliedAt: number | undefined): boolean =>
  lastAppliedAt !== undefined && occurredAt < lastAppliedAt;
