import assert from 'node:assert/strict';
import { whileLeadersSettle } from '../../lib/kafka/client.ts';

/** What kafkajs throws for the broker's NOT_LEADER_FOR_PARTITION (code 6): retriable. */
const notLeader = (): Error =>
  Object.assign(new Error('This server is not the leader for that topic-partition'), {
    name: 'KafkaJSProtocolError',
    type: 'NOT_LEADER_FOR_PARTITION',
    code: 6,
    retriable: true,
  });

describe('start-up reads of a topic that was just created', () => {
  it('regression (CI): given "not the leader" while a new topic settles, when read, then it is read again until it answers', async () => {
    let calls = 0;
    const answer = await whileLeadersSettle('reading the end of t', async () => {
      calls++;
      if (calls < 3) throw notLeader();
      return 'offsets';
    });
    assert.equal(answer, 'offsets');
    assert.equal(calls, 3);
  });

  it('regression (soak): given the broker restarting while a replica starts (connection refused, as kafkajs reports it after its own retries), when connecting, then it connects again until the broker answers', async () => {
    let calls = 0;
    const refused = (): Error =>
      Object.assign(new Error('Connection error: connect ECONNREFUSED 127.0.0.1:9092'), {
        name: 'KafkaJSNumberOfRetriesExceeded',
      });
    const answer = await whileLeadersSettle('connecting a producer', async () => {
      calls++;
      if (calls < 3) throw refused();
      return 'connected';
    });
    assert.equal(answer, 'connected');
    assert.equal(calls, 3);
  });

  it('given an error that is not retriable, when read, then it is thrown at once', async () => {
    let calls = 0;
    await assert.rejects(
      whileLeadersSettle('reading the end of t', async () => {
        calls++;
        throw new Error('topic does not exist');
      }),
      /topic does not exist/,
    );
    assert.equal(calls, 1);
  });

  it('given Kafka refusing past the time limit, when read, then the error names what was read', async () => {
    await assert.rejects(
      whileLeadersSettle('reading the end of t', () => Promise.reject(notLeader()), 50),
      /reading the end of t: Kafka still refuses after 50 ms/,
    );
  });
});
