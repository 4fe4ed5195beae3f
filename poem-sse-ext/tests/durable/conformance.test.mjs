// The public Durable Streams conformance suite, run against the server whose base URL is in
// DURABLE_STREAMS_URL (tests/durable_conformance.rs starts one and runs this file).
import { runConformanceTests } from "@durable-streams/server-conformance-tests";

const baseUrl = process.env.DURABLE_STREAMS_URL;
if (!baseUrl) {
  throw new Error("set DURABLE_STREAMS_URL to the server's base URL (the endpoint is mounted at /v1/stream)");
}

runConformanceTests({
  baseUrl,
  // The server under test answers an empty long-poll after this long.
  longPollTimeoutMs: Number(process.env.DURABLE_STREAMS_LONG_POLL_MS ?? 500),
});
