#!/usr/bin/env bash
# The full published benchmark (docs/results/README.md): the 5 PH2 models and the 5 vessel models on
# the first 20 test images of each dataset, all 15 methods, one RoI per image. Two streams run side by
# side, one core each: STREAM=ph2 and STREAM=vessels (or, once PH2 is done, STREAM=vessels256 and
# STREAM=vessels512: the 256 px and the two 512 px vessel models; once the 256 px ones are done,
# STREAM=deeplab-vessels and STREAM=segformer-vessels: one 512 px model each). evaluate is resumable, so rerunning a stream
# continues where it stopped; each stream goes image by image (every model on image 1, then image 2 ...)
# so that a stopped run holds whole images for every model. STREAM=stability adds the stability
# metrics on one model per dataset (OUT-stability). Then `REPORT=1 bash run-full.sh` writes the
# tables, plots, HTML and strategy analysis from the finished cells and copies the light files here.
#
# Block-based methods use 16 px blocks on 256 px models and 32 px blocks on the two 512 px vessel
# models (deeplab-vessels, segformer-vessels): 256 blocks on every model, with a bank of patches of
# that size (the natural-patch fill of the curves tiles the same patches).
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-/work/bench-full}
IMAGES=${IMAGES:-20}
METHODS=pdcr,zero,occlusion,rise,lime,kernelshap,pdcr-superpixel,saliency,gradxinput,ig,smoothgrad,guided,deeplift,gradcam,misure
# The published run's protocol (pixel ranks, mass-matched top-k only, the random control only): these
# flags keep its cells' keys, so the folder resumes; the unit protocol (the defaults) needs a new --out.
PROTOCOL=(--rank-units pixel --top-area none --controls random)
COMMON=(--split test --rois boundary:32 --steps 8 --patch-draws 1 --fills patches,blur,zero,mean --threads 1 --seed 0 "${PROTOCOL[@]}"
        --methods "$METHODS" --set pdcr.samples=10 --set rise.masks=300
        --set lime.segments=50 --set lime.coalitions=150 --set kernelshap.segments=50 --set kernelshap.coalitions=200
        --set pdcr-superpixel.segments=50 --set pdcr-superpixel.samples=5 --set misure.iterations=50
        --set ig.steps=16 --set smoothgrad.samples=10)
blocks() { echo --bank-patch-size $1 --set pdcr.block=$1 --set zero.block=$1 --set occlusion.block=$1 --set occlusion.stride=$1; }
if [ -n "${REPORT:-}" ]; then
  set -e  # a failed step must not leave stale files copied as results
  node bin/segcause.js evaluate --report-only --out "$OUT"
  node bin/segcause.js strategies --maps "$OUT" --out "$OUT/strategies"
  DEST=${DEST:-docs/results}
  rm -rf "$DEST/plots" "$DEST/strategies"; mkdir -p "$DEST/plots" "$DEST/strategies/plots"
  cp "$OUT"/{cells.csv,summary.csv,summary.json,pairs.csv,ranks.csv,report.html,report.md,run.json} "$DEST/"
  # every cell with its curves: about 5 KB a cell, so it is published compressed (gunzip -k to read)
  rm -f "$DEST/cells.jsonl"; gzip -9n -c "$OUT/cells.jsonl" > "$DEST/cells.jsonl.gz"
  cp "$OUT"/plots/*.png "$DEST/plots/"
  cp "$OUT"/strategies/{maps.csv,models.csv,model-pairs.csv,strategies.json,report.html} "$DEST/strategies/"
  cp "$OUT"/strategies/plots/*.png "$DEST/strategies/plots/"
  rm -rf "$DEST/runs"; mkdir -p "$DEST/runs"
  if compgen -G "$OUT/runs/*.json" > /dev/null; then cp "$OUT"/runs/*.json "$DEST/runs/"; fi
  # The stability run (STREAM=stability) has its own folder and report.
  rm -rf "$DEST/stability"
  if [ -d "$OUT-stability/cells" ]; then
    node bin/segcause.js evaluate --report-only --out "$OUT-stability"
    mkdir -p "$DEST/stability/plots" "$DEST/stability/runs"
    cp "$OUT-stability"/{cells.csv,summary.csv,summary.json,pairs.csv,report.html,report.md,run.json} "$DEST/stability/"
    gzip -9n -c "$OUT-stability/cells.jsonl" > "$DEST/stability/cells.jsonl.gz"
    cp "$OUT-stability"/plots/*.png "$DEST/stability/plots/"
    if compgen -G "$OUT-stability/runs/*.json" > /dev/null; then cp "$OUT-stability"/runs/*.json "$DEST/stability/runs/"; fi
  fi
  exit 0
fi
for n in $(seq 1 "$IMAGES"); do
  case "${STREAM:?set STREAM to ph2, vessels, vessels256, vessels512, deeplab-vessels, segformer-vessels or stability}" in
    ph2)
      node bin/segcause.js evaluate --models models/{unet,attunet,deeplab,segformer,segnet}-ph2.onnx \
        --dataset ../shared/data/ph2 --images "$n" "${COMMON[@]}" $(blocks 16) --out "$OUT" || exit 1 ;;
    vessels|vessels256|vessels512)
      if [ "$STREAM" != vessels512 ]; then
        node bin/segcause.js evaluate --models models/{unet,attunet,segnet}-vessels.onnx \
          --dataset ../shared/data/vessels --images "$n" "${COMMON[@]}" $(blocks 16) --out "$OUT" || exit 1
      fi
      if [ "$STREAM" != vessels256 ]; then
        node bin/segcause.js evaluate --models models/{deeplab,segformer}-vessels.onnx \
          --dataset ../shared/data/vessels --images "$n" "${COMMON[@]}" $(blocks 32) --out "$OUT" || exit 1
      fi ;;
    deeplab-vessels|segformer-vessels)
      node bin/segcause.js evaluate --models "models/$STREAM.onnx" \
        --dataset ../shared/data/vessels --images "$n" "${COMMON[@]}" $(blocks 32) --out "$OUT" || exit 1 ;;
    stability)
      # Stability (a noisy copy and a second seed: three times each method's cost) on the fastest model
      # of each dataset, first 5 images, in its own folder (the protocol differs, so the cells do too).
      [ "$n" -gt 5 ] && break
      node bin/segcause.js evaluate --models models/deeplab-ph2.onnx --dataset ../shared/data/ph2 --images "$n" \
        "${COMMON[@]}" $(blocks 16) --stability --out "$OUT-stability" || exit 1
      node bin/segcause.js evaluate --models models/segnet-vessels.onnx --dataset ../shared/data/vessels --images "$n" \
        "${COMMON[@]}" $(blocks 16) --stability --out "$OUT-stability" || exit 1 ;;
    *) echo "STREAM must be ph2, vessels, vessels256, vessels512, deeplab-vessels, segformer-vessels or stability" >&2; exit 1 ;;
  esac
done
