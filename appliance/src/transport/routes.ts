import express, { type Router } from 'express';
import { z } from 'zod';
import { json, parse } from '../http/reply.js';
import type { TransportService } from './service.js';

export const ArrivalRequestSchema = z.strictObject({
  acceptDamage: z.boolean().optional().describe('Let jobs resume even if the check finds damage (the report still lists it).'),
});

/** Prepare for transport and the arrival check (admin); both run in the background, GET /transport follows them. */
export function transportRoutes(transport: TransportService): Router {
  const r = express.Router();
  r.get(
    '/transport',
    json(() => transport.status()),
  );
  r.post(
    '/transport/prepare',
    json(() => transport.prepare()),
  );
  r.post(
    '/transport/arrival',
    json((req) => transport.arrival((req.body === undefined ? {} : parse(ArrivalRequestSchema, req.body)).acceptDamage ?? false)),
  );
  return r;
}
