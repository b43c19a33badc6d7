# Sourced by the job scripts (slurm-train.sh, slurm-srun.sh, pbs-train.sh): reads the run's
# settings from variables, fills in the defaults the batch system gives, checks every value and
# stops with one message and exit status 2 before anything is launched when one is wrong.
#
#   source jobs/job-config.sh
#   job_config slurm|pbs [DATA]    # then: mpirun -np "$RANKS" "${BIND_ARGS[@]}" "$BIN" "${TRAIN_ARGS[@]}"
#
# Variables read (all optional; Docs/jobs.md has the table):
#   DATA              data set folder (or the script's first argument); fashion-mnist defaults to
#                     /usr/share/datasets/fashion-mnist, synthetic needs none
#   DATASET           fashion-mnist, mnist, cifar10 (default), cifar100, imagefolder, synthetic
#   MODEL             conv6 (default), or any `hidden-mpi train --model` value
#   EPOCHS            100
#   RANKS             MPI ranks; default: the allocation's tasks (Slurm: SLURM_NTASKS; PBS: lines
#                     of PBS_NODEFILE)
#   THREADS_PER_RANK  BLAS threads per rank; default SLURM_CPUS_PER_TASK under Slurm, else 1;
#                     exported as OPENBLAS_NUM_THREADS (and OMP_NUM_THREADS), passed as --threads
#   CKPT_DIR          checkpoint folder (on a file system every node sees); default
#                     runs/MODEL-DATASET-slurm-JOBID or runs/MODEL-DATASET-pbs-JOBID
#   METRICS           JSON Lines metrics file; default CKPT_DIR.jsonl
#   CHECKPOINT_EVERY  steps between checkpoints (500; 0: only at epoch ends)
#   EXTRA_ARGS        more `hidden-mpi train` flags, split at spaces ("--chunk 4 --k 0.3")
#   MPIRUN_ARGS       more mpirun (or srun) options, split at spaces ("--mca pml ucx")
#   HIDDEN_MPI_BIN    the binary; default .build/release/hidden-mpi under the submit folder
#
# Sets: BIN DATA DATASET MODEL EPOCHS RANKS THREADS_PER_RANK CKPT_DIR METRICS CHECKPOINT_EVERY,
# the arrays TRAIN_ARGS (`train ...`), BIND_ARGS (mpirun's binding), MPIRUN_EXTRA (MPIRUN_ARGS
# split), and JOB_USER_VARS (the names of the variables above that the submitter set, for a
# resubmission). Exports OPENBLAS_NUM_THREADS, OMP_NUM_THREADS and, when RANKS is less than the
# allocation's tasks on purpose, HIDDEN_MPI_ALLOW_FEWER_RANKS=1 (hidden-mpi otherwise takes that
# for a launcher that started independent one-rank jobs and refuses to train).

JOB_SETTINGS="DATA DATASET MODEL EPOCHS RANKS THREADS_PER_RANK CKPT_DIR METRICS CHECKPOINT_EVERY EXTRA_ARGS MPIRUN_ARGS HIDDEN_MPI_BIN"

# One message on stderr, exit status 2: nothing has been launched.
job_fail() {
    echo "hidden-mpi job: error: $*" >&2
    exit 2
}

job_is_count() { [[ $1 =~ ^[1-9][0-9]*$ ]]; }

# The total of Slurm's compressed per-node CPU list ("16(x2),8" -> 40); empty if it is not one.
job_slurm_cpus() {
    local total=0 part parts
    IFS=, read -ra parts <<<"$1"
    for part in "${parts[@]}"; do
        if [[ $part =~ ^([0-9]+)\(x([0-9]+)\)$ ]]; then
            total=$((total + BASH_REMATCH[1] * BASH_REMATCH[2]))
        elif [[ $part =~ ^[0-9]+$ ]]; then
            total=$((total + part))
        else
            return 0
        fi
    done
    [ "$total" -gt 0 ] && echo "$total"
    return 0
}

job_config() {
    local scheduler=$1 first_arg=${2:-} root
    local slots="" slots_from="" cores="" cores_from="" tasks_var="" threads_default=1 run_tag=""
    local name
    JOB_USER_VARS=""
    for name in $JOB_SETTINGS; do
        if [ -n "${!name+set}" ]; then JOB_USER_VARS="$JOB_USER_VARS $name"; fi
    done

    case $scheduler in
    slurm)
        root=${SLURM_SUBMIT_DIR:-$PWD}
        if [ -n "${SLURM_NTASKS:-}" ]; then
            job_is_count "$SLURM_NTASKS" || job_fail "SLURM_NTASKS=$SLURM_NTASKS is not a task count"
            slots=$SLURM_NTASKS slots_from="SLURM_NTASKS=$SLURM_NTASKS" tasks_var=SLURM_NTASKS
        fi
        if [ -n "${SLURM_JOB_CPUS_PER_NODE:-}" ]; then
            cores=$(job_slurm_cpus "$SLURM_JOB_CPUS_PER_NODE")
            cores_from="SLURM_JOB_CPUS_PER_NODE=$SLURM_JOB_CPUS_PER_NODE"
        fi
        if [ -z "$cores" ] && [ -n "$slots" ] && [ -n "${SLURM_CPUS_PER_TASK:-}" ]; then
            job_is_count "$SLURM_CPUS_PER_TASK" || job_fail "SLURM_CPUS_PER_TASK=$SLURM_CPUS_PER_TASK is not a count"
            cores=$((slots * SLURM_CPUS_PER_TASK))
            cores_from="SLURM_NTASKS x SLURM_CPUS_PER_TASK = $slots x $SLURM_CPUS_PER_TASK"
        fi
        threads_default=${SLURM_CPUS_PER_TASK:-1}
        run_tag=slurm-${SLURM_JOB_ID:-local}
        ;;
    pbs)
        root=${PBS_O_WORKDIR:-$PWD}
        if [ -n "${PBS_NODEFILE:-}" ]; then
            [ -r "$PBS_NODEFILE" ] || job_fail "PBS_NODEFILE=$PBS_NODEFILE cannot be read"
            slots=$(grep -c . "$PBS_NODEFILE" || true)
            [ "$slots" -gt 0 ] || job_fail "PBS_NODEFILE=$PBS_NODEFILE lists no node"
            slots_from="the $slots lines of PBS_NODEFILE"
        fi
        if [ -n "${PBS_NP:-}" ]; then
            # Torque: the job's cores (the node file has one line per core).
            job_is_count "$PBS_NP" || job_fail "PBS_NP=$PBS_NP is not a core count"
            cores=$PBS_NP cores_from="PBS_NP=$PBS_NP" tasks_var=PBS_NP
        elif [ -n "${NCPUS:-}" ] && [ -n "$slots" ]; then
            # PBS Pro: NCPUS is the first chunk's ncpus; select=N:ncpus=C gives N such chunks.
            job_is_count "$NCPUS" || job_fail "NCPUS=$NCPUS is not a core count"
            local nodes
            nodes=$(grep . "$PBS_NODEFILE" | sort -u | wc -l)
            cores=$((NCPUS * nodes)) cores_from="NCPUS x nodes = $NCPUS x $nodes"
        fi
        run_tag=pbs-${PBS_JOBID%%.*}
        [ "$run_tag" != pbs- ] || run_tag=pbs-local
        ;;
    *) job_fail "job_config: unknown scheduler '$scheduler' (slurm or pbs)" ;;
    esac

    BIN=${HIDDEN_MPI_BIN:-$root/.build/release/hidden-mpi}
    [ -x "$BIN" ] || job_fail "no hidden-mpi binary at $BIN: run 'swift build -c release' in the repository (submit from its root), or set HIDDEN_MPI_BIN"

    MODEL=${MODEL:-conv6}
    [[ $MODEL =~ ^[a-z0-9][a-z0-9-]*$ ]] || job_fail "MODEL='$MODEL' is not a model name (hidden-mpi train --help lists them)"
    DATASET=${DATASET:-cifar10}
    DATA=${DATA:-$first_arg}
    case $DATASET in
    synthetic) ;;
    fashion-mnist | mnist | cifar10 | cifar100 | imagefolder)
        if [ -z "$DATA" ] && [ "$DATASET" = fashion-mnist ]; then DATA=/usr/share/datasets/fashion-mnist; fi
        [ -n "$DATA" ] || job_fail "DATA is not set: the folder holding the $DATASET files (DATA=/path, or the script's first argument)"
        [ -d "$DATA" ] || job_fail "DATA=$DATA is not a folder (the $DATASET files are expected there)"
        ;;
    *) job_fail "DATASET='$DATASET' is not one of fashion-mnist, mnist, cifar10, cifar100, imagefolder, synthetic" ;;
    esac

    EPOCHS=${EPOCHS:-100}
    job_is_count "$EPOCHS" || job_fail "EPOCHS='$EPOCHS' is not a positive whole number"
    CHECKPOINT_EVERY=${CHECKPOINT_EVERY:-500}
    [[ $CHECKPOINT_EVERY =~ ^[0-9]+$ ]] || job_fail "CHECKPOINT_EVERY='$CHECKPOINT_EVERY' is not a whole number of steps (0: only at epoch ends)"
    THREADS_PER_RANK=${THREADS_PER_RANK:-$threads_default}
    job_is_count "$THREADS_PER_RANK" || job_fail "THREADS_PER_RANK='$THREADS_PER_RANK' is not a positive whole number"
    RANKS=${RANKS:-$slots}
    [ -n "$RANKS" ] || job_fail "RANKS is not set and the batch system gives no task count (run the script through sbatch / qsub, or set RANKS)"
    job_is_count "$RANKS" || job_fail "RANKS='$RANKS' is not a positive whole number"
    if [ -n "$slots" ] && [ "$RANKS" -gt "$slots" ]; then
        job_fail "RANKS=$RANKS is more than the allocation's $slots task slots ($slots_from): ask the batch system for more tasks, or set RANKS=$slots"
    fi
    if [ -n "$cores" ] && [ $((RANKS * THREADS_PER_RANK)) -gt "$cores" ]; then
        job_fail "RANKS x THREADS_PER_RANK = $RANKS x $THREADS_PER_RANK = $((RANKS * THREADS_PER_RANK)) is more than the allocation's $cores cores ($cores_from): lower one of them, or ask for more cores"
    fi
    # Fewer ranks than the allocation's tasks on purpose: say so to hidden-mpi (RankAgreement.swift
    # refuses a world smaller than SLURM_NTASKS, or ranks x threads below Torque's PBS_NP).
    local fewer=0
    if [ "$tasks_var" = SLURM_NTASKS ] && [ "$RANKS" -lt "$slots" ]; then fewer=1; fi
    if [ "$tasks_var" = PBS_NP ] && [ $((RANKS * THREADS_PER_RANK)) -lt "$PBS_NP" ]; then fewer=1; fi
    if [ "$fewer" = 1 ]; then
        echo "hidden-mpi job: note: $RANKS rank(s) x $THREADS_PER_RANK thread(s) use less than the allocation's ${!tasks_var} ($tasks_var); HIDDEN_MPI_ALLOW_FEWER_RANKS=1"
        export HIDDEN_MPI_ALLOW_FEWER_RANKS=1
    fi

    CKPT_DIR=${CKPT_DIR:-runs/$MODEL-$DATASET-$run_tag}
    CKPT_DIR=${CKPT_DIR%/}
    [ -n "$CKPT_DIR" ] || job_fail "CKPT_DIR is empty"
    if [ -e "$CKPT_DIR" ] && [ ! -d "$CKPT_DIR" ]; then job_fail "CKPT_DIR=$CKPT_DIR exists and is not a folder"; fi
    mkdir -p "$(dirname "$CKPT_DIR")" 2>/dev/null && [ -w "$(dirname "$CKPT_DIR")" ] \
        || job_fail "CKPT_DIR=$CKPT_DIR: cannot write its parent folder $(dirname "$CKPT_DIR")"
    METRICS=${METRICS:-$CKPT_DIR.jsonl}

    export OPENBLAS_NUM_THREADS=$THREADS_PER_RANK OMP_NUM_THREADS=$THREADS_PER_RANK
    local extra=()
    read -ra extra <<<"${EXTRA_ARGS:-}"
    read -ra MPIRUN_EXTRA <<<"${MPIRUN_ARGS:-}"
    TRAIN_ARGS=(train --model "$MODEL" --dataset "$DATASET")
    if [ -n "$DATA" ] && [ "$DATASET" != synthetic ]; then TRAIN_ARGS+=(--data-dir "$DATA"); fi
    TRAIN_ARGS+=(--epochs "$EPOCHS" --threads "$THREADS_PER_RANK"
        --checkpoint-dir "$CKPT_DIR" --checkpoint-every "$CHECKPOINT_EVERY" --resume auto
        --metrics "$METRICS" ${extra[@]+"${extra[@]}"})
    # One core per rank; a rank with T BLAS threads gets T cores (Open MPI's PE=T).
    if [ "$THREADS_PER_RANK" -eq 1 ]; then
        BIND_ARGS=(--bind-to core)
    else
        BIND_ARGS=(--map-by "slot:PE=$THREADS_PER_RANK" --bind-to core)
    fi
    echo "hidden-mpi job: $RANKS rank(s) x $THREADS_PER_RANK thread(s); $MODEL on $DATASET${DATA:+ ($DATA)}, $EPOCHS epoch(s); checkpoints in $CKPT_DIR (--resume auto), metrics in $METRICS"
}
