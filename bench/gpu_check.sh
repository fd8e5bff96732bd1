#!/usr/bin/env bash
# Everything that needs a CUDA GPU, in one run of under 10 minutes: the CUDA tests of the three
# trainers and the engines, then bench/gpu_training.py's GPU cases. With --full, a run of its
# own: the GPU cases and the 1.2 M x 50 epochs check, without the tests. Wheels in .whl/
# (bench/gpu_wheels.sh) are installed first into a scratch folder, for a machine whose Python has
# PyTorch but not the project's other packages. Each part's output goes
# to $OUT (default gpu-check/); the tests' exit status is printed, the figures are the bench's.
#
#     bash bench/gpu_check.sh [--full]
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-check}
mkdir -p "$out"
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" > /dev/null; then
    site=$(mktemp -d)
    $py -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" .whl/*.whl || exit 2
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
nvidia-smi > "$out/nvidia-smi.txt" 2>&1
$py -c "import torch; print(torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name(0))" \
    | tee "$out/torch.txt"
full=0
[[ " $* " == *" --full "* ]] && full=1
if (( ! full )); then  # the tests that run only on CUDA, and the device choices, of every trainer and engine
    timeout 200 $py -m pytest -q -p no:cacheprovider -rs \
        -k "cuda or this_machine or device_choice or plain_loop or masked or graphed" \
        tests/crop_lstm/test_training_loop.py tests/crop_lstm/test_engine_choice.py tests/crop_lstm/test_model_io.py \
        tests/s2_patch_classifier/test_engines.py tests/s2_patch_classifier/test_training_loop.py \
        tests/aq_downscaling/test_training_loop.py tests/common/test_optimisers.py > "$out/tests.txt" 2>&1
    echo "CUDA tests: exit status $? ($(tail -1 "$out/tests.txt"))"
fi
timeout "${BENCH_SECONDS:-$(( full ? 560 : 330 ))}" $py bench/gpu_training.py --skip-cpu "$@" > "$out/gpu_training.jsonl" 2>&1
echo "gpu_training: exit status $?"
grep '^{"trainer"' "$out/gpu_training.jsonl"
