import { defineConfig } from 'vitest/config';

// Records real workflow histories as replay fixtures (test/histories/record.histories.ts),
// on the same real backends as the test suite: `npm run record-histories`.
export default defineConfig({
  test: {
    include: ['test/histories/*.histories.ts'],
    // One set of real servers (Temporal, moto, kube-apiserver) for the whole run,
    // and files one after another: the machine has two cores.
    globalSetup: ['test/global-setup.ts'],
    fileParallelism: false,
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 300_000,
  },
});
