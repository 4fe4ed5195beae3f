// The Node reference server of Durable Streams (in memory), for bench/src/bin/durable_bench.rs:
// `node reference.mjs PORT` listens on 127.0.0.1:PORT, prints "listening <url>", and runs until
// its stdin closes or it gets SIGTERM.
import { DurableStreamTestServer } from "@durable-streams/server";

const port = Number(process.argv[2] ?? 0);
const server = new DurableStreamTestServer({ port, host: "127.0.0.1", longPollTimeout: 500, compression: false });
const url = await server.start();
console.log(`listening ${url}`);
const stop = async () => {
  await server.stop();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.stdin.on("end", stop);
process.stdin.resume();
