#!/usr/bin/env bash
# Check deploy/Containerfile.serve without podman (it cannot run here): build the
# wheelhouse, export the demo model to ONNX (an RNN: CTranslate2 converts Transformers only) if no export is given, then replay the
# Containerfile in a debootstrap rootfs and serve from it (deploy/check_image.py).
# Root, debootstrap and a Debian mirror; a few minutes. Not part of `make test`.
#   sudo deploy/check_image.sh [--export DIR] [--base ROOTFS] [--keep]
set -euo pipefail
cd "$(dirname "$0")/.."
args=("$@")
if [[ " $* " != *" --export "* ]]; then
  work=$(mktemp -d /var/tmp/transduce-check-export.XXXXXX)
  trap 'rm -rf -- "$work"' EXIT
  .venv/bin/transduce demo --out "$work/demo" >/dev/null
  .venv/bin/transduce export onnx --model "$work/demo/run" --out "$work/onnx" >/dev/null
  args+=(--export "$work/onnx")
fi
deploy/build_wheels.sh runtime
python3 deploy/check_image.py "${args[@]}"
