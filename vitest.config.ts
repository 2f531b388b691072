import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Integration files each start their own Temporal, Redis and S3 servers; two at a time fits 2 cores.
    maxWorkers: 2,
    fileParallelism: true,
  },
});
