/**
 * Bundles agent/src/main.ts and everything it imports into one CommonJS file for Node's single executable
 * application (Node 20 runs only a CommonJS script as a SEA's main). Usage: node --import tsx agent/sea/bundle.ts OUT.cjs
 *
 * Two things cannot come along as they are: the package version (main.ts reads ../package.json, which is not
 * beside the executable; it is defined at build time instead) and the native lz4 addon, which
 * protocol/src/codec.ts loads through createRequire: that one call is pointed at agent/sea/lz4.ts, which loads
 * the addon from the SEA asset. xxhash-wasm carries its WebAssembly inline and bundles as is.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Plugin } from 'esbuild';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CODEC = path.join(ROOT, 'protocol/src/codec.ts');
const LZ4_LOAD = "createRequire(import.meta.url)('lz4')";

const seaLz4: Plugin = {
  name: 'ferry-sea-lz4',
  setup(b) {
    b.onResolve({ filter: /^ferry-sea:lz4$/ }, () => ({ path: path.join(ROOT, 'agent/sea/lz4.ts') }));
    b.onLoad({ filter: /[\\/]protocol[\\/]src[\\/]codec\.ts$/ }, (args) => {
      const source = readFileSync(args.path, 'utf8');
      if (args.path !== CODEC || !source.includes(LZ4_LOAD)) {
        return { errors: [{ text: `${args.path} no longer loads lz4 with ${LZ4_LOAD}: update agent/sea/bundle.ts to match` }] };
      }
      return { contents: `import __ferrySeaLz4 from 'ferry-sea:lz4';\n${source.replace(LZ4_LOAD, '__ferrySeaLz4')}`, loader: 'ts' };
    });
  },
};

/** ws tries these optional native helpers in a try/catch: a stub that throws makes it use its own JavaScript. */
const absentOptional: Plugin = {
  name: 'ferry-sea-absent',
  setup(b) {
    b.onResolve({ filter: /^(bufferutil|utf-8-validate)$/ }, (args) => ({ path: args.path, namespace: 'ferry-absent' }));
    b.onLoad({ filter: /.*/, namespace: 'ferry-absent' }, (args) => ({ contents: `throw new Error('${args.path} is not in the single executable');`, loader: 'js' }));
  },
};

const out = process.argv[2];
if (!out) throw new Error('usage: bundle.ts OUT.cjs');
const { version } = JSON.parse(readFileSync(path.join(ROOT, 'agent/package.json'), 'utf8')) as { version: string };

const result = await build({
  entryPoints: [path.join(ROOT, 'agent/src/main.ts')],
  outfile: out,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  // The workspaces' TypeScript sources (package.json "development" exports), not their dist.
  conditions: ['development'],
  // import.meta is empty in CommonJS; its one remaining use (version.ts reading package.json) is not reached
  // when FERRY_AGENT_BUILD_VERSION is set.
  define: { FERRY_AGENT_BUILD_VERSION: JSON.stringify(version), 'import.meta.url': JSON.stringify('file:///ferry-agent/single-executable/') },
  plugins: [seaLz4, absentOptional],
  // Stack traces in bug reports should name functions; the file is small next to the Node runtime.
  keepNames: true,
  legalComments: 'eof',
  logLevel: 'warning',
  metafile: true,
});
const inputs = Object.keys(result.metafile.inputs);
if (!inputs.some((p) => p.endsWith('agent/sea/lz4.ts'))) throw new Error('the bundle does not contain agent/sea/lz4.ts: lz4 would not load');
process.stdout.write(`${out}: ${inputs.length} modules, agent ${version}\n`);
