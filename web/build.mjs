// Placeholder build until the web UI issue: copies the static page into dist/, which the appliance serves.
import { cpSync, mkdirSync } from 'node:fs';
const here = new URL('.', import.meta.url);
mkdirSync(new URL('dist/', here), { recursive: true });
cpSync(new URL('src/index.html', here), new URL('dist/index.html', here));
