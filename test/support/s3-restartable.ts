// The S3 server of s3.ts, under the name the fault tests use for its kill() and start().
export { startS3 as startRestartableS3, type S3Server as RestartableS3 } from './s3';
