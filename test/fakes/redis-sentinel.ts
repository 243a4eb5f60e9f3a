// A Redis master and a Sentinel as loopback servers speaking just enough RESP for ioredis's
// Sentinel client (lib/redis.ts): the master answers its ready check and PING, the sentinel names
// the master, takes SUBSCRIBE +switch-master and publishes it when told. The sentinel can hold
// its answers to "where is the master?", to stop a reconnecting client at an exact point.
import { createServer, type Server, type Socket } from 'node:net';

type Reply = string;

const bulk = (text: string): Reply => `$${Buffer.byteLength(text)}\r\n${text}\r\n`;
const array = (items: readonly Reply[]): Reply => `*${items.length}\r\n${items.join('')}`;

/** Commands (arrays of bulk strings) out of what a socket sent; the rest waits for more bytes. */
const parseCommands = (buffer: string): { commands: string[][]; rest: string } => {
  const commands: string[][] = [];
  let at = 0;
  for (;;) {
    const header = /^\*(\d+)\r\n/.exec(buffer.slice(at));
    if (header === null) break;
    let cursor = at + header[0].length;
    const args: string[] = [];
    for (let index = 0; index < Number(header[1]); index++) {
      const length = /^\$(\d+)\r\n/.exec(buffer.slice(cursor));
      if (length === null) return { commands, rest: buffer.slice(at) };
      const start = cursor + length[0].length;
      if (buffer.length < start + Number(length[1]) + 2) return { commands, rest: buffer.slice(at) };
      args.push(buffer.slice(start, start + Number(length[1])));
      cursor = start + Number(length[1]) + 2;
    }
    commands.push(args);
    at = cursor;
  }
  return { commands, rest: buffer.slice(at) };
};

const serve = async (
  answer: (args: string[], socket: Socket) => Reply | Promise<Reply>,
): Promise<{ server: Server; port: number; sockets: Set<Socket> }> => {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let pending = '';
    // One command after another, in order, even when an answer is held.
    let answered = Promise.resolve();
    socket.on('data', (chunk: Buffer) => {
      const { commands, rest } = parseCommands(pending + chunk.toString('latin1'));
      pending = rest;
      for (const args of commands)
        answered = answered.then(async () => {
          const reply = await answer(args, socket);
          if (!socket.destroyed) socket.write(reply);
        });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return { server, port: typeof address === 'object' && address !== null ? address.port : 0, sockets };
};

const close = (server: Server, sockets: Set<Socket>): Promise<void> => {
  for (const socket of sockets) socket.destroy();
  return new Promise((resolve) => server.close(() => resolve()));
};

export type FakeRedisMaster = {
  readonly port: number;
  /** Drops every connection, as a master that died (the clients reconnect). */
  readonly dropClients: () => void;
  readonly close: () => Promise<void>;
};

export const startFakeRedisMaster = async (): Promise<FakeRedisMaster> => {
  const { server, port, sockets } = await serve(([command = '']) => {
    switch (command.toLowerCase()) {
      case 'info':
        return bulk('# Server\r\nredis_version:7.0.15\r\nloading:0\r\n# Replication\r\nrole:master\r\n');
      case 'ping':
        return '+PONG\r\n';
      default:
        return '+OK\r\n';
    }
  });
  return {
    port,
    dropClients: () => {
      for (const socket of sockets) socket.destroy();
    },
    close: () => close(server, sockets),
  };
};

export type FakeSentinel = {
  readonly port: number;
  /** Sockets subscribed to +switch-master (ioredis's failover detector). */
  readonly subscribers: () => number;
  /** From now on, "where is the master?" waits for `release`. */
  readonly hold: () => void;
  /** Questions waiting for `release`. */
  readonly held: () => number;
  readonly release: () => void;
  /** Publishes +switch-master to the subscribers, as sentinels do once a failover is decided. */
  readonly switchMaster: (from: number, to: number) => void;
  readonly close: () => Promise<void>;
};

export const startFakeSentinel = async (name: string, masterPort: () => number): Promise<FakeSentinel> => {
  const subscribers = new Set<Socket>();
  let holding = false;
  const waiting: Array<() => void> = [];
  const { server, port, sockets } = await serve(async (args, socket) => {
    const [command = '', sub = '', ...rest] = args.map((arg) => arg.toLowerCase());
    if (command === 'subscribe') {
      subscribers.add(socket);
      socket.once('close', () => subscribers.delete(socket));
      return array([bulk('subscribe'), bulk(args[1] ?? ''), ':1\r\n']);
    }
    if (command === 'sentinel' && sub === 'get-master-addr-by-name' && rest[0] === name.toLowerCase()) {
      if (holding) await new Promise<void>((resolve) => waiting.push(resolve));
      return array([bulk('127.0.0.1'), bulk(String(masterPort()))]);
    }
    if (command === 'sentinel') return array([]);
    return '+OK\r\n';
  });
  return {
    port,
    subscribers: () => subscribers.size,
    hold: () => {
      holding = true;
    },
    held: () => waiting.length,
    release: () => {
      holding = false;
      for (const resolve of waiting.splice(0)) resolve();
    },
    switchMaster: (from, to) => {
      const message = `${name} 127.0.0.1 ${from} 127.0.0.1 ${to}`;
      for (const socket of subscribers)
        socket.write(array([bulk('message'), bulk('+switch-master'), bulk(message)]));
    },
    close: () => close(server, sockets),
  };
};
