import { PipelineError, describeError } from '../../../lib/errors.ts';
import { parkOnRateLimit } from '../../../lib/hubspot/index.ts';
import type { Logger } from '../../../lib/log.ts';
import { withRetry, type RetryPolicy } from '../../../lib/retry.ts';
import type { OutboundMetrics } from './metrics.ts';

/** Tries one call to OpenCX or HubSpot again on its retriable failures; throws once the budget is spent. */
export type CallRetry = <T>(target: 'opencx' | 'hubspot', work: () => Promise<T>) => Promise<T>;

/**
 * The retry of outbound's calls, each retry counted (outbound_retries_total) and logged. A
 * HubSpot 429 is not retried: it parks the organisation's AI replies until HubSpot's interval ends.
 */
export const createCallRetry = (
  policy: RetryPolicy,
  metrics: Pick<OutboundMetrics, 'retries'>,
  logger: Logger,
): CallRetry => {
  return (target, work) =>
    withRetry(policy, target === 'hubspot' ? () => parkOnRateLimit(work) : work, {
      onRetry: ({ attempt, delayMs, error }) => {
        metrics.retries.inc({ target, code: error instanceof PipelineError ? error.code : 'unknown' });
        logger.info({ target, attempt, delayMs, err: describeError(error) }, 'call failed; retrying');
      },
    });
};
