#!/usr/bin/env bash
# The published benchmark run (docs/results/README.md): PH2 and vessels image by image, alternating,
# on ONE core (--threads 1), until a wall-clock budget (BUDGET_S, default 1800 s) is spent. evaluate is
# resumable, so running this script again continues where it stopped. Then the tables, plots and HTML
# are rewritten from the finished cells, the strategy analysis is run on them, and the light files
# (no maps) are copied here.
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/segcause-results}
BUDGET_S=${BUDGET_S:-1800}
end=$(( $(date +%s) + BUDGET_S ))
PH2_MODELS=(models/deeplab-ph2.onnx models/segformer-ph2.onnx)
VESSEL_MODELS=(models/unet-vessels.onnx models/segnet-vessels.onnx)
# every method registered at the time of the run, cheapest settings first documented in README.md
METHODS=pdcr,saliency,gradxinput,ig,smoothgrad,guided,deeplift,gradcam,occlusion,kernelshap,lime,rise,misure,zero,pdcr-superpixel
SETS=(--set pdcr.samples=10 --set occlusion.stride=16 --set rise.masks=300 --set lime.coalitions=150
      --set kernelshap.coalitions=400 --set pdcr-superpixel.samples=5 --set misure.iterations=50)
COMMON=(--split test --rois boundary:32 --steps 10 --patch-draws 1 --threads 1 --seed 0 --methods "$METHODS" "${SETS[@]}" --out "$OUT")
for n in 1 2 3 4 5 6 7 8; do
  for ds in ph2 vessels; do
    left=$(( end - $(date +%s) ))
    [ "$left" -le 0 ] && break 2
    if [ "$ds" = ph2 ]; then models=("${PH2_MODELS[@]}"); else models=("${VESSEL_MODELS[@]}"); fi
    timeout --signal=TERM "$left" node bin/segcause.js evaluate --models "${models[@]}" --dataset ../shared/data/$ds --images "$n" "${COMMON[@]}" || true
  done
done
node bin/segcause.js evaluate --report-only --out "$OUT"
node bin/segcause.js strategies --maps "$OUT" --out "$OUT/strategies"
DEST=${DEST:-docs/results}
mkdir -p "$DEST/plots" "$DEST/strategies/plots"
cp "$OUT"/{cells.csv,cells.jsonl,summary.csv,summary.json,pairs.csv,report.html,report.md,run.json} "$DEST/"
cp "$OUT"/plots/*.png "$DEST/plots/"
cp "$OUT"/strategies/{maps.csv,models.csv,model-pairs.csv,strategies.json,report.html} "$DEST/strategies/"
cp "$OUT"/strategies/plots/*.png "$DEST/strategies/plots/"
