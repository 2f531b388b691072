import { CronExpressionParser } from 'cron-parser';

/** Five fields only: the form Temporal Schedules and crontab both read the same way. */
export function isValidCron(expr: string): boolean {
  if (expr.trim().split(/\s+/).length !== 5) return false;
  try {
    CronExpressionParser.parse(expr);
    return true;
  } catch {
    return false;
  }
}
