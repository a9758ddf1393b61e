import { webcrypto } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import * as x509 from '@peculiar/x509';
import { certificateFingerprint } from '@ferry/protocol';
import { writeFileDurable } from '../store/durable.js';

export interface ApplianceCertificate {
  cert: string;
  key: string;
  fingerprint: string;
}

x509.cryptoProvider.set('default', webcrypto);

/**
 * The appliance's self-signed certificate, made on first start. Agents and the restore ISO pin its SHA-256
 * fingerprint rather than trusting a CA, so the subject names are informational only.
 */
export async function loadOrCreateCertificate(certFile: string, keyFile: string): Promise<ApplianceCertificate> {
  if (existsSync(certFile) && existsSync(keyFile)) {
    const cert = readFileSync(certFile, 'utf8');
    return { cert, key: readFileSync(keyFile, 'utf8'), fingerprint: certificateFingerprint(cert) };
  }
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const notBefore = new Date(Date.now() - 24 * 3600 * 1000);
  const notAfter = new Date(notBefore.getTime() + 20 * 365 * 24 * 3600 * 1000);
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: webcrypto.getRandomValues(new Uint8Array(8)).reduce((s, b) => s + b.toString(16).padStart(2, '0'), '01'),
    name: `CN=Ferry appliance ${os.hostname()}`,
    notBefore,
    notAfter,
    signingAlgorithm: alg,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([
        { type: 'dns', value: os.hostname() },
        { type: 'dns', value: 'localhost' },
        { type: 'ip', value: '127.0.0.1' },
      ]),
    ],
  });
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  const key = x509.PemConverter.encode(pkcs8, 'PRIVATE KEY');
  const cert = certificate.toString('pem');
  await writeFileDurable(keyFile, key, 0o600);
  await writeFileDurable(certFile, cert, 0o644);
  return { cert, key, fingerprint: certificateFingerprint(cert) };
}
