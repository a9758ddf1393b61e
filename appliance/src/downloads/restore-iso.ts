import { stat } from 'node:fs/promises';
import { FerryError } from '@ferry/protocol';

/** The restore ISO file as it is now on the appliance. */
export interface RestoreIsoFile {
  path: string;
  size: number;
  modifiedAt: Date;
}

/** The restore ISO (`make iso`) that engineers download to boot target VMs; looked up at every request, so a rebuild needs no restart. */
export class RestoreIso {
  constructor(readonly path: string) {}

  async file(): Promise<RestoreIsoFile> {
    const st = await stat(this.path).catch(() => null);
    if (!st?.isFile()) {
      throw new FerryError('ISO_NOT_BUILT', `the restore ISO has not been built on this appliance (${this.path} does not exist): run \`make iso\` on the appliance`);
    }
    return { path: this.path, size: st.size, modifiedAt: st.mtime };
  }
}
