"""Node set-up of a ``ray.serve.llm`` vLLM replica: Ray's model download only where there is one to do.

Before it starts its engine, each replica runs one Ray task per node of its placement group to fetch
the model from cloud storage. For a local directory or a hub id (vLLM reads those itself) that task
fetches nothing, yet it starts a worker that imports torch and transformers: 8.6 s of a tiny model's
59.5 s replica start on a 2-core machine. This callback skips it unless the source is remote
(``s3://``, ``gs://``, ``abfss://``). Imported by the replica (``LLMConfig.callback_config``), never
by the `hf` engine. ``ray.serve.llm`` exports no callback base class: the two imports below are Ray
2.60's internal paths, and the vLLM tests fail at the replica's start if an upgrade moves them.
"""

from __future__ import annotations

import os

import torch
from ray.llm._internal.common.callbacks.base import CallbackBase
from ray.llm._internal.common.utils.cloud_utils import is_remote_path


class DownloadOnlyRemoteModels(CallbackBase):
    def on_before_node_init(self) -> None:
        engine = self.llm_config.get_engine_config()  # a cloud source becomes its mirror_config
        if engine.mirror_config is None and not is_remote_path(engine.actual_hf_model_id):
            self.ctx.run_init_node = False
            # what Ray's skipped download would have done first (torch needs the folder to exist)
            os.makedirs(os.path.join(os.path.dirname(torch.hub.get_dir()), "kernels"), exist_ok=True)
