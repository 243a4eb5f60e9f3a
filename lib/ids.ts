import { createHash } from 'node:crypto';

declare const brand: unique symbol;
export type Brand<T, B extends string> = T & { readonly [brand]: B };

export type OrgId = Brand<string, 'OrgId'>;
export type PortalId = Brand<number, 'PortalId'>;
export type ThreadId = Brand<string, 'ThreadId'>;
export type DomainEventId = Brand<string, 'DomainEventId'>;

export const OrgId = (value: string): OrgId => value as OrgId;
export const PortalId = (value: number): PortalId => value as PortalId;
export const ThreadId = (value: string | number): ThreadId => String(value) as ThreadId;

/**
 * Domain event ids are derived from their source, never random: the same HubSpot message always
 * yields the same id, so a replayed or re-processed event carries the same Idempotency-Key.
 */
export const deriveEventId = (...parts: readonly (string | number)[]): DomainEventId =>
  createHash('sha256').update(parts.join('\u001f')).digest('hex').slice(0, 32) as DomainEventId;
