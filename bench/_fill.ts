import { Redis } from 'ioredis';
import { fillLargeValues } from './datasets';
const r = new Redis({ port: Number(process.argv[2]) });
await r.flushall();
await fillLargeValues(r, Number(process.argv[3]));
r.disconnect();
