"""Create (or update) the GPU cluster the fold jobs run on, scaling to zero nodes when idle.

    python aml_config/create-cluster.py [--vm-size Standard_NC4as_T4_v3] [--max-nodes 4]

An Azure ML compute cluster (AmlCompute) named tgschallenge, as the original's Batch AI cluster
was: 0 to 4 nodes, one fold per node. Running again updates an existing cluster's node counts
and idle time; its VM size and tier cannot change (delete it to change them, or use --name).
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "code"))

from tgssalt.azureml import DEFAULT_COMPUTE, add_workspace_argument  # noqa: E402
from tgssalt.azureml.workspace import DEFAULT_VM_SIZE  # noqa: E402
from tgssalt.errors import run_cli  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The cluster's name, VM size, node range, tier and idle time."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", default=DEFAULT_COMPUTE, help=f"default {DEFAULT_COMPUTE}")
    parser.add_argument(
        "--vm-size",
        default=DEFAULT_VM_SIZE,
        help=f"an NVIDIA GPU VM size, e.g. Standard_NC24ads_A100_v4 (default {DEFAULT_VM_SIZE})",
    )
    parser.add_argument("--min-nodes", type=int, default=0, help="default 0 (scale to zero)")
    parser.add_argument("--max-nodes", type=int, default=4, help="default 4 (one per fold)")
    parser.add_argument(
        "--low-priority",
        action="store_true",
        help="low-priority (spot) nodes: much cheaper, but Azure may preempt a job",
    )
    parser.add_argument(
        "--idle-seconds",
        type=int,
        default=600,
        help="idle time before a node is released (default 600)",
    )
    add_workspace_argument(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Check the settings, connect, create or update the cluster and describe it."""
    args = parse_args(argv)
    from tgssalt.azureml.workspace import cluster_report, cluster_spec, connect, create_cluster

    spec = cluster_spec(
        args.name,
        args.vm_size,
        args.min_nodes,
        args.max_nodes,
        args.low_priority,
        args.idle_seconds,
    )
    cluster = create_cluster(connect(args.workspace_config), spec)
    print(cluster_report(cluster))


if __name__ == "__main__":
    run_cli(main)
