/** /console/dead-letters: the letters of a window, one letter, and the replay (dry run, then confirm). */
import type Router from '@koa/router';
import {
  parseSince,
  replayDeadLetters,
  replayedMarkerKey,
  type ArchivedDeadLetter,
} from '../../../../lib/dead-letters/index.ts';
import { HttpError } from '../../../../lib/http-server.ts';
import { mgetAcrossSlots } from '../../../../lib/redis.ts';
import { createDurableProducer } from '../../../../lib/kafka/index.ts';
import { readLetterAt, readLetterWindow } from '../activity.ts';
import {
  deadLettersPage,
  letterPage,
  replayDonePage,
  replayDryRunPage,
  type LetterGroup,
} from '../pages/index.ts';
import type { ConsoleArea } from './area.ts';
import { oneLine, queryText, send, type Form } from './console-page.ts';

/** Counts of the window's letters by reason and organisation, the largest first. */
const groupsOf = (letters: readonly ArchivedDeadLetter[]): LetterGroup[] => {
  const groups = new Map<string, LetterGroup>();
  for (const { letter } of letters) {
    const orgId = letter.orgId ?? '–';
    const key = `${letter.reason}\u0000${orgId}`;
    groups.set(key, { reason: letter.reason, orgId, count: (groups.get(key)?.count ?? 0) + 1 });
  }
  return [...groups.values()].sort((a, b) => b.count - a.count || a.reason.localeCompare(b.reason));
};

/** The replay form's window; lost (a stale or hand-made form): start again. */
const replaySince = (form: Form | undefined): number => {
  const sinceMs = Number(form?.get('since') ?? '');
  if (!Number.isFinite(sinceMs) || sinceMs < 0)
    throw new HttpError(
      400,
      'bad_since',
      'The replay form lost its time window: go back to the dead letters and start again.',
    );
  return sinceMs;
};

export const deadLetterRoutes = (router: Router, { deps, page, reads }: ConsoleArea): void => {
  const { logger } = deps;

  const isReplayed = async (letters: readonly ArchivedDeadLetter[]): Promise<boolean[]> => {
    if (letters.length === 0) return [];
    const markers = await mgetAcrossSlots(
      deps.redis,
      letters.map((letter) => replayedMarkerKey(deps.redisKeyPrefix, letter)),
    );
    return markers.map((marker) => marker === 'replayed');
  };

  router.get(
    '/console/dead-letters',
    page(async (ctx, { csrf }) => {
      const since = queryText(ctx, 'since') ?? '24h';
      const sinceMs = parseSince(since, deps.now());
      if (sinceMs === undefined)
        throw new HttpError(400, 'bad_since', `"${since}" is not a duration such as 1h or 7d.`);
      const filter = { orgId: queryText(ctx, 'org'), reason: queryText(ctx, 'reason') };
      // The groups show every letter of the window; the list below, the filtered ones.
      const all = await readLetterWindow({ ...reads, filter: { since: sinceMs } });
      const letters = all.letters.filter(
        ({ letter }) =>
          (filter.orgId === undefined || (letter.orgId ?? '–') === filter.orgId) &&
          (filter.reason === undefined || letter.reason === filter.reason),
      );
      send(
        ctx,
        deadLettersPage({
          csrf,
          since,
          sinceMs,
          filter,
          groups: groupsOf(all.letters),
          letters,
          read: all.read,
          undecodable: all.undecodable,
        }),
      );
    }),
  );

  router.get(
    '/console/dead-letters/:partition/:offset',
    page(async (ctx, { csrf }) => {
      const partition = Number(ctx.params.partition);
      const offset = ctx.params.offset ?? '';
      if (!Number.isInteger(partition) || partition < 0 || !/^\d+$/.test(offset))
        throw new HttpError(
          404,
          'not_found',
          'A dead letter is named by its partition and offset: /console/dead-letters/0/42.',
        );
      const archived = await readLetterAt({ ...reads, partition, offset });
      if (!archived)
        throw new HttpError(
          404,
          'not_found',
          `There is no dead letter at partition ${partition}, offset ${offset} (expired from the topic, or never written).`,
        );
      let decoded: { recordName: string; record: unknown } | { error: string } | undefined;
      if (archived.letter.value) {
        try {
          decoded = await deps.codec.decodeRecord(archived.letter.value);
        } catch (error) {
          decoded = { error: `The original record does not decode: ${oneLine(error)}` };
        }
      }
      const [replayed] = await isReplayed([archived]);
      send(ctx, letterPage({ csrf, archived, decoded, replayed: replayed ?? false }));
    }),
  );

  /**
   * Dry run (the default): what would be replayed, from the letters named (`letter`) or those of
   * the filter. `confirm` replays exactly the letters the dry run listed (their positions).
   */
  router.post(
    '/console/dead-letters/replay',
    page(
      async (ctx, { csrf }, form) => {
        const sinceMs = replaySince(form);
        const positions = new Set(form?.getAll('letter') ?? []);
        const confirm = form?.get('confirm') === '1';
        if (confirm && positions.size === 0)
          throw new HttpError(
            400,
            'nothing_named',
            'A replay names its letters: run the dry run first, then confirm.',
          );
        const window = await readLetterWindow({
          ...reads,
          filter: {
            since: sinceMs,
            ...(form?.get('org') ? { orgId: form.get('org') ?? '' } : {}),
            ...(form?.get('reason') ? { reason: form.get('reason') ?? '' } : {}),
          },
        });
        const letters =
          positions.size === 0
            ? window.letters
            : window.letters.filter((letter) => positions.has(`${letter.partition}:${letter.offset}`));
        if (!confirm) {
          const replayed = await isReplayed(letters);
          const candidates = letters.map((archived, index) => ({
            archived,
            replayed: replayed[index] ?? false,
          }));
          return send(ctx, replayDryRunPage({ csrf, sinceMs, candidates, read: window.read }));
        }
        const producer = createDurableProducer(deps.kafka);
        await producer.connect();
        try {
          const summary = await replayDeadLetters({
            letters,
            producer,
            redis: deps.redis,
            keyPrefix: deps.redisKeyPrefix,
          });
          logger.info(
            { replayed: summary.replayed, alreadyReplayed: summary.alreadyReplayed, failed: summary.failed },
            'console: dead letters replayed',
          );
          send(
            ctx,
            replayDonePage({ csrf, summary, missing: positions.size - letters.length }),
            summary.failed > 0 ? 502 : 200,
          );
        } finally {
          await producer.disconnect();
        }
      },
      { form: true },
    ),
  );
};
