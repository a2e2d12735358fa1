/**
 * Every example action: the scripted demo actions and the model-backed assistant. `npm start`
 * (`sluice dev`) serves this module.
 */

import { actions as demo } from './actions.ts';
import { actions as assistant } from './assistant.ts';

export { assistantModel } from './assistant.ts';
export const actions = [...demo, ...assistant];
