/**
 * The outside systems the operators' commands call over HTTP, checked before a command reads
 * anything: one request each, with a deadline. A command whose HUBSPOT_API_BASE_URL or
 * SCHEMA_REGISTRY_URL points at nothing says so within seconds and exits 1, instead of going
 * through every event's retries (minutes) and then reporting each event failed, or, for the
 * registry, every record undecodable. (Kafka and Redis clients fail on their own, after their
 * bounded retries.)
 */
import { describeError } from '../lib/errors.ts';
import { httpRequest } from '../lib/http.ts';

/** How long a check waits for the registry's answer (HubSpot's: HUBSPOT_TIMEOUT_MS). */
export const REGISTRY_CHECK_TIMEOUT_MS = 10_000;

export const Upstream = {
  hubspot: { name: 'HubSpot', variable: 'HUBSPOT_API_BASE_URL' },
  registry: { name: 'the schema registry', variable: 'SCHEMA_REGISTRY_URL' },
} as const;
export type Upstream = keyof typeof Upstream;

/** An outside system a command needs did not answer, or kept failing: the command stops. */
export class UpstreamUnavailable extends Error {
  override readonly name = 'UpstreamUnavailable';
  readonly upstream: Upstream;

  /** `message` completes "HubSpot at <url> …": what it did, or did not do. */
  constructor(upstream: Upstream, message: string) {
    super(message);
    this.upstream = upstream;
  }
}

/** The one line an operator acts on: which system, where the command looked for it, what to check. */
export const explainUnavailable = (error: UpstreamUnavailable, url: string): string =>
  `${Upstream[error.upstream].name} at ${url} ${error.message}; check ${Upstream[error.upstream].variable}`;

const get = async (upstream: Upstream, url: string, timeoutMs: number) => {
  try {
    return await httpRequest(url, { method: 'GET', headers: { accept: 'application/json' }, timeoutMs });
  } catch (error) {
    const timedOut = error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError');
    throw new UpstreamUnavailable(
      upstream,
      timedOut ? `did not answer within ${timeoutMs} ms` : `cannot be reached (${describeError(error)})`,
    );
  }
};

/**
 * HubSpot answers at its base URL: any HTTP status will do (no token is sent, and the API's root
 * is no endpoint). Only a refused, reset or silent connection fails.
 */
export const checkHubSpot = async (baseUrl: string, timeoutMs: number): Promise<void> => {
  await get('hubspot', baseUrl, timeoutMs);
};

/** The registry lists its subjects: the URL reaches a Confluent-compatible registry, not just a server. */
export const checkSchemaRegistry = async (url: string, timeoutMs: number): Promise<void> => {
  const answer = await get('registry', `${url.replace(/\/$/, '')}/subjects`, timeoutMs);
  if (!answer.ok)
    throw new UpstreamUnavailable(
      'registry',
      `answered ${answer.status} to GET /subjects (not a registry's API)`,
    );
};
