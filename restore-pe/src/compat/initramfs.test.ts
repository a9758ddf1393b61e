import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addToModulesList, listHasModule, moduleState, VIRTIO_MODULES } from './initramfs.js';

test('addToModulesList appends only the modules not listed yet, under a comment', () => {
  const before = '# List of modules\nata_piix\nvirtio-blk\n';
  const r = addToModulesList(before, VIRTIO_MODULES);
  assert.deepEqual(r.added, ['virtio_scsi', 'virtio_net', 'virtio_pci']);
  assert.equal(r.text, `${before}# Added by Ferry: the restored system runs on a virtio VM.\nvirtio_scsi\nvirtio_net\nvirtio_pci\n`);
  assert.deepEqual(addToModulesList(r.text, VIRTIO_MODULES), { text: r.text, added: [] }, 'a second run adds nothing');
  assert.equal(addToModulesList('ext4', ['virtio_blk']).text, 'ext4\n# Added by Ferry: the restored system runs on a virtio VM.\nvirtio_blk\n');
});

test('moduleState tells loadable, built-in and absent modules apart', () => {
  const dep = 'kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko\nkernel/drivers/virtio/virtio_pci.ko.xz: kernel/drivers/virtio/virtio_ring.ko.xz\n';
  const builtin = 'kernel/drivers/net/virtio_net.ko\n';
  assert.equal(moduleState(dep, builtin, 'virtio_blk'), 'module');
  assert.equal(moduleState(dep, builtin, 'virtio_pci'), 'module');
  assert.equal(moduleState(dep, builtin, 'virtio_net'), 'builtin');
  assert.equal(moduleState(dep, builtin, 'virtio_scsi'), 'missing');
  assert.equal(moduleState(dep, builtin, 'virtio'), 'missing', 'a dependency of another line is not a match');
});

test('listHasModule finds a module file in an lsinitramfs listing, compressed or not', () => {
  const files = 'usr/lib/modules/6.1.0-50-amd64/kernel/drivers/block/virtio_blk.ko\nusr/lib/modules/6.1.0-50-amd64/kernel/drivers/virtio/virtio_pci.ko.zst\n';
  assert.equal(listHasModule(files, 'virtio_blk'), true);
  assert.equal(listHasModule(files, 'virtio_pci'), true);
  assert.equal(listHasModule(files, 'virtio'), false);
  assert.equal(listHasModule(files, 'virtio_net'), false);
});
