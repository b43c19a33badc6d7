#!/usr/bin/env bash
# Slurm: edge-popup ResNet-50 on ImageNet with the reference's large-scale settings
# (configs/largescale/subnetonly/resnet50-usc-unsigned.yaml of allenai/hidden-networks): global
# batch 256, lr 0.256, momentum 0.875, weight decay 3.0517578125e-5, label smoothing 0.1, 5
# warm-up epochs then cosine, 100 epochs, k 0.3 (the reference's prune rate 0.7), signed-constant
# weights with the unscaled fan (SCALE_FAN=1 for the `sc` variant). Checkpointed every 500 steps
# and requeued before the time limit; a requeue onto any number of ranks up to 256 / CHUNK
# continues the same run bit for bit (Docs/reproducibility.md). Docs/imagenet.md explains it.
#   NODES=4 sbatch --nodes=4 jobs/imagenet-resnet50.sh /datasets/imagenet
#SBATCH --job-name=hidden-mpi-imagenet
#SBATCH --ntasks-per-node=16
#SBATCH --cpus-per-task=1
#SBATCH --time=24:00:00
#SBATCH --signal=B:USR1@300
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=hidden-mpi-imagenet-%j.out
set -u
DATA=${1:?usage: sbatch jobs/imagenet-resnet50.sh /path/to/imagenet (holding train/ and val/)}
BIN=${HIDDEN_MPI_BIN:-$PWD/.build/release/hidden-mpi}
MODEL=${MODEL:-resnet50}                  # resnet101, wide-resnet50-2 for the paper's other two
THREADS=${THREADS:-1}                     # BLAS threads per rank (ranks x threads = cores)
DATA_THREADS=${DATA_THREADS:-1}           # decoding threads per rank (they share its core)
CHUNK=${CHUNK:-4}                         # 256 / 4 = 64 chunks: the same run on 1 to 64 ranks
SCALE_FAN=${SCALE_FAN:-0}
INIT=${INIT:-signed-constant}             # kaiming-normal for the paper's other column
RUN=${RUN:-runs/imagenet-$MODEL-${SLURM_JOB_ID:-local}}
mkdir -p runs
export OPENBLAS_NUM_THREADS=$THREADS

# Once per data set: list the files that training could not decode (exit 1 if any).
if [ ! -e "$RUN.checked" ]; then
    mpirun -np "${SLURM_NTASKS:-1}" "$BIN" check-data --data-dir "$DATA" > "$RUN.check-data.txt" \
        || echo "check-data found files training will replace by the mean image: see $RUN.check-data.txt"
    touch "$RUN.checked"
fi

fan=--no-scale-fan; [ "$SCALE_FAN" = 1 ] && fan=--scale-fan
# Slurm runs a copy of this script from its spool folder: requeue.sh is found from the submit folder.
source "${HIDDEN_MPI_JOBS:-$PWD/jobs}/requeue.sh"
run_requeueable mpirun -np "${SLURM_NTASKS:-1}" --bind-to none "$BIN" train \
    --model "$MODEL" --dataset imagefolder --data-dir "$DATA" --image-size 224 \
    --k 0.3 --init "$INIT" "$fan" \
    --batch-size 256 --chunk "$CHUNK" --lr 0.256 --momentum 0.875 --weight-decay 3.0517578125e-5 \
    --label-smoothing 0.1 --warmup 5 --schedule cosine --epochs 100 \
    --data-threads "$DATA_THREADS" --threads "$THREADS" \
    --checkpoint-dir "$RUN" --checkpoint-every 500 --resume auto --metrics "$RUN.jsonl"
