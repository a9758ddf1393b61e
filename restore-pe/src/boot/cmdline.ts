import { FerryError, normalizeFingerprint } from '@ferry/protocol';

/** What the kernel command line can preset; anything missing is asked for by the wizard (or refused with ferry.auto=1). */
export interface BootSettings {
  network: { kind: 'dhcp' } | { kind: 'static'; address: string; prefix: number } | null;
  gateway: string | null;
  dns: string[];
  nic: string | null;
  appliance: string | null;
  fingerprint: string | null;
  code: string | null;
  auto: boolean;
  reboot: boolean;
  verify: boolean;
  compat: boolean;
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;

export function isIpv4(s: string): boolean {
  return IPV4.test(s);
}

function flag(name: string, value: string): boolean {
  if (value === '1' || value === 'yes' || value === 'true') return true;
  if (value === '0' || value === 'no' || value === 'false') return false;
  throw new FerryError('BAD_REQUEST', `kernel option ${name}=${value}: use 1 or 0`);
}

/** Turns "10.0.0.5", "10.0.0.5:9443" or a full URL into the appliance URL (https, port 8443 by default). */
export function applianceUrl(input: string): string {
  const text = input.trim();
  const withScheme = /^[a-z]+:\/\//i.test(text) ? text : `https://${text}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new FerryError('BAD_REQUEST', `"${input}" is not an appliance address: give an IP address or host name, optionally with :port`);
  }
  if (url.protocol !== 'https:') throw new FerryError('BAD_REQUEST', `the appliance speaks HTTPS only; got ${url.protocol}//`);
  if (!url.port) url.port = '8443';
  return url.origin;
}

export function parseAddress(value: string, name = 'ferry.ip'): { address: string; prefix: number } {
  const m = /^([0-9.]+)\/(\d{1,2})$/.exec(value.trim());
  if (!m || !isIpv4(m[1]!) || Number(m[2]) < 1 || Number(m[2]) > 32) {
    throw new FerryError('BAD_REQUEST', `${name}=${value}: give ADDRESS/PREFIX, e.g. 198.18.0.2/24`);
  }
  return { address: m[1]!, prefix: Number(m[2]) };
}

/** Reads ferry.* options (other kernel options are ignored); every malformed value is refused by name. */
export function parseCmdline(cmdline: string): BootSettings {
  const s: BootSettings = { network: null, gateway: null, dns: [], nic: null, appliance: null, fingerprint: null, code: null, auto: false, reboot: true, verify: true, compat: true };
  for (const word of cmdline.trim().split(/\s+/)) {
    if (!word.startsWith('ferry.')) continue;
    const eq = word.indexOf('=');
    const name = eq < 0 ? word : word.slice(0, eq);
    const value = eq < 0 ? '1' : word.slice(eq + 1);
    switch (name) {
      case 'ferry.ip':
        s.network = value === 'dhcp' ? { kind: 'dhcp' } : { kind: 'static', ...parseAddress(value) };
        break;
      case 'ferry.gw':
        if (!isIpv4(value)) throw new FerryError('BAD_REQUEST', `ferry.gw=${value}: give the gateway's IPv4 address`);
        s.gateway = value;
        break;
      case 'ferry.dns':
        s.dns = value.split(',').filter(Boolean);
        for (const d of s.dns) if (!isIpv4(d)) throw new FerryError('BAD_REQUEST', `ferry.dns=${value}: give IPv4 addresses separated by commas`);
        break;
      case 'ferry.nic':
        s.nic = value;
        break;
      case 'ferry.appliance':
        s.appliance = applianceUrl(value);
        break;
      case 'ferry.fingerprint':
        s.fingerprint = normalizeFingerprint(value);
        break;
      case 'ferry.code':
        s.code = value;
        break;
      case 'ferry.auto':
        s.auto = flag(name, value);
        break;
      case 'ferry.reboot':
        s.reboot = flag(name, value);
        break;
      case 'ferry.verify':
        s.verify = flag(name, value);
        break;
      case 'ferry.compat':
        s.compat = flag(name, value);
        break;
      default:
        throw new FerryError('BAD_REQUEST', `unknown kernel option ${name}; known: ferry.ip ferry.gw ferry.dns ferry.nic ferry.appliance ferry.fingerprint ferry.code ferry.auto ferry.reboot ferry.verify ferry.compat`);
    }
  }
  return s;
}

/** What an unattended run lacks, by option name. */
export function missingForAuto(s: BootSettings): string[] {
  const missing: string[] = [];
  if (!s.network) missing.push('ferry.ip (ADDRESS/PREFIX or dhcp)');
  if (!s.appliance) missing.push('ferry.appliance');
  if (!s.fingerprint) missing.push('ferry.fingerprint');
  if (!s.code) missing.push('ferry.code');
  return missing;
}
