/** Every method segcause ships, registered once; import this module to get the full registry. */
import { allMethods, getMethod, methodNames, registerMethod } from "./methods.js";
import { occlusionMethod } from "./occlusion.js";
import { pdcrMethod, zeroMethod } from "./pdcr.js";
import { riseMethod } from "./rise.js";
import { limeMethod } from "./lime.js";
import { kernelshapMethod } from "./kernelshap.js";
import { pdcrSuperpixelMethod } from "./pdcr-superpixel.js";

for (const m of [pdcrMethod, zeroMethod, occlusionMethod, riseMethod, limeMethod, kernelshapMethod, pdcrSuperpixelMethod]) registerMethod(m);

export { allMethods, getMethod, methodNames };
