// Workflows only: deterministic orchestration. All I/O lives in activities/.
export { backupRedis } from './backup-redis';
export { restoreRedis } from './restore-redis';
export { storeSafetyBackup } from './safety-backup';
export { drillRedis } from './drill-redis';
export { recoverRedis } from './recover-redis';
export { pruneBackups } from './prune-backups';
