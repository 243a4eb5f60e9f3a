/**
 * The HubSpot app's configuration (hubspot-app/, HubSpot's developer-project format) is uploaded
 * to HubSpot by hand, so nothing fails when the processor learns a new event type and nobody
 * subscribes to it, or when ingest asks for scopes the app does not declare (the install then
 * fails at HubSpot). These tests keep the files in step with the code.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ingestEnv } from '../../services/ingest/src/config.ts';
import {
  decideHandoff,
  handledEventTypes,
  NOTE_OBJECT_TYPE_ID,
  parseWebhookEvent,
  type ConversationPropertyChangeEvent,
} from '../../services/processor/src/rules/index.ts';

const repositoryRoot = new URL('../../', import.meta.url);
const read = (path: string): string => readFileSync(new URL(path, repositoryRoot), 'utf8');

type Subscription = {
  readonly subscriptionType: string;
  readonly objectType?: string;
  readonly propertyName?: string;
  readonly active: boolean;
};
type WebhooksFile = {
  readonly uid: string;
  readonly type: string;
  readonly config: {
    readonly settings: { readonly targetUrl: string; readonly maxConcurrentRequests: number };
    readonly subscriptions: {
      readonly crmObjects?: readonly Subscription[];
      readonly legacyCrmObjects?: readonly Subscription[];
      readonly hubEvents?: readonly Subscription[];
    };
  };
};
type AppFile = {
  readonly uid: string;
  readonly type: string;
  readonly config: {
    readonly distribution: string;
    readonly auth: {
      readonly type: string;
      readonly redirectUrls: readonly string[];
      readonly requiredScopes: readonly string[];
    };
  };
};

const project = JSON.parse(read('hubspot-app/hsproject.json')) as { srcDir: string; platformVersion: string };
const app = JSON.parse(read(`hubspot-app/${project.srcDir}/app/app-hsmeta.json`)) as AppFile;
const webhooks = JSON.parse(
  read(`hubspot-app/${project.srcDir}/app/webhooks/webhooks-hsmeta.json`),
) as WebhooksFile;
const { crmObjects = [], legacyCrmObjects = [], hubEvents = [] } = webhooks.config.subscriptions;
const subscriptions = [...crmObjects, ...legacyCrmObjects, ...hubEvents];

/** HubSpot's object type ids for the crmObjects subscriptions this app may use. */
const OBJECT_TYPE_IDS: Readonly<Record<string, string>> = { note: '0-46', ticket: '0-5', contact: '0-1' };

describe('HubSpot app configuration (hubspot-app/) against the code', () => {
  it('given the webhook subscriptions, when compared with the rules, then they name exactly the event types the processor handles', () => {
    const handled = [...handledEventTypes];
    assert.ok(handled.length >= 4, `expected the rules' event types, found ${handled.join(', ')}`);
    const subscribed = [...new Set(subscriptions.map(({ subscriptionType }) => subscriptionType))];
    assert.deepEqual(subscribed.toSorted(), handled.toSorted());
    for (const type of subscribed) {
      const parsed = parseWebhookEvent(JSON.stringify({ subscriptionType: type }));
      assert.ok(
        !parsed.ok || parsed.event.subscriptionType !== 'unsupported',
        `${type} is subscribed but the processor treats it as unsupported`,
      );
    }
    assert.ok(
      subscriptions.every(({ active }) => active),
      'an inactive subscription delivers nothing',
    );
  });

  it('given the subscriptions, when read, then each is in the section HubSpot expects and carries what the rules filter on', () => {
    // hubEvents: the classic conversation.* types; legacyCrmObjects: <object>.<event>;
    // crmObjects: the generic object.* types, with an objectType.
    for (const { subscriptionType } of hubEvents) assert.match(subscriptionType, /^conversation\./);
    for (const { subscriptionType } of legacyCrmObjects) assert.match(subscriptionType, /^ticket\./);
    for (const { subscriptionType, objectType } of crmObjects) {
      assert.match(subscriptionType, /^object\./);
      assert.equal(OBJECT_TYPE_IDS[objectType ?? ''], NOTE_OBJECT_TYPE_ID, `${objectType} is not a note`);
    }
    assert.ok(crmObjects.some(({ subscriptionType }) => subscriptionType === 'object.creation'));

    // A property-change subscription names its property; the handoff rule reads only assignedTo.
    for (const { subscriptionType, propertyName } of subscriptions) {
      if (subscriptionType.endsWith('.propertyChange'))
        assert.ok(propertyName, `${subscriptionType} without a propertyName`);
    }
    const conversationProperties = hubEvents
      .filter(({ subscriptionType }) => subscriptionType === 'conversation.propertyChange')
      .map(({ propertyName }) => propertyName ?? '');
    assert.deepEqual(conversationProperties, ['assignedTo']);
    for (const propertyName of conversationProperties) {
      const event: ConversationPropertyChangeEvent = {
        subscriptionType: 'conversation.propertyChange',
        portalId: 1,
        occurredAt: 1,
        objectId: '7',
        propertyName,
        propertyValue: 'A-human',
      };
      const decision = decideHandoff(event, {
        orgId: 'acme',
        aiActorId: 'A-ai',
        assistMode: false,
        session: { handedOff: false },
        lastAppliedAt: undefined,
      });
      assert.equal(decision.kind, 'emit', `conversation.propertyChange of ${propertyName} is ignored`);
    }
    const ticketProperties = legacyCrmObjects.map(({ propertyName }) => propertyName);
    assert.equal(new Set(ticketProperties).size, ticketProperties.length, 'a ticket property twice');
  });

  it('given the app, when compared with ingest, then its scopes are the ones the install asks for and its URLs are ingest routes', () => {
    const askedFor = ingestEnv.HUBSPOT_OAUTH_SCOPES.parse(undefined).split(/\s+/);
    assert.deepEqual(app.config.auth.requiredScopes.toSorted(), askedFor.toSorted());
    assert.equal(app.type, 'app');
    assert.equal(app.config.auth.type, 'oauth');
    assert.equal(webhooks.type, 'webhooks');
    assert.notEqual(webhooks.uid, app.uid, 'component uids must differ within a project');
    assert.equal(new URL(webhooks.config.settings.targetUrl).pathname, '/webhooks/hubspot');
    assert.ok(webhooks.config.settings.maxConcurrentRequests <= 10, "HubSpot's cap is 10");
    for (const url of app.config.auth.redirectUrls)
      assert.equal(new URL(url).pathname, '/oauth/hubspot/callback');
    assert.match(project.platformVersion, /^\d{4}\.\d$/);
  });
});
