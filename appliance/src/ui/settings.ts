import { DEFAULT_THROTTLE, ThrottleSchema } from '@ferry/protocol';
import type { UserRepository } from './repository.js';
import type { ApplianceSettings } from './types.js';

/** Appliance-wide settings edited on the appliance page. */
export class SettingsService {
  constructor(private readonly repo: UserRepository) {}

  get(): ApplianceSettings {
    const raw = this.repo.setting('defaultThrottle');
    const parsed = raw ? ThrottleSchema.safeParse(JSON.parse(raw)) : null;
    return { defaultThrottle: parsed?.success ? parsed.data : { ...DEFAULT_THROTTLE } };
  }

  set(s: ApplianceSettings): ApplianceSettings {
    this.repo.setSetting('defaultThrottle', JSON.stringify(s.defaultThrottle));
    return this.get();
  }
}
