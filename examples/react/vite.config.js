import { defineConfig, loadEnv } from 'vite';
import react from '@vitejs/plugin-react';

export default defineConfig(({ mode }) => {
  const env = loadEnv(mode, process.cwd(), '');
  // The example backend (examples/backend). The browser talks to one origin: Vite forwards the API
  // and the channel authorization endpoint; the WebSocket goes straight to Chorus.
  const backend = env.BACKEND_URL || 'http://127.0.0.1:8000';
  const proxy = { '/api': backend, '/broadcasting': backend };
  return {
    plugins: [react()],
    server: { proxy },
    preview: { proxy },
    // Keep the SDK out of pre-bundling so its .wasm stays next to its JS, and keep its
    // node_modules path: `file:../../npm` installs a symlink, and the dev server only serves
    // files inside the project (the .wasm is fetched by URL, not imported).
    optimizeDeps: { exclude: ['chorus-sdk'] },
    resolve: { preserveSymlinks: true },
  };
});
