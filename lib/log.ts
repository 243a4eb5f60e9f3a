import { pino, type LogFn, type Logger } from 'pino';

export type { Logger };

/** JSON logs to stdout; one logger per service, children carry orgId/portalId/threadId/eventId. */
export const createLogger = (service: string, level: string): Logger =>
  pino({ name: service, level, base: { service }, timestamp: pino.stdTimeFunctions.isoTime });

/** What an event's handler logs through: its lines carry the event's fields. */
export type EventLog = Pick<Logger, 'debug' | 'info' | 'warn' | 'error'> & {
  readonly child: (bindings: Record<string, unknown>) => EventLog;
};

/**
 * A child logger made only when a line is written at an enabled level. A pino child per event
 * cost a few per cent of the processor's CPU at saturation, for lines that are mostly debug.
 */
export const lazyChild = (parent: Logger, bindings: Record<string, unknown>): EventLog => {
  let child: Logger | undefined;
  const at =
    (level: 'debug' | 'info' | 'warn' | 'error'): LogFn =>
    (...args: unknown[]) => {
      if (!parent.isLevelEnabled(level)) return;
      child ??= parent.child(bindings);
      Reflect.apply(child[level], child, args);
    };
  return {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: (more) => lazyChild(parent, { ...bindings, ...more }),
  };
};
