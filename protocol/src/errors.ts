/**
 * Every error Ferry reports has a code from this registry. `status` is the HTTP status the appliance answers
 * with; `hint` tells the user what to do. docs/errors.md documents each code (a test keeps them in step).
 * `user: false` marks errors that mean a bug or a broken installation rather than bad input.
 */
export const ERRORS = {
  BAD_REQUEST: { status: 400, user: true, hint: 'Check the request against docs/api.md.' },
  AUTH_REQUIRED: { status: 401, user: true, hint: 'Send "Authorization: Bearer <token>"; create an admin token with `ferry-appliance token create`.' },
  AUTH_INVALID: { status: 401, user: true, hint: 'The token is unknown or revoked: create a new one, or re-enroll the agent.' },
  FORBIDDEN: { status: 403, user: true, hint: 'This credential may not touch that resource: agents see only their own source; use an admin token.' },
  NOT_FOUND: { status: 404, user: true, hint: 'Check the URL against docs/api.md.' },
  ENROLL_TOKEN_INVALID: { status: 401, user: true, hint: 'Create a new one-time token on the appliance: `ferry-appliance enroll-token`.' },
  ENROLL_TOKEN_USED: { status: 401, user: true, hint: 'Enrollment tokens work once. Create a new one: `ferry-appliance enroll-token`.' },
  ENROLL_TOKEN_EXPIRED: { status: 401, user: true, hint: 'Create a new one-time token: `ferry-appliance enroll-token`.' },
  CHUNK_ID_INVALID: { status: 400, user: true, hint: 'Chunk ids are 64 lowercase hex characters (SHA-256 of the plaintext).' },
  CHUNK_MISMATCH: { status: 422, user: true, hint: 'The data does not hash to its id: it was damaged in transit or the agent is faulty. Nothing was stored; run the cycle again.' },
  CHUNK_MISSING: { status: 409, user: true, hint: 'A block names a chunk the appliance does not hold: upload the chunk first (ask /chunks/missing), then retry.' },
  CHUNK_DAMAGED: { status: 500, user: false, hint: 'A stored chunk fails its checksum. Run `ferry-appliance verify` to see which points are affected.' },
  STREAM_INVALID: { status: 400, user: true, hint: 'The frame stream is malformed or truncated; see docs/spec/frame-stream.md. Acknowledged blocks are kept: retry from there.' },
  BLOCK_OUT_OF_ORDER: { status: 409, user: true, hint: 'Blocks must be sent in order from the next unacknowledged block; ask the cycle for its position and continue from it.' },
  DISK_NOT_FOUND: { status: 404, user: true, hint: 'Register the disk with the source first, or check the disk id.' },
  DISK_INVALID: { status: 400, user: true, hint: 'List each disk once per cycle.' },
  SOURCE_NOT_FOUND: { status: 404, user: true, hint: 'List sources with GET /api/v1/sources.' },
  CYCLE_NOT_FOUND: { status: 404, user: true, hint: 'Start a cycle with POST /api/v1/cycles.' },
  CYCLE_NOT_RUNNING: { status: 409, user: true, hint: 'The cycle was committed or abandoned; start a new one.' },
  CYCLE_INCOMPLETE: { status: 409, user: true, hint: 'Send every block of every disk before committing; the cycle reports where each disk stands.' },
  POINT_NOT_FOUND: { status: 404, user: true, hint: 'List points with GET /api/v1/points (or `ferry-agent backup --json` prints the new point id).' },
  INDEX_DAMAGED: { status: 500, user: false, hint: 'A stored index fails its checksum. Run `ferry-appliance verify` for the damaged points.' },
  JOB_NOT_FOUND: { status: 404, user: true, hint: 'List jobs with GET /api/v1/jobs.' },
  JOB_EXISTS: { status: 409, user: true, hint: 'A source has one live job at a time: use the existing job, or complete or cancel it first.' },
  JOB_ACTION_INVALID: { status: 409, user: true, hint: 'The job is not in a state where this action applies; its allowedActions field lists what it accepts now.' },
  JOB_NO_POINT: { status: 409, user: true, hint: 'The job has no point yet: complete it with a last cycle ("lastCycle": true), or cancel it.' },
  JOB_PAUSED: { status: 409, user: true, hint: 'The source\'s job is paused: resume it (POST /api/v1/jobs/ID/resume) before running cycles.' },
  JOB_COMPLETED: { status: 409, user: true, hint: 'The source\'s job is completed: no more cycles run for it. Create a new job to copy the source again.' },
  POINT_IN_USE: { status: 409, user: true, hint: 'Finish the restore that uses the point (or wait for the running cycle that compares against it), then try again.' },
  RESTORE_CODE_INVALID: { status: 401, user: true, hint: 'Check the restore code shown in the appliance UI (or by `ferry-appliance restore-code`); codes are 16 characters in groups of four.' },
  RESTORE_CODE_EXPIRED: { status: 401, user: true, hint: 'Create a new restore code for the point on the appliance.' },
  RESTORE_NOT_ACTIVE: { status: 409, user: true, hint: 'The restore was finished or cancelled; create a new restore code for the point.' },
  RESTORE_NOT_FOUND: { status: 404, user: true, hint: 'List restores with GET /api/v1/restores.' },
  CYCLE_STOPPED: { status: 0, user: true, hint: 'The appliance stopped this cycle (job paused, cancelled or completed); acknowledged blocks are kept and a resumed cycle continues from them.' },
  PREVIOUS_INDEX_DAMAGED: { status: 0, user: true, hint: 'Nothing to do: the agent carries on without trusting the previous point (every block\'s chunk is checked against the appliance, missing ones are sent). If it recurs, check the network path and run `ferry-appliance verify`.' },
  PAYLOAD_TOO_LARGE: { status: 413, user: true, hint: 'Send smaller batches.' },
  FINGERPRINT_MISMATCH: { status: 0, user: true, hint: 'The server presented another certificate than the one pinned. If the appliance was reinstalled, check its fingerprint on its console (`ferry-appliance fingerprint`) and pass it; otherwise someone may be intercepting the connection.' },
  FINGERPRINT_INVALID: { status: 0, user: true, hint: 'Give the fingerprint as printed by `ferry-appliance fingerprint`: SHA256: followed by 64 hex digits.' },
  APPLIANCE_UNREACHABLE: { status: 0, user: true, hint: 'Check the appliance address and port, that it runs (`make run`), and the network between the two.' },
  NOT_ENROLLED: { status: 0, user: true, hint: 'Enroll this agent first: `ferry-agent enroll --appliance URL --fingerprint FP --token T`.' },
  DISK_UNREADABLE: { status: 0, user: true, hint: 'Check the disk path and that the agent runs as root.' },
  NETWORK_UNAVAILABLE: { status: 0, user: true, hint: 'Give the VM a network interface the restore ISO has a driver for (virtio-net, e1000, vmxnet3, Hyper-V), check that it is connected, and check the address settings.' },
  TARGET_COUNT_MISMATCH: { status: 0, user: true, hint: 'Give exactly one target per source disk, in the same order (--target A,B,…).' },
  TARGET_TOO_SMALL: { status: 0, user: true, hint: 'Each target must be at least as large as its source disk: grow the target disk or pick a larger one.' },
  TARGET_UNWRITABLE: { status: 0, user: true, hint: 'Check the target path and that the restore runs as root.' },
  VERIFY_FAILED: { status: 0, user: true, hint: 'The target reads back different data than was written: the target disk may be failing. Retry on another disk.' },
  CONFIG_INVALID: { status: 0, user: true, hint: 'Fix the listed settings (flags or FERRY_* environment variables) and start again.' },
  DATA_DIR_UNUSABLE: { status: 0, user: true, hint: 'Give a writable directory with --data (or FERRY_DATA).' },
  AGENT_BINARY_MISSING: { status: 503, user: true, hint: 'Build the agent executable on the appliance: `make agent-binary` (writes agent/out/ferry-agent), or set FERRY_AGENT_BINARY to a built one; then try again.' },
  SOURCE_NOT_PASSIVE: { status: 409, user: true, hint: 'This source is an active one (its agent dials the appliance); SSH settings apply only to passive sources.' },
  SSH_HOST_KEY_MISMATCH: { status: 409, user: true, hint: 'Compare the key with `ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub` on the source (console, not over the network); confirm it only if they match.' },
  SSH_HOST_KEY_UNCONFIRMED: { status: 409, user: true, hint: 'Confirm the source\'s SSH host key first: POST /api/v1/sources/ID/host-key with the fingerprint you checked on the source.' },
  SSH_UNREACHABLE: { status: 502, user: true, hint: 'Check the address and port, that sshd runs on the source, and that a firewall lets the appliance reach it; the appliance keeps trying.' },
  PASSIVE_SOURCE_EXISTS: { status: 409, user: true, hint: 'That server is already a passive source with this user: open it (Sources) instead; its agent runs from that user\'s home directory, so two sources would stop each other.' },
  SSH_AUTH_FAILED: { status: 502, user: true, hint: 'Check the user name and password or key; the user must be root or allowed to run sudo without a password.' },
  AGENT_DEPLOY_FAILED: { status: 502, user: true, hint: 'The message names the step that failed on the source (upload, start); fix that there (disk space, noexec home, sudo) and the appliance tries again.' },
  LOGIN_FAILED: { status: 401, user: true, hint: 'Check the user name and the password (passwords are case-sensitive). An admin can set a new password for any user on the Appliance page of the web UI.' },
  LOGIN_THROTTLED: { status: 429, user: true, hint: 'Wait a minute, then log in with the right password.' },
  SETUP_REQUIRED: { status: 409, user: true, hint: 'Open the web UI and set the admin password first (first start).' },
  SETUP_DONE: { status: 409, user: true, hint: 'An admin exists already: log in with it, or ask an admin to create a user for you on the Appliance page.' },
  PASSWORD_WEAK: { status: 400, user: true, hint: 'Choose a password of at least 10 characters that is not the user name; a phrase of a few words is easy to type and hard to guess.' },
  USER_EXISTS: { status: 409, user: true, hint: 'Pick another user name, or set a new password for the existing user.' },
  USER_NOT_FOUND: { status: 404, user: true, hint: 'Reload the user list on the Appliance page.' },
  LAST_ADMIN: { status: 409, user: true, hint: 'Create another admin first, then delete this one.' },
  EXCLUSION_INVALID: { status: 0, user: true, hint: 'Give each --exclude as an absolute path on the source (a directory or file on an ext2/3/4 or XFS filesystem), and install e2fsprogs (filefrag) on the source.' },
  HOOK_FAILED: { status: 0, user: true, hint: 'Run the pre/post hook command by hand on the source and fix it; the cycle was not started (pre) or its point is kept but the service may still be stopped (post).' },
  APPLIANCE_LOCKED: { status: 503, user: true, hint: "The appliance's data is encrypted and not unlocked yet: open https://APPLIANCE:8443/ and type the passphrase, or run `ferry-appliance unlock --url https://APPLIANCE:8443 --fingerprint SHA256:…` (offline commands: `--passphrase-file FILE`)." },
  PASSPHRASE_WRONG: { status: 401, user: true, hint: 'Type the passphrase set when the appliance was initialised (it is case-sensitive; it cannot be recovered or reset).' },
  UNLOCK_THROTTLED: { status: 429, user: true, hint: 'Wait the number of seconds the message names, then try again with the right passphrase.' },
  PASSPHRASE_WEAK: { status: 400, user: true, hint: 'Choose a passphrase of at least 12 characters with at least 5 different ones, not a well-known word; a few words are easy to type and hard to guess.' },
  APPLIANCE_INITIALISED: { status: 409, user: true, hint: 'The appliance has a passphrase already: unlock it (`POST /api/v1/unlock`) instead. A passphrase cannot be replaced.' },
  KEYRING_INVALID: { status: 500, user: false, hint: 'DATA/keys/keyring.json is missing or damaged: restore it from the copy made at initialisation. Without it the encrypted data cannot be read.' },
  TRANSPORT_UNCHECKED: { status: 409, user: true, hint: 'The appliance was prepared for transport: run the arrival check (`POST /api/v1/transport/arrival` or `ferry-appliance transport arrival`) before jobs resume.' },
  TRANSPORT_BUSY: { status: 409, user: true, hint: 'Wait for the transport preparation or arrival check under way to finish (GET /api/v1/transport).' },
  MANIFEST_INVALID: { status: 409, user: true, hint: 'DATA/transport/manifest.json is missing, damaged or does not match the data: the arrival check failed; see its report for the points affected.' },
  APPLIANCE_DISK_FULL: { status: 507, user: true, hint: "The appliance's data disk is full: free space (delete old points on the Points page, then let garbage collection run) or grow the data disk, then run the backup again; it resumes from the last acknowledged block." },
  ROLE_FORBIDDEN: { status: 403, user: true, hint: 'Your role does not allow this. Viewers read only; operators run jobs, restores and source actions; users, settings, agent revocation, transport and the audit log need an admin (docs/api.md, Roles).' },
  CSRF_REJECTED: { status: 403, user: true, hint: "Reload the web UI page and try again; requests that use the session cookie must come from the appliance's own pages and carry the X-Ferry-CSRF header it hands out. Scripts should use an API token instead of the cookie." },
  AGENT_REVOKED: { status: 409, user: true, hint: "The source's agent credential is revoked already; give the source a re-enrollment token (POST /api/v1/sources/{id}/enroll-token, or the source page) and run `ferry-agent enroll` with it on the source." },
  REQUEST_TOO_SLOW: { status: 408, user: true, hint: 'Send the request body without long pauses; an agent does so by itself (a link this slow is down: it retries and resumes from its last acknowledged block).' },
  ISO_NOT_BUILT: { status: 503, user: true, hint: 'Build the restore ISO on the appliance: `make iso` (writes iso/out/ferry-restore.iso), or set FERRY_RESTORE_ISO to a built one; then download it again.' },
  RANGE_NOT_SATISFIABLE: { status: 416, user: true, hint: 'Ask for a byte range inside the file (its size is in the Content-Range header of this reply); to resume a download, start from the bytes you already have.' },
  INTERNAL: { status: 500, user: false, hint: 'This is a bug. The appliance log (DATA/logs/appliance.log) has the details; please report it.' },
} as const satisfies Record<string, { status: number; user: boolean; hint: string }>;

export type ErrorCode = keyof typeof ERRORS;

export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERRORS, code);
}

/** An error that carries a registry code; thrown anywhere, turned into one reply shape at the edge. */
export class FerryError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'FerryError';
  }
  get status(): number {
    return ERRORS[this.code].status;
  }
  get hint(): string {
    return ERRORS[this.code].hint;
  }
}

/** The one reply shape of every JSON endpoint and socket event. */
export type Reply<T> = { ok: true; data: T } | { ok: false; code: ErrorCode; message: string; hint?: string };
