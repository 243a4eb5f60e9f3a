import { deriveEventId } from '../../../../lib/ids.ts';
import type { HubSpotNote } from '../../../../lib/hubspot/messages.ts';
import { emit, ignore, type Decision } from './decision.ts';
import { IgnoreReason } from './ignore-reasons.ts';
import type { ObjectCreationEvent } from './webhook-event.ts';

export const NOTE_OBJECT_TYPE_ID = '0-46';

export const isNoteCreation = (event: ObjectCreationEvent): boolean =>
  event.objectTypeId === NOTE_OBJECT_TYPE_ID;

/**
 * object.creation of a note (0-46) attached to a synced ticket: mirrored as an internal agent
 * comment. `syncedTicketId` is the first of the note's tickets that is linked to a session.
 */
export const decideNoteMirror = (
  event: ObjectCreationEvent,
  note: HubSpotNote,
  context: { readonly orgId: string; readonly syncedTicketId: string | undefined },
): Decision => {
  if (!isNoteCreation(event)) return ignore(IgnoreReason.notANote);
  if (context.syncedTicketId === undefined) return ignore(IgnoreReason.noteOnNoSyncedTicket);
  const createdAt = Date.parse(note.properties.hs_timestamp ?? '');
  return emit([
    {
      type: 'note-mirrored',
      eventId: deriveEventId('note-mirrored', context.orgId, note.id),
      orgId: context.orgId,
      portalId: event.portalId,
      ticketId: context.syncedTicketId,
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
