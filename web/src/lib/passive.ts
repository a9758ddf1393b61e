import { i18n, t } from './i18n/i18n.svelte.ts';
import type { PassiveSourceView } from './types.ts';

/** A passive source's state in words: a refused login is not retried, so it does not say "retrying". */
export function passiveStateLabel(p: PassiveSourceView): string {
  return p.state === 'failed' && p.code === 'SSH_AUTH_FAILED' ? t('pstate.loginRefused') : i18n.dyn(`pstate.${p.state}`);
}

/** States in which the SSH side waits for someone, or keeps failing: the sources list points them out. */
export function passiveNeedsAttention(p: PassiveSourceView): boolean {
  return p.state === 'failed' || p.state === 'unreachable' || p.state === 'host-key-changed' || p.state === 'host-key-unconfirmed';
}
