import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: [process.env.DURABLE_STREAMS_TEST ?? "conformance.test.mjs"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
