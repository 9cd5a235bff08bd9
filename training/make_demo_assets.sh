#!/usr/bin/env bash
# Regenerates the demo's shippable assets: the synthetic sample (seed 7) and a patch bank built from
# 24 other synthetic lesion images (seeds 101-124), so no dataset pixel is ever shipped.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
/usr/bin/python3 training/make_sample.py --seed 7 --out samples
mkdir -p "$tmp/images"
for k in $(seq 101 124); do
  /usr/bin/python3 training/make_sample.py --seed "$k" --no-check --out "$tmp/$k" >/dev/null
  cp "$tmp/$k/lesion.png" "$tmp/images/synth-$k.png"
done
node bin/segcause.js bank build --images "$tmp/images" --model models/unet-ph2.onnx --seed 0 --out samples/lesion-bank.scbank
rm -rf "$tmp"
