import tls from 'node:tls';
import { FerryError, normalizeFingerprint } from '@ferry/protocol';

/**
 * The fingerprint of the certificate a server presents, read from the TLS handshake; nothing is sent over the
 * connection. The wizard shows it so the engineer can compare it with the appliance's UI before trusting it.
 */
export function presentedFingerprint(applianceUrl: string, timeoutMs = 10_000): Promise<string> {
  const url = new URL(applianceUrl);
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: url.hostname, port: Number(url.port || 8443), rejectUnauthorized: false, servername: undefined, minVersion: 'TLSv1.2' });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new FerryError('APPLIANCE_UNREACHABLE', `no answer from ${url.host} within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      const fp = socket.getPeerCertificate().fingerprint256;
      socket.destroy();
      if (!fp) reject(new FerryError('APPLIANCE_UNREACHABLE', `${url.host} presented no certificate`));
      else resolve(normalizeFingerprint(fp));
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(new FerryError('APPLIANCE_UNREACHABLE', `cannot reach the appliance at ${url.host}: ${err.code ?? err.message}`, { cause: err }));
    });
  });
}
