import type { Message, Producer, TopicMessages } from 'kafkajs';

export type BatchingPublisherOptions = {
  /** How long a message may wait for others to share its request. */
  readonly lingerMs: number;
  /** A batch this large is sent at once. */
  readonly maxBatchMessages: number;
  /** A send that takes longer fails (the caller answers 503; HubSpot waits only 5 s). */
  readonly sendTimeoutMs: number;
};

type Pending = {
  readonly topic: string;
  readonly messages: readonly Message[];
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
};

/**
 * kafkajs has no linger: every `send` is its own request. This gathers the messages of concurrent
 * callers for up to `lingerMs` into one `sendBatch` (acks from all in-sync replicas), and
 * resolves each caller once its messages are durable.
 */
export class BatchingPublisher {
  readonly #producer: Producer;
  readonly #options: BatchingPublisherOptions;
  #pending: Pending[] = [];
  #pendingCount = 0;
  #timer: NodeJS.Timeout | undefined;
  readonly #inFlight = new Set<Promise<void>>();

  constructor(producer: Producer, options: BatchingPublisherOptions) {
    this.#producer = producer;
    this.#options = options;
  }

  publish(topic: string, messages: readonly Message[]): Promise<void> {
    if (messages.length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.#pending.push({ topic, messages, resolve, reject });
      this.#pendingCount += messages.length;
      if (this.#pendingCount >= this.#options.maxBatchMessages) this.#flush();
      else this.#timer ??= setTimeout(() => this.#flush(), this.#options.lingerMs);
    });
  }

  /** Sends what is waiting and waits for every request under way. */
  async drain(): Promise<void> {
    this.#flush();
    await Promise.allSettled([...this.#inFlight]);
  }

  #flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const batch = this.#pending;
    if (batch.length === 0) return;
    this.#pending = [];
    this.#pendingCount = 0;

    const byTopic = new Map<string, Message[]>();
    for (const entry of batch) {
      const list = byTopic.get(entry.topic) ?? [];
      list.push(...entry.messages);
      byTopic.set(entry.topic, list);
    }
    const topicMessages: TopicMessages[] = [...byTopic].map(([topic, messages]) => ({ topic, messages }));

    let timeout: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timeout = setTimeout(
        () => reject(new Error(`Kafka did not acknowledge within ${this.#options.sendTimeoutMs} ms`)),
        this.#options.sendTimeoutMs,
      );
    });
    const send = Promise.race([this.#producer.sendBatch({ topicMessages, acks: -1 }), timedOut]).then(
      () => {
        for (const entry of batch) entry.resolve();
      },
      (error: unknown) => {
        for (const entry of batch) entry.reject(error);
      },
    );
    const tracked = send.finally(() => {
      clearTimeout(timeout);
      this.#inFlight.delete(tracked);
    });
    this.#inFlight.add(tracked);
  }
}
