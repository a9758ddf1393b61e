import { z } from 'zod';
import { ROLES, ThrottleSchema } from '@ferry/protocol';

/**
 * Requests of the web UI's own routes (users, sessions, settings), validated here. The shapes of their replies are
 * in protocol/src/views.ts, shared with the browser; docs/api.md and openapi.ts describe both.
 */
export const MIN_PASSWORD_LENGTH = 10;

const Username = z
  .string()
  .min(1, 'give a user name')
  .max(64, 'a user name has at most 64 characters')
  .regex(/^[\p{L}\p{N}._@-]+$/u, 'a user name has letters, digits and . _ @ - only (no spaces)');

export const SetupRequestSchema = z.strictObject({ username: Username, password: z.string().max(1000) });
export type SetupRequest = z.infer<typeof SetupRequestSchema>;
export const LoginRequestSchema = z.strictObject({ username: z.string().max(64), password: z.string().max(1000) });
export type LoginRequest = z.infer<typeof LoginRequestSchema>;
export const CreateUserRequestSchema = z.strictObject({ username: Username, password: z.string().max(1000), role: z.enum(ROLES).default('admin') });
export const SetRoleRequestSchema = z.strictObject({ role: z.enum(ROLES) });
export const SetPasswordRequestSchema = z.strictObject({ password: z.string().max(1000) });
export const SettingsRequestSchema = z.strictObject({ defaultThrottle: ThrottleSchema });

export type {
  AlertLevel,
  ApplianceSettings,
  DashboardAlert,
  DashboardSummary,
  SessionInfo,
  UserView,
  VerifyStatus,
} from '@ferry/protocol';
