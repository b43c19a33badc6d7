# Sourced by the Slurm job scripts: run_requeueable CMD... runs CMD (mpirun hidden-mpi train ...)
# in the background, passes the SIGUSR1 that `#SBATCH --signal=B:USR1@T` sends before the time
# limit on to it (hidden-mpi then checkpoints at the next step and exits with status 75), and
# requeues the job when it did. Exits with CMD's status.
run_requeueable() {
    "$@" &
    local pid=$!
    trap 'echo "time limit near: asking hidden-mpi to checkpoint"; kill -USR1 "$pid"; signalled=1' USR1
    wait "$pid"; local status=$?
    # A trapped signal interrupts `wait` (status 128 + 10): wait again for mpirun's own status.
    if [ "${signalled:-0}" = 1 ]; then wait "$pid"; status=$?; fi
    if [ "$status" -eq 75 ]; then
        echo "checkpointed; requeueing"
        scontrol requeue "$SLURM_JOB_ID"
    fi
    exit "$status"
}
