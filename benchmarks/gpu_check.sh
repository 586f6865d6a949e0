#!/usr/bin/env bash
# The GPU path in one prepared run (within ~8 minutes on one CUDA GPU): the suite's CUDA tests
# (pytest -m cuda), train_speed for the RNN and transformer recipes on cuda (fp32 and bf16),
# a short training of the tiny transformer, its ONNX and CTranslate2 exports, and decoding
# with torch, ONNX (CUDA execution provider) and CTranslate2 (cuda). Prints ONE JSON line:
# every stage's figures, and what was skipped and why.
#
#   bash benchmarks/gpu_check.sh --prepare     # here: data + wheels into .gpu_check/ (ignored)
#   bash benchmarks/gpu_check.sh               # on the GPU machine (carry .gpu_check)
#   GPU_CHECK_DRY=1 bash benchmarks/gpu_check.sh   # any machine: every stage on the CPU, tiny
#
# The GPU machine has a python3 with a CUDA torch and no package index: the script makes a venv
# in its work folder that sees that interpreter's packages (a .pth file) and installs into it,
# without the network, the wheels that --prepare put in .gpu_check/wheels (ctranslate2,
# sacremoses). Data: .gpu_check/data when present, else $TRANSDUCE_DATA.
# Settings: GPU_CHECK_PYTHON (python3), GPU_CHECK_WORK (a new temporary folder, removed at
# exit; a folder you name is kept).
set -uo pipefail
if [[ ${1:-} == -h || ${1:-} == --help ]]; then # the header above, without its '#'
  sed -n '2,/^set -uo/{/^#/s/^# \{0,1\}//p}' "$0"
  exit 0
fi
cd "$(dirname "$0")/.."
ROOT=$PWD
DRY=${GPU_CHECK_DRY:-0}
PY=${GPU_CHECK_PYTHON:-python3}

if [[ ${1:-} == --prepare ]]; then
  src=${TRANSDUCE_DATA:?set TRANSDUCE_DATA to the folder holding multi30k/}/multi30k
  mkdir -p .gpu_check/data/multi30k .gpu_check/wheels
  for f in train val test_2016_flickr; do cp "$src/$f".{en,de}.gz .gpu_check/data/multi30k/; done
  # the machine's Python is 3.12 on x86-64; pins from constraints.txt
  pins=$(grep -E '^(ctranslate2|sacremoses)==' constraints.txt)
  # shellcheck disable=SC2086
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .gpu_check/wheels $pins
  du -sh .gpu_check
  exit 0
fi

if [[ -n ${GPU_CHECK_WORK:-} ]]; then
  WORK=$GPU_CHECK_WORK
else # a folder of our own (its venv, logs, runs): gone when the script ends
  WORK=$(mktemp -d) || exit 1
  trap 'rm -rf -- "$WORK"' EXIT
fi
OUTDIR=$WORK/results
mkdir -p "$OUTDIR"
export TRANSDUCE_DATA=${TRANSDUCE_DATA:-}
[[ -d .gpu_check/data/multi30k ]] && TRANSDUCE_DATA=$ROOT/.gpu_check/data
export PYTHONPATH=$ROOT PYTHONUNBUFFERED=1

skip() { printf '{"skipped": %s}\n' "$(printf '%s' "$2" | "$PY" -c 'import json,sys; print(json.dumps(sys.stdin.read()))')" >"$OUTDIR/$1.json"; }

# One budget for the whole run (the GPU machine: 450 s of stages, so the run with its set-up
# ends within 8 minutes); a stage gets its own limit or what is left of the budget, and one
# that would get under 10 s is skipped, so the JSON line always comes. The rehearsal's CPU
# may be shared and slow: its limits are 4 times longer.
BUDGET=${GPU_CHECK_BUDGET:-$([[ $DRY == 1 ]] && echo 1800 || echo 450)}
SCALE=$([[ $DRY == 1 ]] && echo 4 || echo 1)
cap() {
  local want=$(($1 * SCALE)) left=$((BUDGET - SECONDS))
  local limit=$((want < left ? want : left))
  echo $((limit > 1 ? limit : 1)) # never 0: timeout 0 would mean no limit
}

# stage: NAME SECONDS COMMAND...: the command's last stdout line (JSON) is the stage's result
stage() {
  local name=$1 limit
  limit=$(cap "$2")
  shift 2
  if ((limit < 10)); then
    skip "$name" "not run: the ${BUDGET} s budget was spent"
    return
  fi
  echo "gpu_check: $name" >&2
  if timeout "$limit" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err"; then
    tail -n 1 "$WORK/$name.out" >"$OUTDIR/$name.json"
  else
    skip "$name" "failed (exit $?): $(tail -n 3 "$WORK/$name.err" | tr '\n' ' ' | cut -c1-400)"
  fi
}

# --- the venv: the host interpreter's packages (CUDA torch) plus the carried wheels
# (no pip inside: the host's pip installs into it, so ensurepip is not needed either)
"$PY" -m venv --without-pip "$WORK/venv" || { echo '{"error": "python3 -m venv failed"}'; exit 1; }
V=$WORK/venv/bin/python
site=$("$V" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
"$PY" -c 'import site, sysconfig; print("\n".join(dict.fromkeys([*site.getsitepackages(), sysconfig.get_paths()["purelib"]])))' >"$site/host.pth"
if compgen -G ".gpu_check/wheels/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$site" \
    .gpu_check/wheels/*.whl 2>"$WORK/wheels.err" ||
    echo "gpu_check: wheels not installed: $(tail -n 1 "$WORK/wheels.err")" >&2
fi

if [[ $DRY == 1 ]]; then
  DEVICE=cpu
  # tiny Multi30k-shaped data, so every stage runs in seconds
  mini=$WORK/data/multi30k
  mkdir -p "$mini"
  for f in train val test_2016_flickr; do
    for l in en de; do
      "$V" -c 'import gzip,sys; lines=gzip.open(sys.argv[1],"rt",encoding="utf-8").readlines()[:int(sys.argv[3])]; gzip.open(sys.argv[2],"wt",encoding="utf-8").writelines(lines)' \
        "$TRANSDUCE_DATA/multi30k/$f.$l.gz" "$mini/$f.$l.gz" 200
    done
  done
  TRANSDUCE_DATA=$WORK/data
  SIZES=(--warmup 1 --steps 2 --set data.vocab_size=300)
  TRAIN_STEPS=2 LIMIT=20 TESTS=(tests/engine/test_cuda.py tests/engine/test_precision.py)
  MARK="cuda or not cuda"  # the CUDA tests skip; the CPU side of fp16 runs
else
  DEVICE=cuda
  SIZES=(--warmup 10 --steps 60)
  TRAIN_STEPS=400 LIMIT=1000 MARK=cuda
  # the modules holding CUDA-marked tests: collecting the whole suite would import what the
  # GPU machine lacks (the serving stack) and spend the budget on collection
  mapfile -t TESTS < <(grep -rl --include='test_*.py' 'mark.cuda' tests)
fi

no_run=""
if ! "$V" -c 'import torch' 2>/dev/null; then
  no_run="no torch in $PY"
  echo "gpu_check: $no_run (GPU_CHECK_PYTHON names another python)" >&2
  skip env "$no_run"
else
  stage env 60 "$V" - <<'EOF'
import json, torch
info = {"torch": torch.__version__, "cuda": torch.cuda.is_available()}
if torch.cuda.is_available():
    info.update(gpu=torch.cuda.get_device_name(0), gpus=torch.cuda.device_count(),
                bf16=torch.cuda.is_bf16_supported(), cuda_runtime=torch.version.cuda)
for name in ("onnxruntime", "ctranslate2", "onnx", "onnxscript"):
    try:
        module = __import__(name)
        info[name] = module.__version__
        if name == "onnxruntime":
            info["ort_providers"] = module.get_available_providers()
        if name == "ctranslate2":
            info["ct2_cuda_devices"] = module.get_cuda_device_count()
    except Exception as error:  # a missing engine is a finding, not a failure
        info[name] = f"unavailable: {type(error).__name__}: {error}"
print(json.dumps(info))
EOF
fi

if [[ -z $no_run && $DEVICE == cuda ]] &&
  ! "$V" -c 'import torch, sys; sys.exit(not torch.cuda.is_available())'; then
  no_run="torch sees no CUDA device"
  echo "gpu_check: $no_run; set GPU_CHECK_DRY=1 for the CPU rehearsal" >&2
fi
if [[ -n $no_run ]]; then
  for s in tests train_rnn train_transformer train_run export_onnx export_ct2 decode; do
    skip $s "$no_run"
  done
else
  # the CUDA-marked tests (and, dry, the CPU side of fp16); junit XML gives the counts
  timeout "$(cap 240)" "$V" -m pytest -q -p no:cacheprovider -m "$MARK" -rs "${TESTS[@]}" \
    --junitxml="$WORK/tests.xml" >"$WORK/tests.out" 2>&1
  "$V" - "$WORK/tests.xml" "$WORK/tests.out" >"$OUTDIR/tests.json" <<'EOF'
import json, sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
    a = (root if root.tag == "testsuite" else root.find("testsuite")).attrib
    record = {k: int(a.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
except (OSError, ET.ParseError) as error:
    record = {"error": f"no junit report: {error}"}
lines = open(sys.argv[2], encoding="utf-8", errors="replace").read().splitlines()
record["skip_reasons"] = sorted({l.split(": ", 1)[-1] for l in lines if l.startswith("SKIPPED")})
record["failed"] = [l for l in lines if l.startswith(("FAILED", "ERROR"))][:10]
record["summary"] = lines[-1] if lines else ""
print(json.dumps(record))
EOF

  # training throughput, fp32 and bf16 (auto picks bf16 on a GPU that has it)
  for recipe in rnn:configs/multi30k_de_en_rnn_12m.yaml transformer:configs/multi30k_en_de_transformer_tiny.yaml; do
    for precision in fp32 bf16; do
      stage "train_${recipe%%:*}_$precision" 150 "$V" benchmarks/train_speed.py \
        --config "${recipe#*:}" --set train.device=$DEVICE --precision $precision "${SIZES[@]}"
    done
  done

  # a short training run of the tiny transformer, its exports, then decoding
  run=$WORK/run_tiny
  timeout "$(cap 200)" "$V" -m transduce train configs/multi30k_en_de_transformer_tiny.yaml \
    --out "$run" --set train.device=$DEVICE --set train.max_steps=$TRAIN_STEPS \
    --set train.valid_every=$TRAIN_STEPS --set train.valid_max=100 --set train.progress=false \
    $([[ $DRY == 1 ]] && echo --set data.vocab_size=300) >"$WORK/train_run.out" 2>&1
  if [[ -f $run/metrics.jsonl ]]; then  # its last validation row: step, loss, BLEU, seconds
    grep '"valid"' "$run/metrics.jsonl" | tail -n 1 >"$OUTDIR/train_run.json"
  else
    skip train_run "no run: $(tail -n 2 "$WORK/train_run.out" | tr '\n' ' ' | cut -c1-400)"
  fi
  exports=""
  for engine in onnx ct2; do
    stage "export_$engine" 120 "$V" -m transduce export $engine --model "$run" --out "$WORK/$engine"
    [[ -d $WORK/$engine ]] && exports+="$engine=$WORK/$engine,"
  done
  stage decode 240 "$V" benchmarks/gpu_decode.py --model "$run" --export "${exports%,}" \
    --device $DEVICE --limit $LIMIT
fi

# ONE line: every stage's JSON (or why it was skipped)
"$V" - "$OUTDIR" "$DRY" <<'EOF'
import json, pathlib, sys
record = {"benchmark": "gpu_check", "dry_run": sys.argv[2] == "1"}
for path in sorted(pathlib.Path(sys.argv[1]).glob("*.json")):
    text = path.read_text().strip()
    try:
        value = json.loads(text)
    except ValueError:
        value = {"skipped": f"no JSON result: {text[-200:]}"}
    if isinstance(value, dict):
        value.pop("resolved_config", None)  # the recipes are in configs/
    record[path.stem] = value
skipped = {}  # whole stages, and the engines a stage could not run
for name, value in list(record.items()):
    if isinstance(value, dict) and set(value) == {"skipped"}:
        skipped[name] = value["skipped"]
    elif isinstance(value, dict) and isinstance(value.get("skipped"), dict):
        skipped.update({f"{name}.{k}": v for k, v in value["skipped"].items()})
record["skipped"] = skipped
print(json.dumps(record))
EOF
