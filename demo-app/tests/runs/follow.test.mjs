// The AI SDK's Durable Streams transport follows a demo run through instance B while the test
// kills and restarts B: it must get every token once, in order, then the end. Run by
// demo-app/tests/runs_transport.rs, which starts the instances (A_URL, B_URL), kills B when this
// script prints `CTL kill` and reads the `CTL result` line.
//
// Between the transport and the instances sits a small balancer: runs are started on A (where
// their producer lives), reads go to B while it accepts connections and to A otherwise. When a
// backend dies mid-response, the balancer ends the response, as a proxy that loses its upstream
// does; the client then resumes from its last offset.
import assert from "node:assert/strict";
import http from "node:http";
import { test } from "node:test";

import { createDurableChatTransport } from "@durable-streams/aisdk-transport";
import { readUIMessageStream } from "ai";

const A = new URL(process.env.A_URL);
const B = new URL(process.env.B_URL);
const TOKENS = Number(process.env.TOKENS ?? 200);
const RATE = Number(process.env.RATE ?? 40);
const KILL_AFTER = Number(process.env.KILL_AFTER ?? 50);

/** The balancer; `log` records every request with the backend that answered it. */
function balancer() {
  const log = [];
  const forward = (backend, req, res, body, fallback) => {
    const upstream = http.request(
      {
        host: backend.hostname,
        port: backend.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: backend.host },
      },
      (answer) => {
        log.push({ method: req.method, path: req.url, backend: backend === A ? "A" : "B" });
        res.writeHead(answer.statusCode, answer.headers);
        answer.pipe(res);
        // The backend went away mid-answer: end the answer (the client resumes).
        answer.on("error", () => res.end());
        answer.on("aborted", () => res.end());
      },
    );
    upstream.on("error", (err) => {
      if (!res.headersSent && fallback) {
        forward(fallback, req, res, body, null);
      } else if (!res.headersSent) {
        res.writeHead(502).end(String(err));
      } else {
        res.end();
      }
    });
    // The client went away: so does the upstream request.
    res.on("close", () => {
      if (!res.writableFinished) upstream.destroy();
    });
    upstream.end(body);
  };
  const server = http.createServer((req, res) => {
    const parts = [];
    req.on("data", (part) => parts.push(part));
    req.on("end", () => {
      const body = Buffer.concat(parts);
      if (req.method === "POST") forward(A, req, res, body, null);
      else forward(B, req, res, body, A);
    });
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve({ server, log })),
  );
}

test("the AI SDK transport follows a run across a restart of the instance it reads", async () => {
  const { server, log } = await balancer();
  const base = `http://127.0.0.1:${server.address().port}`;
  try {
    const transport = createDurableChatTransport({ api: `${base}/api/runs` });
    const stream = await transport.sendMessages({
      trigger: "submit-message",
      chatId: "chat-1",
      messageId: undefined,
      messages: [
        { id: "m1", role: "user", parts: [{ type: "text", text: "a lighthouse" }] },
      ],
      abortSignal: undefined,
      body: { tokens: TOKENS, rate: RATE },
    });

    const chunks = [];
    let killAt = null;
    for await (const chunk of stream) {
      chunks.push(chunk);
      const deltas = chunks.filter((c) => c.type === "text-delta").length;
      if (killAt === null && deltas === KILL_AFTER) {
        killAt = log.length;
        console.log("CTL kill");
      }
    }

    // Every chunk once, in the AI SDK's order, then the end of the stream.
    const types = chunks.map((c) => c.type);
    assert.deepEqual(types.slice(0, 2), ["start", "text-start"]);
    assert.deepEqual(types.slice(-2), ["text-end", "finish"]);
    const deltas = chunks.filter((c) => c.type === "text-delta");
    assert.equal(deltas.length, TOKENS, "every token once");
    assert.equal(types.length, TOKENS + 4);
    assert.notEqual(killAt, null, "the run outlived the kill point");

    // The AI SDK builds the assistant's message from the chunks.
    let message;
    const replay = new ReadableStream({
      start(controller) {
        for (const chunk of chunks) controller.enqueue(chunk);
        controller.close();
      },
    });
    for await (const m of readUIMessageStream({ stream: replay })) message = m;
    const text = deltas.map((c) => c.delta).join("");
    assert.equal(message.parts.find((p) => p.type === "text")?.text, text);

    // Reads went to B before the kill and to A after it.
    const read = (r) => r.method === "GET" && r.path.startsWith("/v1/stream/");
    const before = log.slice(0, killAt).filter(read);
    const after = log.slice(killAt).filter(read);
    assert.ok(before.length > 0 && before.every((r) => r.backend === "B"), JSON.stringify(log));
    assert.ok(after.some((r) => r.backend === "A"), JSON.stringify(log));

    const run = chunks[0].messageId;
    console.log(`CTL result ${JSON.stringify({ run, text, deltas: deltas.length, log })}`);
  } finally {
    server.close();
    server.closeAllConnections();
  }
});
