// Workflow ids, in one place: the CLI starts runs by them, workflows start children by them, and a
// fixed id (restore/<target>, dr/<target>) is what makes a second restore of one target refused.
const stamp = (at: Date) => at.toISOString().replace(/[:.]/g, '');

export const workflowIds = {
  manualBackup: (target: string, at = new Date()) => `backup/${target}/manual-${stamp(at)}`,
  manualDrill: (target: string, at = new Date()) => `drill/${target}/manual-${stamp(at)}`,
  /** One restore per target at a time. */
  restore: (target: string) => `restore/${target}`,
  restorePlan: (target: string, at = Date.now()) => `restore-plan/${target}/${at}`,
  /** The safety backup a restore takes before it replaces anything. */
  safetyBackup: (target: string, restoreRunId: string) => `restore/${target}/safety/${restoreRunId}`,
  /** One recovery per target at a time. */
  recover: (target: string) => `dr/${target}`,
  recoverPlan: (target: string, at = Date.now()) => `dr-plan/${target}/${at}`,
  retention: (target: string, at = new Date()) => `retention/${target}/${stamp(at)}`,
};
