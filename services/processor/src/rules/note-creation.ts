import { IgnoreReason, NOTE_OBJECT_TYPE_ID, eventIdOf } from '../../../../lib/contracts/index.ts';
import type { HubSpotNote } from '../../../../lib/hubspot/messages.ts';
import { emit, ignore, type Decision } from './decision.ts';
import type { ObjectCreationEvent } from './webhook-event.ts';

export { NOTE_OBJECT_TYPE_ID };

export const isNoteCreation = (event: ObjectCreationEvent): boolean =>
  event.objectTypeId === NOTE_OBJECT_TYPE_ID;

/**
 * The ticket a note is mirrored through: the first of its tickets linked to a session, else its
 * first ticket (whose link may still come: outbound holds the note until then).
 */
export const ticketOfNote = (
  ticketIds: readonly string[],
  isLinked: (ticketId: string) => boolean,
): string | undefined => ticketIds.find(isLinked) ?? ticketIds[0];

/**
 * object.creation of a note (0-46) attached to a ticket: mirrored as an internal agent comment
 * on the ticket's session (`ticketId`, see ticketOfNote). A note on no ticket is not the help
 * desk's.
 */
export const decideNoteMirror = (
  event: ObjectCreationEvent,
  note: HubSpotNote,
  context: { readonly orgId: string; readonly ticketId: string | undefined },
): Decision => {
  if (!isNoteCreation(event)) return ignore(IgnoreReason.notANote);
  if (context.ticketId === undefined) return ignore(IgnoreReason.noteOnNoTicket);
  const createdAt = Date.parse(note.properties.hs_timestamp ?? '');
  return emit([
    {
      type: 'note-mirrored',
      eventId: eventIdOf.noteMirrored(context.orgId, note.id),
      orgId: context.orgId,
      portalId: event.portalId,
      ticketId: context.ticketId,
      occurredAt: event.occurredAt,
      noteId: note.id,
      text: (note.properties.hs_note_body ?? '')
        .replace(/<[^>]*>/g, ' ')
        .replace(/\s+/g, ' ')
        .trim(),
      authorOwnerId: note.properties.hubspot_owner_id ?? null,
      createdAt: Number.isFinite(createdAt) ? createdAt : event.occurredAt,
    },
  ]);
};
