"""Starting training workers: ``lima-data train`` runs in-process for one worker, and through torchrun
(``torch.distributed.run``) for several: ``--nproc-per-node`` on one node (standalone rendezvous), and
``--nnodes / --node-rank / --rdzv-endpoint`` across nodes (c10d rendezvous; run the same command on every node,
e.g. from ``lima_data/train/slurm.sbatch``). The settings go to the workers as a JSON file in the output folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .config import TrainConfig


def launch(config: TrainConfig, *, nproc_per_node: int = 1, nnodes: int = 1, node_rank: int = 0,
           rdzv_endpoint: str | None = None) -> dict | None:
    """Train with ``config`` on ``nproc_per_node`` x ``nnodes`` workers. Returns the summary when run in-process
    (one worker), else ``None`` (torchrun's workers report to the output folder's metrics.jsonl)."""
    output = Path(config.output)
    output.mkdir(parents=True, exist_ok=True)
    if nproc_per_node * nnodes == 1 or "RANK" in os.environ:
        import torch.distributed as dist

        from .trainer import train

        summary = train(config)
        dist.destroy_process_group()
        return summary
    path = output / "launch_config.json"
    path.write_text(json.dumps(config.to_dict(), indent=2))
    from torch.distributed.run import main as torchrun

    args = ["--nproc-per-node", str(nproc_per_node), "--nnodes", str(nnodes)]
    if nnodes == 1 and rdzv_endpoint is None:
        args.append("--standalone")
    else:
        if rdzv_endpoint is None:
            raise ValueError("several nodes need --rdzv-endpoint HOST:PORT")
        args += ["--node-rank", str(node_rank), "--rdzv-backend", "c10d", "--rdzv-endpoint", rdzv_endpoint,
                 "--rdzv-id", Path(config.output).name]
    torchrun(args + ["-m", "lima_data.train.trainer", "--config", str(path)])
    return None
