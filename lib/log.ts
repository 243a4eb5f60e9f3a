import { pino, type Logger } from 'pino';

export type { Logger };

/** JSON logs to stdout; one logger per service, children carry orgId/portalId/threadId/eventId. */
export const createLogger = (service: string, level: string): Logger =>
  pino({ name: service, level, base: { service }, timestamp: pino.stdTimeFunctions.isoTime });
