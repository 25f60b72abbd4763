// Bundles the page (src/) with esbuild into one folder: `node build.mjs OUTDIR`
// (default dist/). host/build.rs calls it with the folder the binary embeds.
import { build } from "esbuild";
import { cpSync, mkdirSync } from "node:fs";

const out = process.argv[2] || "dist";
mkdirSync(out, { recursive: true });
await build({
  entryPoints: ["src/main.js"],
  bundle: true,
  minify: true,
  format: "esm",
  target: "es2020",
  outfile: `${out}/app.js`,
  logLevel: "warning",
});
cpSync("src/index.html", `${out}/index.html`);
cpSync("src/style.css", `${out}/style.css`);
