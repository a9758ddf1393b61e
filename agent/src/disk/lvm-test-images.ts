// Helpers for LVM tests: real pvcreate/vgcreate/lvcreate on loop devices. This kernel has no device-mapper,
// so volumes are never activated (--driverloaded n); a test reaches a volume's bytes through loop devices
// over the physical extents LVM itself reports (lvs --segments), which is also what makes the test independent
// of the agent's own segment mapping.
import { run } from './test-images.js';

export interface LvSegmentReport {
  lv: string;
  startExtent: number;
  extents: number;
  stripes: number;
  stripeSize: number;
  /** For each stripe: the loop device and its first physical extent. */
  ranges: { device: string; firstExtent: number }[];
  type: string;
}

let groupCount = 0;

/** A volume group name no other test or session uses. */
export function uniqueVgName(tag: string): string {
  return `ferrytest-${tag}-${process.pid}-${groupCount++}`;
}

/** Runs LVM commands seeing only `devices`: other sessions' volume groups on other loop devices stay invisible. */
export class LvmTool {
  readonly config: string;
  constructor(readonly devices: string[]) {
    const accept = devices.map((d) => `"a|^${d}$|"`).join(', ');
    this.config =
      'activation { udev_sync = 0 udev_rules = 0 monitoring = 0 } ' +
      `devices { obtain_device_list_from_udev = 0 use_devicesfile = 0 global_filter = [ ${accept}, "r|.*|" ] }`;
  }

  run(cmd: string, args: string[]): string {
    return run(cmd, ['--config', this.config, ...args], undefined, { LVM_SUPPRESS_FD_WARNINGS: '1' });
  }

  /** lvcreate without activation (and so without zeroing the first bytes: nothing could write them). */
  lvcreate(vg: string, name: string, args: string[], pvs: string[] = []): void {
    this.run('lvcreate', ['--driverloaded', 'n', '-an', '-Zn', '-y', '-n', name, ...args, vg, ...pvs]);
  }

  peStart(device: string): number {
    const out = JSON.parse(this.run('pvs', ['--reportformat', 'json', '-o', 'pv_name,pe_start', '--units', 'b', '--nosuffix', device])) as {
      report: { pv: { pe_start: string }[] }[];
    };
    return Number(out.report[0]?.pv[0]?.pe_start);
  }

  extentSize(vg: string): number {
    const out = JSON.parse(this.run('vgs', ['--reportformat', 'json', '-o', 'vg_extent_size', '--units', 'b', '--nosuffix', vg])) as {
      report: { vg: { vg_extent_size: string }[] }[];
    };
    return Number(out.report[0]?.vg[0]?.vg_extent_size);
  }

  segments(vg: string): LvSegmentReport[] {
    const out = JSON.parse(
      this.run('lvs', ['--driverloaded', 'n', '-a', '--reportformat', 'json', '--segments', '--units', 'b', '--nosuffix', '-o', 'lv_name,seg_start_pe,seg_size_pe,stripes,stripe_size,seg_pe_ranges,segtype', vg]),
    ) as { report: { seg: Record<string, string>[] }[] };
    return (out.report[0]?.seg ?? []).map((s) => ({
      lv: (s.lv_name ?? '').replace(/^\[|\]$/g, ''),
      startExtent: Number(s.seg_start_pe),
      extents: Number(s.seg_size_pe),
      stripes: Number(s.stripes),
      stripeSize: Number(s.stripe_size),
      type: s.segtype ?? '',
      ranges: (s.seg_pe_ranges ?? '')
        .split(/\s+/)
        .filter((r) => r !== '')
        .map((r) => {
          const m = /^(.*):(\d+)-\d+$/.exec(r);
          return { device: m?.[1] ?? '', firstExtent: Number(m?.[2]) };
        }),
    }));
  }

  /** Deactivates (a no-op without device-mapper, but right where it exists) and forgets the group. */
  remove(vg: string): void {
    try {
      this.run('vgchange', ['--driverloaded', 'n', '-an', vg]);
    } catch {
      // Nothing was active.
    }
  }
}

/**
 * Copies a flat filesystem image onto a logical volume's extents as LVM lays them out: linear segments in
 * order, striped ones chunk by chunk round the stripes. `write(device, offset, data)` writes to a physical volume.
 */
export function scatterOntoVolume(flat: Buffer, segs: LvSegmentReport[], extentSize: number, peStart: (device: string) => number, write: (device: string, offset: number, data: Buffer) => void): void {
  for (const s of segs) {
    const segBytes = s.extents * extentSize;
    const base = s.startExtent * extentSize;
    const chunk = s.stripes === 1 ? segBytes : s.stripeSize;
    for (let o = 0; o < segBytes; o += chunk) {
      const n = Math.floor(o / chunk);
      const stripe = s.ranges[n % s.stripes]!;
      const at = peStart(stripe.device) + stripe.firstExtent * extentSize + Math.floor(n / s.stripes) * chunk;
      write(stripe.device, at, flat.subarray(base + o, base + o + chunk));
    }
  }
}
