import { defineConfig } from "vite";

// `npm run dev` serves the app on :5173 and sends the API to a running `scripts/serve`
// (PROPINTEL_API, default http://127.0.0.1:8000); `npm run build` writes dist/, which the
// API server serves itself (app/http/webapp.py).
export default defineConfig({
  build: {
    outDir: "dist",
    assetsDir: "assets", // hashed names: served immutable (app/http/webapp.py)
    sourcemap: true,
    target: "es2022",
  },
  server: {
    proxy: { "/graphql": process.env.PROPINTEL_API ?? "http://127.0.0.1:8000" },
  },
});
