/**
 * Reprocessing from the raw log (`npm run reprocess`, cli.ts): an organisation's
 * raw events of a time window, through the processor's current rules, compared with what the
 * domain topic holds; the missing effects written.
 */
export {
  Change,
  compareOutcome,
  sourceKeyOfDomainEvent,
  sourceKeyOfWebhookEvent,
  type ComparedEvent,
  type CurrentOutcome,
} from './compare.ts';
export { formatReport } from './report.ts';
export {
  reprocessWindow,
  type ReprocessDeps,
  type ReprocessOptions,
  type ReprocessPhase,
  type ReprocessReport,
  type ReprocessedEvent,
} from './run.ts';
export {
  ReprocessError,
  parseWindow,
  readTopicWindow,
  type TimeWindow,
  type WindowRecord,
} from './window.ts';
