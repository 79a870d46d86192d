// Bundles src/main.js (and JsSIP) into dist/wic.js and copies the page and
// its style next to it: dist/ is what wwsfd serves as its web_root.
// Run through `npm run build` (scripts/build-web does).
import { build } from 'esbuild';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

process.chdir(dirname(fileURLToPath(import.meta.url)));

const out = 'dist';

// dist/ is updated in place, never removed: a running wwsfd holds the web
// root open as a directory, and a new directory would not be the one it serves.
await mkdir(out, { recursive: true });

const result = await build({
  entryPoints: ['src/main.js'],
  bundle: true,
  format: 'iife',
  platform: 'browser',
  // Browsers with WebRTC's unified plan and private class fields.
  target: ['chrome100', 'firefox100', 'safari15.4'],
  minify: true,
  sourcemap: 'linked',
  outfile: `${out}/wic.js`,
  logLevel: 'warning',
  write: false,
});

// Each file replaced by a rename, so a request never sees half a file.
async function put(path, contents) {
  const tmp = `${path}.tmp`;
  await writeFile(tmp, contents);
  await rename(tmp, path);
}

for (const file of result.outputFiles)
  await put(file.path, file.contents);

for (const file of ['index.html', 'style.css'])
  await put(`${out}/${file}`, await readFile(`src/${file}`));
