// `make build` runs this: Vite builds the Svelte app into web/dist/, which the appliance serves at /.
import { build } from 'vite';
import { fileURLToPath } from 'node:url';

await build({ root: fileURLToPath(new URL('.', import.meta.url)), logLevel: 'warn' });
