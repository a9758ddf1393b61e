import { PassphraseRequestSchema } from '../keys/routes.js';
import { ArrivalRequestSchema } from '../transport/routes.js';
import type { TransportStatus } from '../transport/service.js';
import { z } from 'zod';
import { ROLES, type Role } from '../auth/roles.js';
import type { AgentRevocation, ReEnrollToken } from '../agents/routes.js';
import type { AuditEntry } from '../audit/service.js';
import {
  AGENT_NAMESPACE,
  CycleLogReportSchema,
  HooksSchema,
  AddPassiveSourceRequestSchema,
  PassiveCredentialsRequestSchema,
  ConfirmHostKeyRequestSchema,
  PASSIVE_STATES,
  type AddPassiveSourceResponse,
  type HostKey,
  type PassiveSourceView,
  AgentHelloSchema,
  API_PREFIX,
  CancelJobRequestSchema,
  CommitCycleRequestSchema,
  CompleteJobRequestSchema,
  CreateAgentInstallRequestSchema,
  CreateJobRequestSchema,
  CreateRestoreRequestSchema,
  CreateRestoreCodeRequestSchema,
  OpenRestoreSessionRequestSchema,
  RestoreReportSchema,
  RESTORE_PHASES,
  type RestoreSession,
  CycleFailedReportSchema,
  CycleProgressReportSchema,
  CycleStoppedReportSchema,
  DEFAULT_PORT,
  DiskInfoSchema,
  EnrollRequestSchema,
  ERRORS,
  IntervalSchema,
  JOB_ACTIONS,
  JOB_PHASES,
  JOB_STATES,
  JobSettingsRequestSchema,
  MAX_INTERVAL_SECONDS,
  MAX_MAX_POINTS,
  MaxPointsSchema,
  MIN_INTERVAL_SECONDS,
  MIN_MAX_POINTS,
  MissingChunksRequestSchema,
  SOCKET_PATH,
  StartCycleRequestSchema,
  ThrottleSchema,
  UI_NAMESPACE,
  type AgentInstall,
  type AgentToServerEvents,
  type CycleDiskState,
  type CycleState,
  type DiskProgress,
  type EnrollResponse,
  type ErrorCode,
  type GcReport,
  type JobActionResult,
  type JobLogEntry,
  type JobPoint,
  type JobProgress,
  type JobTransition,
  type JobView,
  type MissingChunksResponse,
  type Point,
  type PointDisk,
  type PointStats,
  type RestoreView,
  type RunCycleCommand,
  type ServerToAgentEvents,
  type ServerToUiEvents,
  type SourceSummary,
  type StopCycleCommand,
  type UiToServerEvents,
  type UploadResponse,
} from '@ferry/protocol';
import type { SourceDiskView, SourceView } from '../sources/view.js';
import {
  CreateUserRequestSchema,
  LoginRequestSchema,
  SetPasswordRequestSchema,
  SetRoleRequestSchema,
  SettingsRequestSchema,
  SetupRequestSchema,
  type ApplianceSettings,
  type DashboardAlert,
  type DashboardSummary,
  type SessionInfo,
  type UserView,
  type VerifyStatus,
} from '../ui/types.js';

/**
 * The OpenAPI 3.1 description of the REST API, served at GET /api/v1/openapi.json. Everything comes from
 * ROUTES below: request bodies are the zod schemas the routes validate with, converted by zod; reply shapes
 * are written here, and `object<T>()` makes the compiler check that each names exactly the fields of its
 * protocol interface. The route-coverage test keeps ROUTES and the express routers in step.
 */

/** Which bearer credential an operation takes (also the `x-ferry-credential` of each operation). */
export type Credential = 'admin' | 'agent' | 'admin-or-agent' | 'admin-or-restore' | 'any' | 'none';

type Schema = { [key: string]: unknown };
type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';
type Tag = 'system' | 'sources' | 'cycles' | 'points' | 'jobs' | 'restores' | 'storage' | 'web-ui';

/** Codes the appliance answers over HTTP; status 0 marks codes the programs report themselves. */
export type HttpErrorCode = { [K in ErrorCode]: (typeof ERRORS)[K]['status'] extends 0 ? never : K }[ErrorCode];

// ---- schema helpers ------------------------------------------------------------------------------------------

/** A reference into components.schemas; the test checks that every one resolves. */
const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });
const str = (description?: string): Schema => (description ? { type: 'string', description } : { type: 'string' });
const time = (description?: string): Schema => ({ type: 'string', format: 'date-time', ...(description ? { description } : {}) });
const id = (description?: string): Schema => ({ type: 'integer', minimum: 1, ...(description ? { description } : {}) });
const count = (description?: string): Schema => ({ type: 'integer', minimum: 0, ...(description ? { description } : {}) });
const num = (description?: string): Schema => ({ type: 'number', minimum: 0, ...(description ? { description } : {}) });
const bool = (description?: string): Schema => (description ? { type: 'boolean', description } : { type: 'boolean' });
const array = (items: Schema, description?: string): Schema => ({ type: 'array', items, ...(description ? { description } : {}) });
const oneOfValues = (values: readonly string[], description?: string): Schema => ({ type: 'string', enum: [...values], ...(description ? { description } : {}) });

function nullable(s: Schema): Schema {
  if (typeof s.type === 'string' && s.enum === undefined) return { ...s, type: [s.type, 'null'] };
  return { anyOf: [s, { type: 'null' }] };
}

/** An object schema whose properties are exactly the fields of T (checked by the compiler), all required. */
function object<T>(description: string, properties: { [K in keyof NoInfer<T>]-?: Schema }): Schema {
  return { type: 'object', description, required: Object.keys(properties), properties };
}

/** Rules zod keeps in refinements, which its JSON Schema output cannot show; written out here. */
const REFINEMENTS = new Map<unknown, Schema>([
  [IntervalSchema, { minimum: MIN_INTERVAL_SECONDS, maximum: MAX_INTERVAL_SECONDS, description: 'Seconds between cycles: 1 hour to 7 days.' }],
  [MaxPointsSchema, { minimum: MIN_MAX_POINTS, maximum: MAX_MAX_POINTS, description: 'Points the job keeps at most.' }],
  [JobSettingsRequestSchema, { minProperties: 1, description: 'At least one of intervalSeconds, maxPoints, throttle, exclusions, hooks.' }],
]);

function fromZod(schema: z.ZodType, io: 'input' | 'output' = 'input'): Schema {
  const out = z.toJSONSchema(schema, {
    io,
    override: ({ zodSchema, jsonSchema }) => {
      const patch = REFINEMENTS.get(zodSchema);
      if (patch) Object.assign(jsonSchema, patch);
    },
  }) as Schema;
  // The document states its dialect once (jsonSchemaDialect); each schema does not repeat it.
  delete out.$schema;
  return out;
}

// ---- request bodies (the routes' own zod schemas) ---------------------------------------------------------------

const REQUESTS = {
  EnrollRequest: EnrollRequestSchema,
  CreateAgentInstallRequest: CreateAgentInstallRequestSchema,
  AddPassiveSourceRequest: AddPassiveSourceRequestSchema,
  PassiveCredentialsRequest: PassiveCredentialsRequestSchema,
  ConfirmHostKeyRequest: ConfirmHostKeyRequestSchema,
  // sources/routes.ts builds this one inline; keep it the same here.
  PutDisksRequest: z.strictObject({ disks: z.array(DiskInfoSchema).max(64) }),
  MissingChunksRequest: MissingChunksRequestSchema,
  StartCycleRequest: StartCycleRequestSchema,
  CommitCycleRequest: CommitCycleRequestSchema,
  CreateJobRequest: CreateJobRequestSchema,
  JobSettingsRequest: JobSettingsRequestSchema,
  CompleteJobRequest: CompleteJobRequestSchema,
  CancelJobRequest: CancelJobRequestSchema,
  CreateRestoreRequest: CreateRestoreRequestSchema,
  CreateRestoreCodeRequest: CreateRestoreCodeRequestSchema,
  OpenRestoreSessionRequest: OpenRestoreSessionRequestSchema,
  RestoreReport: RestoreReportSchema,
  // What agents send on their socket.io channel, checked against these schemas too.
  AgentHello: AgentHelloSchema,
  CycleProgressReport: CycleProgressReportSchema,
  CycleFailedReport: CycleFailedReportSchema,
  CycleStoppedReport: CycleStoppedReportSchema,
  CycleLogReport: CycleLogReportSchema,
  // The web UI's routes (appliance/src/ui/types.ts).
  SetupRequest: SetupRequestSchema,
  LoginRequest: LoginRequestSchema,
  CreateUserRequest: CreateUserRequestSchema,
  SetPasswordRequest: SetPasswordRequestSchema,
  SetRoleRequest: SetRoleRequestSchema,
  SettingsRequest: SettingsRequestSchema,
  // Unlock and initialise (appliance/src/keys/routes.ts), transport (appliance/src/transport/routes.ts).
  PassphraseRequest: PassphraseRequestSchema,
  ArrivalRequest: ArrivalRequestSchema,
} satisfies Record<string, z.ZodType>;
type RequestName = keyof typeof REQUESTS;

// ---- reply shapes (protocol/src/api.ts, protocol/src/jobs.ts, protocol/src/events.ts) --------------------------

const throttle = ref('Throttle');

// ---- the web UI's reply shapes (appliance/src/ui/types.ts, appliance/src/sources/view.ts) ------------------------

const ratioOrNull = (description: string): Schema => nullable(num(description));
const UI_RESPONSES = {
  SourceDiskView: object<SourceDiskView>('A disk of the source as its agent last reported it.', {
    id: id(),
    key: str(),
    size: count('Bytes.'),
    layout: { description: 'Partition table and filesystems as the agent sent them, or null.' },
    usedBytes: nullable(count('Bytes in use as the agent measured them.')),
    updatedAt: nullable(time()),
  }),
  SourceView: object<SourceView>('A source server: its disks, mode, whether its agent is connected, and its newest point.', {
    id: id(),
    name: str('Unique; the hostname, with a suffix (-2, -3, …) when taken.'),
    hostname: str(),
    os: nullable(str()),
    lastSeen: nullable(time('Last request of its agent (updated at most every 30 s).')),
    mode: oneOfValues(['active', 'passive'], 'active: its agent dials the appliance; passive: the appliance reaches it over SSH.'),
    online: bool('Its agent holds a control connection now.'),
    disks: array(ref('SourceDiskView')),
    lastPoint: nullable(
      object<NonNullable<SourceView['lastPoint']>>('The newest point of the source.', { id: id(), name: str(), createdAt: time(), disks: array(ref('PointDisk')) }),
    ),
  }),
  UserView: object<UserView>('A web UI user.', {
    id: id(),
    username: str(),
    role: oneOfValues(ROLES, 'viewer reads; operator also runs jobs, restores and source actions; admin does everything (docs/api.md, Roles).'),
    createdAt: time(),
    lastLoginAt: nullable(time()),
  }),
  SessionInfo: object<SessionInfo>('Whether first start is pending, and who this browser is logged in as.', {
    setupRequired: bool('No admin exists yet: the UI shows the first-start screen.'),
    user: nullable(ref('UserView')),
    csrfToken: nullable(str('Send it as the X-Ferry-CSRF header with every state-changing request made with the session cookie, and as socket.io auth.csrf.')),
  }),
  AgentRevocation: object<AgentRevocation>('A revoked agent credential.', {
    sourceId: id(),
    revoked: count('Live credentials revoked by this call.'),
    wasOnline: bool('Its control connection was open and has been closed.'),
  }),
  ReEnrollToken: object<ReEnrollToken>('A one-time enrollment token bound to an existing source.', {
    sourceId: id(),
    token: str('ferry_enroll_…: run `ferry-agent enroll --token …` with it on the source.'),
    expiresAt: time(),
  }),
  AuditEntry: object<AuditEntry>('One state-changing request.', {
    id: id(),
    at: time(),
    actor: str('user:NAME, token:ID, agent:ID, restore:ID, login:NAME (a login or first-start try), enroll-token, or anonymous.'),
    role: nullable(oneOfValues(ROLES)),
    address: str('The client address of the connection.'),
    action: str('METHOD /api/v1/path (no query string).'),
    outcome: oneOfValues(['ok', 'refused', 'failed'], 'refused: a 4xx answer; failed: a 5xx answer or the client broke off.'),
    status: count('HTTP status (499: the client broke off).'),
    code: nullable(str('The error code of a refused or failed request.')),
  }),
  ApplianceSettings: object<ApplianceSettings>('Appliance-wide settings.', {
    defaultThrottle: { ...ref('Throttle'), description: 'Prefilled in the web UI’s job form.' },
  }),
  DashboardAlert: object<DashboardAlert>('Something that needs the engineer’s attention.', {
    level: oneOfValues(['error', 'warning']),
    kind: oneOfValues(['job-error', 'job-suspended', 'restore-failed', 'storage-low', 'source-failed']),
    message: str(),
    jobId: nullable(id()),
    restoreId: nullable(id()),
    sourceId: nullable(id('A passive source that needs the engineer (source-failed).')),
  }),
  DashboardSummary: object<DashboardSummary>('The dashboard: storage, data reduction, counts and alerts.', {
    storage: object<DashboardSummary['storage']>('The filesystem of the data directory, and what the live points hold.', {
      totalBytes: count('usedBytes + freeBytes: df’s Size without the blocks reserved for root.'),
      usedBytes: count('As df’s Used: blocks − free blocks.'),
      freeBytes: count('As df’s Avail: available to an unprivileged user.'),
      storedBytes: count('Chunk file bytes written by the cycles of live points.'),
      logicalBytes: count('Bytes the live points describe (data blocks × block size).'),
      changedBytes: count('Changed bytes, before compression, that the cycles of live points carried.'),
      newChunkBytes: count('Bytes, before compression, of the chunks the cycles of live points wrote (chunks × block size): the unique data.'),
      dedupeRatio: ratioOrNull('logicalBytes / newChunkBytes (one stored copy per distinct block); null without data.'),
      compressionRatio: ratioOrNull('newChunkBytes / storedBytes (LZ4 compression of the chunks written); null without data.'),
    }),
    sources: object<DashboardSummary['sources']>('Sources.', { total: count(), online: count() }),
    jobs: object<DashboardSummary['jobs']>('Live jobs (not Completed or Cancelled).', { total: count(), running: count(), inError: count(), suspended: count() }),
    points: count('Live points.'),
    restores: object<DashboardSummary['restores']>('Restores.', { active: count() }),
    alerts: array(ref('DashboardAlert')),
  }),
  VerifyStatus: object<VerifyStatus>('The storage verify started from the web UI: running or the last result.', {
    running: bool(),
    startedAt: nullable(time()),
    finishedAt: nullable(time()),
    progress: nullable({ type: 'object', required: ['chunksChecked', 'chunksTotal', 'bytesChecked'], properties: { chunksChecked: count(), chunksTotal: count(), bytesChecked: count() } }),
    report: nullable({
      type: 'object',
      description: 'What `ferry-appliance verify` reports.',
      required: ['ok', 'chunksChecked', 'bytesChecked', 'unreferencedChunks', 'damagedChunks', 'points'],
      properties: {
        ok: bool(),
        chunksChecked: count(),
        bytesChecked: count(),
        unreferencedChunks: count(),
        damagedChunks: array({ type: 'object', required: ['id', 'problem', 'points'], properties: { id: str(), problem: str(), points: array(str()) } }),
        points: array({
          type: 'object',
          required: ['id', 'name', 'sourceId', 'ok', 'problems'],
          properties: { id: id(), name: str(), sourceId: id(), ok: bool(), problems: array(str()) },
        }),
      },
    }),
    error: nullable(str('Why the run itself failed.')),
  }),
} satisfies Record<string, Schema>;

const RESPONSES = {
  Throttle: fromZod(ThrottleSchema, 'output'),
  Hooks: fromZod(HooksSchema, 'output'),
  DiskInfo: fromZod(DiskInfoSchema),
  Health: object<{ status: 'ok' | 'locked' | 'uninitialised'; version: string }>('The appliance answers. `locked`: encrypted, passphrase not given since start (POST /unlock); `uninitialised`: no passphrase set yet (POST /initialize); `ok`: serving.', {
    status: oneOfValues(['ok', 'locked', 'uninitialised']),
    version: str(),
  }),
  LockStatus: object<{ status: 'unlocked' | 'locked' | 'uninitialised' }>('The lock state after the call.', { status: oneOfValues(['unlocked', 'locked', 'uninitialised']) }),
  TransportStatus: object<TransportStatus>('Prepare for transport / arrival check: where it stands.', {
    phase: oneOfValues(['idle', 'preparing', 'ready', 'arriving', 'arrived', 'failed']),
    powerOffSafe: bool('The manifest is written: the appliance can be powered off.'),
    jobsAllowed: bool('Jobs may resume and cycles run (false from prepare until the arrival check passed).'),
    message: str('What is happening or what to do, for the engineer.'),
    startedAt: nullable(time()),
    finishedAt: nullable(time()),
    pausedJobs: array(id(), 'Jobs the preparation paused; resume them after arrival.'),
    rootHash: nullable(str('SHA-256 over every point index file and every chunk storage key (hex).')),
    damagedPoints: array(object<TransportStatus['damagedPoints'][number]>('A damaged point.', { id: id(), name: str(), problems: array(str()) })),
    mismatches: array(str(), 'What the arrival check found different from the manifest.'),
  }),
  ApplianceInfo: object<{ fingerprint: string; version: string }>('The appliance itself.', {
    fingerprint: str('SHA-256 fingerprint of the TLS certificate, "SHA256:AB:CD:…"; clients pin it.'),
    version: str(),
  }),
  EnrollResponse: object<EnrollResponse>('A new source and its agent credential (shown only here).', {
    agentId: id(),
    sourceId: id(),
    credential: str('ferry_agent_<id>_<secret>'),
  }),
  AgentInstall: object<AgentInstall>('The one-line install command for a new source (the token is shown only here).', {
    command: str('Paste on the source as root: downloads /downloads/install.sh with curl pinned to the certificate and runs it with the token.'),
    token: str('The one-time enrollment token inside the command, ferry_enroll_<id>_<secret>.'),
    expiresAt: time('When the token expires.'),
    applianceUrl: str('https://HOST:PORT, from the Host header of this request.'),
    fingerprint: str('SHA256:AB:CD:… of the certificate, as the agent pins it.'),
    pin: str("sha256//<base64>: SHA-256 of the certificate's public key, curl's --pinnedpubkey form."),
    agent: object<AgentInstall['agent']>('The executable the command installs.', { version: str(), sha256: str('Lowercase hex.'), size: count('Bytes.') }),
  }),
  SourceSummary: object<SourceSummary>('A source server and its disks.', {
    id: id(),
    name: str('Unique; the hostname, with a suffix (-2, -3, …) when taken.'),
    hostname: str(),
    os: nullable(str()),
    lastSeen: nullable(time('Last request of its agent (updated at most every 30 s).')),
    disks: array(object<SourceSummary['disks'][number]>('A disk of the source.', { id: id(), key: str(), size: count('Bytes.') })),
  }),
  PutDisksResponse: object<{ disks: { id: number; key: string }[] }>('Disk ids, in request order.', {
    disks: array(object<{ id: number; key: string }>('A recorded disk.', { id: id(), key: str() })),
  }),
  MissingChunksResponse: object<MissingChunksResponse>('Chunks the appliance does not hold.', {
    missing: array(str(), 'In request order.'),
  }),
  CycleDiskState: object<CycleDiskState>('A disk of a cycle.', {
    slot: count('Position in the cycle; BLOCK frames name disks by slot.'),
    diskId: id(),
    key: str(),
    size: count('Bytes.'),
    blockSize: count('Bytes.'),
    blockCount: count(),
    nextBlock: count('First block not yet acknowledged: a resumed cycle continues here.'),
    previousPointId: nullable(id('The point to compare against; null: this disk is copied in full.')),
  }),
  CycleState: object<CycleState>('A backup cycle; its id becomes the point id on commit.', {
    id: id(),
    sourceId: id(),
    state: oneOfValues(['running', 'committed', 'abandoned', 'deleted'] satisfies CycleState['state'][], 'deleted: its point was deleted.'),
    resumed: bool('True when POST /cycles continued a running cycle; always false from GET.'),
    disks: array(ref('CycleDiskState')),
  }),
  UploadResponse: object<UploadResponse>('What one upload batch stored.', {
    chunksStored: count('New chunk files written.'),
    chunksDeduplicated: count('CHUNK frames not stored because the appliance had them.'),
    bytesStored: count('Bytes of the new chunk files, headers included.'),
    disks: array(object<UploadResponse['disks'][number]>('A disk position.', { slot: count(), nextBlock: count() }), "Every disk's position after this batch."),
  }),
  CommitCycleResponse: object<{ pointId: number; name: string }>('The new point.', {
    pointId: id('Equals the cycle id.'),
    name: str('CYCLE_<n>, numbered per source.'),
  }),
  PointDisk: object<PointDisk>('A disk of a point.', {
    diskId: id(),
    key: str(),
    size: count('Bytes.'),
    blockSize: count('Bytes.'),
    blockCount: count(),
    layout: { description: 'Partition table and filesystems as the agent sent them, or null.' },
    dataBlocks: count(),
    zeroBlocks: count(),
    unusedBlocks: count(),
  }),
  PointStats: object<PointStats>('Measured by the agent, except bytesStored.', {
    bytesRead: num(),
    bytesCompared: num(),
    bytesChanged: num(),
    bytesSent: num(),
    bytesStored: num('Bytes of the chunk files this cycle stored.'),
    seconds: num(),
  }),
  Point: object<Point>('A committed point: a restorable copy of a source’s disks.', {
    id: id(),
    name: str('CYCLE_<n>, numbered per source.'),
    sourceId: id(),
    sourceName: str(),
    createdAt: time('When the cycle was committed.'),
    disks: array(ref('PointDisk')),
    stats: ref('PointStats'),
  }),
  DeletePointResponse: object<{ deleted: number }>('The deleted point.', { deleted: id() }),
  DiskProgress: object<DiskProgress>('Progress of one disk.', {
    slot: count(),
    key: str(),
    blocksDone: count(),
    blockCount: count(),
    bytesDone: count(),
    bytesTotal: count(),
  }),
  JobProgress: object<JobProgress>("Live progress of a job's running cycle.", {
    jobId: id(),
    cycleId: id(),
    phase: oneOfValues(JOB_PHASES, 'Comparing: reading blocks that turn out unchanged; Transferring: sending changed ones.'),
    bytesDone: count('Used bytes read so far in this run of the cycle (a resumed cycle counts from where it resumed).'),
    bytesTotal: count(),
    bytesChanged: count(),
    bytesSent: count(),
    rate: nullable(num('Bytes per second over the last seconds; null until measured.')),
    etaSeconds: nullable(num()),
    resumed: bool(),
    throttle,
    disks: array(ref('DiskProgress')),
    updatedAt: time(),
  }),
  JobView: object<JobView>('A migration job: a full cycle, then incremental cycles every interval.', {
    id: id(),
    sourceId: id(),
    sourceName: str(),
    state: oneOfValues(JOB_STATES),
    phase: nullable(oneOfValues(JOB_PHASES)),
    intervalSeconds: count(),
    pendingIntervalSeconds: nullable(count('An interval change that applies after the next cycle completes.')),
    maxPoints: count(),
    throttle,
    exclusions: array(str(), 'Paths on the source whose files\' blocks are not copied.'),
    hooks: ref('Hooks'),
    lastCycle: bool('Complete was asked with a last cycle; Completed follows its commit.'),
    nextRunAt: nullable(time()),
    lastCompletedAt: nullable(time()),
    createdAt: time(),
    finishedAt: nullable(time()),
    error: nullable(object<NonNullable<JobView['error']>>('Why the job is InError.', { code: str(), message: str() })),
    agentOnline: bool(),
    lastSeen: nullable(time()),
    pointCount: count(),
    progress: nullable(ref('JobProgress')),
    allowedActions: array(oneOfValues(JOB_ACTIONS), 'The actions the job accepts in its state.'),
    revision: count('Grows with every view the appliance builds of the job, also across restarts: of two views of one job (a reply and a live event), the higher is the newer.'),
  }),
  JobActionResult: object<JobActionResult>('The job as it is now, and what the action means for it.', {
    job: ref('JobView'),
    message: str('One or two sentences for the user.'),
  }),
  JobTransition: object<JobTransition>('A state change of a job.', {
    id: id(),
    at: time(),
    from: nullable(oneOfValues(JOB_STATES, 'null for the creation.')),
    to: oneOfValues(JOB_STATES),
    cause: str(),
    code: nullable(str('Error code, for a move to InError.')),
  }),
  JobLogEntry: object<JobLogEntry>('A line of the job log.', {
    id: id(),
    jobId: id(),
    at: time(),
    level: oneOfValues(['info', 'warn', 'error'] satisfies JobLogEntry['level'][]),
    code: nullable(str()),
    message: str(),
  }),
  JobPoint: object<JobPoint>('A point made by a job.', {
    id: id(),
    name: str(),
    createdAt: time('When the cycle was committed.'),
    startedAt: time(),
    sizeBytes: count('Bytes of all data blocks the point names (its size as an image, without zero and unused blocks).'),
    bytesChanged: num(),
    bytesSent: num(),
    bytesStored: num(),
    seconds: num(),
    pinned: bool('An active restore uses it: retention and deletion leave it alone.'),
  }),
  HostKey: object<HostKey>('An SSH host key, as `ssh-keygen -lf KEY.pub` shows it.', {
    algorithm: str('ssh-ed25519, ecdsa-sha2-nistp256, ssh-rsa, …'),
    sha256: str('SHA256: and 43 base64 characters.'),
  }),
  PassiveSourceView: object<PassiveSourceView>('A passive source: reached over SSH; the appliance deploys and runs its agent. No password or key is ever sent back.', {
    sourceId: id(),
    name: str(),
    host: str(),
    port: count(),
    username: str(),
    auth: oneOfValues(['password', 'key'] satisfies PassiveSourceView['auth'][]),
    disks: nullable(array(str(), 'Disks on the source to back up; null: every disk found at each cycle.')),
    state: oneOfValues(PASSIVE_STATES),
    message: nullable(str('What is happening or what to fix.')),
    code: nullable(str('The error code of the failure the message describes (docs/errors.md); null while all is well.')),
    hostKey: nullable(ref('HostKey')),
    presentedHostKey: nullable(ref('HostKey')),
    agentVersion: nullable(str()),
    updatedAt: time(),
  }),
  AddPassiveSourceResponse: object<AddPassiveSourceResponse>('The new source and the host key it presented, to compare with the source and confirm.', {
    source: ref('PassiveSourceView'),
    hostKey: ref('HostKey'),
  }),
  RestoreView: object<RestoreView>('A restore of a point; while active it pins the point. With a code it is the restore ISO’s session.', {
    id: id(),
    pointId: id(),
    pointName: str(),
    sourceName: str(),
    state: oneOfValues(['active', 'finished', 'cancelled'] satisfies RestoreView['state'][]),
    phase: oneOfValues(RESTORE_PHASES),
    targetDisks: nullable(count('How many target disks the target VM must have, if given when the code was made.')),
    codeExpiresAt: nullable(time()),
    progress: nullable({
      type: 'object',
      required: ['bytesDone', 'bytesTotal', 'disk', 'message'],
      properties: { bytesDone: num(), bytesTotal: num(), disk: nullable(str()), message: nullable(str()) },
    }),
    verified: array({ type: 'object', required: ['slot', 'nextBlock'], properties: { slot: count(), nextBlock: count() } }, 'Per disk, the first block not yet written and read back.'),
    steps: array({ type: 'object', required: ['name', 'status', 'detail'], properties: { name: str(), status: oneOfValues(['ok', 'skipped', 'failed']), detail: str() } }),
    error: nullable({ type: 'object', required: ['code', 'message'], properties: { code: str(), message: str() } }),
    createdAt: time(),
    updatedAt: nullable(time()),
    finishedAt: nullable(time()),
  }),
  RestoreSession: object<RestoreSession>('The restore ISO’s session: its credential, the point and where a resumed restore starts.', {
    restoreId: id(),
    token: str('ferry_restore_<id>_<secret>'),
    point: ref('Point'),
    targetDisks: nullable(count()),
    verified: array({ type: 'object', required: ['slot', 'nextBlock'], properties: { slot: count(), nextBlock: count() } }),
  }),
  RestoreCode: object<{ restore: RestoreView; code: string }>('A new restore and its code (shown only here).', {
    restore: ref('RestoreView'),
    code: str('XXXX-XXXX-XXXX-XXXX, Crockford base32'),
  }),
  GcReport: object<GcReport>('What garbage collection did.', {
    chunksBefore: count('Chunk files in the store when the sweep looked.'),
    chunksReferenced: count('Of those, named by a live index.'),
    chunksDeleted: count(),
    bytesFreed: count(),
    chunksProtected: count('Kept only because a running cycle touched them; a later run deletes them if nothing names them by then.'),
    indexDirsRemoved: count(),
    tempFilesRemoved: count(),
    seconds: num(),
  }),
  RunCycleCommand: {
    ...object<RunCycleCommand>('Run (or resume) a cycle of a job.', {
      jobId: id(),
      reason: str('Why it runs ("scheduled", "sync-now", "last cycle", …), for the agent log.'),
      throttle,
      exclusions: array(str(), 'Paths whose files\' blocks are not read or sent; absent: none.'),
      hooks: ref('Hooks'),
    }),
    required: ['jobId', 'reason', 'throttle'],
  },
  StopCycleCommand: object<StopCycleCommand>('Stop the running cycle of a job; acknowledged blocks are kept.', {
    jobId: id(),
    reason: oneOfValues(['pause', 'cancel', 'complete'] satisfies StopCycleCommand['reason'][]),
  }),
  ...UI_RESPONSES,
} satisfies Record<string, Schema>;

/** Data of an Ok reply, inline. */
const ackData = (properties: Record<string, Schema>): Schema => ({ type: 'object', required: Object.keys(properties), properties });

// ---- the route table ----------------------------------------------------------------------------------------------

type Body = { json: RequestName; optional?: true } | { binary: string };
type Reply =
  | { data: Schema } // { ok: true, data }
  | { binary: string } // application/octet-stream on success
  | { raw: Schema } // a bare JSON body, no envelope
  | { text: string; jsonData: Schema }; // text/plain, or the envelope with ?format=json

interface QueryParam {
  name: string;
  required: boolean;
  schema: Schema;
  description: string;
}

export interface Route {
  method: Method;
  /** OpenAPI form, relative to /api/v1: `/points/{id}`. */
  path: string;
  operationId: string;
  tag: Tag;
  summary: string;
  description?: string;
  credential: Credential;
  /** The least role a web UI user needs (API tokens are admin); default: viewer to read, operator to change. */
  role?: Role;
  query?: QueryParam[];
  body?: Body;
  reply: Reply;
  /** Codes this route answers besides those every route of its kind may (see commonErrors). */
  errors: HttpErrorCode[];
  /** The format spec of a binary body, docs/spec/…. */
  spec?: string;
}

const ACTION = (action: string, summary: string, description: string, errors: HttpErrorCode[] = []): Route => ({
  method: 'post',
  path: `/jobs/{id}/${action}`,
  operationId: `${action.replace(/-(\w)/g, (_m, c: string) => c.toUpperCase())}Job`,
  tag: 'jobs',
  summary,
  description,
  credential: 'admin',
  reply: { data: ref('JobActionResult') },
  errors: ['JOB_NOT_FOUND', 'JOB_ACTION_INVALID', ...errors],
});

export const ROUTES: readonly Route[] = [
  // system
  { method: 'get', path: '/health', operationId: 'health', tag: 'system', summary: 'Is the appliance up, locked or uninitialised', credential: 'none', reply: { data: ref('Health') }, errors: [] },
  {
    method: 'post',
    path: '/unlock',
    operationId: 'unlock',
    tag: 'system',
    summary: 'Unlock an encrypted appliance with its passphrase (after every start)',
    description:
      'Until unlocked, every other route answers 503 APPLIANCE_LOCKED and socket.io connections are refused. Five wrong passphrases in a row make each further try wait (1 s, doubling, at most 5 minutes). Answers at once when already unlocked.',
    credential: 'none',
    body: { json: 'PassphraseRequest' },
    reply: { data: ref('LockStatus') },
    errors: ['PASSPHRASE_WRONG', 'UNLOCK_THROTTLED', 'APPLIANCE_LOCKED', 'KEYRING_INVALID'],
  },
  {
    method: 'post',
    path: '/initialize',
    operationId: 'initialize',
    tag: 'system',
    summary: 'Set the passphrase of a new appliance: creates its keyring, encrypts everything from then on, unlocks it',
    description: 'Only while the health check says `uninitialised`. The passphrase needs at least 12 characters; it cannot be recovered.',
    credential: 'none',
    body: { json: 'PassphraseRequest' },
    reply: { data: ref('LockStatus') },
    errors: ['PASSPHRASE_WEAK', 'APPLIANCE_INITIALISED'],
  },
  { method: 'get', path: '/transport', operationId: 'transportStatus', tag: 'storage', summary: 'Where prepare-for-transport or the arrival check stands; says when the box can be powered off', credential: 'admin', reply: { data: ref('TransportStatus') }, errors: [] },
  {
    method: 'post',
    path: '/transport/prepare',
    operationId: 'prepareTransport',
    tag: 'storage',
    summary: 'Prepare for transport: pause every live job, wait for uploads to stop, verify everything, write the signed manifest and report.txt',
    description: 'Runs in the background; poll GET /transport until `powerOffSafe`. From now on resume, sync-now, retry and new cycles answer TRANSPORT_UNCHECKED until the arrival check passes.',
    credential: 'admin',
    role: 'admin',
    reply: { data: ref('TransportStatus') },
    errors: ['TRANSPORT_BUSY'],
  },
  {
    method: 'post',
    path: '/transport/arrival',
    operationId: 'arrivalCheck',
    tag: 'storage',
    summary: 'Arrival check: re-verify every chunk and the root hash against the manifest, report damage by point',
    description: 'Runs in the background; poll GET /transport. Passed (phase `arrived`): jobs may be resumed. Failed: jobs stay refused unless `acceptDamage` is sent.',
    credential: 'admin',
    role: 'admin',
    body: { json: 'ArrivalRequest' },
    reply: { data: ref('TransportStatus') },
    errors: ['MANIFEST_INVALID', 'TRANSPORT_BUSY'],
  },
  {
    method: 'get',
    path: '/openapi.json',
    operationId: 'openApi',
    tag: 'system',
    summary: 'This document',
    description: 'The OpenAPI 3.1 document itself, without the { ok, data } envelope.',
    credential: 'none',
    reply: { raw: { type: 'object', description: 'An OpenAPI 3.1 document.' } },
    errors: [],
  },
  {
    method: 'post',
    path: '/enroll',
    operationId: 'enroll',
    tag: 'system',
    summary: 'Exchange a one-time enrollment token for a new source and its agent credential',
    description: 'The enrollment token (`ferry_enroll_…`, from `ferry-appliance enroll-token`) goes in the body, not in a header.',
    credential: 'none',
    body: { json: 'EnrollRequest' },
    reply: { data: ref('EnrollResponse') },
    errors: ['ENROLL_TOKEN_INVALID', 'ENROLL_TOKEN_USED', 'ENROLL_TOKEN_EXPIRED'],
  },
  {
    method: 'get',
    path: '/appliance',
    operationId: 'appliance',
    tag: 'system',
    summary: "The appliance's certificate fingerprint and version",
    credential: 'admin-or-agent',
    reply: { data: ref('ApplianceInfo') },
    errors: [],
  },
  // sources
  { method: 'get', path: '/sources', operationId: 'listSources', tag: 'sources', summary: 'Every source, by id', credential: 'admin', reply: { data: array(ref('SourceView')) }, errors: [] },
  {
    method: 'get',
    path: '/sources/{id}',
    operationId: 'getSource',
    tag: 'sources',
    summary: 'One source',
    description: 'An agent may read only its own source.',
    credential: 'admin-or-agent',
    reply: { data: ref('SourceView') },
    errors: ['FORBIDDEN', 'SOURCE_NOT_FOUND'],
  },
  {
    method: 'put',
    path: '/sources/{id}/disks',
    operationId: 'putSourceDisks',
    tag: 'sources',
    summary: 'Record or update disks of a source (matched by key)',
    description: 'Disks not listed are left as they are.',
    credential: 'admin-or-agent',
    body: { json: 'PutDisksRequest' },
    reply: { data: ref('PutDisksResponse') },
    errors: ['FORBIDDEN', 'SOURCE_NOT_FOUND'],
  },
  { method: 'get', path: '/passive-sources', operationId: 'listPassiveSources', tag: 'sources', summary: 'Every passive source with its SSH state', credential: 'admin', reply: { data: array(ref('PassiveSourceView')) }, errors: [] },
  {
    method: 'post',
    path: '/sources/passive',
    operationId: 'addPassiveSource',
    tag: 'sources',
    summary: 'Add a passive source (SSH)',
    description:
      'Connects to the host, learns its SSH host key without logging in, and records the source. Nothing more happens until the key is confirmed (POST /sources/{id}/host-key).',
    credential: 'admin',
    body: { json: 'AddPassiveSourceRequest' },
    reply: { data: ref('AddPassiveSourceResponse') },
    errors: ['SSH_UNREACHABLE', 'PASSIVE_SOURCE_EXISTS'],
  },
  { method: 'get', path: '/sources/{id}/passive', operationId: 'getPassiveSource', tag: 'sources', summary: 'A passive source with its SSH state', credential: 'admin', reply: { data: ref('PassiveSourceView') }, errors: ['SOURCE_NOT_FOUND', 'SOURCE_NOT_PASSIVE'] },
  {
    method: 'post',
    path: '/sources/{id}/host-key',
    operationId: 'confirmHostKey',
    tag: 'sources',
    summary: 'Trust the host key the source presented, and deploy',
    description:
      'The fingerprint must be the one the source presented (on first contact, or after it changed). The appliance then logs in, uploads the agent if missing or outdated, and runs it; progress arrives as passive.updated events.',
    credential: 'admin',
    body: { json: 'ConfirmHostKeyRequest' },
    reply: { data: ref('PassiveSourceView') },
    errors: ['SOURCE_NOT_FOUND', 'SOURCE_NOT_PASSIVE', 'SSH_HOST_KEY_MISMATCH'],
  },
  {
    method: 'put',
    path: '/sources/{id}/passive/credentials',
    operationId: 'changePassiveCredentials',
    tag: 'sources',
    summary: 'New SSH credentials for a passive source; it connects again with them',
    description:
      'A refused login (SSH_AUTH_FAILED) is not retried, so a wrong password cannot lock the account on the source; this route gives the right one (or a key) and starts again. The secret is sealed like the first one and never sent back.',
    credential: 'admin',
    body: { json: 'PassiveCredentialsRequest' },
    reply: { data: ref('PassiveSourceView') },
    errors: ['SOURCE_NOT_FOUND', 'SOURCE_NOT_PASSIVE'],
  },
  // cycles
  {
    method: 'post',
    path: '/chunks/missing',
    operationId: 'missingChunks',
    tag: 'cycles',
    summary: 'Which of these chunks the appliance does not hold',
    description: 'Ids are 64 lowercase hex characters; any other string is refused with CHUNK_ID_INVALID.',
    credential: 'admin-or-agent',
    body: { json: 'MissingChunksRequest' },
    reply: { data: ref('MissingChunksResponse') },
    errors: ['CHUNK_ID_INVALID'],
  },
  {
    method: 'post',
    path: '/cycles',
    operationId: 'startCycle',
    tag: 'cycles',
    summary: "Start a cycle for the calling agent's source, or resume its running one",
    description: 'A running cycle with the same disks, sizes and block size is resumed (`resumed: true`); otherwise it is abandoned and a new one starts. A source whose job is Paused or Completed runs no cycles.',
    credential: 'agent',
    body: { json: 'StartCycleRequest' },
    reply: { data: ref('CycleState') },
    errors: ['DISK_INVALID', 'JOB_PAUSED', 'JOB_COMPLETED'],
  },
  {
    method: 'get',
    path: '/cycles/{id}',
    operationId: 'getCycle',
    tag: 'cycles',
    summary: 'A cycle and where each disk stands',
    credential: 'admin-or-agent',
    reply: { data: ref('CycleState') },
    errors: ['CYCLE_NOT_FOUND', 'FORBIDDEN'],
  },
  {
    method: 'post',
    path: '/cycles/{id}/stream',
    operationId: 'uploadCycleStream',
    tag: 'cycles',
    summary: 'Upload one batch of chunks and block entries as a frame stream',
    description:
      'Content-Type MUST be exactly application/octet-stream. The batch is applied at its END frame, all of it or nothing; one request stages at most 512 MiB of new chunks.',
    credential: 'admin-or-agent',
    body: { binary: 'A frame stream: stream header, CHUNK frames, BLOCK frames in block order, END.' },
    reply: { data: ref('UploadResponse') },
    errors: ['CYCLE_NOT_FOUND', 'FORBIDDEN', 'CYCLE_NOT_RUNNING', 'STREAM_INVALID', 'BLOCK_OUT_OF_ORDER', 'CHUNK_MISMATCH', 'CHUNK_MISSING', 'PAYLOAD_TOO_LARGE', 'INDEX_DAMAGED', 'APPLIANCE_DISK_FULL'],
    spec: 'docs/spec/frame-stream.md#upload-stream',
  },
  {
    method: 'post',
    path: '/cycles/{id}/commit',
    operationId: 'commitCycle',
    tag: 'cycles',
    summary: 'Turn a complete cycle into a point',
    description: 'If a chunk the cycle names has gone missing, the affected disks move back to their first block naming it and the reply is CHUNK_MISSING.',
    credential: 'admin-or-agent',
    body: { json: 'CommitCycleRequest' },
    reply: { data: ref('CommitCycleResponse') },
    errors: ['CYCLE_NOT_FOUND', 'FORBIDDEN', 'CYCLE_NOT_RUNNING', 'CYCLE_INCOMPLETE', 'CHUNK_MISSING', 'INDEX_DAMAGED', 'APPLIANCE_DISK_FULL'],
    spec: 'docs/spec/block-index.md#write-ordering',
  },
  // points
  {
    method: 'get',
    path: '/points',
    operationId: 'listPoints',
    tag: 'points',
    summary: 'Committed points, by id',
    description: "An admin gets every point (or one source's with sourceId); an agent gets its own source's, and sourceId is ignored.",
    credential: 'admin-or-agent',
    query: [{ name: 'sourceId', required: false, schema: id(), description: 'Only this source’s points (admin).' }],
    reply: { data: array(ref('Point')) },
    errors: [],
  },
  {
    method: 'get',
    path: '/points/{id}',
    operationId: 'getPoint',
    tag: 'points',
    summary: 'One point',
    credential: 'any',
    reply: { data: ref('Point') },
    errors: ['POINT_NOT_FOUND', 'FORBIDDEN'],
  },
  {
    method: 'delete',
    path: '/points/{id}',
    operationId: 'deletePoint',
    tag: 'points',
    summary: 'Delete a point',
    description:
      'Refused while an active restore uses the point or a running cycle compares against it. The index files go at once; chunks no other point names go in the garbage collection that follows.',
    credential: 'admin',
    reply: { data: ref('DeletePointResponse') },
    errors: ['POINT_NOT_FOUND', 'POINT_IN_USE'],
  },
  {
    method: 'get',
    path: '/points/{id}/disks/{diskId}/index',
    operationId: 'getPointIndex',
    tag: 'points',
    summary: 'The sealed block index (.fidx file) of one disk of a point, or its header and a range of entries',
    description:
      'Without a query: the whole file, checked against its checksums before it is sent. With from and to (both): the 64-byte header, then entries from ≤ n < to (from < to ≤ blockCount, to − from ≤ 65536); only the header is checked, the reader checks the entries against the header\'s entries checksum once it has them all. Errors are JSON.',
    credential: 'any',
    role: 'operator',
    query: [
      { name: 'from', required: false, schema: count(), description: 'First entry of a range (with to).' },
      { name: 'to', required: false, schema: id(), description: 'Entry after the last of a range (with from).' },
    ],
    reply: { binary: 'The whole .fidx file; with from and to, its header and the entries of that range.' },
    errors: ['POINT_NOT_FOUND', 'FORBIDDEN', 'DISK_NOT_FOUND', 'INDEX_DAMAGED'],
    spec: 'docs/spec/block-index.md',
  },
  {
    method: 'get',
    path: '/points/{id}/disks/{diskId}/blocks',
    operationId: 'getPointBlocks',
    tag: 'points',
    summary: 'Data blocks from ≤ n < to of one disk of a point, as a restore frame stream',
    description:
      'from < to ≤ blockCount and to − from ≤ 4096. Only Data blocks are sent. Errors before the stream starts are JSON; a failure once it has started (CHUNK_DAMAGED, logged) closes the connection, and the client sees a stream without END.',
    credential: 'any',
    role: 'operator',
    query: [
      { name: 'from', required: true, schema: count(), description: 'First block.' },
      { name: 'to', required: true, schema: id(), description: 'Block after the last.' },
    ],
    reply: { binary: 'A frame stream: stream header, BLOCK + CHUNK frame pairs, END.' },
    errors: ['POINT_NOT_FOUND', 'FORBIDDEN', 'DISK_NOT_FOUND'],
    spec: 'docs/spec/frame-stream.md#restore-stream',
  },
  // jobs
  { method: 'get', path: '/jobs', operationId: 'listJobs', tag: 'jobs', summary: 'Every job, by id', credential: 'admin', reply: { data: array(ref('JobView')) }, errors: [] },
  {
    method: 'post',
    path: '/jobs',
    operationId: 'createJob',
    tag: 'jobs',
    summary: 'Create a migration job for a source',
    description: 'One live job per source. It starts Ready; the full cycle runs as soon as the agent is connected. Throttle fields not given take the defaults (300 Mbit/s, 30 % disk time, 4 reads in flight).',
    credential: 'admin',
    body: { json: 'CreateJobRequest' },
    reply: { data: ref('JobActionResult') },
    errors: ['SOURCE_NOT_FOUND', 'JOB_EXISTS'],
  },
  { method: 'get', path: '/jobs/{id}', operationId: 'getJob', tag: 'jobs', summary: 'One job', credential: 'admin', reply: { data: ref('JobView') }, errors: ['JOB_NOT_FOUND'] },
  {
    method: 'patch',
    path: '/jobs/{id}',
    operationId: 'jobSettings',
    tag: 'jobs',
    summary: "Change a live job's interval, max points or throttle",
    description:
      'An interval change applies after the next cycle completes. Max points applies at once (older points beyond it are deleted, unless pinned). A throttle change is sent to a connected agent at once.',
    credential: 'admin',
    body: { json: 'JobSettingsRequest' },
    reply: { data: ref('JobActionResult') },
    errors: ['JOB_NOT_FOUND', 'JOB_ACTION_INVALID'],
  },
  { method: 'get', path: '/jobs/{id}/points', operationId: 'jobPoints', tag: 'jobs', summary: "The job's points, oldest first", credential: 'admin', reply: { data: array(ref('JobPoint')) }, errors: ['JOB_NOT_FOUND'] },
  {
    method: 'get',
    path: '/jobs/{id}/transitions',
    operationId: 'jobTransitions',
    tag: 'jobs',
    summary: "The job's state changes, oldest first",
    credential: 'admin',
    reply: { data: array(ref('JobTransition')) },
    errors: ['JOB_NOT_FOUND'],
  },
  {
    method: 'get',
    path: '/jobs/{id}/log',
    operationId: 'jobLog',
    tag: 'jobs',
    summary: "The job's log",
    description: 'text/plain download (ferry-job-<id>.log), one line per entry; with ?format=json the entries as JSON in the usual envelope.',
    credential: 'admin',
    query: [{ name: 'format', required: false, schema: oneOfValues(['json']), description: 'json: the entries as JSON.' }],
    reply: { text: '"# Ferry job …" then "<at> <LEVEL> [CODE] message" per entry.', jsonData: array(ref('JobLogEntry')) },
    errors: ['JOB_NOT_FOUND'],
  },
  ACTION('sync-now', 'Run the next cycle now', 'Waiting only. The cycle starts as soon as the agent is connected.'),
  ACTION('pause', 'Pause the job', 'Stops a running cycle on the agent (acknowledged blocks are kept); no cycle runs until resumed.'),
  ACTION('resume', 'Resume a paused job', 'Back to Completing (a last cycle was asked), Syncing (a cycle is unfinished), Ready (no point yet) or Waiting.'),
  ACTION('retry', 'Retry a job in error', 'Clears the error and moves on as resume does; an unfinished cycle continues from its last acknowledged block.'),
  {
    ...ACTION(
      'complete',
      'Complete the job',
      'lastCycle true: one more cycle runs (after the one in progress, if any), then Completed. lastCycle false: a running cycle is abandoned and the job is Completed at once; it needs at least one point.',
      ['JOB_NO_POINT'],
    ),
    body: { json: 'CompleteJobRequest' },
  },
  {
    ...ACTION(
      'cancel',
      'Cancel the job',
      'A running cycle is abandoned; every point of the job except keepPoints (and points an active restore pins) is deleted. The body may be left out (keeps nothing). keepPoints naming a point of another job gives BAD_REQUEST.',
    ),
    body: { json: 'CancelJobRequest', optional: true },
  },
  // restores
  { method: 'get', path: '/restores', operationId: 'listRestores', tag: 'restores', summary: 'Every restore, by id', credential: 'admin', reply: { data: array(ref('RestoreView')) }, errors: [] },
  {
    method: 'post',
    path: '/restores',
    operationId: 'createRestore',
    tag: 'restores',
    summary: 'Start a restore of a point: pins the point while active',
    credential: 'admin',
    body: { json: 'CreateRestoreRequest' },
    reply: { data: ref('RestoreView') },
    errors: ['POINT_NOT_FOUND'],
  },
  {
    method: 'post',
    path: '/restores/codes',
    operationId: 'createRestoreCode',
    tag: 'restores',
    summary: 'Make a restore with a code for the restore ISO (what `ferry-appliance restore-code` prints)',
    credential: 'admin',
    body: { json: 'CreateRestoreCodeRequest' },
    reply: { data: ref('RestoreCode') },
    errors: ['POINT_NOT_FOUND'],
  },
  {
    method: 'post',
    path: '/restore-sessions',
    operationId: 'openRestoreSession',
    tag: 'restores',
    summary: 'Exchange a restore code for a session credential (the restore ISO does this)',
    description: 'The code goes in the body. A new session replaces the restore’s previous one.',
    credential: 'none',
    body: { json: 'OpenRestoreSessionRequest' },
    reply: { data: ref('RestoreSession') },
    errors: ['RESTORE_CODE_INVALID', 'RESTORE_CODE_EXPIRED', 'RESTORE_NOT_ACTIVE'],
  },
  { method: 'get', path: '/restores/{id}', operationId: 'getRestore', tag: 'restores', summary: 'One restore', credential: 'admin-or-restore', reply: { data: ref('RestoreView') }, errors: ['RESTORE_NOT_FOUND'] },
  {
    method: 'post',
    path: '/restores/{id}/report',
    operationId: 'reportRestore',
    tag: 'restores',
    summary: 'The restore ISO reports its phase, progress, verified blocks, compatibility steps or an error',
    description: 'Phase "done" finishes the restore (and unpins its point).',
    credential: 'admin-or-restore',
    body: { json: 'RestoreReport' },
    reply: { data: ref('RestoreView') },
    errors: ['RESTORE_NOT_FOUND', 'RESTORE_NOT_ACTIVE'],
  },
  {
    method: 'post',
    path: '/restores/{id}/finish',
    operationId: 'finishRestore',
    tag: 'restores',
    summary: 'Mark an active restore finished: unpins its point',
    credential: 'admin',
    reply: { data: ref('RestoreView') },
    errors: ['RESTORE_NOT_FOUND', 'RESTORE_NOT_ACTIVE'],
  },
  {
    method: 'post',
    path: '/restores/{id}/cancel',
    operationId: 'cancelRestore',
    tag: 'restores',
    summary: 'Mark an active restore cancelled: unpins its point',
    credential: 'admin',
    reply: { data: ref('RestoreView') },
    errors: ['RESTORE_NOT_FOUND', 'RESTORE_NOT_ACTIVE'],
  },
  {
    method: 'post',
    path: '/agent-installs',
    operationId: 'createAgentInstall',
    tag: 'sources',
    summary: 'A one-line command that installs, enrolls and starts the agent on a new source',
    description:
      'Makes a fresh one-time enrollment token (ttlHours, default the appliance enrollment TTL of 24 h) and the command an engineer pastes on the source as root. ' +
      'The command downloads GET /downloads/install.sh with curl pinned to this certificate\'s public key; the script downloads GET /downloads/ferry-agent the same way, checks its SHA-256, ' +
      'installs it to /usr/local/sbin/ferry-agent, enrolls it and starts its systemd unit. Both downloads are outside /api/v1 and need no token. ' +
      'AGENT_BINARY_MISSING when the appliance has no agent executable (`make agent-binary`).',
    credential: 'admin',
    body: { json: 'CreateAgentInstallRequest', optional: true },
    reply: { data: ref('AgentInstall') },
    errors: ['AGENT_BINARY_MISSING'],
  },
  {
    method: 'get',
    path: '/downloads/ferry-restore.iso',
    operationId: 'downloadRestoreIso',
    tag: 'restores',
    summary: 'The restore ISO (`make iso`), to boot target VMs from; Range requests resume a cut download',
    description:
      'application/x-iso9660-image with Content-Length, Accept-Ranges, ETag and Last-Modified. A single Range (bytes=A-B, A-, -N) answers 206 with that slice; ' +
      'If-Range with the ETag or date of a since-rebuilt ISO answers the whole new file (200). HEAD gives the size without the body. ' +
      'ISO_NOT_BUILT (503) when the appliance has no ISO (FERRY_RESTORE_ISO, default iso/out/ferry-restore.iso); RANGE_NOT_SATISFIABLE (416, Content-Range: bytes */SIZE) for a range past its end.',
    credential: 'admin',
    reply: { binary: 'The ISO, or the asked-for range of it (206).' },
    errors: ['ISO_NOT_BUILT', 'RANGE_NOT_SATISFIABLE'],
  },
  {
    method: 'post',
    path: '/sources/{id}/revoke-agent',
    operationId: 'revokeAgent',
    tag: 'sources',
    summary: 'Revoke the source’s agent credential: its REST requests and socket.io connection are cut at once, and it cannot reconnect',
    description: 'Give the source a new credential with POST /sources/{id}/enroll-token and `ferry-agent enroll` on the source. A running cycle of the source fails (the job goes InError or Suspended).',
    credential: 'admin',
    role: 'admin',
    reply: { data: ref('AgentRevocation') },
    errors: ['SOURCE_NOT_FOUND', 'AGENT_REVOKED'],
  },
  {
    method: 'post',
    path: '/sources/{id}/enroll-token',
    operationId: 'reEnrollToken',
    tag: 'sources',
    summary: 'A one-time enrollment token bound to this source: the agent that enrolls with it becomes the source’s agent (a new credential; older ones are revoked)',
    credential: 'admin',
    role: 'admin',
    reply: { data: ref('ReEnrollToken') },
    errors: ['SOURCE_NOT_FOUND'],
  },
  // web UI: first start, login, logout (no credential yet), then admin routes
  {
    method: 'get',
    path: '/session',
    operationId: 'session',
    tag: 'web-ui',
    summary: 'Whether first start is pending, and who the session cookie belongs to',
    description: 'Never fails for a missing or expired cookie: user is then null.',
    credential: 'none',
    reply: { data: ref('SessionInfo') },
    errors: [],
  },
  {
    method: 'post',
    path: '/setup',
    operationId: 'setup',
    tag: 'web-ui',
    summary: 'First start: create the first admin and log in (sets the session cookie)',
    description: 'Works once, while no user exists; there is no default account. Refused from pages of another origin.',
    credential: 'none',
    body: { json: 'SetupRequest' },
    reply: { data: ref('SessionInfo') },
    errors: ['SETUP_DONE', 'PASSWORD_WEAK', 'CSRF_REJECTED'],
  },
  {
    method: 'post',
    path: '/login',
    operationId: 'login',
    tag: 'web-ui',
    summary: 'Log in: sets the session cookie (HttpOnly, Secure, SameSite=Strict)',
    description:
      'Always opens a new session (a session the browser had before ends). After five wrong passwords from one address, or for one user name, each further try waits 1 s, doubling, up to 15 minutes for an address and 1 minute for a user name (LOGIN_THROTTLED). Refused from pages of another origin (CSRF_REJECTED). Sessions end after 30 minutes without a request and 12 hours after login.',
    credential: 'none',
    body: { json: 'LoginRequest' },
    reply: { data: ref('SessionInfo') },
    errors: ['LOGIN_FAILED', 'LOGIN_THROTTLED', 'SETUP_REQUIRED', 'CSRF_REJECTED'],
  },
  {
    method: 'post',
    path: '/logout',
    operationId: 'logout',
    tag: 'web-ui',
    summary: 'Log out: ends the cookie’s session everywhere (its open /ui sockets are closed) and clears the cookie',
    description: 'With a valid session cookie it needs the X-Ferry-CSRF header.',
    credential: 'none',
    reply: { data: ackData({ loggedOut: bool('False when there was no valid session.') }) },
    errors: ['CSRF_REJECTED'],
  },
  { method: 'get', path: '/dashboard', operationId: 'dashboard', tag: 'web-ui', summary: 'The dashboard summary', credential: 'admin', reply: { data: ref('DashboardSummary') }, errors: [] },
  { method: 'get', path: '/users', operationId: 'listUsers', tag: 'web-ui', summary: 'Every web UI user', credential: 'admin', role: 'admin', reply: { data: array(ref('UserView')) }, errors: [] },
  {
    method: 'post',
    path: '/users',
    operationId: 'createUser',
    tag: 'web-ui',
    summary: 'Create a web UI user with a role (default admin)',
    credential: 'admin',
    role: 'admin',
    body: { json: 'CreateUserRequest' },
    reply: { data: ref('UserView') },
    errors: ['USER_EXISTS', 'PASSWORD_WEAK'],
  },
  {
    method: 'put',
    path: '/users/{id}/password',
    operationId: 'setUserPassword',
    tag: 'web-ui',
    summary: 'Set a user’s password; the user’s other sessions end',
    credential: 'admin',
    role: 'admin',
    body: { json: 'SetPasswordRequest' },
    reply: { data: ref('UserView') },
    errors: ['USER_NOT_FOUND', 'PASSWORD_WEAK'],
  },
  {
    method: 'put',
    path: '/users/{id}/role',
    operationId: 'setUserRole',
    tag: 'web-ui',
    summary: 'Set a user’s role (admin, operator, viewer); takes effect on the user’s next request',
    description: 'The last admin cannot be demoted (LAST_ADMIN).',
    credential: 'admin',
    role: 'admin',
    body: { json: 'SetRoleRequest' },
    reply: { data: ref('UserView') },
    errors: ['USER_NOT_FOUND', 'LAST_ADMIN'],
  },
  {
    method: 'get',
    path: '/audit',
    operationId: 'listAudit',
    tag: 'web-ui',
    summary: 'The audit log, newest first: every state-changing request (who, when, what, from where, outcome)',
    description: 'limit (default 100, at most 1000); before: an entry id, to page back. An agent’s or restore session’s own data traffic appears only when refused.',
    credential: 'admin',
    role: 'admin',
    query: [
      { name: 'limit', required: false, schema: id(), description: 'How many entries (1–1000, default 100).' },
      { name: 'before', required: false, schema: id(), description: 'Only entries with a smaller id.' },
    ],
    reply: { data: array(ref('AuditEntry')) },
    errors: [],
  },
  {
    method: 'delete',
    path: '/users/{id}',
    operationId: 'deleteUser',
    tag: 'web-ui',
    summary: 'Delete a user and end its sessions',
    credential: 'admin',
    role: 'admin',
    reply: { data: ackData({ deleted: id() }) },
    errors: ['USER_NOT_FOUND', 'LAST_ADMIN'],
  },
  { method: 'get', path: '/settings', operationId: 'getSettings', tag: 'web-ui', summary: 'Appliance settings', credential: 'admin', reply: { data: ref('ApplianceSettings') }, errors: [] },
  {
    method: 'put',
    path: '/settings',
    operationId: 'putSettings',
    tag: 'web-ui',
    summary: 'Change appliance settings',
    credential: 'admin',
    role: 'admin',
    body: { json: 'SettingsRequest' },
    reply: { data: ref('ApplianceSettings') },
    errors: [],
  },
  { method: 'get', path: '/storage/verify', operationId: 'verifyStatus', tag: 'storage', summary: 'The running or last storage verify', credential: 'admin', reply: { data: ref('VerifyStatus') }, errors: [] },
  {
    method: 'post',
    path: '/storage/verify',
    operationId: 'startVerify',
    tag: 'storage',
    summary: 'Start re-reading every chunk and index in the background (as `ferry-appliance verify`)',
    description: 'While a run is going, answers with it instead of starting another. Poll GET /storage/verify for progress and the report.',
    credential: 'admin',
    reply: { data: ref('VerifyStatus') },
    errors: [],
  },
  // storage
  {
    method: 'post',
    path: '/storage/gc',
    operationId: 'collectGarbage',
    tag: 'storage',
    summary: 'Run garbage collection now',
    description:
      'Deletes chunk files no live index names and no running cycle may still name, index directories of cycles that are gone, and temporary files left by crashes. A call during a run waits for it, then runs once more. It also runs by itself after points are deleted. If a live index cannot be read, nothing is deleted and the reply is INDEX_DAMAGED.',
    credential: 'admin',
    reply: { data: ref('GcReport') },
    errors: ['INDEX_DAMAGED'],
  },
];

// ---- building the document ----------------------------------------------------------------------------------------

const SECURITY: Record<Credential, Record<string, string[]>[]> = {
  none: [],
  admin: [{ adminToken: [] }, { sessionCookie: [] }],
  agent: [{ agentCredential: [] }],
  'admin-or-agent': [{ adminToken: [] }, { sessionCookie: [] }, { agentCredential: [] }],
  'admin-or-restore': [{ adminToken: [] }, { sessionCookie: [] }, { restoreSession: [] }],
  any: [{ adminToken: [] }, { sessionCookie: [] }, { agentCredential: [] }, { restoreSession: [] }],
};

/** The least role a web UI user needs for a route; null for routes without a credential. */
export function routeRole(r: Route): Role | null {
  if (r.credential === 'none') return null;
  return r.role ?? (r.method === 'get' ? 'viewer' : 'operator');
}

export function pathParams(path: string): string[] {
  return [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!);
}

/** Every code a route may answer: its own, plus those that come with its credential, body and parameters. */
export function routeErrors(r: Route): HttpErrorCode[] {
  const codes = new Set<HttpErrorCode>(['INTERNAL']);
  const add = (...cs: HttpErrorCode[]): void => cs.forEach((c) => codes.add(c));
  if (r.credential !== 'none') add('AUTH_REQUIRED', 'AUTH_INVALID');
  if (r.credential !== 'none') add('FORBIDDEN');
  if (r.credential !== 'none' && r.credential !== 'agent') {
    if (routeRole(r) !== 'viewer') add('ROLE_FORBIDDEN');
    if (r.method !== 'get') add('CSRF_REJECTED');
  }
  if (r.body && 'json' in r.body) add('BAD_REQUEST', 'PAYLOAD_TOO_LARGE');
  if (pathParams(r.path).length > 0 || r.query?.length) add('BAD_REQUEST');
  add(...r.errors);
  return [...codes].sort((a, b) => ERRORS[a].status - ERRORS[b].status || a.localeCompare(b));
}

const okOf = (data: Schema): Schema => ({ allOf: [ref('Ok'), { properties: { data } }] });
const json = (schema: Schema) => ({ 'application/json': { schema } });

function successResponse(r: Route): Schema {
  const reply = r.reply;
  if ('data' in reply) return { description: 'Done.', content: json(okOf(reply.data)) };
  if ('raw' in reply) return { description: 'Done.', content: json(reply.raw) };
  if ('binary' in reply) return { description: reply.binary, content: { 'application/octet-stream': { schema: { type: 'string', contentMediaType: 'application/octet-stream' } } } };
  return {
    description: `${reply.text} With ?format=json: the entries as JSON.`,
    content: { 'text/plain': { schema: { type: 'string' } }, ...json(okOf(reply.jsonData)) },
  };
}

function operation(r: Route): Schema {
  const byStatus = new Map<number, HttpErrorCode[]>();
  for (const c of routeErrors(r)) byStatus.set(ERRORS[c].status, [...(byStatus.get(ERRORS[c].status) ?? []), c]);
  const responses: Schema = { '200': successResponse(r) };
  for (const [status, codes] of byStatus) {
    responses[String(status)] = {
      description: codes.join(', '),
      content: json({ allOf: [ref('Error'), { properties: { code: { enum: codes } } }] }),
    };
  }
  const parameters = [
    ...pathParams(r.path).map((name) => ({ name, in: 'path', required: true, schema: ref('Id') })),
    ...(r.query ?? []).map((q) => ({ name: q.name, in: 'query', required: q.required, schema: q.schema, description: q.description })),
  ];
  const description = [r.description, r.spec && `Format: ${r.spec} (Ferry source tree).`].filter(Boolean).join(' ');
  const op: Schema = {
    operationId: r.operationId,
    tags: [r.tag],
    summary: r.summary,
    ...(description ? { description } : {}),
    security: SECURITY[r.credential],
    'x-ferry-credential': r.credential,
    ...(routeRole(r) ? { 'x-ferry-role': routeRole(r) } : {}),
    'x-ferry-errors': routeErrors(r),
    ...(r.spec ? { 'x-ferry-spec': r.spec } : {}),
    ...(parameters.length ? { parameters } : {}),
    responses,
  };
  if (r.body && 'json' in r.body) op.requestBody = { required: !r.body.optional, content: json(ref(r.body.json)) };
  if (r.body && 'binary' in r.body) {
    op.requestBody = { required: true, description: r.body.binary, content: { 'application/octet-stream': { schema: { type: 'string', contentMediaType: 'application/octet-stream' } } } };
  }
  return op;
}

// ---- socket.io ------------------------------------------------------------------------------------------------------

/** An acknowledgement: the same Ok / Error reply as HTTP (hint may be absent in what agents send). */
const ack = (data: Schema): Schema => ({ oneOf: [okOf(data), ref('Error')] });

interface EventDoc {
  summary: string;
  payload?: Schema;
  ack?: Schema;
}

/** The compiler checks these name exactly the events of protocol/src/events.ts. */
const toAgent: { [K in keyof ServerToAgentEvents]-?: EventDoc } = {
  'cycle.run': { summary: 'Run (or resume) a cycle of the job.', payload: ref('RunCycleCommand'), ack: ack(ackData({ started: bool() })) },
  'cycle.stop': { summary: 'Stop the running cycle (pause, cancel, complete).', payload: ref('StopCycleCommand'), ack: ack(ackData({ stopped: bool() })) },
  'throttle.set': { summary: 'Apply a new throttle to the running cycle.', payload: throttle, ack: ack(ackData({ applied: bool() })) },
};
const fromAgent: { [K in keyof AgentToServerEvents]-?: EventDoc } = {
  'agent.hello': { summary: 'First message after connecting; names the job the agent is busy with.', payload: ref('AgentHello'), ack: ack(ackData({ sourceId: id() })) },
  'cycle.progress': { summary: 'Progress of the running cycle, about once a second and at each phase change. No acknowledgement.', payload: ref('CycleProgressReport') },
  'cycle.failed': { summary: 'The cycle failed; the job goes InError.', payload: ref('CycleFailedReport'), ack: ack({ type: 'null' }) },
  'cycle.stopped': { summary: 'The cycle stopped as asked by cycle.stop.', payload: ref('CycleStoppedReport'), ack: ack({ type: 'null' }) },
  'cycle.log': { summary: 'A line for the job log: how the disks are read (LVM snapshot or live), exclusions, final-cycle commands. No acknowledgement.', payload: ref('CycleLogReport') },
};
const toUi: { [K in keyof ServerToUiEvents]-?: EventDoc } = {
  'job.updated': { summary: 'A job changed (state, settings, points, agent online).', payload: ref('JobView') },
  'job.progress': { summary: 'Live progress of a running cycle, about once a second.', payload: ref('JobProgress') },
  'job.log': { summary: 'A new job log entry.', payload: ref('JobLogEntry') },
  'restore.updated': { summary: 'A restore changed (phase, progress, steps, error).', payload: ref('RestoreView') },
  'passive.updated': { summary: 'A passive source changed (SSH connection, deployment, host key).', payload: ref('PassiveSourceView') },
  'source.updated': {
    summary: 'A source changed: enrolled or added, online or offline, disks reported, last seen, a new point (at most about once a second per source).',
    payload: ref('SourceView'),
  },
};
const fromUi: { [K in keyof UiToServerEvents]-?: EventDoc } = {
  'jobs.list': { summary: 'Every job, as GET /jobs; no payload, only the acknowledgement.', ack: ack(array(ref('JobView'))) },
};

const SOCKET_IO = {
  description:
    'socket.io 4 channels on the same HTTPS port. OpenAPI has no notion of them, so they are described here, with payloads as $refs into components.schemas. ' +
    'The path is at the server root, not under /api/v1. The credential goes in the handshake: io(url + namespace, { path, auth: { token } }). ' +
    'A refused handshake fails with connect_error whose data is { code, hint } (AUTH_REQUIRED, AUTH_INVALID, FORBIDDEN). Acknowledged events answer with the same Ok / Error shape as HTTP.',
  path: SOCKET_PATH,
  namespaces: {
    [AGENT_NAMESPACE]: {
      description: "An agent's control channel. A new connection of the same agent replaces the old one.",
      credential: 'agent',
      serverToClient: toAgent,
      clientToServer: fromAgent,
    },
    [UI_NAMESPACE]: {
      description: 'Live updates for browsers: an admin token in auth, or the web UI’s session cookie (from the appliance’s own pages).',
      credential: 'admin',
      serverToClient: toUi,
      clientToServer: fromUi,
    },
  },
};

// ---- the document ---------------------------------------------------------------------------------------------------

const TAGS: { name: Tag; description: string }[] = [
  { name: 'system', description: 'Health, this document, enrollment, appliance identity.' },
  { name: 'sources', description: 'Source servers and their disks.' },
  { name: 'cycles', description: 'Backup cycles: upload of chunks and block entries; a committed cycle is a point.' },
  { name: 'points', description: 'Points: restorable copies of a source’s disks.' },
  { name: 'jobs', description: 'Migration jobs: a full cycle, then incremental cycles every interval, until completed or cancelled.' },
  { name: 'restores', description: 'Restores; an active restore pins its point.' },
  { name: 'storage', description: 'The chunk store.' },
  { name: 'web-ui', description: 'The web UI: first start, login and logout with a session cookie, users, dashboard, settings.' },
];

export function openApiDocument(version: string): object {
  const paths: Record<string, Record<string, Schema>> = {};
  for (const r of ROUTES) (paths[r.path] ??= {})[r.method] = operation(r);
  const requests = Object.fromEntries(Object.entries(REQUESTS).map(([name, schema]) => [name, fromZod(schema)]));
  return {
    openapi: '3.1.0',
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    info: {
      title: 'Ferry appliance API',
      version,
      description:
        'REST API of the Ferry backup appliance. HTTPS only, self-signed certificate: clients pin its SHA-256 fingerprint (GET /appliance, `ferry-appliance fingerprint`). ' +
        'JSON replies are { ok: true, data } or { ok: false, code, message, hint } with the status of the code (docs/errors.md). ' +
        'Each operation names its credential in x-ferry-credential (admin, agent, admin-or-agent, none) and every error code it may answer in x-ferry-errors. ' +
        'The socket.io channels are described in the x-socket-io extension at the root of this document. Prose: docs/api.md.',
    },
    servers: [{ url: API_PREFIX, description: `This appliance (default port ${DEFAULT_PORT}).` }],
    tags: TAGS,
    paths,
    components: {
      securitySchemes: {
        adminToken: { type: 'http', scheme: 'bearer', bearerFormat: 'ferry_admin_<id>_<secret>', description: 'Admin API token: `ferry-appliance token create --name NAME`.' },
        agentCredential: { type: 'http', scheme: 'bearer', bearerFormat: 'ferry_agent_<id>_<secret>', description: "An agent's credential from POST /enroll; reaches only its own source." },
        restoreSession: { type: 'http', scheme: 'bearer', bearerFormat: 'ferry_restore_<id>_<secret>', description: 'The restore ISO’s credential from POST /restore-sessions; reaches only its restore and that restore’s point.' },
        sessionCookie: { type: 'apiKey', in: 'cookie', name: 'ferry_session', description: 'The web UI’s session (POST /setup or POST /login sets it); an admin. Requests with it that change something must come from the appliance’s own pages.' },
      },
      schemas: {
        Id: { type: 'integer', minimum: 1, maximum: 999_999_999_999_999, description: 'Decimal, without leading zeros, at most 15 digits; anything else is BAD_REQUEST.' },
        Ok: { type: 'object', required: ['ok', 'data'], properties: { ok: { const: true }, data: {} }, description: 'Success; each operation gives the shape of data.' },
        Error: {
          type: 'object',
          required: ['ok', 'code', 'message'],
          properties: {
            ok: { const: false },
            code: { type: 'string', enum: Object.keys(ERRORS), description: 'docs/errors.md. Codes without an HTTP status there are reported by the programs themselves.' },
            message: str('What happened in this case.'),
            hint: str('What to do. Always present in the appliance’s replies.'),
          },
        },
        ...requests,
        ...RESPONSES,
      },
    },
    'x-socket-io': SOCKET_IO,
  };
}
