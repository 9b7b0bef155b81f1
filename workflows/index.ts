// Every workflow the control worker registers.
export { nodeEniEntity } from './nodeeni-entity.js';
export { provisionAttachment } from './provision-attachment.js';
export { teardownAttachment } from './teardown-attachment.js';
export { devicePluginNode } from './device-plugin-node.js';
export { resctrlNode } from './resctrl-node.js';
export { sweepLeakedEnis } from './sweeper.js';
