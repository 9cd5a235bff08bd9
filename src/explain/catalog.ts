/** Every method segcause ships, registered once; import this module to get the full registry. */

import { deepLiftMethod } from "./deeplift.js";
import { gradCamMethod } from "./gradcam.js";
import { gradXInputMethod } from "./gradxinput.js";
import { guidedMethod } from "./guided.js";
import { igMethod } from "./ig.js";
import { kernelshapMethod } from "./kernelshap.js";
import { limeMethod } from "./lime.js";
import { allMethods, getMethod, methodNames, registerMethod, volumeMethodNames, windowedMethodNames } from "./methods.js";
import { misureMethod } from "./misure.js";
import { occlusionMethod } from "./occlusion.js";
import { pdcrMethod, zeroMethod } from "./pdcr.js";
import { pdcrSuperpixelMethod } from "./pdcr-superpixel.js";
import { riseMethod } from "./rise.js";
import { saliencyMethod } from "./saliency.js";
import { smoothGradMethod } from "./smoothgrad.js";

// One call each: every definition has its own option type, which the registry forgets.
registerMethod(pdcrMethod);
registerMethod(zeroMethod);
registerMethod(occlusionMethod);
registerMethod(riseMethod);
registerMethod(limeMethod);
registerMethod(kernelshapMethod);
registerMethod(pdcrSuperpixelMethod);
registerMethod(saliencyMethod);
registerMethod(gradXInputMethod);
registerMethod(igMethod);
registerMethod(smoothGradMethod);
registerMethod(guidedMethod);
registerMethod(deepLiftMethod);
registerMethod(gradCamMethod);
registerMethod(misureMethod);

export { allMethods, getMethod, methodNames, volumeMethodNames, windowedMethodNames };
