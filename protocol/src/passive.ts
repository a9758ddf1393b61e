import { z } from 'zod';

/**
 * Passive sources: the appliance reaches the source over SSH, deploys the agent executable there and runs
 * it; the agent's traffic comes back through the SSH connection (a remote port forward), so the source needs
 * no route to the appliance.
 */

/** An SSH host key as OpenSSH shows it: `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`. */
export interface HostKey {
  /** e.g. ssh-ed25519, ecdsa-sha2-nistp256, ssh-rsa */
  algorithm: string;
  /** `SHA256:` and the unpadded base64 SHA-256 of the key blob, as `ssh-keygen -l` prints it. */
  sha256: string;
}

export const HostKeySha256Schema = z
  .string()
  .regex(/^SHA256:[A-Za-z0-9+/]{43}$/, 'an SSH host key fingerprint looks like SHA256: followed by 43 base64 characters (ssh-keygen -lf KEY.pub)');

const AddPassiveSourceUsername = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[a-z_][a-z0-9_.-]*\$?$/i, 'a user name has letters, digits, _ . - only');

export const AddPassiveSourceRequestSchema = z
  .strictObject({
    /** Shown in the UI; the host by default. */
    name: z.string().trim().min(1).max(128).optional(),
    host: z
      .string()
      .trim()
      .min(1)
      .max(253)
      .regex(/^[A-Za-z0-9.:_[\]-]+$/, 'a host is a DNS name or an IP address'),
    port: z.number().int().min(1).max(65535).default(22),
    username: AddPassiveSourceUsername,
    password: z.string().min(1).max(1024).optional(),
    /** An OpenSSH or PEM private key (unencrypted). */
    privateKey: z.string().min(1).max(64 * 1024).optional(),
    /** Disks on the source to back up (block devices); every disk found at each cycle when left out. */
    disks: z.array(z.string().regex(/^\/[^\0]*$/, 'a disk is an absolute path such as /dev/sda')).max(64).optional(),
  })
  .refine((r) => (r.password === undefined) !== (r.privateKey === undefined), {
    message: 'give either a password or a private key (exactly one)',
    path: ['password'],
  });
export type AddPassiveSourceRequest = z.input<typeof AddPassiveSourceRequestSchema>;

/** New SSH credentials for a passive source whose login was refused (or whose password changed on the source). */
export const PassiveCredentialsRequestSchema = z
  .strictObject({
    username: AddPassiveSourceUsername.optional(),
    password: z.string().min(1).max(1024).optional(),
    privateKey: z.string().min(1).max(64 * 1024).optional(),
  })
  .refine((r) => (r.password === undefined) !== (r.privateKey === undefined), {
    message: 'give either a password or a private key (exactly one)',
    path: ['password'],
  });
export type PassiveCredentialsRequest = z.input<typeof PassiveCredentialsRequestSchema>;

export const ConfirmHostKeyRequestSchema = z.strictObject({ sha256: HostKeySha256Schema });
export type ConfirmHostKeyRequest = z.infer<typeof ConfirmHostKeyRequestSchema>;

/**
 * Where a passive source stands:
 * - `host-key-unconfirmed`: added; the engineer must compare the host key and confirm it;
 * - `connecting`, `deploying` (uploading the agent if missing or outdated), `running` (the agent is up);
 * - `unreachable`: SSH failed; retried on its own;
 * - `host-key-changed`: the source presented another host key; nothing is sent until the engineer confirms the new one;
 * - `failed`: the agent could not be deployed (retried on its own), or the login was refused (`code`
 *   SSH_AUTH_FAILED: not retried, so a wrong password cannot lock the account; new credentials start it again).
 *   The message says what to fix.
 */
export const PASSIVE_STATES = ['host-key-unconfirmed', 'connecting', 'deploying', 'running', 'unreachable', 'host-key-changed', 'failed'] as const;
export type PassiveState = (typeof PASSIVE_STATES)[number];

export interface PassiveSourceView {
  sourceId: number;
  name: string;
  host: string;
  port: number;
  username: string;
  auth: 'password' | 'key';
  disks: string[] | null;
  state: PassiveState;
  message: string | null;
  /** The error code of the failure `message` describes (docs/errors.md); null while all is well. */
  code: string | null;
  /** The key trusted (confirmed by the engineer), if any. */
  hostKey: HostKey | null;
  /** A key the source presented that is not trusted yet (first contact, or a changed key). */
  presentedHostKey: HostKey | null;
  /** The agent version running there, once deployed. */
  agentVersion: string | null;
  updatedAt: string;
}

export interface AddPassiveSourceResponse {
  source: PassiveSourceView;
  hostKey: HostKey;
}
