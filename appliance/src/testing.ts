/** What tests that run the appliance in their own process use (an in-process server with a hand-moved clock). */
export { startServer, type RunningServer } from './server.js';
export { loadConfig } from './config.js';
export { ManualClock } from './clock.js';
export type { PassiveOptions } from './passive/service.js';
export { openStores } from './keys/open-stores.js';
export { ROUTES, pathParams } from './http/openapi.js';
