# The environment of the embedded default instance, shared by scripts/main.sh and scripts/ui.sh ($ROOT set).
export DAGSTER_HOME="${DAGSTER_HOME:-$ROOT/.dagster_home}"
# PyTorch's OpenMP threads spin while they wait for each other; on a 2-core machine where anything else
# runs (the sandbox's jails, another job) a spinning thread holds the core its partner needs, and training
# and decoding ran 3-60x slower. Sleeping instead costs ~7 % on an idle machine (docs/training.md).
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
# Offline machines clone the Polyglot benchmark from the local bundle when one sits beside the repo.
BUNDLE="$ROOT/../shared/mirrors/polyglot-benchmark.bundle"
if [ -z "${HRM_POLYGLOT_SOURCE:-}" ] && [ -f "$BUNDLE" ]; then
  export HRM_POLYGLOT_SOURCE="$BUNDLE"
fi
