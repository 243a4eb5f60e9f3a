import assert from 'node:assert/strict';
import { describeRedisTopology, redisTopologyOf } from '../../lib/redis-topology.ts';
import { loadIngestConfig } from '../../services/ingest/src/config.ts';
import { loadOutboundConfig } from '../../services/outbound/src/config.ts';
import { loadProcessorConfig } from '../../services/processor/src/config.ts';

describe('Redis topology configuration', () => {
  it('given only REDIS_URL (or nothing), when loaded, then Redis is one server', () => {
    assert.deepEqual(redisTopologyOf(loadProcessorConfig({})), {
      kind: 'single',
      url: 'redis://127.0.0.1:6379',
      password: undefined,
    });
  });

  it('given sentinels and a master name, when loaded, then Redis is found through them, with the credentials of REDIS_URL unless REDIS_PASSWORD is set', () => {
    const config = loadOutboundConfig({
      REDIS_URL: 'redis://app:url%40secret@ignored:6379',
      REDIS_SENTINELS: 'sentinel-a:26379, sentinel-b:26380',
      REDIS_SENTINEL_NAME: 'pipeline',
      REDIS_SENTINEL_PASSWORD: 'sentinel-secret',
    });
    assert.deepEqual(redisTopologyOf(config), {
      kind: 'sentinel',
      sentinels: [
        { host: 'sentinel-a', port: 26379 },
        { host: 'sentinel-b', port: 26380 },
      ],
      name: 'pipeline',
      sentinelPassword: 'sentinel-secret',
      username: 'app',
      password: 'url@secret',
    });
    const overridden = loadOutboundConfig({
      REDIS_SENTINELS: 'sentinel-a:26379',
      REDIS_SENTINEL_NAME: 'pipeline',
      REDIS_PASSWORD: 'data-secret',
    });
    assert.equal(redisTopologyOf(overridden).kind, 'sentinel');
    assert.equal((redisTopologyOf(overridden) as { password?: string }).password, 'data-secret');
  });

  it('given cluster seed nodes, when loaded, then Redis is a Cluster', () => {
    const config = loadIngestConfig({ REDIS_CLUSTER_NODES: '10.0.0.1:7000,10.0.0.2:7000' });
    const topology = redisTopologyOf(config);
    assert.equal(topology.kind, 'cluster');
    assert.equal(describeRedisTopology(topology), 'cluster 10.0.0.1:7000,10.0.0.2:7000');
  });

  it('given both sentinels and cluster nodes, when loaded, then start-up stops with one line naming both', () => {
    assert.throws(
      () =>
        loadProcessorConfig({
          REDIS_SENTINELS: 'a:26379',
          REDIS_SENTINEL_NAME: 'pipeline',
          REDIS_CLUSTER_NODES: 'b:7000',
        }),
      /^PipelineError: invalid configuration: REDIS_SENTINELS and REDIS_CLUSTER_NODES are both set/,
    );
  });

  it('given sentinels without a master name (or a name without sentinels), when loaded, then the missing one is named', () => {
    assert.throws(
      () => loadProcessorConfig({ REDIS_SENTINELS: 'a:26379' }),
      /REDIS_SENTINEL_NAME is missing/,
    );
    assert.throws(
      () => loadProcessorConfig({ REDIS_SENTINEL_NAME: 'pipeline' }),
      /REDIS_SENTINELS is missing/,
    );
  });

  it('given a node list that is not host:port, when loaded, then the variable is named', () => {
    assert.throws(
      () => loadProcessorConfig({ REDIS_CLUSTER_NODES: 'a:7000,b' }),
      /invalid configuration: REDIS_CLUSTER_NODES = "a:7000,b": expected host:port/,
    );
    assert.throws(
      () => loadProcessorConfig({ REDIS_SENTINELS: 'a:99999' }),
      /invalid configuration: REDIS_SENTINELS/,
    );
  });

  it('given a password, when the topology is described, then it is not printed', () => {
    const described = describeRedisTopology(
      redisTopologyOf({ REDIS_URL: 'redis://user:hunter2@redis.internal:6379/0' }),
    );
    assert.ok(!described.includes('hunter2'), described);
    assert.match(described, /redis\.internal:6379/);
  });
});
