// The search attributes the runbooks set, so that the Temporal UI and `runbook drills list` can filter
// drills by target and outcome. `runbook dev` and the tests' server register them; on another server
// they are created once with `temporal operator search-attribute create` (docs/configuration.md).
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const TARGET_ATTR = defineSearchAttributeKey('RunbookTarget', SearchAttributeType.KEYWORD);
export const OUTCOME_ATTR = defineSearchAttributeKey('RunbookOutcome', SearchAttributeType.KEYWORD);
export const RTO_ATTR = defineSearchAttributeKey('RunbookRtoSeconds', SearchAttributeType.DOUBLE);
export const RPO_ATTR = defineSearchAttributeKey('RunbookRpoSeconds', SearchAttributeType.DOUBLE);

/** Name and type of each, as the dev server's --search-attribute takes them. */
export const SEARCH_ATTRIBUTES: Record<string, 'Keyword' | 'Double'> = {
  RunbookTarget: 'Keyword',
  RunbookOutcome: 'Keyword',
  RunbookRtoSeconds: 'Double',
  RunbookRpoSeconds: 'Double',
};

export const searchAttributeArgs = (): string[] =>
  Object.entries(SEARCH_ATTRIBUTES).flatMap(([name, type]) => ['--search-attribute', `${name}=${type}`]);
