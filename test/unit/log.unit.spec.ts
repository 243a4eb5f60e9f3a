import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { lazyChild } from '../../lib/log.ts';

describe('lazyChild: per-event loggers made only when a line is written', () => {
  const capture = (level: string) => {
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
        done();
      },
    });
    const parent = pino({ level }, sink);
    let children = 0;
    const child = parent.child.bind(parent);
    parent.child = ((...args: Parameters<typeof child>) => (
      children++,
      child(...args)
    )) as typeof parent.child;
    return { parent, lines, children: () => children };
  };

  it('given level info, when only debug lines are written, then no child logger is made and nothing is written', () => {
    const { parent, lines, children } = capture('info');
    const log = lazyChild(parent, { portalId: 1 }).child({ orgId: 'o1' });
    log.debug({ reason: 'duplicate' }, 'event ignored');
    assert.equal(children(), 0);
    assert.deepEqual(lines, []);
  });

  it('given an info line, then it carries every binding, and the child is made once', async () => {
    const { parent, lines, children } = capture('info');
    const log = lazyChild(parent, { portalId: 1 }).child({ orgId: 'o1' });
    log.info({ attempt: 1 }, 'HubSpot call failed; retrying');
    log.warn('second');
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(children(), 1);
    assert.equal(lines.length, 2);
    assert.equal(lines[0]?.portalId, 1);
    assert.equal(lines[0]?.orgId, 'o1');
    assert.equal(lines[0]?.attempt, 1);
    assert.equal(lines[0]?.msg, 'HubSpot call failed; retrying');
    assert.equal(lines[1]?.orgId, 'o1');
  });
});
