// The protocol's own client, @durable-streams/client, against the server in DURABLE_STREAMS_URL
// (run by tests/durable_conformance.rs): create, plain and idempotent appends, a live SSE
// follower with subscribeJson, close, and a catch-up that sees the close.
import { describe, expect, test } from "vitest";
import { DurableStream, IdempotentProducer } from "@durable-streams/client";

const baseUrl = process.env.DURABLE_STREAMS_URL;
const url = (name) => `${baseUrl}/v1/stream/${name}-${Date.now()}-${Math.random().toString(36).slice(2)}`;

describe("@durable-streams/client", () => {
  test("create, append, idempotent producer, live SSE follower, close, catch-up", async () => {
    const stream = await DurableStream.create({ url: url("client-story"), contentType: "application/json" });
    await stream.append(JSON.stringify({ n: 0 }));

    // A follower from the start, over SSE, until the stream says it is closed.
    const followed = [];
    const follower = await stream.stream({ live: "sse", offset: "-1" });
    const sawClose = new Promise((resolve, reject) => {
      follower.subscribeJson(async (batch) => {
        followed.push(...batch.items);
        if (batch.streamClosed) resolve();
      });
      follower.closed.catch(reject);
    });

    const producer = new IdempotentProducer(stream, "story-producer", { lingerMs: 5 });
    for (let n = 1; n <= 20; n++) producer.append(JSON.stringify({ n }));
    await producer.flush();
    const { finalOffset } = await producer.close(JSON.stringify({ done: true }));
    expect(typeof finalOffset).toBe("string");

    const expected = [...Array.from({ length: 21 }, (_, n) => ({ n })), { done: true }];
    await Promise.race([sawClose, new Promise((_, reject) => setTimeout(() => reject(new Error("no close over SSE")), 10_000))]);
    expect(followed).toEqual(expected);

    // A late reader catches up and sees the end.
    const late = await stream.stream({ live: false, offset: "-1" });
    expect(await late.json()).toEqual(expected);
    expect(late.streamClosed).toBe(true);
    const head = await stream.head();
    expect(head.exists).toBe(true);
    expect(head.offset).toBe(finalOffset);
    expect(head.streamClosed).toBe(true);

    // The stream refuses more data; closing again is idempotent.
    await expect(stream.append(JSON.stringify({ n: 99 }))).rejects.toThrow();
    await stream.close();
  });

  test("byte streams round-trip every byte through long-poll", async () => {
    const stream = await DurableStream.create({ url: url("client-bytes"), contentType: "application/octet-stream" });
    const chunks = [];
    const reader = await stream.stream({ live: "long-poll", offset: "-1" });
    const all = new Uint8Array(256).map((_, i) => i);
    const got = new Promise((resolve) => {
      reader.subscribeBytes(async (chunk) => {
        chunks.push(...chunk.data);
        if (chunks.length >= all.length) {
          reader.cancel();
          resolve();
        }
      });
    });
    for (let i = 0; i < 256; i += 64) await stream.append(all.slice(i, i + 64));
    await got;
    expect(Uint8Array.from(chunks)).toEqual(all);
  });
});
