import { z } from 'zod';

/** The parts of a Conversations v3 message the rules read (facts file, section 3). */
export const HubSpotMessage = z.looseObject({
  id: z.string(),
  type: z.string(),
  text: z.string().nullish(),
  richText: z.string().nullish(),
  subject: z.string().nullish(),
  direction: z.enum(['INCOMING', 'OUTGOING']).nullish(),
  channelId: z.union([z.string(), z.number()]).transform(String).nullish(),
  channelAccountId: z.union([z.string(), z.number()]).transform(String).nullish(),
  conversationsThreadId: z.union([z.string(), z.number()]).transform(String).nullish(),
  createdAt: z.string().nullish(),
  createdBy: z.string().nullish(),
  client: z
    .looseObject({ clientType: z.string().nullish(), integrationAppId: z.number().nullish() })
    .nullish(),
  senders: z
    .array(
      z.looseObject({
        actorId: z.string(),
        name: z.string().nullish(),
        deliveryIdentifier: z.looseObject({ type: z.string(), value: z.string() }).nullish(),
      }),
    )
    .default([]),
  recipients: z.array(z.looseObject({ actorId: z.string().nullish() })).default([]),
  truncationStatus: z.string().nullish(),
});
export type HubSpotMessage = z.infer<typeof HubSpotMessage>;

/** GET …/messages/{messageId}/original-content: the untruncated body. */
export const HubSpotMessageContent = z.looseObject({
  text: z.string().nullish(),
  richText: z.string().nullish(),
});
export type HubSpotMessageContent = z.infer<typeof HubSpotMessageContent>;

/**
 * HubSpot cuts long messages (emails) in the message it returns and says so in
 * `truncationStatus` (TRUNCATED, TRUNCATED_TO_MOST_RECENT_REPLY, ...). A message without the
 * field (comments, older messages) is taken as whole.
 */
export const isTruncated = (message: HubSpotMessage): boolean =>
  typeof message.truncationStatus === 'string' && message.truncationStatus !== 'NOT_TRUNCATED';

/** The message with its full body; a part the original content lacks keeps the truncated one. */
export const withOriginalContent = (
  message: HubSpotMessage,
  content: HubSpotMessageContent,
): HubSpotMessage => ({
  ...message,
  text: content.text ?? message.text,
  richText: content.richText ?? message.richText,
  truncationStatus: 'NOT_TRUNCATED',
});

export const HubSpotThread = z.looseObject({
  id: z.union([z.string(), z.number()]).transform(String),
  status: z.string().nullish(),
  assignedTo: z.string().nullish(),
  associatedContactId: z.union([z.string(), z.number()]).transform(String).nullish(),
  threadAssociations: z
    .looseObject({ associatedTicketId: z.union([z.string(), z.number()]).transform(String).nullish() })
    .nullish(),
});
export type HubSpotThread = z.infer<typeof HubSpotThread>;

/** A thread of the thread list (PublicThread): when its latest message was sent or received. */
export const HubSpotThreadActivity = HubSpotThread.extend({
  latestMessageTimestamp: z.string().nullish(),
});
export type HubSpotThreadActivity = z.infer<typeof HubSpotThreadActivity>;

export const HubSpotNote = z.looseObject({
  id: z.union([z.string(), z.number()]).transform(String),
  properties: z.looseObject({
    hs_note_body: z.string().nullish(),
    hs_timestamp: z.string().nullish(),
    hubspot_owner_id: z.string().nullish(),
  }),
  associations: z
    .looseObject({
      tickets: z
        .looseObject({
          results: z.array(z.looseObject({ id: z.union([z.string(), z.number()]).transform(String) })),
        })
        .nullish(),
    })
    .nullish(),
});
export type HubSpotNote = z.infer<typeof HubSpotNote>;

/** The body of POST .../threads/{threadId}/messages. */
export type OutgoingMessage =
  | {
      readonly type: 'MESSAGE';
      readonly text: string;
      readonly senderActorId: string;
      readonly channelId: string;
      readonly channelAccountId: string;
      readonly recipients: readonly {
        actorId?: string;
        deliveryIdentifiers?: readonly { type: string; value: string }[];
      }[];
      readonly attachments: readonly unknown[];
    }
  | { readonly type: 'COMMENT'; readonly text: string; readonly attachments: readonly unknown[] };
