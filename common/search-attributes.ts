// Typed search-attribute keys, registered when the dev server starts
// (see sandbox/backends/temporal.ts) and upserted by the workflows.
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const SA_NODEENI = defineSearchAttributeKey('NodeENI', SearchAttributeType.KEYWORD);
export const SA_NODE_NAME = defineSearchAttributeKey('NodeName', SearchAttributeType.KEYWORD);
export const SA_ENI_ID = defineSearchAttributeKey('ENIId', SearchAttributeType.KEYWORD);

export const ALL_SEARCH_ATTRIBUTES = [SA_NODEENI, SA_NODE_NAME, SA_ENI_ID] as const;
