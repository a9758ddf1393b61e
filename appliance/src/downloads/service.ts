import { execFile } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { certificateFingerprint, FerryError, type AgentBinaryInfo, type AgentVersionInfo } from '@ferry/protocol';

const execFileP = promisify(execFile);

/** The agent's systemd unit in the checkout the appliance runs from; install.sh writes it on the source. */
export const AGENT_UNIT_FILE = fileURLToPath(new URL('../../../agent/systemd/ferry-agent.service', import.meta.url));

/** The agent executable as the appliance serves it. */
export interface AgentBinary {
  path: string;
  info: AgentBinaryInfo;
}

/** How a client pins the appliance: the certificate fingerprint (agents) and curl's public-key pin (install). */
export interface CertificatePins {
  fingerprint: string;
  /** sha256//<base64 of SHA-256 over the DER SubjectPublicKeyInfo>, as curl --pinnedpubkey takes it. */
  pin: string;
}

export function certificatePins(certDer: Buffer): CertificatePins {
  const spki = new X509Certificate(certDer).publicKey.export({ type: 'spki', format: 'der' });
  return { fingerprint: certificateFingerprint(certDer), pin: `sha256//${createHash('sha256').update(spki).digest('base64')}` };
}

async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/**
 * The agent executable (`make agent-binary`) and the systemd unit the install script writes. The file is
 * hashed and asked for its version once per (size, mtime, inode), so a rebuild is picked up without a restart.
 */
export class AgentDownloads {
  #cached: { key: string; binary: Promise<AgentBinary> } | undefined;

  constructor(
    readonly binaryPath: string,
    private readonly unitPath: string,
  ) {}

  async binary(): Promise<AgentBinary> {
    const st = await stat(this.binaryPath).catch(() => null);
    if (!st?.isFile()) {
      throw new FerryError('AGENT_BINARY_MISSING', `the agent executable ${this.binaryPath} does not exist: run \`make agent-binary\` on the appliance`);
    }
    const key = `${st.size}:${st.mtimeMs}:${st.ino}`;
    if (this.#cached?.key !== key) {
      const binary = this.#inspect(st.size);
      this.#cached = { key, binary };
      binary.catch(() => {
        if (this.#cached?.binary === binary) this.#cached = undefined;
      });
    }
    return this.#cached.binary;
  }

  async #inspect(size: number): Promise<AgentBinary> {
    const sha256 = await sha256File(this.binaryPath);
    let version: AgentVersionInfo;
    try {
      // Empty environment: the executable must not depend on anything the appliance's shell has.
      const { stdout } = await execFileP(this.binaryPath, ['version', '--json'], { env: {}, timeout: 30_000 });
      version = JSON.parse(stdout) as AgentVersionInfo;
    } catch (err) {
      throw new FerryError('AGENT_BINARY_MISSING', `the agent executable ${this.binaryPath} does not run (\`ferry-agent version --json\`: ${(err as Error).message.split('\n')[0]}): rebuild it with \`make agent-binary\``, {
        cause: err,
      });
    }
    return { path: this.binaryPath, info: { version: version.version, sha256, size } };
  }

  /** The unit file, with ExecStart pointing at where install.sh puts the executable. */
  async unit(executable: string): Promise<string> {
    const text = await readFile(this.unitPath, 'utf8').catch((err: unknown) => {
      throw new FerryError('AGENT_BINARY_MISSING', `the agent's systemd unit ${this.unitPath} cannot be read (${(err as Error).message}): the appliance's checkout is incomplete`);
    });
    return text.replace(/^ExecStart=\S+/m, `ExecStart=${executable}`);
  }
}
