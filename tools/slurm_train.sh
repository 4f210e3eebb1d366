#!/usr/bin/env bash
# Usage: [GPUS=8] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [SRUN_ARGS=...] \
#     tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args...]
# GPU partitions: one process per GPU, GPUS in all, GPUS_PER_NODE per node.
# CPU partitions (no --gres): GPUS=0 NTASKS=N [TASKS_PER_NODE=M] (gloo).
# NTASKS defaults to GPUS, TASKS_PER_NODE to GPUS_PER_NODE (0: Slurm decides).
set -x
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-$((GPUS < 8 ? GPUS : 8))}
NTASKS=${NTASKS:-${GPUS}}
TASKS_PER_NODE=${TASKS_PER_NODE:-${GPUS_PER_NODE}}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
shift 4

if [ "${NTASKS}" -lt 1 ]; then
    echo "slurm_train.sh: no processes to start (GPUS=${GPUS}); on a CPU partition set NTASKS, e.g. GPUS=0 NTASKS=2" >&2
    exit 2
fi
RES_ARGS=()
if [ "${GPUS_PER_NODE}" -gt 0 ]; then
    # srun's answer to --gres on a partition without GPUs is obscure
    GRES=$(sinfo -h -p "${PARTITION}" -o %G 2>/dev/null | sort -u | tr '\n' ' ')
    if [ -n "${GRES}" ] && [[ "${GRES}" != *gpu* ]]; then
        echo "slurm_train.sh: partition ${PARTITION} has no GPUs (gres: ${GRES% }); on a CPU partition set GPUS=0 NTASKS=N" >&2
        exit 2
    fi
    RES_ARGS+=(--gres=gpu:"${GPUS_PER_NODE}")
fi
[ "${TASKS_PER_NODE}" -gt 0 ] && RES_ARGS+=(--ntasks-per-node="${TASKS_PER_NODE}")

PYTHONPATH="$(dirname "$0")/..":${PYTHONPATH:-} \
srun -p "${PARTITION}" \
    --job-name="${JOB_NAME}" \
    --ntasks="${NTASKS}" \
    "${RES_ARGS[@]}" \
    --cpus-per-task="${CPUS_PER_TASK}" \
    --kill-on-bad-exit=1 \
    ${SRUN_ARGS} \
    "${PYTHON:-python}" -u "$(dirname "$0")/train.py" "${CONFIG}" --work-dir="${WORK_DIR}" --launcher="slurm" "$@"
