import assert from 'node:assert/strict';
import { brokerKillPlan, describeFaultEffect, faultEffect } from '../support/soak/fault-plan.ts';
import { parseSoakArgs, soakTopology } from '../support/soak/options.ts';

// The soak's options for a Kafka cluster and Redis behind Sentinel (issue 22), its broker kills
// and what it reports of a fault: the parts without I/O.

const argsOf = (argv: string[]) => {
  const command = parseSoakArgs(argv);
  assert.equal(command.kind, 'run', JSON.stringify(command));
  return command.kind === 'run' ? command : assert.fail();
};

const refusalOf = (argv: string[]): string => {
  const command = parseSoakArgs(argv);
  return command.kind === 'refused' ? command.message : assert.fail(JSON.stringify(command));
};

describe('soak options', () => {
  it('given no arguments, then the defaults of a plain run: one broker, its own Redis', () => {
    const { args, warnings } = argsOf([]);
    assert.equal(args.minutes, 10);
    assert.equal(args.rate, 50);
    assert.equal(args.orgs, 10);
    assert.equal(args.seed, undefined);
    assert.equal(args.kafkaCluster, false);
    assert.equal(args.redisSentinel, false);
    assert.equal(args.kafkaRestart, false);
    assert.deepEqual([...args.skipFaults], []);
    assert.deepEqual(warnings, []);
  });

  it('given --kafka-cluster --redis-sentinel and a seed, then both modes are asked for', () => {
    const { args } = argsOf([
      '--minutes',
      '10',
      '--rate',
      '200',
      '--kafka-cluster',
      '--redis-sentinel',
      '--seed',
      '41',
    ]);
    assert.equal(args.kafkaCluster, true);
    assert.equal(args.redisSentinel, true);
    assert.equal(args.seed, 41);
    assert.equal(args.orgs, 40);
  });

  it('given --kafka-restart with --kafka-cluster, then it is refused: the cluster has its own broker fault', () => {
    assert.match(refusalOf(['--kafka-restart', '--kafka-cluster']), /leave --kafka-restart out/);
  });

  it('given --skip-faults broker, then it is a known kind; an unknown kind is refused by name', () => {
    assert.deepEqual([...argsOf(['--skip-faults', 'broker,kill']).args.skipFaults], ['broker', 'kill']);
    assert.match(refusalOf(['--skip-faults', 'broker,zookeeper']), /unknown zookeeper/);
  });

  it('given a rate over the portals budget, then it warns; given a bad number, then it is refused', () => {
    assert.equal(argsOf(['--rate', '100', '--orgs', '5']).warnings.length, 1);
    assert.match(refusalOf(['--minutes', 'ten']), /--minutes must be a positive number/);
    assert.match(refusalOf(['--no-such-flag']), /no-such-flag/);
  });
});

describe('soak topology from the environment', () => {
  const cluster = '127.0.0.1:29092,127.0.0.1:29192,127.0.0.1:29292';

  it('given no mode, then KAFKA_BROKERS and a Redis of its own; without KAFKA_BROKERS, then it says what to export', () => {
    assert.deepEqual(soakTopology({}, { KAFKA_BROKERS: '127.0.0.1:9092' }), {
      kafka: { kind: 'single', brokers: '127.0.0.1:9092' },
      redis: { kind: 'own' },
    });
    assert.throws(() => soakTopology({}, {}), /KAFKA_BROKERS is not set/);
  });

  it('given --kafka-cluster without KAFKA_CLUSTER_BROKERS, then it says to run infra/local/up.sh --brokers 3', () => {
    assert.throws(
      () => soakTopology({ kafkaCluster: true }, { KAFKA_BROKERS: '127.0.0.1:9092' }),
      /--kafka-cluster needs KAFKA_CLUSTER_BROKERS: start a cluster with `infra\/local\/up\.sh --brokers 3`/,
    );
  });

  it('given --kafka-cluster on two brokers, then it is refused: 3 replicas need 3 brokers', () => {
    assert.throws(
      () => soakTopology({ kafkaCluster: true }, { KAFKA_CLUSTER_BROKERS: '127.0.0.1:1,127.0.0.1:2' }),
      /needs 3 brokers or more .* names 2/,
    );
  });

  it('given --redis-sentinel without its variables, then it names the missing one and the script that prints them', () => {
    assert.throws(
      () =>
        soakTopology({ redisSentinel: true }, { KAFKA_BROKERS: 'b:1', REDIS_SENTINELS: '127.0.0.1:7421' }),
      /REDIS_SENTINEL_NAME not set.*infra\/local\/redis-sentinel\.sh up/,
    );
    assert.throws(
      () => soakTopology({ redisSentinel: true }, { KAFKA_BROKERS: 'b:1' }),
      /REDIS_SENTINELS and REDIS_SENTINEL_NAME not set/,
    );
  });

  it('given both modes and their variables, then the cluster brokers in order and the sentinels', () => {
    assert.deepEqual(
      soakTopology(
        { kafkaCluster: true, redisSentinel: true },
        {
          KAFKA_BROKERS: '127.0.0.1:9092',
          KAFKA_CLUSTER_BROKERS: cluster,
          REDIS_SENTINELS: '127.0.0.1:7421, 127.0.0.1:7422,127.0.0.1:7423',
          REDIS_SENTINEL_NAME: 'pipeline',
        },
      ),
      {
        kafka: { kind: 'cluster', brokers: cluster.split(',') },
        redis: {
          kind: 'sentinel',
          sentinels: ['127.0.0.1:7421', '127.0.0.1:7422', '127.0.0.1:7423'],
          name: 'pipeline',
          sentinelPassword: undefined,
        },
      },
    );
  });
});

describe('soak broker kills', () => {
  it('given the same seed, then the same kills; another seed, other ones', () => {
    assert.deepEqual(brokerKillPlan(41, 600_000, 'long', 3), brokerKillPlan(41, 600_000, 'long', 3));
    assert.notDeepEqual(brokerKillPlan(41, 600_000, 'long', 3), brokerKillPlan(42, 600_000, 'long', 3));
  });

  it('given a long run, then two kills in their slots, each of another broker, each down long enough to be fenced', () => {
    for (let seed = 1; seed <= 50; seed++) {
      const plan = brokerKillPlan(seed, 600_000, 'long', 3);
      assert.equal(plan.length, 2);
      const [first, second] = plan;
      assert.ok(first && second);
      assert.ok(first.offsetMs >= 0.46 * 600_000 && first.offsetMs <= 0.5 * 600_000, String(first.offsetMs));
      assert.ok(
        second.offsetMs >= 0.82 * 600_000 && second.offsetMs <= 0.9 * 600_000,
        String(second.offsetMs),
      );
      assert.notEqual(first.broker, second.broker);
      for (const kill of plan) {
        assert.ok(kill.broker >= 1 && kill.broker <= 3, String(kill.broker));
        // broker.session.timeout.ms is 9 s: a shorter kill would not move a leader.
        assert.ok(kill.downMs >= 10_000 && kill.downMs <= 20_000, String(kill.downMs));
        // Restarted (at the latest, with its start) before the load ends.
        assert.ok(kill.offsetMs + kill.downMs < 600_000);
      }
    }
  });

  it('given seeds enough, then every broker is killed first by one of them', () => {
    const firsts = new Set(
      Array.from({ length: 30 }, (_, seed) => brokerKillPlan(seed, 600_000, 'long', 3)[0]?.broker),
    );
    assert.deepEqual([...firsts].sort(), [1, 2, 3]);
  });

  it('given a short run, then one kill', () => {
    assert.equal(brokerKillPlan(7, 60_000, 'short', 3).length, 1);
  });
});

describe('soak fault effect', () => {
  const answer = (answeredAt: number, status: number, tookMs = 5) => ({
    sentAt: answeredAt - tookMs,
    answeredAt,
    status,
  });

  it('given effects that stop after the fault and resume, then the pause is the longest gap, and the answers in the window by status', () => {
    const effect = faultEffect(
      { from: 10_000, to: 30_000 },
      [9_000, 10_500, 11_000, 23_000, 23_100, 31_000],
      [
        answer(9_999, 200),
        answer(12_000, 503, 4_000),
        answer(13_000, 0, 15_000),
        answer(20_000, 200),
        answer(31_000, 503),
      ],
    );
    assert.equal(effect.pauseMs, 12_000);
    assert.equal(effect.pauseFromMs, 1_000);
    assert.equal(effect.pauseToMs, 13_000);
    assert.equal(effect.resumed, true);
    assert.deepEqual(effect.statuses, { '0': 1, '200': 1, '503': 1 });
    assert.equal(effect.slowestAnswerMs, 15_000);
    assert.match(
      describeFaultEffect(effect, 20_000),
      /^in the 20\.0 s from its start: OpenCX got nothing new for 12\.0 s \(from \+1\.0 s to \+13\.0 s\); ingest's answers by status 200 ×1, 503 ×1, no answer ×1, the slowest in 15\.0 s$/,
    );
  });

  it('given a pause that runs past the window, then it counts whole, up to the first effect after it', () => {
    const effect = faultEffect({ from: 0, to: 10_000 }, [1_000, 25_000, 26_000], []);
    assert.equal(effect.pauseMs, 24_000);
    assert.equal(effect.pauseToMs, 25_000);
  });

  it('given effects that stop during the fault and never come back, then the pause runs to the window end, not resumed', () => {
    const effect = faultEffect({ from: 0, to: 10_000 }, [-5, 500, 1_000], [answer(5_000, 503)]);
    assert.equal(effect.resumed, false);
    assert.equal(effect.pauseMs, 9_000);
    assert.equal(effect.pauseFromMs, 1_000);
    assert.match(
      describeFaultEffect(effect, 10_000),
      /OpenCX got nothing new from \+1\.0 s to the end \(NOT resumed\); ingest's answers by status 503 ×1,/,
    );
  });
});
