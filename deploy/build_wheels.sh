#!/usr/bin/env bash
# The wheelhouse the Containerfiles install from (no network inside an image build):
# transduce's own wheel from the working tree and every pinned dependency of the chosen
# extras, in deploy/wheels/. Usage: deploy/build_wheels.sh [EXTRAS]   (default: runtime;
# the training image needs "train,export").
set -euo pipefail
cd "$(dirname "$0")/.."
extras=${1:-runtime}
tmp=$(mktemp -d deploy/.wheels.XXXXXX)
trap 'rm -rf -- "$tmp"' EXIT
python3 -m pip wheel -q --wheel-dir "$tmp" -c constraints.txt ".[$extras]"
# replace only a wheelhouse this script made (nothing but wheels in it)
if [[ -d deploy/wheels ]]; then
  if find deploy/wheels -mindepth 1 ! -name '*.whl' | grep -q .; then
    echo "build_wheels: deploy/wheels holds files that are not wheels; not replacing it" >&2
    exit 1
  fi
  rm -rf -- deploy/wheels
fi
mv "$tmp" deploy/wheels
trap - EXIT
echo "build_wheels: $(ls deploy/wheels | wc -l) wheels in deploy/wheels ($extras)"
