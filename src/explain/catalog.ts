/** Every method segcause ships, registered once; import this module to get the full registry. */
import { allMethods, getMethod, methodNames, registerMethod } from "./methods.js";
import { occlusionMethod } from "./occlusion.js";
import { pdcrMethod, zeroMethod } from "./pdcr.js";

for (const m of [pdcrMethod, zeroMethod, occlusionMethod]) registerMethod(m);

export { allMethods, getMethod, methodNames };
