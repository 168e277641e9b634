/// <reference types="vitest/config" />
// The dashboard's build. `npm run dev` serves it with hot reload and proxies the API
// (and the event stream) to a running dagd: DAG_API_URL, default http://127.0.0.1:8080.
import { defineConfig } from 'vite';

const api = process.env.DAG_API_URL ?? 'http://127.0.0.1:8080';

export default defineConfig({
  base: '/',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    assetsDir: 'assets',
    // Everything the page needs is bundled; nothing is inlined as data: except tiny icons.
    assetsInlineLimit: 0,
    target: 'es2022',
    sourcemap: false,
    reportCompressedSize: false,
  },
  server: {
    proxy: {
      '/v1': { target: api, changeOrigin: false },
      '/healthz': api,
    },
  },
  test: {
    include: ['src/**/*.test.ts'],
    environment: 'node',
  },
});
